"""The embedded store: where it lives, what `init()` wires, round trips across processes, concurrent writers, and
damaged, locked or unwritable stores (clear errors, an exporter that never raises, nothing stored lost)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SpanExportResult

import agentotel
from agentotel import semconv as sc
from agentotel.records import records_from_spans
from agentotel.sources import open_source
from agentotel.sources.store import StoreSource
from agentotel.store import (
    SCHEMA_VERSION,
    Store,
    StoreError,
    StoreSpanExporter,
    default_store_path,
    store_exporters,
    store_path,
)
from agentotel.testing import Capture


@agentotel.record_action("fetch_customer_data")
def fetch_customer(customer_id: str | None) -> dict[str, str]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment for a child process: no OTEL export variables, and a data folder inside `tmp_path` so
    nothing can reach the real user data folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOTEL_"))}
    env["HOME"] = str(tmp_path / "home")
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["PYTHONUNBUFFERED"] = "1"
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "openai,anthropic"  # no LLM client here: skip importing them
    env.update(extra)
    return env


APP = textwrap.dedent(
    """
    import sys
    import agentotel

    agentotel.init(capture_content=True)

    @agentotel.record_action("fetch_customer_data")
    def fetch_customer(customer_id):
        if customer_id is None:
            raise ValueError("customer_id cannot be None")
        return {"id": customer_id}

    @agentotel.tool
    def lookup(query):
        return query.upper()

    prefix, count, gate = sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None
    if gate:  # start together with the other writer: say ready, then wait for the gate
        import os, time
        open(f"{gate}.{prefix}.ready", "w").close()
        deadline = time.time() + 30
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.005)
    for n in range(count):
        try:
            with agentotel.session(f"{prefix}-{n}", tags=["roundtrip", prefix]):
                lookup(f"q{n}")
                agentotel.record(agentotel.LLMEvent(model="gpt-4o", provider="openai",
                                                    prompt_tokens=100, completion_tokens=20))
                fetch_customer(None if n % 3 == 2 else f"c{n}")
        except ValueError:
            pass
        if gate and n == 0:  # both have a session in flight before either goes on: their runs overlap
            import glob
            open(f"{gate}.{prefix}.first", "w").close()
            deadline = time.time() + 30
            while len(glob.glob(f"{gate}.*.first")) < 2 and time.time() < deadline:
                time.sleep(0.005)
    """
)


def run_app(tmp_path: Path, prefix: str, count: int, gate: Path | None = None, **env: str) -> subprocess.Popen[str]:
    script = tmp_path / "app.py"
    if not script.exists():
        script.write_text(APP)
    return subprocess.Popen(
        [sys.executable, str(script), prefix, str(count), *([str(gate)] if gate else [])],
        env=clean_env(tmp_path, **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> None:
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err


# --- where the store is, and what init() wires ------------------------------------------------------------------------


def test_default_path_is_in_the_user_data_folder(tmp_path: Path) -> None:
    assert default_store_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "agentotel" / "sessions.db"
    fallback = default_store_path({})
    assert fallback == Path.home() / ".local" / "share" / "agentotel" / "sessions.db"
    # A relative XDG_DATA_HOME is invalid per the XDG spec and ignored.
    assert default_store_path({"XDG_DATA_HOME": "relative"}) == fallback


def test_agentotel_store_names_another_path_or_turns_it_off(tmp_path: Path) -> None:
    assert store_path({"AGENTOTEL_STORE": str(tmp_path / "x.db")}) == tmp_path / "x.db"
    assert store_path({"AGENTOTEL_STORE": "off"}) is None
    assert store_path({"AGENTOTEL_STORE": "OFF"}) is None
    assert store_path({"XDG_DATA_HOME": str(tmp_path)}) == tmp_path / "agentotel" / "sessions.db"


def test_store_runs_alone_by_default_and_beside_other_exporters_only_when_asked(tmp_path: Path) -> None:
    unset = {"XDG_DATA_HOME": str(tmp_path)}
    explicit = {"AGENTOTEL_STORE": str(tmp_path / "s.db")}
    [alone] = store_exporters(other_export=False, environ=unset)
    assert isinstance(alone, StoreSpanExporter) and alone.path == tmp_path / "agentotel" / "sessions.db"
    assert store_exporters(other_export=True, environ=unset) == []
    [beside] = store_exporters(other_export=True, environ=explicit)
    assert beside.path == tmp_path / "s.db"
    assert store_exporters(other_export=False, environ={"AGENTOTEL_STORE": "off"}) == []
    assert not (tmp_path / "agentotel").exists(), "configuring the exporter must not touch the disk"


WIRING = textwrap.dedent(
    """
    import agentotel
    agentotel.init()
    with agentotel.session("wired"):
        pass
    """
)


@pytest.mark.parametrize(
    ("env", "stored_at"),
    [
        ({}, "xdg/agentotel/sessions.db"),  # nothing configured: the default store
        ({"OTEL_TRACES_EXPORTER": "console"}, None),  # another exporter configured: no store
        ({"OTEL_TRACES_EXPORTER": "none"}, None),  # export explicitly off: no store either
        ({"OTEL_TRACES_EXPORTER": "console", "AGENTOTEL_STORE": "explicit.db"}, "explicit.db"),  # beside it
        ({"AGENTOTEL_STORE": "off"}, None),
    ],
)
def test_init_wires_the_store_per_the_environment(tmp_path: Path, env: dict[str, str], stored_at: str | None) -> None:
    env = {k: (str(tmp_path / v) if k == "AGENTOTEL_STORE" and v != "off" else v) for k, v in env.items()}
    result = subprocess.run(
        [sys.executable, "-c", WIRING], env=clean_env(tmp_path, **env), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.db"))
    assert written == ([] if stored_at is None else [stored_at])
    if stored_at is not None:
        with Store(tmp_path / stored_at) as store:
            assert [s.name for s in store.sessions()] == ["wired"]


# --- round trip -------------------------------------------------------------------------------------------------------


def test_sessions_written_by_another_process_are_read_back_whole(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    finish(run_app(tmp_path, "app", 3, AGENTOTEL_STORE=str(db)))
    assert oct(db.stat().st_mode & 0o777) == oct(0o600), "the store may hold prompts: owner-only"

    with Store(db) as store:
        summaries = store.sessions()
        assert [s.name for s in summaries] == ["app-2", "app-1", "app-0"]  # newest first
        failed = summaries[0]
        assert failed.end_state == "Fail" and failed.end_state_reason == "ValueError: customer_id cannot be None"
        assert failed.tags == ["roundtrip", "app"]
        assert (failed.llm_calls, failed.tool_calls, failed.error_count) == (1, 2, 1)
        assert (failed.input_tokens, failed.output_tokens) == (100, 20)
        assert failed.cost is not None and failed.cost > 0
        assert summaries[1].end_state == "Success"

    with open_source(str(db)) as source:
        session = source.session(failed.id)
    assert [e.action_type for e in session.action_events] == ["lookup", "fetch_customer_data"]
    assert session.first_error is not None and session.first_error.action_type == "fetch_customer_data"
    assert session.first_error.params == {"customer_id": None}
    assert session.cost == pytest.approx(failed.cost)
    assert "← PROBLEM" in session.replay()


def test_the_rebuilt_session_equals_the_live_one(tmp_path: Path, cap_content: Capture) -> None:
    with pytest.raises(ValueError), agentotel.session("support", tags=["t"]) as live:
        agentotel.record(agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=10, completion_tokens=2))
        fetch_customer(None)
    exporter = StoreSpanExporter(tmp_path / "s.db")
    assert exporter.export(cap_content.spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    with StoreSource(tmp_path / "s.db") as source:
        stored = source.session(live.id)
    expected, got = live.to_dict(), stored.to_dict()
    assert got == expected


def test_a_batch_exported_twice_is_stored_once(tmp_path: Path, cap: Capture) -> None:
    with agentotel.session("once"):
        fetch_customer("c")
    with Store(tmp_path / "s.db", create=True) as store:
        records = records_from_spans(cap.spans)
        store.write(records)
        store.write(records)
        assert store.counts() == (1, 2)


def test_session_lists_filter_by_time_tag_and_state(tmp_path: Path, cap: Capture) -> None:
    for n, tags in enumerate([["a"], ["a", "b"], ["b"]]):
        try:
            with agentotel.session(f"s{n}", tags=tags):
                if n == 2:
                    raise RuntimeError("boom")
        except RuntimeError:
            pass
    with Store(tmp_path / "s.db", create=True) as store:
        store.write(records_from_spans(cap.spans))
        names = lambda found: [s.name for s in found]  # noqa: E731
        assert names(store.sessions()) == ["s2", "s1", "s0"]
        assert names(store.sessions(tag="a")) == ["s1", "s0"]
        assert names(store.sessions(tag=["a", "b"])) == ["s1"]
        assert names(store.sessions(state="fail")) == ["s2"]
        assert names(store.sessions(limit=1)) == ["s2"]
        start_of_s1 = store.sessions(tag=["a", "b"])[0].start_ns
        assert names(store.sessions(since=start_of_s1)) == ["s2", "s1"]


def test_a_session_with_nested_sessions_brings_their_spans(tmp_path: Path, cap: Capture) -> None:
    with agentotel.session("outer") as outer:
        fetch_customer("a")
        with agentotel.session("inner") as inner:
            fetch_customer("b")
    with Store(tmp_path / "s.db", create=True) as store:
        store.write(records_from_spans(cap.spans))
        assert len(store.records_for(outer.id)) == 4  # both roots and both actions
        assert len(store.records_for(inner.id)) == 2
        assert len(store.records_for(trace_id=outer.trace_id)) == 4
        assert store.last_session_id() == outer.id  # the outer one ends last
    with StoreSource(tmp_path / "s.db") as source:
        rebuilt = source.session(outer.id)
        assert [e.kind for e in rebuilt.events] == ["action", "session", "action"]
        assert source.session(outer.trace_id).id == outer.id
        assert source.session("last").id == outer.id


# --- several writers --------------------------------------------------------------------------------------------------


def test_two_processes_write_at_once_and_nothing_is_lost(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    # Tiny export batches so that the two processes' transactions interleave many times.
    tiny = {"AGENTOTEL_STORE": str(db), "OTEL_BSP_SCHEDULE_DELAY": "1", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "3"}
    gate = tmp_path / "go"
    first, second = run_app(tmp_path, "one", 150, gate, **tiny), run_app(tmp_path, "two", 150, gate, **tiny)
    # Open the gate only once both are ready: importing takes seconds on a loaded machine, and one writer could
    # otherwise finish before the other starts.
    deadline = time.monotonic() + 60
    while not all(Path(f"{gate}.{p}.ready").exists() for p in ("one", "two")) and time.monotonic() < deadline:
        time.sleep(0.01)
    gate.touch()
    finish(first)
    finish(second)
    with Store(db) as store:
        one, two = store.sessions(tag="one"), store.sessions(tag="two")
        assert len(one) == 150 and len(two) == 150
        assert store.counts() == (300, 300 * 4)
        assert len(store.sessions(state="Fail")) == 2 * 50
    # The two processes really wrote at the same time: their sessions' time ranges overlap.
    assert min(s.start_ns for s in one) < max(s.end_ns or 0 for s in two)
    assert min(s.start_ns for s in two) < max(s.end_ns or 0 for s in one)


def test_threads_share_one_exporter_safely(tmp_path: Path, cap: Capture) -> None:
    import threading

    for n in range(20):
        with agentotel.session(f"t{n}"):
            fetch_customer(str(n))
    spans = cap.spans
    exporter = StoreSpanExporter(tmp_path / "s.db")
    results: list[SpanExportResult] = []
    threads = [threading.Thread(target=lambda i=i: results.append(exporter.export(spans[i::4]))) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    exporter.shutdown()
    assert results == [SpanExportResult.SUCCESS] * 4
    with Store(tmp_path / "s.db") as store:
        assert store.counts() == (20, 40)


# --- damaged, locked, unwritable, newer -------------------------------------------------------------------------------


def test_a_damaged_file_is_a_one_line_store_error_and_is_left_as_it_was(
    tmp_path: Path, cap: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "broken.db"
    garbage = b"this is not a database " * 200
    db.write_bytes(garbage)
    with pytest.raises(StoreError) as raised:
        Store(db)
    message = str(raised.value)
    assert "\n" not in message and str(db) in message and "damaged" in message

    with agentotel.session("lost"):
        pass
    exporter = StoreSpanExporter(db)
    with caplog.at_level(logging.DEBUG, logger="agentotel"):
        assert exporter.export(cap.spans) is SpanExportResult.FAILURE
        assert exporter.export(cap.spans) is SpanExportResult.FAILURE
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "session store" in warnings[0].getMessage()
    assert db.read_bytes() == garbage, "a damaged store is never overwritten"


def test_rows_are_read_in_start_order_and_a_row_of_two_json_values_is_refused(tmp_path: Path, cap: Capture) -> None:
    """The attributes of a session's rows are parsed together (one array of every row's text): a row whose text
    holds two JSON values must be refused as damaged, never shift its neighbours' attributes."""
    with agentotel.session("ordered"):
        for customer in ("a", "b", "c"):
            fetch_customer(customer)
    db = tmp_path / "sessions.db"
    with Store(db, create=True) as store:
        store.write(list(reversed(records_from_spans(cap.spans))))  # stored out of start order
        session_id = cap.session().id
        records = store.records_for(session_id)
        assert [r.start_ns for r in records] == sorted(r.start_ns for r in records) and len(records) == 4
        assert [r.attributes[sc.AGENTOTEL_ACTION_TYPE] for r in records[1:]] == ["fetch_customer_data"] * 3
    connection = sqlite3.connect(db)
    span_id = records[1].span_id
    connection.execute("UPDATE spans SET attributes = ? WHERE span_id = ?", ('{"a": 1}, {"b": 2}', span_id))
    connection.commit()
    connection.close()
    with Store(db) as store, pytest.raises(StoreError) as raised:
        store.records_for(session_id)
    assert "damaged" in str(raised.value) and "attributes" in str(raised.value)


