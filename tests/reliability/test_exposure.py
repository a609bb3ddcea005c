"""What the sessions' content is exposed to (issue 13, item 6): `agentotel ui` serves every prompt without a
password, so it listens beyond loopback only when told to (`--expose`), says so, and answers only requests naming
its own hosts whatever the address; a replay page written with `--html` is readable by its owner only; the store's
own folder is made owner-only even when it already exists.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentotel
from agentotel import ui
from agentotel.cli import main
from agentotel.records import records_from_spans
from agentotel.store import Store, default_store_path
from agentotel.testing import Capture


def get(port: int, host_header: str | None, *, connect_to: str = "127.0.0.1") -> int:
    """The status a GET / answers, sent to `connect_to` with this Host header (none at all for `None`)."""
    with socket.create_connection((connect_to, port), timeout=30) as sock:
        host = "" if host_header is None else f"Host: {host_header}\r\n"
        sock.sendall(f"GET / HTTP/1.0\r\n{host}\r\n".encode())
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        reply.read()
        return reply.status


@pytest.fixture
def exposed() -> Iterator[ui.UIServer]:
    server = ui.start_in_thread(lambda: [], host="0.0.0.0", expose=True, allow_hosts=["Agents.LAN:8765"])
    yield server
    server.shutdown()
    server.server_close()


def test_a_non_loopback_address_is_refused_unless_exposed() -> None:
    for host in ("0.0.0.0", ""):
        with pytest.raises(ui.UIError, match=r"is not a loopback address.*add --expose"):
            ui.start_in_thread(lambda: [], host=host)


def test_an_exposed_server_still_answers_only_its_own_host_names(exposed: ui.UIServer) -> None:
    port = exposed.server_port
    assert get(port, f"127.0.0.1:{port}") == 200
    assert get(port, f"localhost:{port}") == 200
    assert get(port, f"agents.lan:{port}") == 200, "a name given with --allow-host"
    assert get(port, f"127.0.0.2:{port}", connect_to="127.0.0.2") == 200, "the address the request reached"
    # A page elsewhere whose name resolves to this machine (DNS rebinding) names itself: refused.
    assert get(port, f"attacker.example:{port}") == 421
    assert get(port, f"attacker.example:{port}", connect_to="127.0.0.2") == 421
    assert get(port, f"127.0.0.2:{port}") == 421, "an address the request did not reach"
    assert get(port, None) == 421


def test_a_loopback_server_takes_allowed_names_too() -> None:
    server = ui.start_in_thread(lambda: [], allow_hosts=["agents.lan"])
    try:
        assert get(server.server_port, "agents.lan") == 200
        assert get(server.server_port, "other.lan") == 421
    finally:
        server.shutdown()
        server.server_close()


def _child_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOTEL_"))}
    env["AGENTOTEL_STORE"] = str(tmp_path / "sessions.db")
    return env


def test_the_ui_command_refuses_a_non_loopback_address_in_one_line(tmp_path: Path) -> None:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "agentotel", "ui", "--host", "0.0.0.0", "--port", "0"],
            capture_output=True,
            text=True,
            env=_child_env(tmp_path),
            cwd=tmp_path,
            timeout=60,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("agentotel ui --host 0.0.0.0 served the sessions to the network without --expose")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("agentotel ui: 0.0.0.0 (0.0.0.0) is not a loopback address") and "--expose" in line


def test_the_ui_command_warns_when_exposed(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "agentotel", "ui", "--host", "0.0.0.0", "--expose", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(tmp_path),
        cwd=tmp_path,
    )
    try:
        assert process.stderr is not None
        warning, url = process.stderr.readline(), process.stderr.readline()
        assert warning.startswith("agentotel ui: warning: listening on 0.0.0.0, not loopback: whoever reaches port")
        assert "reads every session, prompts and completions included, with no password" in warning
        assert url.startswith("agentotel ui: http://0.0.0.0:")
        port = int(url.split(":")[3].split("/")[0])
        assert get(port, f"attacker.example:{port}") == 421
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)  # generous: a loaded machine can take seconds to run the exit hooks
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=60)
            raise


# --- files ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def one_session(tmp_path: Path, cap: Capture, monkeypatch: pytest.MonkeyPatch) -> Path:
    agentotel.start_session(name="private")
    agentotel.end_session("Success")
    path = tmp_path / "sessions.db"
    with Store(path, create=True) as store:
        store.write(records_from_spans(cap.spans))
    monkeypatch.setenv("AGENTOTEL_STORE", str(path))
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_replay_page_is_readable_by_its_owner_only(
    one_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = os.umask(0o022)
    try:
        page = tmp_path / "replay.html"
        assert main(["replay", "--html", str(page)]) == 0
        assert mode(page) == 0o600
        page.chmod(0o644)  # written before, or by another tool
        assert main(["replay", "--html", str(page)]) == 0
        assert mode(page) == 0o600 and "private" in page.read_text()
    finally:
        os.umask(previous)
    capsys.readouterr()


def test_the_default_store_folder_is_made_owner_only_even_when_it_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    folder = default_store_path().parent
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # as an older agentotel, or another umask, left it
    with Store(default_store_path(), create=True):
        pass
    assert mode(folder) == 0o700
    mine = tmp_path / "chosen"
    mine.mkdir(mode=0o755)
    mine.chmod(0o755)
    with Store(mine / "sessions.db", create=True):
        pass
    assert mode(mine) == 0o755, "a folder the user chose for the store is theirs: its mode is left alone"
