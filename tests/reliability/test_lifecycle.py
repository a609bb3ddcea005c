"""Odd lifetimes: streams abandoned half-way, read from another thread or closed twice; generators never iterated;
`fork()` after `init()`; the interpreter exiting with sessions still open."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan

import agentotel
from agentotel import semconv as sc
from agentotel.live import registry
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer, Reply

from .support import ChildRun, FaultyOTLPBackend, child_env, run_child

LONG = "one two three four five six seven eight nine ten"


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def client(server: LLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as sdk:
        yield sdk


def llm_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans if (s.attributes or {}).get(sc.AGENTOTEL_STEP_KIND) == "llm"]


def stream_of(client: openai.OpenAI, server: LLMServer) -> Any:
    server.script(Reply(LONG, input_tokens=12, output_tokens=10))
    return client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )


# --- streams -------------------------------------------------------------------------------------------------------


def test_a_stream_abandoned_half_way_ends_its_span_once_and_the_client_goes_on(
    cap: Capture, client: openai.OpenAI, server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with agentotel.session("abandon") as s:
        stream = stream_of(client, server)
        first = [next(stream), next(stream)]
        assert first[0].choices[0].delta.role == "assistant"
        del stream, first
        gc.collect()
        # the same client still works: the abandoned response did not leave the connection pool stuck
        again = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        assert again.choices[0].message.content == "You said: hi"
    spans = llm_spans(cap)
    assert len(spans) == 2 and all(span.end_time is not None for span in spans)
    assert s.end_state == "Success" and len(s.llm_calls) == 2
    abandoned = spans[0]
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in (abandoned.attributes or {})
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_a_stream_left_open_past_its_session_still_lands_in_it(
    cap: Capture, client: openai.OpenAI, server: LLMServer
) -> None:
    with agentotel.session("outlived") as s:
        stream = stream_of(client, server)
        next(stream)
    assert s.ended and len(s.llm_calls) == 0  # the call had not ended when the session did
    del stream
    gc.collect()
    assert len(s.llm_calls) == 1, "the span of the stream ends when it is collected, filed under its session"
    assert cap.session("outlived").llm_calls[0].session_id == s.id


def test_a_stream_read_from_another_thread(cap: Capture, client: openai.OpenAI, server: LLMServer) -> None:
    received: list[str] = []
    with agentotel.session("threads") as s:
        stream = stream_of(client, server)

        def read() -> None:
            for chunk in stream:
                if chunk.choices:
                    received.append(chunk.choices[0].delta.content or "")

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(10)
    assert "".join(received) == LONG
    (span,) = llm_spans(cap)
    assert span.parent is not None and f"{span.parent.span_id:016x}" == s.span_id
    assert (span.attributes or {})[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 10
    assert len(s.llm_calls) == 1


def test_a_stream_closed_twice_and_exited_twice(cap: Capture, client: openai.OpenAI, server: LLMServer) -> None:
    with agentotel.session("close") as s:
        stream = stream_of(client, server)
        next(stream)
        stream.close()
        stream.close()
        with stream_of(client, server) as second:
            next(second)
        second.close()
    assert len(llm_spans(cap)) == 2
    assert len(s.llm_calls) == 2


async def test_async_streams_abandoned_closed_twice_and_read_by_another_task(cap: Capture, server: LLMServer) -> None:
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)

    async def start() -> Any:
        server.script(Reply(LONG))
        return await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "count"}], stream=True
        )

    async with agentotel.session("async streams") as s:
        abandoned = await start()
        await abandoned.__anext__()
        del abandoned
        closed = await start()
        await closed.__anext__()
        await closed.close()
        await closed.close()
        shared = await start()

        async def read() -> str:
            return "".join([c.choices[0].delta.content or "" async for c in shared if c.choices])

        assert await asyncio.create_task(read()) == LONG
        gc.collect()
    await client.close()
    assert len(llm_spans(cap)) == 3 and all(span.end_time for span in llm_spans(cap))
    assert len(s.llm_calls) == 3


# --- generators ----------------------------------------------------------------------------------------------------


@agentotel.tool
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@agentotel.tool
async def anumbers(n: int) -> Any:
    for i in range(n):
        yield i


def test_generators_never_iterated_leave_nothing_open(cap: Capture, recwarn: pytest.WarningsRecorder) -> None:
    with agentotel.session("lazy") as s:
        never = numbers(3)
        anever = anumbers(3)
        del never, anever
        gc.collect()
        half = numbers(5)
        assert next(half) == 0
        del half  # closed by the collector, in whatever context it runs
        gc.collect()
        twice = numbers(2)
        assert list(twice) == [0, 1]
        twice.close()
        twice.close()
    assert [e.name for e in s.tool_calls] == ["numbers", "numbers"], "one span per generator that ran, none else"
    assert all(e.error is None and e.end_ns is not None for e in s.tool_calls)
    assert s.end_state == "Success"
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_a_generator_handed_to_a_thread_pool_stays_in_its_session(cap: Capture) -> None:
    """A decorated generator's step starts at its first iteration, in the context it runs in: a pool carries the
    submitter's context (so the step stays in the session); a bare `threading.Thread` does not, as for any call."""
    with agentotel.session("gen-pool") as s, ThreadPoolExecutor(max_workers=2) as pool:
        assert pool.submit(list, numbers(4)).result() == [0, 1, 2, 3]
    assert len(s.tool_calls) == 1 and s.tool_calls[0].session_id == s.id


