"""The store's upkeep under faults: the file deleted or replaced while an app writes to it (issue 13, item 12), a
store far over its limit (item 13: pruned in short transactions, a little after each batch, never at exit), and
sessions a crash left `Running` (item 15: removed by age, and by count once a day old)."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentotel
from agentotel import semconv as sc
from agentotel._loss import lost_spans
from agentotel.cli import main as cli
from agentotel.records import SpanRecord
from agentotel.store import Store, StoreBatchProcessor, StoreSpanExporter
from agentotel.testing import Capture

from .support import accounted, child_env, exporting_through, lookup_order, run_child

DAY_NS = 86_400 * 10**9


def session_records(n: int, *, start_ns: int, running: bool = False, spans: int = 4) -> list[SpanRecord]:
    """The spans of a made-up session `s-<n>`: its root (no end while `running`) and `spans - 1` tool calls."""
    trace_id, root_id, session_id = f"{n + 1:032x}", f"{n + 1:016x}", f"s-{n:07d}"
    attributes = {sc.AGENTOTEL_STEP_KIND: "session", sc.SESSION_ID: session_id, sc.GEN_AI_AGENT_NAME: f"made-{n}"}
    if not running:
        attributes[sc.AGENTOTEL_SESSION_END_STATE] = "Success"
    end = None if running else start_ns + 900_000
    records = [SpanRecord(trace_id, root_id, None, f"invoke_agent made-{n}", "INTERNAL", start_ns, end, attributes)]
    for k in range(spans - 1):
        tool = {sc.AGENTOTEL_STEP_KIND: "tool", sc.SESSION_ID: session_id, sc.GEN_AI_TOOL_NAME: "lookup"}
        span_id = f"{(n + 1) * 64 + k + 1:016x}"
        records.append(
            SpanRecord(
                trace_id, span_id, root_id, "execute_tool lookup", "INTERNAL", start_ns + k, start_ns + k + 9, tool
            )
        )
    return records


def fill_store(path: Path, count: int, *, first: int = 0, start_ns: int | None = None) -> list[str]:
    """`count` ended sessions written to the store at `path`, a millisecond apart, the last one a minute ago
    (unless `start_ns` says when the first started); their ids, oldest first."""
    base = start_ns if start_ns is not None else time.time_ns() - 60 * 10**9 - count * 1_000_000
    ids = []
    with Store(path, create=True) as store:
        batch: list[SpanRecord] = []
        for n in range(first, first + count):
            batch += session_records(n, start_ns=base + (n - first) * 1_000_000)
            ids.append(f"s-{n:07d}")
            if len(batch) >= 4_000:
                store.write(batch)
                batch = []
        store.write(batch)
    return ids


def stored_names(path: Path) -> list[str]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("SELECT name FROM sessions ORDER BY start_ns")]
    finally:
        connection.close()


def integrity(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


def record(names: list[str]) -> None:
    for name in names:
        with agentotel.session(name):
            lookup_order(name)


# --- item 12: the file deleted or replaced while the app writes ----------------------------------------------------


@pytest.mark.parametrize("how", ["file", "file-wal-and-shm", "folder", "replaced-by-another-store"])
def test_a_store_deleted_while_the_app_writes_is_made_again_and_nothing_is_lost(
    tmp_path: Path, cap: Capture, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    db = tmp_path / "data" / "sessions.db"
    processor = accounted(StoreSpanExporter(db))
    with exporting_through(processor), caplog.at_level(logging.WARNING, logger="agentotel"):
        record(["before-0", "before-1"])
        assert processor.force_flush(10_000)
        assert stored_names(db) == ["before-0", "before-1"]
        if how == "folder":
            for child in db.parent.iterdir():
                child.unlink()
            db.parent.rmdir()
        elif how == "replaced-by-another-store":
            other = tmp_path / "other.db"
            with Store(other, create=True):
                pass
            os.replace(other, db)  # what a restore from a backup does
        else:
            db.unlink()  # what `rm sessions.db` does: the -wal and -shm files of the open store stay
            if how == "file-wal-and-shm":
                for suffix in ("-wal", "-shm"):
                    Path(f"{db}{suffix}").unlink(missing_ok=True)
        record(["after-0", "after-1", "after-2"])
        assert processor.force_flush(10_000)
        assert stored_names(db) == ["after-0", "after-1", "after-2"], "the sessions after go to the file at the path"
        record(["later"])
        assert processor.force_flush(10_000)
    assert stored_names(db) == ["after-0", "after-1", "after-2", "later"]
    assert integrity(db) == "ok"
    assert lost_spans() == 0
    warned = [r.getMessage() for r in caplog.records if "deleted or replaced" in r.getMessage()]
    assert len(warned) == 1 and str(db) in warned[0], caplog.text


HOLDER = """
import sys
from agentotel.store import Store
store = Store(sys.argv[1])  # a reader that keeps the store open, as `agentotel ui` does
print(store.counts()[0], flush=True)
sys.stdin.readline()
print(store.counts()[0], flush=True)
"""


def test_a_store_deleted_while_another_process_holds_it_open(tmp_path: Path, cap: Capture) -> None:
    """The deleted file's -wal and -shm stay while any process has it open; SQLite would pair them with a new file
    at the path (a disk I/O error, every later batch lost). The new store gets fresh ones; the reader goes on with
    the old file."""
    db = tmp_path / "sessions.db"
    processor = accounted(StoreSpanExporter(db))
    with exporting_through(processor):
        record(["before"])
        assert processor.force_flush(10_000)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None and holder.stdin is not None
            assert holder.stdout.readline().strip() == "1"
            db.unlink()
            record(["after-0", "after-1"])
            assert processor.force_flush(10_000)
            assert stored_names(db) == ["after-0", "after-1"]
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "1", "the reader still reads the file it opened"
            assert holder.wait(30) == 0
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.wait()
        record(["last"])  # the reader closed the old file: nothing of the new one may go with it
        assert processor.force_flush(10_000)
    assert stored_names(db) == ["after-0", "after-1", "last"]
    assert integrity(db) == "ok"
    assert lost_spans() == 0


def test_two_writers_of_a_deleted_store_make_one_new_store(tmp_path: Path, cap: Capture) -> None:
    db = tmp_path / "sessions.db"
    first, second = accounted(StoreSpanExporter(db)), accounted(StoreSpanExporter(db))
    with exporting_through(first), exporting_through(second):
        record(["before"])
        assert first.force_flush(10_000) and second.force_flush(10_000)
        db.unlink()
        record(["after-0", "after-1"])  # each exporter gets every span: both notice, both write
        assert first.force_flush(10_000) and second.force_flush(10_000)
    assert stored_names(db) == ["after-0", "after-1"]
    assert integrity(db) == "ok"
    assert lost_spans() == 0


# --- item 13: a store far over its limit ---------------------------------------------------------------------------


def test_a_big_prune_goes_in_short_transactions_that_let_other_writers_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`agentotel prune` (and the exporter) remove in short transactions with pauses between them: another
    writer's batches are committed while the prune goes on, and what it sees in between is the store part way."""
    # many transactions even on a fast machine
    monkeypatch.setattr("agentotel.store.database.PRUNE_TRANSACTION_S", 0.005)
    db = tmp_path / "sessions.db"
    fill_store(db, 4_000)
    pruned: list[tuple[int, int]] = []
    opened, done = threading.Event(), threading.Event()

    def prune() -> None:
        try:
            with Store(db, create=True) as store:
                opened.set()
                pruned.append(store.prune(keep=100))
        finally:
            opened.set()
            done.set()

    removed_seen: list[int] = []  # how many sessions the prune had removed, seen after each of the writer's batches
    with Store(db, create=True, timeout=30) as writer:
        pruner = threading.Thread(target=prune)
        pruner.start()
        assert opened.wait(60)
        written = 0
        while not done.is_set():
            # A session that runs: pruning by count never removes one (nor counts it among those it keeps).
            writer.write(session_records(10_000 + written, start_ns=time.time_ns(), running=True))
            written += 1
            removed_seen.append(4_000 + written - writer.counts()[0])
            if 0 < removed_seen[-1] < 4_000 - 100:
                break  # seen: the prune may go on undisturbed
        pruner.join(60)
        final = writer.counts()[0]
    assert pruned and pruned[0][0] == 4_000 - 100
    assert final == 100 + written
    assert 0 < removed_seen[-1] < 4_000 - 100, (
        f"another writer committed while the prune went on, and saw it part way: {removed_seen[:5]} ... "
        f"{removed_seen[-5:]}"
    )
    assert integrity(db) == "ok"


