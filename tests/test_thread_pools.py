"""Work handed to thread pools and threads from inside a session stays in that session."""

from __future__ import annotations

import asyncio
import threading
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


class Worker(threading.Thread):
    """A thread that overrides `run`, as many apps write them."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.result: int | None = None

    def run(self) -> None:
        self.result = work(self.n)


def test_threads_started_in_a_session_stay_in_it_whatever_their_kind(cap: Capture) -> None:
    with agentotel.session("threads") as s:
        plain = [threading.Thread(target=work, args=(n,)) for n in range(3)]
        subclassed = Worker(7)
        timer = threading.Timer(0.001, work, args=(5,))
        for thread in (*plain, subclassed, timer):
            thread.start()
        for thread in (*plain, subclassed, timer):
            thread.join()
    assert subclassed.result == 49
    assert len(s.tool_calls) == 5
    assert {e.session_id for e in s.events} == {s.id}
    assert all(e.parent_span_id == s.span_id for e in s.events)


def test_a_thread_started_outside_a_session_stays_outside_and_sessions_do_not_mix(cap: Capture) -> None:
    outside = threading.Thread(target=work, args=(1,))
    with agentotel.session("a") as a:
        in_a = threading.Thread(target=work, args=(2,))
    with agentotel.session("b") as b:
        in_a.start()  # started inside b: the context of the code that starts a thread is the one it gets
        outside.start()
        in_a.join()
        outside.join()
    assert len(a.tool_calls) == 0
    assert len(b.tool_calls) == 2


def test_pool_workers_do_not_keep_the_context_of_the_first_submitter(cap: Capture) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with agentotel.session("first") as first:
            pool.submit(work, 1).result()  # starts the worker thread inside this session
        with agentotel.session("second") as second:
            pool.submit(work, 2).result()
        # A task submitted past our wrapper runs in the worker's own context: it must hold no session (the
        # worker was started inside "first", but a pool worker does not take its starter's context).
        from agentotel.processors import session_id_in

        bare_submit = ThreadPoolExecutor.submit.__wrapped__  # type: ignore[attr-defined]
        assert bare_submit(pool, session_id_in, None).result() is None
    finally:
        pool.shutdown()
    assert len(first.tool_calls) == 1 and len(second.tool_calls) == 1


def test_uninstrument_restores_thread_start(cap: Capture) -> None:
    instrumentor = ExecutorContextInstrumentor()
    instrumentor.uninstrument()
    try:
        assert not hasattr(threading.Thread.start, "__wrapped__")
        with agentotel.session("bare") as s:
            thread = threading.Thread(target=work, args=(3,))
            thread.start()
            thread.join()
        assert s.tool_calls == []
    finally:
        instrumentor.instrument()
    assert hasattr(threading.Thread.start, "__wrapped__")
