"""Terminal escapes (issue 13, item 5): whoever writes spans (or answers as a backend) chooses names, tags, tool
names and error text; none of what they hold reaches a terminal as a control sequence. Every command's output,
plain or coloured, its errors and `Session.replay()` show control characters escaped: no window title is set, no
clipboard written (OSC 52), no line erased or overwritten (CR), no text reversed (bidi override), and an error
"db down" cannot be made to read "all good".
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentotel
from agentotel.cli import main
from agentotel.cli_render import Output
from agentotel.model import Session
from agentotel.records import SpanRecord, records_from_spans
from agentotel.sources import open_source
from agentotel.store import Store
from agentotel.testing import capture

from .peers import RecordingServer, json_answer

SEQUENCES = {
    "title": "\x1b]0;pwned\x07",
    "clipboard": "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07",
    "erase": "\x1b[2K\x1b[1G",
    "carriage return": "db down\rall good",
    "backspace": "fail\x08\x08\x08\x08pass",
    "c1 csi": "\x9b2K",
    "bidi": "\u202edoog lla",
    "line separator": "one\u2028two",
    "newline": "x\nSession ended: Success",
}
HOSTILE = "|".join(SEQUENCES.values())
ERROR = "db down\r\x1b[2Kall good"

RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""A control character a terminal acts on (a line break aside)."""
SGR = re.compile("\x1b\\[[0-9;]*m")
"""The colour sequences `rich` itself writes."""


def raw_controls(text: str, *, coloured: bool = False) -> list[str]:
    return RAW.findall(SGR.sub("", text) if coloured else text)


@agentotel.tool("lookup" + HOSTILE)
def lookup(order: str) -> str:
    raise ConnectionError(ERROR + HOSTILE)


def record_hostile_session() -> tuple[Session, list[SpanRecord]]:
    with capture(capture_content=True) as cap:
        agentotel.start_session(name="agent" + HOSTILE, tags=["tag" + HOSTILE])
        try:
            lookup("order" + HOSTILE)
        except ConnectionError as error:
            agentotel.end_session("Fail", end_state_reason=f"{ERROR}{HOSTILE} {error}")
        [session] = cap.sessions
        return session, records_from_spans(cap.spans)


@pytest.fixture
def hostile_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Session]]:
    """A store (at a path holding escapes too: it is printed) with one session full of escapes."""
    session, records = record_hostile_session()
    path = tmp_path / ("store" + SEQUENCES["title"] + ".db")
    with Store(path, create=True) as store:
        store.write(records)
    monkeypatch.setenv("AGENTOTEL_STORE", str(path))
    yield path, session


COMMANDS = {
    "sessions": ["sessions"],
    "sessions by a tag": ["sessions", "--tag", "tag" + HOSTILE],
    "replay": ["replay"],
    "replay last": ["replay", "last"],
    "check": ["check", "--max-failure-rate", "0.5"],
    "check cost": ["check", "--max-cost", "0"],
    "prune": ["prune", "--keep", "5"],
    "unknown session": ["replay", "no-such-session" + HOSTILE],
    "bad since": ["sessions", "--since", "soon" + HOSTILE],
    "bad state": ["sessions", "--state", HOSTILE],
    "missing source": ["sessions", "--source", "/nowhere/" + HOSTILE + ".json"],
    "unknown command": ["bogus" + HOSTILE],
}


@pytest.mark.parametrize("argv", COMMANDS.values(), ids=COMMANDS.keys())
def test_no_command_writes_a_control_character(
    argv: list[str], hostile_store: tuple[Path, Session], capsys: pytest.CaptureFixture[str]
) -> None:
    main(argv)
    out, err = capsys.readouterr()
    assert out or err
    assert raw_controls(out) == [], out
    assert raw_controls(err) == [], err
    assert len(err.splitlines()) <= 1, err


def test_what_was_escaped_is_shown(hostile_store: tuple[Path, Session], capsys: pytest.CaptureFixture[str]) -> None:
    """The text is still there to read, escaped: the erase and the carriage return are visible, so an error
    cannot pass for "all good"."""
    main(["sessions"])
    listing = capsys.readouterr().out
    assert "agent\\x1b]0;pwned\\x07|\\x1b]52;c;" in listing
    assert "db down\\rall good" in listing and "\\u202edoog lla" in listing
    main(["replay"])
    replay = capsys.readouterr().out
    for line in replay.splitlines():
        assert not line.startswith("Session ended: Success"), "a name's line break forged a line"
        if "all good" in line:
            assert "db down" in line.split("all good")[0], line


def test_json_output_escapes_what_json_leaves_raw(
    hostile_store: tuple[Path, Session], capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (["sessions", "--json"], ["replay", "--json"], ["check", "--json"]):
        assert main(argv) in (0, 1)
        out = capsys.readouterr().out
        assert raw_controls(out) == [], out
        json.loads(out)
    main(["sessions", "--json"])
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["name"] == "agent" + HOSTILE, "the JSON still holds the name as it was"


def test_the_coloured_output_writes_no_control_character(hostile_store: tuple[Path, Session]) -> None:
    path, _ = hostile_store
    stream = io.StringIO()
    out = Output(stream, color=True)
    with open_source(str(path)) as source:
        out.table(source.sessions())
        out.replay(source.session("last").replay(width=out.width))
    out.line(HOSTILE, style="bold red")
    written = stream.getvalue()
    assert SGR.search(written), "coloured output was written"
    assert raw_controls(written, coloured=True) == [], written


def test_session_replay_text_carries_no_control_character(hostile_store: tuple[Path, Session]) -> None:
    """`session.replay()` is what a test's failure message shows (pytest writes it to the terminal)."""
    _, session = hostile_store
    text = session.replay()
    assert raw_controls(text) == [], text
    assert "Tool: lookup\\x1b]0;pwned\\x07" in text
    with open_source(str(hostile_store[0])) as source:
        assert raw_controls(source.session("last").replay()) == []


def test_a_backend_message_with_escapes_is_one_clean_line(capsys: pytest.CaptureFixture[str]) -> None:
    def failing(path: str) -> tuple[int, dict[str, str], bytes]:
        return json_answer({"error": {"message": ERROR + HOSTILE}}, 503)

    with RecordingServer(failing) as server:
        assert main(["sessions", "--source", f"jaeger+{server.url}"]) == 2
    err = capsys.readouterr().err
    assert raw_controls(err) == [], err
    [line] = err.strip().splitlines()
    assert "failed: HTTP 503" in line and "db down" in line.split("all good")[0]