@pytest.fixture
def far_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, StoreSpanExporter]]:
    """A store of 10,000 sessions and an exporter whose limit is 100."""
    monkeypatch.setattr("agentotel.store.exporter.PRUNE_BUDGET_S", 0.02)
    db = tmp_path / "sessions.db"
    fill_store(db, 10_000)
    exporter = StoreSpanExporter(db)
    exporter.max_sessions = 100
    yield db, exporter
    exporter.shutdown()


def test_the_exporter_prunes_a_store_far_over_its_limit_a_little_after_each_batch(
    far_over: tuple[Path, StoreSpanExporter], cap: Capture
) -> None:
    db, exporter = far_over
    record(["new-0"])
    assert exporter.export(cap.spans).name == "SUCCESS"
    with Store(db) as store:
        after_one = store.counts()[0]
    assert 100 < after_one < 10_001, "one batch prunes for its budget, not until the store is within its limit"
    exports = 1
    while after_one > 100 + 10 and exports < 5_000:  # the limit and its slack
        cap.clear()
        record([f"new-{exports}"])
        assert exporter.export(cap.spans).name == "SUCCESS"
        exports += 1
        with Store(db) as store:
            after_one = store.counts()[0]
    assert after_one <= 110, f"later batches went on pruning: {after_one} sessions after {exports} batches"
    newest = [f"new-{n}" for n in range(max(0, exports - 100), exports)]
    assert stored_names(db)[-len(newest) :] == newest, "what the app wrote while pruning is kept"


