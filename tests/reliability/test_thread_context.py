"""Long-lived workers started lazily inside a session: a pool's worker threads take each task's context, and a
thread that a session started stops speaking for it once that session has ended (issue 13, item 19)."""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import context, trace

import agentotel
from agentotel import semconv as sc
from agentotel.processors import session_id_in
from agentotel.testing import Capture


@agentotel.tool
def numbered(n: int) -> int:
    trace.get_current_span().set_attribute("n", n)
    return n


def steps_by_number(cap: Capture) -> dict[int, str | None]:
    """`numbered(n)` -> the session id its span carries."""
    found = {}
    for span in cap.spans:
        attributes = span.attributes or {}
        if span.name == "execute_tool numbered":
            found[int(attributes["n"])] = attributes.get(sc.SESSION_ID)  # type: ignore[call-overload]
    return found


def test_a_hand_made_worker_started_in_a_session_leaves_it_when_the_session_ends(cap: Capture) -> None:
    tasks: queue.Queue[int | None] = queue.Queue()
    done: queue.Queue[int] = queue.Queue()
    seen_sessions: list[str | None] = []

    def worker() -> None:
        while (n := tasks.get()) is not None:
            seen_sessions.append(session_id_in(None))
            done.put(numbered(n))

    with agentotel.session("first") as first:
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()  # started lazily, by the first session's first task
        tasks.put(1)
        assert done.get(timeout=30) == 1
    with agentotel.session("second") as second:
        tasks.put(2)
        assert done.get(timeout=30) == 2
    tasks.put(3)
    assert done.get(timeout=30) == 3
    tasks.put(None)
    thread.join(30)
    by_number = steps_by_number(cap)
    # While the first session ran, the thread it started worked for it; once it had ended, no longer.
    assert by_number[1] == first.id
    assert by_number[2] != first.id and by_number[3] != first.id, by_number
    assert [e.name for e in first.tool_calls] == ["numbered"]
    assert seen_sessions == [first.id, None, None]
    # The worker cannot know whose task it took from a plain queue: a task queued by the second session runs
    # outside any session (README: hand the context over with the task, or start the worker outside sessions).
    assert second.tool_calls == []


def test_a_thread_started_in_a_nested_session_falls_back_to_the_outer_one(cap: Capture) -> None:
    tasks: queue.Queue[int | None] = queue.Queue()
    done: queue.Queue[int] = queue.Queue()

    def worker() -> None:
        while (n := tasks.get()) is not None:
            done.put(numbered(n))

    with agentotel.session("outer") as outer:
        with agentotel.session("inner") as inner:
            thread = threading.Thread(target=worker, daemon=True)
            thread.start()
            tasks.put(1)
            done.get(timeout=30)
        tasks.put(2)  # the inner session has ended: the thread is back in the outer one, as code after the block
        done.get(timeout=30)
    tasks.put(3)
    done.get(timeout=30)
    tasks.put(None)
    thread.join(30)
    by_number = steps_by_number(cap)
    assert (by_number[1], by_number[2], by_number[3]) == (inner.id, outer.id, None)


def test_spans_a_worker_makes_while_its_session_runs_are_nested_under_it_and_after_it_not(cap: Capture) -> None:
    tasks: queue.Queue[int | None] = queue.Queue()
    done: queue.Queue[int] = queue.Queue()

    def worker() -> None:
        tracer = trace.get_tracer("test")
        while (n := tasks.get()) is not None:
            with tracer.start_as_current_span(f"task {n}"):  # a span made current in the worker, then left
                done.put(numbered(n))

    with agentotel.session("first") as first:
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        tasks.put(1)
        done.get(timeout=30)
    tasks.put(2)
    done.get(timeout=30)
    tasks.put(None)
    thread.join(30)
    spans = {s.name: s for s in cap.spans}
    assert spans["task 1"].context.trace_id == int(first.trace_id, 16)
    assert spans["task 2"].context.trace_id != int(first.trace_id, 16), "a later task starts its own trace"
    assert spans["task 2"].parent is None


def test_a_thread_pool_started_lazily_in_a_session_takes_each_tasks_context(cap: Capture) -> None:
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        with agentotel.session("first") as first:
            pool.submit(numbered, 1).result(30)  # starts the pool's worker thread inside the first session
        with agentotel.session("second") as second:
            pool.submit(numbered, 2).result(30)
        pool.submit(numbered, 3).result(30)
        bare_submit = ThreadPoolExecutor.submit.__wrapped__  # type: ignore[attr-defined]
        assert bare_submit(pool, session_id_in, None).result(30) is None  # the worker itself holds no session
    finally:
        pool.shutdown()
    assert steps_by_number(cap) == {1: first.id, 2: second.id, 3: None}


def test_asyncios_default_executor_started_lazily_in_a_session_takes_each_tasks_context(cap: Capture) -> None:
    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        async with agentotel.session("first") as first:
            await loop.run_in_executor(None, numbered, 1)  # makes the loop's default executor, inside this session
        async with agentotel.session("second") as second:
            await loop.run_in_executor(None, numbered, 2)
        await loop.run_in_executor(None, numbered, 3)
        return first.id, second.id

    token = context.attach(context.Context())
    try:
        first_id, second_id = asyncio.run(main())
    finally:
        context.detach(token)
    assert steps_by_number(cap) == {1: first_id, 2: second_id, 3: None}
