"""Store retention: `Store.prune` by count and by age (nested sessions and their spans go with their outermost
session, a running session's spans stay), the exporter keeping `AGENTOTEL_STORE_MAX_SESSIONS`, and
`agentotel prune`."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from opentelemetry import trace

import agentotel
from agentotel.cli import main
from agentotel.records import records_from_spans
from agentotel.sources.store import StoreSource
from agentotel.store import DEFAULT_MAX_SESSIONS, Store, StoreSpanExporter, store_max_sessions
from agentotel.testing import Capture


@agentotel.tool
def lookup(query: str) -> str:
    return query.upper()


def record_sessions(cap: Capture, count: int, *, nested: bool = False) -> list[str]:
    """`count` sessions of one tool call each (with a nested session of one call when `nested`); their ids, oldest
    first."""
    ids = []
    for n in range(count):
        with agentotel.session(f"s{n}") as session:
            lookup(f"q{n}")
            if nested:
                with agentotel.session(f"s{n}-inner"):
                    lookup(f"inner{n}")
        ids.append(session.id)
    return ids


def stored_ids(store: Store) -> set[str]:
    return {s.id for s in store.sessions()}


def test_keep_leaves_the_newest_outermost_sessions_whole(tmp_path: Path, cap: Capture) -> None:
    ids = record_sessions(cap, 5, nested=True)
    with Store(tmp_path / "s.db", create=True) as store:
        store.write(records_from_spans(cap.spans))
        assert store.counts() == (10, 20)  # 5 outer + 5 nested sessions; each: 2 roots, 2 tool calls
        kept_before = {sid: store.records_for(sid) for sid in ids[-2:]}
        assert store.prune(keep=2) == (6, 12)  # 3 outer sessions with their nested ones, 4 spans each
        outer = {s.id for s in store.sessions() if s.parent_id is None}
        assert outer == set(ids[-2:])
        assert store.counts() == (4, 8)
        for sid, records in kept_before.items():
            assert store.records_for(sid) == records  # every span of a kept session is still there
        assert store.prune(keep=2) == (0, 0)  # nothing more to remove


def test_ended_before_removes_sessions_by_age(tmp_path: Path, cap: Capture) -> None:
    old = record_sessions(cap, 2)
    time.sleep(0.01)
    boundary = time.time_ns()
    new = record_sessions(cap, 2)
    with Store(tmp_path / "s.db", create=True) as store:
        store.write(records_from_spans(cap.spans))
        assert store.prune(ended_before=boundary) == (2, 4)
        assert stored_ids(store) == set(new)
        assert not set(old) & stored_ids(store)


def test_a_running_sessions_spans_stay_until_they_are_old(tmp_path: Path, cap: Capture) -> None:
    running = agentotel.start_session(name="running")
    lookup("still going")  # ended, stored, but its session has no row yet: the root span has not ended
    record_sessions(cap, 3)
    running_records = [r for r in records_from_spans(cap.spans) if r.attributes.get("session.id") == running.id]
    assert running_records
    with Store(tmp_path / "s.db", create=True) as store:
        store.write(records_from_spans(cap.spans))
        store.prune(keep=1)
        assert store.has_spans_of_session(running.id)
        store.prune(ended_before=time.time_ns() + 1)
        assert not store.has_spans_of_session(running.id)
    agentotel.end_session("Success", session=running)


def test_spans_of_no_session_go_once_older_than_every_session_kept(tmp_path: Path, cap: Capture) -> None:
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("before everything"):
        pass
    record_sessions(cap, 3)
    with tracer.start_as_current_span("after everything"):
        pass
    with Store(tmp_path / "s.db", create=True) as store:
        store.write(records_from_spans(cap.spans))
        store.prune(keep=1)
        rows = store._query("SELECT name FROM spans WHERE session_id IS NULL")
        assert [row[0] for row in rows] == ["after everything"]


def test_prune_needs_a_rule(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db", create=True) as store, pytest.raises(ValueError, match="keep= or ended_before="):
        store.prune()


# --- the exporter keeps AGENTOTEL_STORE_MAX_SESSIONS ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, DEFAULT_MAX_SESSIONS), ("50", 50), ("0", None), ("off", None), (" 7 ", 7), ("lots", DEFAULT_MAX_SESSIONS)],
)
def test_max_sessions_setting(value: str | None, expected: int | None, caplog: pytest.LogCaptureFixture) -> None:
    env = {} if value is None else {"AGENTOTEL_STORE_MAX_SESSIONS": value}
    with caplog.at_level(logging.WARNING, logger="agentotel"):
        assert store_max_sessions(env) == expected
    assert bool(caplog.records) is (value == "lots")  # a bad value is reported, not silently ignored


def test_the_exporter_keeps_the_store_near_its_limit(
    tmp_path: Path, cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTOTEL_STORE_MAX_SESSIONS", "20")
    exporter = StoreSpanExporter(tmp_path / "s.db")
    ids = record_sessions(cap, 80)
    for start in range(0, len(cap.spans), 10):  # batches of 10 spans, as a batch processor would send them
        exporter.export(cap.spans[start : start + 10])
    exporter.shutdown()
    with Store(tmp_path / "s.db") as store:
        kept = [s.id for s in store.sessions()]
        assert 20 <= len(kept) <= 20 + 10 + 5  # the limit, its slack, one batch
        assert kept == list(reversed(ids))[: len(kept)]  # the newest ones, whole
        assert store.counts()[1] == 2 * len(kept)


def test_the_limit_off_keeps_every_session(tmp_path: Path, cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOTEL_STORE_MAX_SESSIONS", "0")
    exporter = StoreSpanExporter(tmp_path / "s.db")
    record_sessions(cap, 40)
    exporter.export(cap.spans)
    exporter.shutdown()
    with Store(tmp_path / "s.db") as store:
        assert store.counts() == (40, 80)


# --- agentotel prune ----------------------------------------------------------------------------------------------


def test_prune_command(tmp_path: Path, cap: Capture, capsys: pytest.CaptureFixture[str]) -> None:
    ids = record_sessions(cap, 4)
    path = tmp_path / "s.db"
    with Store(path, create=True) as store:
        store.write(records_from_spans(cap.spans))
    assert main(["prune", "--keep", "3", "--source", str(path)]) == 0
    assert "Removed 1 session (2 spans)" in capsys.readouterr().out
    assert main(["prune", "--keep", "1", "--source", str(path), "--json", "--vacuum"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures == {"source": str(path), "removed_sessions": 2, "removed_spans": 4, "sessions": 1, "spans": 2}
    assert main(["prune", "--older-than", "1h", "--source", str(path)]) == 0  # the last one is minutes young
    with StoreSource(path) as source:
        assert [s.id for s in source.sessions()] == [ids[-1]]


def test_prune_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    otlp = tmp_path / "spans.json"
    otlp.write_text('{"resourceSpans": []}')
    assert main(["prune", "--source", str(otlp)]) == 2
    assert "give --keep N, --older-than WHEN or both" in capsys.readouterr().err
    assert main(["prune", "--keep", "1", "--source", str(otlp)]) == 2
    error = capsys.readouterr().err
    assert "is not a store" in error and error.count("\n") == 1
    assert main(["prune", "--keep", "-1", "--source", str(otlp)]) == 2


# --- running sessions --------------------------------------------------------------------------------------------


RUNNING_APP = """
import os, sys
import agentotel