def test_the_exporter_never_prunes_at_exit(
    far_over: tuple[Path, StoreSpanExporter], cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short app's last batches are written at exit, not held up behind (or lost to) pruning."""
    db, exporter = far_over
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")  # no batch before the exit's: it is the one looked at
    processor = StoreBatchProcessor(exporter)
    with exporting_through(processor):
        record([f"short-{n}" for n in range(20)])
        # exporting_through shuts the processor down: its final export is the whole app's batch
    assert processor.lost == 0
    names = stored_names(db)
    assert [n for n in names if n.startswith("short-")] == [f"short-{n}" for n in range(20)]
    assert len(names) == 10_000 + 20, "nothing was pruned while the app exited"


SHORT_APP = """
import agentotel
from agentotel._loss import lost_spans

agentotel.init()

@agentotel.tool
def lookup(order_id):
    return order_id

for n in range(20):
    with agentotel.session(f"short-{n}"):
        lookup(str(n))
print("READY-TO-EXIT", flush=True)  # every span is still queued: the flush at exit writes them
"""


def test_a_short_app_writing_to_a_store_far_over_its_limit_exits_with_every_session_stored(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    fill_store(db, 10_000)
    env = child_env(
        tmp_path,
        AGENTOTEL_STORE=str(db),
        AGENTOTEL_STORE_MAX_SESSIONS="100",
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic",
    )
    run = run_child(SHORT_APP, env, tmp_path, timeout=120)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    names = stored_names(db)
    assert [n for n in names if n.startswith("short-")] == [f"short-{n}" for n in range(20)]
    assert len(names) == 10_000 + 20, "the flush at exit pruned nothing: the next app's batches will"


# --- item 15: sessions left Running by a crash -----------------------------------------------------------------------


def crashed_store(path: Path) -> dict[str, str]:
    """A store holding a session a crash left Running 40 days ago, one left Running 2 days ago, one still running
    (started a minute ago) and three sessions that ended in the last hour; their ids by role."""
    now = time.time_ns()
    roles = {
        "crashed-long-ago": session_records(0, start_ns=now - 40 * DAY_NS, running=True),
        "crashed-2-days-ago": session_records(1, start_ns=now - 2 * DAY_NS, running=True),
        "still-running": session_records(2, start_ns=now - 60 * 10**9, running=True),
        "ended-0": session_records(3, start_ns=now - 3_000 * 10**9),
        "ended-1": session_records(4, start_ns=now - 2_000 * 10**9),
        "ended-2": session_records(5, start_ns=now - 1_000 * 10**9),
    }
    with Store(path, create=True) as store:
        for records in roles.values():
            store.write(records)
    return {role: str(records[0].attributes[sc.SESSION_ID]) for role, records in roles.items()}


def stored_ids(path: Path) -> set[str]:
    with Store(path) as store:
        return {s.id for s in store.sessions()}


def test_a_session_left_running_by_a_crash_is_pruned_by_age(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "sessions.db"
    ids = crashed_store(db)
    assert cli(["prune", "--older-than", "30d", "--source", str(db)]) == 0
    assert "Removed 1 session (4 spans)" in capsys.readouterr().out
    assert stored_ids(db) == set(ids.values()) - {ids["crashed-long-ago"]}
    with Store(db) as store:
        assert not store.has_spans_of_session(ids["crashed-long-ago"])
    assert cli(["prune", "--older-than", "1d", "--source", str(db)]) == 0
    assert stored_ids(db) == {ids["still-running"], ids["ended-0"], ids["ended-1"], ids["ended-2"]}


def test_a_session_left_running_by_a_crash_is_pruned_by_count_once_a_day_old(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    ids = crashed_store(db)
    with Store(db, create=True) as store:
        assert store.prune(keep=2) == (3, 12)  # the two crashed ones (the oldest) and the oldest ended one
    assert stored_ids(db) == {ids["still-running"], ids["ended-1"], ids["ended-2"]}, "a running one is kept"


def test_the_exporter_bounds_sessions_crashes_left_running(
    tmp_path: Path, cap: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "sessions.db"
    now = time.time_ns()
    with Store(db, create=True) as store:
        for n in range(30):
            store.write(session_records(n, start_ns=now - 3 * DAY_NS + n * 10**9, running=True))
    exporter = StoreSpanExporter(db)
    exporter.max_sessions = 10
    record([f"new-{n}" for n in range(12)])
    try:
        assert exporter.export(cap.spans).name == "SUCCESS"
    finally:
        exporter.shutdown()
    assert stored_names(db) == [f"new-{n}" for n in range(2, 12)]
