"""`agentotel replay --html` and `agentotel ui`, run as a user runs them: subprocesses over a real store."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

RECORD = """
import agentotel
agentotel.init()

@agentotel.tool
def lookup(q):
    raise ValueError("no such customer <b>x</b>")

try:
    with agentotel.session("html-cli", tags=["cli"]):
        lookup("q")
except ValueError:
    pass
"""


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "sessions.db"
    env = {**os.environ, "AGENTOTEL_STORE": str(path)}
    subprocess.run([sys.executable, "-c", RECORD], env=env, check=True, timeout=60)
    return path


def _agentotel(*args: str, store: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AGENTOTEL_STORE": str(store)}
    return subprocess.run(
        [sys.executable, "-m", "agentotel", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_replay_html_writes_a_self_contained_page(store: Path, tmp_path: Path) -> None:
    target = tmp_path / "replay.html"
    result = _agentotel("replay", "last", "--html", str(target), store=store)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Wrote {target}"
    page = target.read_text()
    assert "html-cli" in page
    assert "<b>x</b>" not in page  # agent content is escaped data, never markup
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=\"?https?://", page)


def test_replay_html_to_an_unwritable_path_is_one_clear_line(store: Path) -> None:
    result = _agentotel("replay", "last", "--html", "/nonexistent-dir/x.html", store=store)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_ui_serves_the_list_and_the_replay(store: Path) -> None:
    env = {**os.environ, "AGENTOTEL_STORE": str(store)}
    process = subprocess.Popen(
        [sys.executable, "-m", "agentotel", "ui", "--port", "0"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/?", line)
        assert url, line
        base = url.group(0).rstrip("/")
        listing = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        assert "html-cli" in listing
        session_link = re.search(r'href="(/sessions/[^"]+)"', listing)
        assert session_link
        replay = urllib.request.urlopen(base + session_link.group(1), timeout=10).read().decode()
        assert "html-cli" in replay and "ValueError" in replay
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)  # generous: a loaded machine can take seconds to run the exit hooks
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=60)
            raise