agentotel.init()

@agentotel.tool
def lookup(query):
    return query.upper()

session = agentotel.start_session(["long"], name="still-running")
lookup("a")
agentotel.force_flush()
print(session.id, flush=True)
if sys.argv[1] == "kill":
    os._exit(0)  # killed: no exit handler ends the session
lookup("b")
agentotel.end_session("Success")
"""


def test_a_running_session_is_listed_and_replaced_by_the_ended_one(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOTEL_"))}
    env.update(AGENTOTEL_STORE=str(store), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic")
    app = tmp_path / "app.py"
    app.write_text(RUNNING_APP)
    killed = subprocess.run([sys.executable, str(app), "kill"], capture_output=True, text=True, env=env, timeout=60)
    running_id = killed.stdout.strip()
    with StoreSource(store) as source:
        (listed,) = source.sessions()
        assert (listed.id, listed.name, listed.tags, listed.end_state) == (running_id, "still-running", ["long"], None)
        assert listed.end_ns is None
        replayed = source.session(running_id)  # what it did so far
        assert [e.name for e in replayed.tool_calls] == ["lookup"]
    finished = subprocess.run([sys.executable, str(app), "end"], capture_output=True, text=True, env=env, timeout=60)
    ended_id = finished.stdout.strip()
    with StoreSource(store) as source:
        by_id = {s.id: s for s in source.sessions()}
        assert set(by_id) == {running_id, ended_id}  # one row each: the ended root replaced its running row
        assert by_id[ended_id].end_state == "Success" and by_id[ended_id].end_ns is not None
        assert len(source.session(ended_id).tool_calls) == 2
        assert source.session("last").id == ended_id
    done = subprocess.run(
        [sys.executable, "-m", "agentotel.cli", "sessions", "--source", str(store)], capture_output=True, text=True
    )
    assert "Running" in done.stdout and "Success" in done.stdout


def test_pruning_by_count_never_removes_a_running_session(tmp_path: Path, cap: Capture) -> None:
    running = agentotel.start_session(name="running")
    lookup("x")
    from agentotel.records import record_from_span

    root = record_from_span(running._span._readable_span())  # type: ignore[attr-defined]
    contextvars.Context().run(record_sessions, cap, 3)  # outside the running one: three outermost sessions
    with Store(tmp_path / "s.db", create=True) as store:
        store.write([root, *records_from_spans(cap.spans)])
        assert running.id in stored_ids(store)
        store.prune(keep=1)
        assert running.id in stored_ids(store)
        assert len(stored_ids(store)) == 2
    agentotel.end_session("Success", session=running)


def test_the_running_snapshot_is_a_copy_the_app_cannot_change_while_it_is_exported() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentotel import semconv as sc
    from agentotel._loss import UNCOUNTED
    from agentotel.store import StoreBatchProcessor

    exported = InMemorySpanExporter()
    processor = StoreBatchProcessor(exported)
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("test")
    root = tracer.start_span("invoke_agent s", attributes={sc.AGENTOTEL_STEP_KIND: "session", sc.SESSION_ID: "s-1"})
    root.set_attribute(sc.AGENTOTEL_SESSION_END_STATE, "Success")  # the app goes on with the live span
    processor.force_flush()
    (snapshot,) = exported.get_finished_spans()
    assert getattr(snapshot, UNCOUNTED) is True and snapshot.end_time is None
    assert dict(snapshot.attributes or {}) == {sc.AGENTOTEL_STEP_KIND: "session", sc.SESSION_ID: "s-1"}
    root.end()
    processor.force_flush()
    ended = exported.get_finished_spans()[-1]
    assert ended.end_time is not None and (ended.attributes or {})[sc.AGENTOTEL_SESSION_END_STATE] == "Success"
    assert processor.ended == 1 and processor.lost == 0  # the snapshot is counted neither delivered nor lost
    processor.shutdown()
