"""Load: a thousand sessions at once in asyncio tasks spread over 32 threads, a hundred steps each, some of them
handed to thread pools: every step lands in its own session, every session is complete, memory and the registry of
sessions stay bounded, and no "Failed to detach context" is logged."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from opentelemetry import trace

import agentotel
from agentotel import LiveSession
from agentotel._config import settings
from agentotel.live import registry
from agentotel.testing.llm_server import LLMServer

OWNER = "test.owner"
"""Each step marks its own span with the session it was called for, to compare with the session it landed in."""

SESSIONS = 1_000
THREADS = 32
STEPS = 100
SHARED_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="shared-pool")


@agentotel.tool
def mark(owner: str, n: int) -> int:
    trace.get_current_span().set_attribute(OWNER, owner)
    return n


@agentotel.tool
async def amark(owner: str, n: int) -> int:
    await asyncio.sleep(0)
    trace.get_current_span().set_attribute(OWNER, owner)
    return n


@agentotel.tool
async def amarks(owner: str, count: int) -> Any:
    for n in range(count):
        await asyncio.sleep(0)
        trace.get_current_span().set_attribute(OWNER, owner)
        yield n


async def one_session(owner: str, steps: int, client: openai.AsyncOpenAI | None) -> tuple[LiveSession, list[int]]:
    """A session whose steps go every way a step can go: inline, awaited, through `asyncio.to_thread`,
    `run_in_executor` (the loop's pool), a shared `ThreadPoolExecutor`, an async generator; and one LLM call."""
    results: list[int] = []
    loop = asyncio.get_running_loop()
    async with agentotel.session(f"load-{owner}", tags=[owner]) as s:
        n = 0
        while n < steps:
            kind = n % 10
            if kind == 0:
                results.append(await asyncio.to_thread(mark, owner, n))
            elif kind == 1:
                results.append(await loop.run_in_executor(None, mark, owner, n))
            elif kind == 2:
                results.append(await asyncio.wrap_future(SHARED_POOL.submit(mark, owner, n)))
            elif kind == 3:
                items = [n + i async for i in amarks(owner, 2)]  # one step, two items
                results.append(items[0])
            elif kind < 6:
                results.append(await amark(owner, n))
            else:
                results.append(mark(owner, n))
            if n % 7 == 0:
                await asyncio.sleep(0)
            n += 1
        if client is not None:
            completion = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": owner}]
            )
            assert completion.choices[0].message.content == f"You said: {owner}"
    return s, results


def run_in_threads(owners: list[str], steps: int, base_url: str | None) -> list[tuple[LiveSession, list[int]]]:
    """The owners' sessions, spread over `THREADS` threads each running its own event loop."""
    groups = [owners[i::THREADS] for i in range(THREADS)]

    def thread_main(group: list[str]) -> list[tuple[LiveSession, list[int]]]:
        async def main() -> list[tuple[LiveSession, list[int]]]:
            client = None
            if base_url is not None:
                client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=2)
            try:
                return list(await asyncio.gather(*(one_session(o, steps, client) for o in group)))
            finally:
                if client is not None:
                    await client.close()

        return asyncio.run(main())

    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="load") as pool:
        return [pair for chunk in pool.map(thread_main, groups) for pair in chunk]


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


def check(sessions: list[tuple[LiveSession, list[int]]], steps: int, llm: bool) -> None:
    for s, results in sessions:
        owner = s.tags[-1]
        assert results == list(range(steps)), owner
        assert s.end_state == "Success", (owner, s.end_state_reason)
        tools = s.tool_calls
        assert len(tools) == steps, (owner, len(tools))
        wrong = [e for e in tools if e.attributes.get(OWNER) != owner or e.session_id != s.id]
        assert not wrong, f"{len(wrong)} steps of {owner} landed in the wrong session"
        assert all(e.parent_span_id == s.span_id and e.trace_id == s.trace_id for e in s.events)
        assert len(s.llm_calls) == (1 if llm else 0)


@pytest.mark.slow
def test_a_thousand_concurrent_sessions_keep_every_step_in_its_own_session(
    server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    owners = [f"s{i:04d}" for i in range(SESSIONS)]
    started = time.perf_counter()
    sessions = run_in_threads(owners, STEPS, server.openai_base_url)
    seconds = time.perf_counter() - started
    spans = SESSIONS * (STEPS + 2)
    print(f"{SESSIONS} sessions x {STEPS} steps on {THREADS} threads: {seconds:.1f}s, {spans / seconds:,.0f} spans/s")
    assert len(sessions) == SESSIONS and {s.tags[-1] for s, _ in sessions} == set(owners)
    check(sessions, STEPS, llm=True)
    assert not [s for s in registry.active() if s.name.startswith("load-")], "every session ended"
    assert len(registry.ended()) <= settings.max_ended_sessions
    detach_errors = [r for r in caplog.records if "Failed to detach context" in r.getMessage()]
    assert not detach_errors, detach_errors[0].getMessage()
    assert not [r for r in caplog.records if r.name.startswith(("agentotel", "opentelemetry"))], caplog.text


def test_memory_stays_flat_once_the_ring_of_ended_sessions_is_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Round after round of sessions: once the registry's ring of ended sessions is full, memory stops growing."""
    monkeypatch.setattr(settings, "max_ended_sessions", 64)

    def round_of(n: int) -> None:
        owners = [f"m{n}-{i}" for i in range(128)]
        check(run_in_threads(owners, 20, None), 20, llm=False)

    round_of(0)  # fills the ring and warms every cache
    gc.collect()
    tracemalloc.start()
    try:
        round_of(1)
        gc.collect()
        after_one, _ = tracemalloc.get_traced_memory()
        for n in range(2, 5):
            round_of(n)
        gc.collect()
        after_four, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One round keeps 64 sessions of 18 spans (about 0.6 MB with their records); three more rounds replace them.
    growth = after_four - after_one
    print(f"memory after one round {after_one / 1e6:.2f} MB, after four {after_four / 1e6:.2f} MB")
    assert growth < 0.25 * after_one, f"memory grew by {growth / 1e6:.2f} MB over three rounds"
    assert len(registry.ended()) <= 64
    assert not [s for s in registry.active() if s.name.startswith("load-m")]


async def test_gathered_tasks_handing_work_to_pools_stay_in_their_sessions(caplog: pytest.LogCaptureFixture) -> None:
    """`asyncio.gather` of sessions, each handing work to every kind of pool: nothing is orphaned, and the
    context is never detached in the wrong task."""
    caplog.set_level(logging.DEBUG, logger="opentelemetry")
    results = await asyncio.gather(*(one_session(f"g{i}", 30, None) for i in range(200)))
    check(list(results), 30, llm=False)
    detach_errors = [r for r in caplog.records if "Failed to detach context" in r.getMessage()]
    assert not detach_errors, detach_errors[0].getMessage()
