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

from .support import FaultyOTLPBackend, child_env, run_child

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
        time.sleep(0.0005)

threads = [threading.Thread(target=hammer, args=(k,), daemon=True) for k in range(4)]
for t in threads:
    t.start()
time.sleep(0.2)
children = []
for c in range(6):
    time.sleep(0.05)  # fork while the threads are in the middle of spans, exports and locks
    pid = os.fork()
    if pid == 0:
        ok = False
        try:
            with agentotel.session(f"child-{c}") as s:
                for n in range(10):
                    step(n)
            ok = s.end_state == "Success" and len(s.tool_calls) == 10
            ok = agentotel.force_flush(10_000) and ok
        finally:
            os._exit(0 if ok else 1)
    children.append(pid)
codes = []
deadline = time.time() + 30
for pid in children:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            codes.append(os.waitstatus_to_exitcode(status))
            break
        if time.time() > deadline:
            codes.append("hung")
            os.kill(pid, 9)
            break
        time.sleep(0.01)
stop.set()
for t in threads:
    t.join(5)
print("CHILDREN", codes)
print("READY-TO-EXIT")
"""


def test_fork_after_init_children_trace_without_deadlock(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    env = child_env(tmp_path, AGENTOTEL_STORE=str(db), OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic")
    run = run_child(FORKER, env, tmp_path, timeout=90)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "CHILDREN [0, 0, 0, 0, 0, 0]" in run.stdout, run.stdout + run.stderr[-3000:]
    connection = sqlite3.connect(db)
    children = connection.execute(
        "SELECT name, end_state, tool_calls FROM sessions WHERE name LIKE 'child-%' ORDER BY name"
    ).fetchall()
    parents = connection.execute("SELECT COUNT(*) FROM sessions WHERE name LIKE 'parent-%'").fetchone()[0]
    connection.close()
    assert children == [(f"child-{c}", "Success", 10) for c in range(6)]
    assert parents > 0
    assert "Traceback" not in run.stderr, run.stderr[-3000:]


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
