"""The embedded store full, read-only, locked by another process or damaged: tracing goes on (the agent's calls
return as before, live sessions are whole), the spans that cannot be written are counted lost, the CLI says what is
wrong in one line (exit 2), and nothing already stored is lost."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import agentotel
from agentotel._loss import EXPORT_FAILED, lost_spans
from agentotel.cli import main as cli
from agentotel.records import records_from_spans
from agentotel.store import Store, StoreSpanExporter
from agentotel.testing import Capture

from .support import (
    accounted,
    child_env,
    exporting_through,
    lookup_order,
    median,
    per_call_times,
    run_child,
    traced_steps,
)


def seed_store(path: Path, cap: Capture, count: int = 5) -> list[tuple[object, ...]]:
    """A store holding `count` sessions; returns its session rows, to compare with later."""
    for n in range(count):
        with agentotel.session(f"kept-{n}", tags=["before"]):
            lookup_order(str(n))
    with Store(path, create=True) as store:
        store.write(records_from_spans(cap.spans))
    cap.clear()
    return rows_of(path)


def rows_of(path: Path) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return sorted(connection.execute("SELECT * FROM sessions WHERE name LIKE 'kept-%'").fetchall())
    finally:
        connection.close()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and "unexpected error" not in err, err
    for word in words:
        assert word in err, err


def sessions_go_on(cap: Capture, count: int = 3) -> None:
    """The agent still works with the store broken: calls return their results, live sessions are whole."""
    for n in range(count):
        with agentotel.session(f"during-{n}") as s:
            assert lookup_order(str(n)) == {"order_id": str(n), "status": "shipped"}
        assert s.end_state == "Success" and len(s.tool_calls) == 1
    assert {x.name for x in cap.sessions} >= {f"during-{n}" for n in range(count)}


# --- read-only -----------------------------------------------------------------------------------------------------


@pytest.fixture
def read_only() -> Iterator[list[Path]]:
    """Makes files read-only for the test, even for root (with the immutable attribute), and writable again after."""
    made: list[Path] = []
    yield made
    for path in made:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)
        path.chmod(0o600)


def make_read_only(path: Path, made: list[Path]) -> None:
    if os.geteuid() == 0:  # root writes through permission bits: the immutable attribute stops it
        if shutil.which("chattr") is None:
            pytest.skip("running as root without chattr: cannot make a file read-only")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot make a file immutable here: {done.stderr.strip()}")
    else:
        path.chmod(0o444)
    made.append(path)


def test_a_read_only_store_counts_the_lost_spans_and_keeps_what_it_holds(
    tmp_path: Path, cap: Capture, read_only: list[Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "sessions.db"
    before = seed_store(db, cap)
    make_read_only(db, read_only)

    processor = accounted(StoreSpanExporter(db))
    with exporting_through(processor):
        sessions_go_on(cap)
        assert processor.force_flush(5_000)
    assert lost_spans(EXPORT_FAILED) == 6  # three sessions of two spans each: counted, not silently dropped

    code, out, err = run_cli(capsys, "sessions", "--source", str(db), "--json")
    if code == 0:  # SQLite reads a read-only WAL store when it can: then every session is listed
        assert {s["name"] for s in __import__("json").loads(out)} >= {f"kept-{n}" for n in range(5)}
    else:
        assert_one_line_error(code, err, "read-only")
    assert rows_of(db) == before


# --- locked by another process -------------------------------------------------------------------------------------

LOCKER = """
import sqlite3, sys, time, os
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("PRAGMA locking_mode = EXCLUSIVE")
connection.execute("BEGIN EXCLUSIVE")
print("LOCKED", flush=True)
deadline = time.time() + 60
while not os.path.exists(sys.argv[2]) and time.time() < deadline:
    time.sleep(0.01)
