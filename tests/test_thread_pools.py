"""Work handed to thread pools from inside a session stays in that session."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import agentotel
from agentotel.instrumentation.executors import ExecutorContextInstrumentor
from agentotel.testing import Capture


@agentotel.tool
def work(n: int) -> int:
    return n * n


def test_thread_pool_submissions_stay_in_the_session(cap: Capture) -> None:
    with agentotel.session("pool") as s, ThreadPoolExecutor(max_workers=4) as pool:
        results = [f.result() for f in [pool.submit(work, n) for n in range(10)]]
        assert list(pool.map(work, range(3))) == [0, 1, 4]
    assert results == [n * n for n in range(10)]
    assert len(s.tool_calls) == 13
    assert {e.session_id for e in s.events} == {s.id}
    assert all(e.parent_span_id == s.span_id for e in s.events)


def test_run_in_executor_to_thread_and_gather_stay_in_their_sessions(cap: Capture) -> None:
    async def one(n: int) -> agentotel.Session:
        async with agentotel.session(f"task{n}") as s:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, work, n)
            await asyncio.to_thread(work, n)
            await asyncio.gather(*(asyncio.to_thread(work, i) for i in range(3)))
        return s

    async def main() -> list[agentotel.Session]:
        return await asyncio.gather(*(one(n) for n in range(10)))

    for s in asyncio.run(main()):
        assert len(s.tool_calls) == 5
        assert {e.session_id for e in s.events} == {s.id}


def test_uninstrument_restores_submit_and_reinstrument_works(cap: Capture) -> None:
    instrumentor = ExecutorContextInstrumentor()
    assert instrumentor.is_instrumented_by_opentelemetry
    instrumentor.uninstrument()
    try:
        assert not hasattr(ThreadPoolExecutor.submit, "__wrapped__")
        with agentotel.session("bare") as s, ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(work, 2).result()
        assert s.tool_calls == []  # without the instrumentor the pool's span starts its own trace
    finally:
        instrumentor.instrument()
    assert hasattr(ThreadPoolExecutor.submit, "__wrapped__")
