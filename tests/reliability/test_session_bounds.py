"""Sessions that are never ended, and sessions that hold a lot of content: the registry of live sessions stays
bounded in count and in bytes, filing a span costs the same however many sessions are open or nested, and exit
takes the same few seconds whatever is left open (issue 13, items 8 and 9)."""

from __future__ import annotations

import gc
import logging
import sqlite3
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import context

import agentotel
from agentotel import live
from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.live import registry
from agentotel.sessions import LiveSession
from agentotel.testing import Capture

from .support import child_env, run_child

MIB = 1 << 20
MAX_RUNNING_ENV = "AGENTOTEL_MAX_RUNNING_SESSIONS"
MAX_MEMORY_ENV = "AGENTOTEL_MAX_SESSION_MEMORY"


@agentotel.tool
def step(n: int) -> int:
    return n


@agentotel.tool
def big_step(payload: str) -> str:
    return "ok"


@pytest.fixture
def restore_context() -> Iterator[None]:
    """AgentOps-style code leaves its sessions current: the test's context is put back after it, and every session
    it left open is ended."""
    base = context.get_current()
    before = {s.id for s in registry.active()}
    yield
    context.attach(base)
    for session in registry.active():
        if session.id not in before and isinstance(session, LiveSession):
            session.end("Indeterminate", "left open by the test")


def forgotten_sessions(count: int, steps: int, prefix: str) -> list[LiveSession]:
    """`count` sessions started the AgentOps way and never ended: each is nested in the one before."""
    made = []
    for i in range(count):
        made.append(agentotel.start_session(name=f"{prefix}-{i}"))
        for n in range(steps):
            step(n)
    return made