# --- fork ----------------------------------------------------------------------------------------------------------

FORKER = """
import os, sys, threading, time
import agentotel
from agentotel.live import registry

agentotel.init()

@agentotel.tool
def step(n):
    return n

stop = threading.Event()

def hammer(k):
    while not stop.is_set():
        with agentotel.session(f"parent-thread-{k}"):
            for n in range(5):
                step(n)
        time.sleep(0.005)  # busy, not flooding: the children's writes to the store get their turn

def wait_until(condition, what):
    deadline = time.monotonic() + 120
    while not condition():
        if time.monotonic() > deadline:
            sys.exit(f"timed out waiting until {what}")
        time.sleep(0.001)

threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in range(4)]
for t in threads:
    t.start()
wait_until(lambda: len(registry.ended()) >= 20, "the threads were busy")
children = []
for c in range(6):
    # Fork while the threads are in the middle of spans, exports and locks: after more of their sessions ended.
    seen = len(registry.ended())
    wait_until(lambda: len(registry.ended()) > seen + 2, "more sessions ended")
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            with agentotel.session(f"child-{c}") as s:
                for n in range(10):
                    step(n)
            ok = s.end_state == "Success" and len(s.tool_calls) == 10
            ok = agentotel.force_flush(120_000) and ok
        finally:
            os._exit(0 if ok else 1)
    children.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
stop.set()
for t in threads:
    t.join(30)
print("CHILDREN", codes)
print("READY-TO-EXIT")
"""