connection.execute("ROLLBACK")
connection.close()
"""


def test_a_store_locked_by_another_process(
    tmp_path: Path, cap: Capture, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("agentotel.store.database.WRITE_TIMEOUT_S", 0.3)
    monkeypatch.setattr("agentotel.store.database.READ_TIMEOUT_S", 0.3)
    db = tmp_path / "sessions.db"
    before = seed_store(db, cap)
    gate = tmp_path / "release"
    (tmp_path / "locker.py").write_text(LOCKER)
    locker = subprocess.Popen(
        [sys.executable, str(tmp_path / "locker.py"), str(db), str(gate)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "LOCKED"

        processor = accounted(StoreSpanExporter(db))
        with exporting_through(processor):
            locked_times = per_call_times(traced_steps, 100)
            started = time.monotonic()
            assert processor.force_flush(10_000)
            flush_s = time.monotonic() - started
            sessions_go_on(cap)
            code, _, err = run_cli(capsys, "sessions", "--source", str(db))
            assert_one_line_error(code, err, "locked by another process", str(db))
            assert processor.force_flush(10_000)
            lost_while_locked = lost_spans(EXPORT_FAILED)
            gate.touch()
            assert locker.wait(10) == 0
            # Once the other process lets go, the same exporter writes again.
            with agentotel.session("after-the-lock"):
                lookup_order("x")
            assert processor.force_flush(10_000)
            unlocked_times = per_call_times(traced_steps, 100)
    finally:
        gate.touch()
        locker.wait(10)
    with capsys.disabled():
        print(
            f"locked store: 10-step session {median(locked_times) * 1e6:.0f} us vs "
            f"{median(unlocked_times) * 1e6:.0f} us unlocked; "
            f"a flush gave up after {flush_s:.2f}s; {lost_while_locked} spans counted lost"
        )
    assert median(locked_times) < 2 * median(unlocked_times), "a locked store never slows the agent down"
    assert lost_while_locked == 100 * 11 + 6
    assert lost_spans() == lost_while_locked, "after the lock, nothing more is lost"
    assert rows_of(db) == before
    code, _, _ = run_cli(capsys, "replay", "--source", str(db), "--json", "last")
    assert code == 0
    with Store(db) as store:
        assert [s.name for s in store.sessions() if s.name == "after-the-lock"] == ["after-the-lock"]


# --- damaged -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "overwritten-pages"])
def test_a_damaged_store_is_left_as_it_is_and_explained_in_one_line(
    tmp_path: Path, cap: Capture, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    db = tmp_path / "sessions.db"
    seed_store(db, cap, count=40)
    data = db.read_bytes()
    if damage == "truncated":
        damaged = data[: len(data) // 2 + 100]
    else:  # the header stays (it still looks like SQLite), the pages after the first are garbage
        damaged = data[:4096] + bytes((i * 7 + 13) % 256 for i in range(len(data) - 4096))
    db.write_bytes(damaged)

    processor = accounted(StoreSpanExporter(db))
    with exporting_through(processor):
        sessions_go_on(cap)
        assert processor.force_flush(5_000)
    assert lost_spans(EXPORT_FAILED) == 6
    assert db.read_bytes() == damaged, "a damaged store is never written over: what it holds can be recovered"

    for argv in (["sessions"], ["replay", "last"], ["check"]):
        code, _, err = run_cli(capsys, *argv, "--source", str(db))
        assert_one_line_error(code, err, str(db))
        assert "damaged" in err or "not an agentotel store" in err, err


# --- full ----------------------------------------------------------------------------------------------------------

FILLER = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing us
limit = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

import agentotel
from agentotel._loss import lost_spans

agentotel.init(capture_content=True)

@agentotel.tool
def remember(note):
    return len(note)

whole = 0
for n in range(40):
    with agentotel.session(f"filler-{n}") as s:
        assert remember("x" * 20_000) == 20_000
    whole += s.end_state == "Success" and len(s.tool_calls) == 1
    agentotel.force_flush()  # a transaction per session: the store fills up part way
print("WHOLE", whole)
print("LOST", lost_spans())
print("READY-TO-EXIT")
"""


def test_a_full_disk_loses_new_spans_counted_and_the_store_stays_whole(
    tmp_path: Path, cap: Capture, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "sessions.db"
    before = seed_store(db, cap)
    limit = db.stat().st_size + 96 * 1024  # room for a few sessions, not for 40 of 16 KB each
    env = child_env(tmp_path, AGENTOTEL_STORE=str(db), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic")
    run = run_child(FILLER, env, tmp_path, args=(str(limit),), timeout=60)
    assert run.returncode == 0, run.stderr
    assert "WHOLE 40" in run.stdout, "every session of the app completed while the disk was full"
    lost = int(run.stdout.split("LOST ")[1].split()[0])
    assert 0 < lost < 80, run.stdout
    assert "could not write spans to the session store" in run.stderr
    assert "Traceback" not in run.stderr

    assert rows_of(db) == before, "what the store held before the disk filled is all there"
    connection = sqlite3.connect(db)
    assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = connection.execute("SELECT COUNT(*) FROM sessions WHERE name LIKE 'filler-%'").fetchone()[0]
    connection.close()
    with capsys.disabled():
        print(f"full disk: {stored} of 40 sessions stored, {lost} spans counted lost")
    assert stored * 2 + lost == 80, "every span of the app was either stored or counted lost"
    code, out, _ = run_cli(capsys, "sessions", "--source", str(db))
    assert code == 0 and "kept-0" in out