def fastest_block(count: int, block: int = 25) -> float:
    """Seconds of the fastest block of `block` steps out of `count`: the least disturbed by other processes."""
    times = []
    for _ in range(count // block):
        started = time.perf_counter()
        for n in range(block):
            step(n)
        times.append(time.perf_counter() - started)
    return min(times)


# --- item 8: sessions never ended -------------------------------------------------------------------------------------


def test_running_sessions_are_bounded_the_oldest_ended_with_a_reason_logged_once(
    cap: Capture, restore_context: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentotel")
    monkeypatch.setattr(registry, "max_running", 20, raising=False)
    made = forgotten_sessions(60, 2, "forgot")
    running = [s for s in made if not s.ended]
    assert running == made[-20:], "the newest stay running"
    for old in made[:-20]:
        assert old.end_state == "Indeterminate"
        assert old.end_state_reason is not None and MAX_RUNNING_ENV in old.end_state_reason
    roots = {
        s.attributes[sc.GEN_AI_AGENT_NAME]: s.attributes
        for s in cap.spans
        if s.attributes and s.attributes.get(sc.AGENTOTEL_STEP_KIND) == "session"
    }
    assert roots["forgot-0"][sc.AGENTOTEL_SESSION_END_STATE] == "Indeterminate"
    assert MAX_RUNNING_ENV in roots["forgot-0"][sc.AGENTOTEL_SESSION_END_STATE_REASON]
    warnings = [r for r in caplog.records if MAX_RUNNING_ENV in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    # An ended session still shows what ran inside it: its own steps, and the sessions nested in it so far.
    assert [e.name for e in made[0].tool_calls][:2] == ["step", "step"]


def test_filing_a_span_costs_the_same_however_deep_sessions_nest(cap: Capture, restore_context: None) -> None:
    with agentotel.session("shallow"):
        shallow = fastest_block(400)
    deep = forgotten_sessions(1_500, 1, "deep")
    nested = fastest_block(400)
    context.attach(deep[0]._parent_context)
    # Before the fix each span was filed under every session around it: 1,500 deep, ~100x the time of one.
    assert nested < 5 * shallow, f"a step 1,500 sessions deep took {nested / shallow:.1f}x one in a single session"


def test_outer_sessions_still_roll_up_the_sessions_nested_in_them(cap: Capture) -> None:
    with agentotel.session("outer") as outer:
        step(1)
        with agentotel.session("middle") as middle:
            step(2)
            with agentotel.session("inner") as inner:
                step(3)
                step(4)
        step(5)
    assert [e.kind for e in outer.events] == ["tool", "session", "tool", "session", "tool", "tool", "tool"]
    assert len(outer.tool_calls) == 5 and len(middle.tool_calls) == 3 and len(inner.tool_calls) == 2
    assert len(outer) == 7 and len(middle) == 4
    root = next(s for s in cap.spans if s.name == "invoke_agent outer")
    assert root.attributes is not None and root.attributes[sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT] == 5
    assert cap.session("outer").tool_calls == outer.tool_calls


FORGETFUL_APP = """
import sys
import agentotel

agentotel.init()

@agentotel.tool
def step(n):
    return n

for i in range(int(sys.argv[1])):
    agentotel.start_session(name=f"request-{i}")  # AgentOps-style code that never calls end_session()
    for n in range(3):
        step(n)
print("READY-TO-EXIT")
"""


@pytest.mark.slow
def test_exit_with_two_thousand_sessions_left_open_is_quick_and_ends_every_one(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    env = child_env(
        tmp_path,
        AGENTOTEL_STORE=str(db),
        OTEL_BSP_MAX_QUEUE_SIZE="50000",  # the store keeps up with the app: every span is there to count
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic",
    )
    run = run_child(FORGETFUL_APP, env, tmp_path, timeout=240, args=("2000",))
    assert run.returncode == 0, run.stderr[-3000:]
    print(f"2,000 sessions left open: the app ran {run.seconds:.1f}s, its exit took {run.exit_seconds:.2f}s")
    # Before the fix: 84 s (each session summed up every session nested in it, 2,000 deep).
    assert run.exit_seconds is not None and run.exit_seconds < 20
    connection = sqlite3.connect(db)
    rows = connection.execute("SELECT end_state, end_state_reason, COUNT(*) FROM sessions GROUP BY 1, 2").fetchall()
    connection.close()
    assert rows == [("Indeterminate", "the process exited with the session open", 2000)], rows
    assert "Traceback" not in run.stderr, run.stderr[-3000:]


def test_the_bound_on_running_sessions_reads_its_variable(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    env = child_env(
        tmp_path,
        AGENTOTEL_STORE=str(db),
        AGENTOTEL_MAX_RUNNING_SESSIONS="50",
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic",
    )
    run = run_child(FORGETFUL_APP, env, tmp_path, timeout=120, args=("300",))
    assert run.returncode == 0, run.stderr[-3000:]
    connection = sqlite3.connect(db)
    reasons = dict(connection.execute("SELECT end_state_reason, COUNT(*) FROM sessions GROUP BY 1").fetchall())
    connection.close()
    bound = [reason for reason in reasons if MAX_RUNNING_ENV in (reason or "")]
    assert len(bound) == 1 and reasons[bound[0]] == 250, reasons
    assert reasons["the process exited with the session open"] == 50
    assert run.stderr.count(MAX_RUNNING_ENV) == 1, run.stderr  # the one warning line


# --- item 9: memory ---------------------------------------------------------------------------------------------------


def test_ended_sessions_are_bounded_by_the_bytes_they_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Content capture on, sessions of ten 16 KB tool arguments: past the byte budget the oldest ended sessions are
    forgotten, whatever `max_ended_sessions` allows."""
    monkeypatch.setattr(settings, "capture_content", True)
    monkeypatch.setattr(registry, "max_memory", 4 * MIB, raising=False)
    registry.clear()
    payload = "lorem ipsum " * 1_365  # 16 KB
    gc.collect()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        ids = []
        for i in range(80):
            with agentotel.session(f"big-{i}") as s:
                for n in range(10):
                    big_step(f"{n} {payload}")
            ids.append(s.id)
            if i == 0:
                first = s  # held by the test
        del s
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    kept = registry.ended()
    held = registry.memory()
    print(f"80 sessions of 160 KB: {len(kept)} kept, {held / MIB:.1f} MiB estimated, {(after - before) / MIB:.1f} MiB")
    assert held <= 4 * MIB
    assert 10 <= len(kept) < 80 and kept[-1].id == ids[-1], "the newest are kept, the oldest forgotten"
    assert registry.get(ids[0]) is None
    # Before the fix every one of the 80 was kept with its events: 80 x 160 KB x 2 = 25 MB.
    assert after - before < 10 * MIB
    # A session the registry forgot is still whole for whoever holds it.
    assert len(first.tool_calls) == 10


def test_a_running_session_over_the_byte_budget_keeps_no_more_events_and_counts_them(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="agentotel")
    monkeypatch.setattr(settings, "capture_content", True)
    monkeypatch.setattr(registry, "max_memory", 2 * MIB, raising=False)
    registry.clear()
    payload = "x" * 16_000
    with agentotel.session("huge") as s:
        for n in range(400):  # 6.4 MB of arguments
            big_step(f"{n} {payload}")
    assert s.end_state == "Success"
    assert s.dropped_events > 0 and len(s) + s.dropped_events == 400
    assert len(s) * 16_000 < 3 * MIB
    warnings = [r for r in caplog.records if MAX_MEMORY_ENV in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("512MiB", 512 * MIB), ("1GiB", 1 << 30), ("200M", 200_000_000), ("1048576", MIB), ("0", 0), ("64 kb", 64_000)],
)
def test_the_byte_budget_reads_sizes(raw: str, expected: int) -> None:
    assert live.memory_from_env({MAX_MEMORY_ENV: raw}) == expected


def test_a_bad_byte_budget_is_the_default_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agentotel")
    assert live.memory_from_env({MAX_MEMORY_ENV: "lots"}) == live.memory_from_env({})
    assert MAX_MEMORY_ENV in caplog.text