def test_fork_after_init_children_trace_without_deadlock(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    env = child_env(tmp_path, AGENTOTEL_STORE=str(db), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic")
    run = run_child(FORKER, env, tmp_path, timeout=400)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "CHILDREN [0, 0, 0, 0, 0, 0]" in run.stdout, run.stdout + run.stderr[-3000:]
    connection = sqlite3.connect(db)
    children = connection.execute(
        "SELECT name, end_state, tool_calls FROM sessions WHERE name LIKE 'child-%' ORDER BY name"
    ).fetchall()
    parents = connection.execute("SELECT COUNT(*) FROM sessions WHERE name LIKE 'parent-%'").fetchone()[0]
    integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    connection.close()
    assert children == [(f"child-{c}", "Success", 10) for c in range(6)]
    assert parents > 0
    assert integrity == "ok"
    assert "Traceback" not in run.stderr, run.stderr[-3000:]


FORK_DURING_A_WRITE = """
import os, sqlite3, sys, threading, time
from contextlib import contextmanager
import agentotel
from agentotel import store
from agentotel.store import exporter as store_exporter

HOLD_S = float(sys.argv[1])
if len(sys.argv) > 2:
    store_exporter.FORK_TRANSACTION_WAIT_S = float(sys.argv[2])
in_write = threading.Event()
slow_next = threading.Event()
original = store.Store._transaction

@contextmanager
def slow_write(self):
    # The fault: one write transaction of the exporter stays open HOLD_S seconds (a slow disk, a loaded machine).
    with original(self):
        yield
        if slow_next.is_set() and threading.current_thread() is not threading.main_thread():
            slow_next.clear()
            in_write.set()
            time.sleep(HOLD_S)

store.Store._transaction = slow_write
agentotel.init()

@agentotel.tool
def step(n):
    return n

with agentotel.session("parent-first"):
    step(0)
assert agentotel.force_flush(60_000)  # the store exists and the exporter has its connection open
slow_next.set()
with agentotel.session("parent-second"):
    step(1)
flusher = threading.Thread(target=agentotel.force_flush, args=(120_000,))
flusher.start()
assert in_write.wait(60)
forking = time.monotonic()
pid = os.fork()
if pid == 0:
    ok = False
    try:
        with agentotel.session("child"):
            step(2)
        ok = agentotel.force_flush(60_000)
        print("CHILD-LOST", agentotel.lost_spans(), flush=True)
    finally:
        os._exit(0 if ok else 1)
print("FORK-TOOK", round(time.monotonic() - forking, 2), flush=True)
_, status = os.waitpid(pid, 0)
flusher.join(120)
with agentotel.session("parent-after"):
    step(3)
assert agentotel.force_flush(60_000)
print("CHILD-EXIT", os.waitstatus_to_exitcode(status))
db = sqlite3.connect(os.environ["AGENTOTEL_STORE"])
print("INTEGRITY", db.execute("PRAGMA integrity_check").fetchone()[0])
print("SESSIONS", sorted(row[0] for row in db.execute("SELECT name FROM sessions WHERE end_state = 'Success'")))
print("READY-TO-EXIT")
"""


def fork_during_a_write(tmp_path: Path, *args: str) -> tuple[ChildRun, dict[str, str]]:
    env = child_env(
        tmp_path,
        AGENTOTEL_STORE=str(tmp_path / "sessions.db"),
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic",
    )
    run = run_child(FORK_DURING_A_WRITE, env, tmp_path, timeout=240, args=args)
    said = dict(line.split(" ", 1) for line in run.stdout.splitlines() if " " in line)
    return run, said


def test_a_fork_during_a_store_write_waits_for_it_and_parent_and_child_both_store(tmp_path: Path) -> None:
    """Before: the fork went ahead after 1 s in the middle of the write; the child inherited SQLite's record of
    the parent's write lock (its every write "database is locked") and, letting go of the parent's connection,
    rolled back the parent's transaction in the memory they share: the parent's store was left malformed."""
    run, said = fork_during_a_write(tmp_path, "3")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert said.get("INTEGRITY") == "ok", run.stdout + run.stderr[-3000:]
    assert said.get("CHILD-EXIT") == "0" and said.get("CHILD-LOST") == "0", run.stdout + run.stderr[-3000:]
    assert said["SESSIONS"] == "['child', 'parent-after', 'parent-first', 'parent-second']"
    assert 0.5 < float(said["FORK-TOOK"]) < 60  # the fork waited for the write to end, and no longer


def test_a_fork_that_cannot_wait_for_a_store_write_leaves_the_store_whole_and_counts_the_childs_spans(
    tmp_path: Path,
) -> None:
    run, said = fork_during_a_write(tmp_path, "4", "0.2")
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert said.get("INTEGRITY") == "ok", run.stdout + run.stderr[-3000:]
    assert float(said["FORK-TOOK"]) < 3.5, "the fork waited no longer than its bound"
    # The child cannot write the store (SQLite holds the parent's write lock for it): its spans are counted lost,
    # and one line says why.
    assert said.get("CHILD-EXIT") == "0" and said.get("CHILD-LOST") == "2", run.stdout + run.stderr[-3000:]
    assert "forked while" in run.stderr, run.stderr[-3000:]
    assert said["SESSIONS"] == "['parent-after', 'parent-first', 'parent-second']"


FORK_DURING_A_FLUSH = """
import os, threading
import agentotel
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

PARENT = os.getpid()
exporting = threading.Event()
release = threading.Event()
delivered = []

class SlowInTheParent(SpanExporter):
    def export(self, spans):
        if os.getpid() == PARENT:
            exporting.set()
            release.wait(120)
        delivered.extend(span.name for span in spans)
        return SpanExportResult.SUCCESS

agentotel.init(exporter=SlowInTheParent())

@agentotel.tool
def step(n):
    return n

with agentotel.session("parent"):
    step(0)
flusher = threading.Thread(target=agentotel.force_flush, args=(120_000,))
flusher.start()
assert exporting.wait(60)  # the parent's flush is in progress, on a slow backend
pid = os.fork()
if pid == 0:
    with agentotel.session("child"):
        step(1)
    ok = agentotel.force_flush(30_000) and "invoke_agent child" in delivered
    os._exit(0 if ok else 1)
_, status = os.waitpid(pid, 0)
release.set()
flusher.join(60)
print("CHILD-EXIT", os.waitstatus_to_exitcode(status))
print("READY-TO-EXIT")
"""


def test_a_flush_in_progress_at_a_fork_does_not_hold_the_childs_flush(tmp_path: Path) -> None:
    """Before: the child took over the parent's flush in progress (a thread that does not exist in the child) and
    waited for it until its own flush timed out."""
    env = child_env(tmp_path, AGENTOTEL_STORE="off", OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic")
    run = run_child(FORK_DURING_A_FLUSH, env, tmp_path, timeout=180)
    assert run.returncode == 0 and "CHILD-EXIT 0" in run.stdout, run.stdout + run.stderr[-3000:]


FORK_IN_SESSION = """
import os, sys
import agentotel

agentotel.init()

@agentotel.tool
def step(n):
    return n

with agentotel.session("job") as job:
    step(0)
    pid = os.fork()
    if pid == 0:  # the child works inside the parent's session, then exits the normal way (atexit runs)
        step(1)
        sys.exit(0)
    _, status = os.waitpid(pid, 0)
    step(2)
print("CHILD", os.waitstatus_to_exitcode(status), "JOB", job.end_state)
print("READY-TO-EXIT")
"""


def received_spans(backend: FaultyOTLPBackend) -> list[tuple[str, dict[str, Any]]]:
    """(name, attributes) of every span the backend accepted, in arrival order."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from otlp_receiver import spans_of

    found = []
    for attempt in backend.attempts:
        if attempt.status == 200:
            message = ExportTraceServiceRequest()
            message.ParseFromString(attempt.body)
            found += [(span.name, span.attributes) for span in spans_of(message)]
    return found


def test_a_child_forked_inside_a_session_adds_to_it_and_never_ends_it(tmp_path: Path) -> None:
    with FaultyOTLPBackend() as backend:
        env = child_env(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=backend.base_url,
            AGENTOTEL_STORE="off",
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic",
        )
        run = run_child(FORK_IN_SESSION, env, tmp_path, timeout=60)
        spans = received_spans(backend)
    assert run.returncode == 0 and "CHILD 0 JOB Success" in run.stdout, run.stderr
    roots = [attributes for name, attributes in spans if name == "invoke_agent job"]
    # The parent ended the session once, Success; the child (which left it by sys.exit) did not end it too.
    assert [r[sc.AGENTOTEL_SESSION_END_STATE] for r in roots] == ["Success"]
    steps = [attributes for name, attributes in spans if name == "execute_tool step"]
    assert len(steps) == 3 and {a[sc.SESSION_ID] for a in steps} == {roots[0][sc.SESSION_ID]}


# --- interpreter exit ----------------------------------------------------------------------------------------------

EXITER = """
import sys, threading, time
import agentotel

agentotel.init()

@agentotel.tool
def step(n):
    return n

outer = agentotel.start_session(tags=["left-open"], name="outer")
step(1)
inner = agentotel.start_session(name="inner")
step(2)

blocked = threading.Event()

def worker():
    with agentotel.session("in-a-daemon-thread"):
        step(3)
        blocked.set()
        time.sleep(3600)  # the process exits while this session runs

threading.Thread(target=worker, daemon=True).start()
blocked.wait(10)
with agentotel.session("closed-properly"):
    step(4)
print("READY-TO-EXIT")
sys.exit(3)
"""


def test_sessions_open_at_exit_end_indeterminate_in_the_store_and_the_backend(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    with FaultyOTLPBackend() as backend:
        env = child_env(
            tmp_path,
            AGENTOTEL_STORE=str(db),
            OTEL_EXPORTER_OTLP_ENDPOINT=backend.base_url,
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic",
        )
        run = run_child(EXITER, env, tmp_path, timeout=60)
        exported = received_spans(backend)
    assert run.returncode == 3, run.stderr  # the app's own exit code, unchanged
    assert run.exit_seconds is not None and run.exit_seconds < 5
    connection = sqlite3.connect(db)
    rows = {
        name: (state, reason)
        for name, state, reason in connection.execute("SELECT name, end_state, end_state_reason FROM sessions")
    }
    connection.close()
    reason = "the process exited with the session open"
    assert rows == {
        "outer": ("Indeterminate", reason),
        "inner": ("Indeterminate", reason),
        "in-a-daemon-thread": ("Indeterminate", reason),
        "closed-properly": ("Success", None),
    }
    # The OTLP backend got the same end states, flushed at exit.
    states = {
        attributes[sc.GEN_AI_AGENT_NAME]: attributes[sc.AGENTOTEL_SESSION_END_STATE]
        for _, attributes in exported
        if sc.AGENTOTEL_SESSION_END_STATE in attributes
    }
    assert states == {name: state for name, (state, _) in rows.items()}


def test_no_session_of_these_cases_is_left_running() -> None:
    """Run last in this module: every session the tests above started in this process has ended."""
    mine = {"abandon", "outlived", "threads", "close", "async streams", "lazy", "gen-pool"}
    assert [s.name for s in registry.active() if s.name in mine] == []