def test_a_locked_store_is_a_clear_error_for_readers_and_a_failure_for_the_exporter(
    tmp_path: Path, cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "s.db"
    with agentotel.session("first"):
        pass
    with Store(db, create=True) as store:
        store.write(records_from_spans(cap.spans))
    cap.clear()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute(
        "INSERT INTO spans (trace_id, span_id, name, kind, start_ns, status_code, attributes, exceptions) "
        "VALUES ('t', 's', 'n', 'INTERNAL', 0, 'UNSET', '{}', '[]')"
    )
    try:
        monkeypatch.setattr("agentotel.store.database.READ_TIMEOUT_S", 0.2)
        monkeypatch.setattr("agentotel.store.database.WRITE_TIMEOUT_S", 0.2)
        with pytest.raises(StoreError, match="locked by another process"):
            Store(db).sessions()
        with agentotel.session("second"):
            pass
        exporter = StoreSpanExporter(db)
        assert exporter.export(cap.spans) is SpanExportResult.FAILURE
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # Once the lock is gone the same exporter writes again, and what was stored before is still there.
    assert exporter.export(cap.spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    with Store(db) as store:
        assert sorted(s.name for s in store.sessions()) == ["first", "second"]


def test_an_unwritable_location_fails_the_export_without_raising(tmp_path: Path, cap: Capture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with agentotel.session("nowhere"):
        pass
    exporter = StoreSpanExporter(blocker / "sessions.db")
    assert exporter.export(cap.spans) is SpanExportResult.FAILURE
    with pytest.raises(StoreError, match="cannot open the store"):
        Store(blocker / "sessions.db", create=True)


def test_a_store_from_a_newer_agentotel_is_refused_not_changed(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    connection = sqlite3.connect(db)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()
    before = db.read_bytes()
    with pytest.raises(StoreError, match="newer agentotel"):
        Store(db, create=True)
    assert db.read_bytes() == before


def test_another_programs_sqlite_file_is_not_taken_for_a_store(tmp_path: Path) -> None:
    db = tmp_path / "other.db"
    connection = sqlite3.connect(db)
    connection.execute("CREATE TABLE things (x)")
    connection.close()
    with pytest.raises(StoreError, match="not an agentotel store"):
        Store(db)


def test_reading_never_creates_or_changes_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Store(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    empty = tmp_path / "empty.db"
    empty.touch()
    with Store(empty) as store:
        assert store.sessions() == [] and store.records_for("x") == []
    assert empty.read_bytes() == b""


def test_the_schema_is_versioned_and_indexed(tmp_path: Path, cap: Capture) -> None:
    with agentotel.session("s"):
        pass
    with Store(tmp_path / "s.db", create=True) as store:
        store.write(records_from_spans(cap.spans))
    connection = sqlite3.connect(tmp_path / "s.db")
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"spans_session_id", "sessions_trace_id", "sessions_start_ns", "sessions_end_state"} <= indexes
    row = connection.execute("SELECT attributes, session_id FROM spans").fetchone()
    assert json.loads(row[0])[sc.SESSION_ID] == row[1]
    connection.close()


def test_a_forked_child_opens_its_own_connection(tmp_path: Path, cap: Capture) -> None:
    for n in range(3):
        with agentotel.session(f"f{n}"):
            pass
    first, second, third = (s for s in cap.spans)
    exporter = StoreSpanExporter(tmp_path / "s.db")
    assert exporter.export([first]) is SpanExportResult.SUCCESS  # the parent's connection is open now
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        ok = exporter.export([second]) is SpanExportResult.SUCCESS
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert exporter.export([third]) is SpanExportResult.SUCCESS
    exporter.shutdown()
    with Store(tmp_path / "s.db") as store:
        assert sorted(s.name for s in store.sessions()) == ["f0", "f1", "f2"]


def test_store_errors_name_the_problem_in_one_line(tmp_path: Path) -> None:
    from agentotel.store.database import _store_error

    path = tmp_path / "s.db"
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    assert (
        str(_store_error(path, readonly, 1)) == f"the store {path} is read-only (attempt to write a readonly database)"
    )
    busy = sqlite3.OperationalError("database is locked")
    assert "locked by another process (waited 2s)" in str(_store_error(path, busy, 2))
    denied = PermissionError(13, "Permission denied")
    assert str(_store_error(path, denied, 1)) == f"cannot open the store {path}: Permission denied"
