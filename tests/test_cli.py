"""The `agentotel` command: sessions, replay, check; --json; exit codes; one-line errors for bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

import agentotel
from agentotel.cli import main, parse_since
from agentotel.records import records_from_spans
from agentotel.store import Store
from agentotel.testing import Capture


@agentotel.record_action("fetch_customer_data")
def fetch_customer(customer_id: str | None) -> dict[str, str]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}


def llm_call(prompt_tokens: int = 1000, completion_tokens: int = 100) -> None:
    agentotel.record(
        agentotel.LLMEvent(
            model="gpt-4o", provider="openai", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    )


def run_sessions(outcomes: str, *, tags: tuple[str, ...] = ("support",), tokens: int = 1000) -> list[str]:
    """One session per character: `s` Success, `f` Fail (the seed's ValueError), `i` Indeterminate."""
    ids = []
    for n, outcome in enumerate(outcomes):
        session = agentotel.start_session(tags=list(tags), name=f"agent{n}")
        llm_call(prompt_tokens=tokens)
        try:
            fetch_customer(None if outcome == "f" else "c1")
            agentotel.end_session("Indeterminate" if outcome == "i" else "Success")
        except ValueError as error:
            agentotel.end_session("Fail", end_state_reason=str(error))
        ids.append(session.id)
    return ids


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty store path that the command reads by default (AGENTOTEL_STORE)."""
    path = tmp_path / "sessions.db"
    monkeypatch.setenv("AGENTOTEL_STORE", str(path))
    return path


def save(cap: Capture, path: Path) -> None:
    with Store(path, create=True) as store:
        store.write(records_from_spans(cap.spans))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


# --- help -------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["sessions"], ["replay"], ["check"], ["demo"]])
def test_every_command_has_help(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert "usage: agentotel" in out


def test_python_dash_m_agentotel_runs_the_command(tmp_path: Path) -> None:
    env = {**os.environ, "AGENTOTEL_STORE": str(tmp_path / "none.db")}
    result = subprocess.run(
        [sys.executable, "-m", "agentotel", "sessions"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "No sessions in" in result.stdout and "agentotel demo" in result.stdout


def test_no_command_prints_help_and_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys)
    assert code == 2 and "COMMAND" in out


# --- sessions ---------------------------------------------------------------------------------------------------------


def test_sessions_table_plain_when_piped(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    ids = run_sessions("sf")
    save(cap, store)
    code, out, err = run(capsys, "sessions")
    assert code == 0 and err == ""
    header, *rows = out.splitlines()
    assert header.split()[:6] == ["ID", "NAME", "SERVICE", "STARTED", "DURATION", "STATE"]
    assert "\x1b[" not in out, "no colour codes when stdout is not a terminal"
    assert [row.split()[0] for row in rows] == [ids[1][:8], ids[0][:8]]
    assert "Fail" in rows[0] and "Success" in rows[1]
    assert "1000/100" in rows[0] and "support" in rows[0]


def test_sessions_json_and_filters(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    run_sessions("sfs", tags=("a",))
    run_sessions("f", tags=("b",))
    save(cap, store)
    code, out, _ = run(capsys, "sessions", "--json")
    listed = json.loads(out)
    assert code == 0 and len(listed) == 4
    assert set(listed[0]) >= {"id", "name", "tags", "start_time", "duration", "end_state", "cost", "llm_calls"}
    assert [s["end_state"] for s in json.loads(run(capsys, "sessions", "--json", "--tag", "a")[1])] == [
        "Success",
        "Fail",
        "Success",
    ]
    failed = json.loads(run(capsys, "sessions", "--json", "--state", "fail")[1])
    assert [s["tags"] for s in failed] == [["b"], ["a"]]
    assert len(json.loads(run(capsys, "sessions", "--json", "--limit", "1")[1])) == 1
    assert len(json.loads(run(capsys, "sessions", "--json", "--since", "1h")[1])) == 4
    assert json.loads(run(capsys, "sessions", "--json", "--since", "2999-01-01")[1]) == []
    code, out, _ = run(capsys, "sessions", "--tag", "nope")
    assert code == 0 and "No sessions match" in out


def test_a_missing_default_store_is_empty_not_an_error(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    code, out, _ = run(capsys, "sessions")
    assert code == 0 and "Try: agentotel demo" in out
    assert not store.exists(), "reading never creates the store"


# --- replay -----------------------------------------------------------------------------------------------------------


def test_replay_text_by_id_prefix_trace_id_and_last(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    with agentotel.session("outer") as outer:
        pass
    ok, failing = run_sessions("sf")
    save(cap, store)
    code, out, _ = run(capsys, "replay", failing[:8])
    assert code == 0
    assert out.startswith(f"Session: {failing} | agent1")
    problem = next(line for line in out.splitlines() if "← PROBLEM" in line)
    assert "fetch_customer_data" in problem
    assert "Status: Fail" in out
    assert run(capsys, "replay", "last")[1].startswith(f"Session: {failing}")
    assert run(capsys, "replay")[1].startswith(f"Session: {failing}")
    assert run(capsys, "replay", outer.trace_id)[1].startswith(f"Session: {outer.id}")
    assert run(capsys, "replay", ok)[1].startswith(f"Session: {ok}")


def test_replay_json_has_the_session_fields(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    [failing] = run_sessions("f")
    save(cap, store)
    code, out, _ = run(capsys, "replay", failing, "--json")
    data = json.loads(out)
    assert code == 0
    assert data["id"] == failing and data["end_state"] == "Fail"
    assert data["cost"] > 0 and data["input_tokens"] == 1000
    kinds = [(e["kind"], e["name"]) for e in data["events"]]
    assert kinds == [("llm", "chat gpt-4o"), ("action", "fetch_customer_data")]
    for event in data["events"]:
        assert {"kind", "name", "span_id", "parent_span_id", "cost"} <= set(event)
        assert event["parent_span_id"] == data["span_id"]
    assert data["events"][0]["cost"] > 0
    assert data["first_error"] == data["events"][1]["span_id"]


def test_unknown_and_ambiguous_ids_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    ids = run_sessions("s" * 20)
    save(cap, store)
    code, out, err = run(capsys, "replay", "no-such-session")
    assert code == 2 and out == ""
    assert "no session or trace with id 'no-such-session'" in one_line_error(err)
    firsts = [i[0] for i in ids]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    code, _, err = run(capsys, "replay", shared)
    assert code == 2 and "give more of it" in one_line_error(err)


# --- bad input --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["sessions", "--since", "3x"],
        ["check", "--since", "yesterday"],
        ["sessions", "--state", "Maybe"],
        ["sessions", "--limit", "-1"],
        ["check", "--max-failure-rate", "1.5"],
        ["check", "--max-cost", "cheap"],
        ["replay", "a", "b"],
        ["frobnicate"],
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    line = one_line_error(err)
    assert line.startswith("agentotel") and "--help" in line


def test_bad_since_names_the_value(capsys: pytest.CaptureFixture[str]) -> None:
    _, _, err = run(capsys, "sessions", "--since", "3x")
    assert "'3x' is not a duration such as 30m, 1h or 7d" in one_line_error(err)


def test_since_accepts_durations_and_dates() -> None:
    from datetime import datetime, timedelta

    now = datetime.now(UTC)
    assert abs((now - parse_since("1h")) - timedelta(hours=1)) < timedelta(seconds=5)
    assert abs((now - parse_since("1h30m")) - timedelta(minutes=90)) < timedelta(seconds=5)
    assert abs((now - parse_since("2d")) - timedelta(days=2)) < timedelta(seconds=5)
    assert parse_since("2026-11-01T10:00:00Z") == datetime(2026, 11, 1, 10, tzinfo=UTC)
    assert parse_since("2026-11-01").tzinfo is not None


def test_a_damaged_store_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], store: Path, tmp_path: Path
) -> None:
    store.write_bytes(b"garbage" * 500)
    for argv in (["sessions"], ["replay", "last"], ["check"], ["sessions", "--source", str(store)]):
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        line = one_line_error(err)
        assert str(store) in line and "damaged" in line
    assert store.read_bytes() == b"garbage" * 500


def test_a_locked_store_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_sessions("s")
    save(cap, store)
    monkeypatch.setattr("agentotel.store.database.READ_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM sessions")
    try:
        code, out, err = run(capsys, "sessions")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert code == 2 and out == ""
    assert "is locked by another process" in one_line_error(err)
    assert len(json.loads(run(capsys, "sessions", "--json")[1])) == 1, "nothing stored was lost"


def test_store_off_without_source_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTOTEL_STORE", "off")
    code, _, err = run(capsys, "sessions")
    assert code == 2 and "the session store is off" in one_line_error(err)


def test_missing_source_file_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "replay", "last", "--source", str(tmp_path / "nope.json"))
    assert code == 2 and "no such file" in one_line_error(err)


# --- check ------------------------------------------------------------------------------------------------------------


def test_check_passes_and_fails_on_the_failure_rate(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    run_sessions("sssf")  # 25% failed
    save(cap, store)
    code, out, _ = run(capsys, "check", "--max-failure-rate", "0.05")
    assert code == 1
    assert "Failure rate: 25.0%" in out and "Check failed: failure rate 25.0%" in out
    code, out, _ = run(capsys, "check", "--max-failure-rate", "30%")
    assert code == 0 and "Check passed." in out
    code, out, _ = run(capsys, "check", "--max-failure-rate", "0.25")
    assert code == 0, "the limit itself is allowed"


def test_check_json_figures(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    run_sessions("sfi")
    save(cap, store)
    code, out, _ = run(capsys, "check", "--max-failure-rate", "0.05", "--json")
    figures = json.loads(out)
    assert code == 1 and figures["ok"] is False
    assert (figures["sessions"], figures["ended"], figures["failed"]) == (3, 3, 1)
    assert figures["failure_rate"] == pytest.approx(1 / 3)
    assert figures["total_cost"] == pytest.approx(3 * figures["mean_cost"])
    assert len(figures["failed_sessions"]) == 1


def test_check_max_cost_is_per_session(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    run_sessions("ss", tokens=1_000)  # about $0.0035 each with gpt-4o
    run_sessions("s", tags=("big",), tokens=100_000)  # about $0.25
    save(cap, store)
    code, out, _ = run(capsys, "check", "--max-cost", "0.01")
    assert code == 1 and "1 session(s) cost more than --max-cost $0.01" in out
    assert run(capsys, "check", "--max-cost", "1")[0] == 0
    assert run(capsys, "check", "--max-cost", "0.01", "--tag", "support")[0] == 0


def test_check_counts_nested_sessions_through_their_parent(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    """A test's session wrapping an agent's session (the seed's pytest fixture) is one run, not two."""
    with pytest.raises(ValueError), agentotel.session("test_billing", tags=["test"]):
        run_sessions("f")
        raise ValueError("the test failed")
    run_sessions("s")
    save(cap, store)
    figures = json.loads(run(capsys, "check", "--json")[1])
    assert (figures["sessions"], figures["failed"]) == (2, 1)
    inner_only = json.loads(run(capsys, "check", "--json", "--tag", "support")[1])
    assert (inner_only["sessions"], inner_only["failed"]) == (2, 1)


def test_check_min_sessions_and_empty_store(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    code, out, _ = run(capsys, "check", "--max-failure-rate", "0.05")
    assert code == 0 and "Sessions: 0" in out
    assert run(capsys, "check", "--min-sessions", "1")[0] == 1


def test_commands_read_an_otlp_json_source(capsys: pytest.CaptureFixture[str], cap: Capture, tmp_path: Path) -> None:
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    [failing] = run_sessions("f")
    path = tmp_path / "export.json"
    path.write_text(json.dumps(MessageToDict(encode_spans(cap.spans))))
    code, out, _ = run(capsys, "sessions", "--source", str(path))
    assert code == 0 and failing[:8] in out
    code, out, _ = run(capsys, "replay", failing[:8], "--source", str(path))
    assert code == 0 and "← PROBLEM" in out
    assert run(capsys, "check", "--max-failure-rate", "0.5", "--source", str(path))[0] == 1


def test_colour_only_on_a_terminal(cap: Capture) -> None:
    import io

    from agentotel.cli_render import Output
    from agentotel.sources import SessionSummary

    run_sessions("f")
    [session] = cap.sessions
    summaries = [SessionSummary.from_session(session)]
    plain, coloured = io.StringIO(), io.StringIO()
    Output(plain).table(summaries)
    Output(plain).replay(session.replay())
    Output(coloured, color=True).table(summaries)
    Output(coloured, color=True).replay(session.replay())
    assert "\x1b[" not in plain.getvalue()
    assert "\x1b[" in coloured.getvalue()
    problem = next(line for line in coloured.getvalue().splitlines() if "← PROBLEM" in line)
    assert "\x1b[1;31m" in problem  # bold red
