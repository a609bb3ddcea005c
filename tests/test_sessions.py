"""Sessions: start/end, end states, nesting, concurrency, get_session, bounded memory, rebuilt == live."""

from __future__ import annotations

import asyncio
import threading

import pytest

import agentotel
from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.live import registry
from agentotel.testing import Capture


@agentotel.tool
def lookup(query: str) -> str:
    return query.upper()


@agentotel.record_action("fetch_customer_data")
def fetch_customer(customer_id: str | None) -> dict[str, str]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}


def test_with_block_makes_one_trace_rooted_at_the_session(cap: Capture) -> None:
    with agentotel.session("support", tags=["support", "v2.1"]) as s:
        lookup("a")
        fetch_customer("c1")
    spans = cap.spans
    assert {span.context.trace_id for span in spans} == {spans[0].context.trace_id}
    root = next(span for span in spans if span.parent is None)
    assert root.name == "invoke_agent support"
    assert root.attributes[sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert root.attributes[sc.SESSION_ID] == s.id
    assert tuple(root.attributes[sc.AGENTOTEL_SESSION_TAGS]) == ("support", "v2.1")
    assert root.attributes[sc.AGENTOTEL_SESSION_END_STATE] == "Success"
    assert root.attributes[sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT] == 2
    assert sc.GEN_AI_CONVERSATION_ID not in root.attributes
    for span in spans:
        assert span.attributes[sc.SESSION_ID] == s.id
    assert s.end_state == "Success" and s.duration is not None and s.duration >= 0
    assert [e.action_type for e in s.action_events] == ["lookup", "fetch_customer_data"]


def test_conversation_id_only_when_given(cap: Capture) -> None:
    with agentotel.session("chat", conversation_id="conv-42"):
        pass
    assert cap.spans[0].attributes[sc.GEN_AI_CONVERSATION_ID] == "conv-42"


def test_exception_ends_the_session_as_fail_and_propagates_unchanged(cap: Capture) -> None:
    error = ValueError("customer_id cannot be None")
    with pytest.raises(ValueError) as raised, agentotel.session("support") as s:
        fetch_customer("c1")
        raise error
    assert raised.value is error
    assert s.end_state == "Fail"
    assert s.end_state_reason == "ValueError: customer_id cannot be None"


def test_error_attribution_points_at_the_step_that_raised(cap: Capture) -> None:
    @agentotel.agent("router")
    def route() -> None:
        lookup("x")
        fetch_customer(None)

    with pytest.raises(ValueError), agentotel.session("support") as s:
        route()
    first = s.first_error
    assert first is not None
    assert first.action_type == "fetch_customer_data"
    assert first.error is not None and first.error.type == "ValueError"
    assert first.error.message == "customer_id cannot be None"
    assert [e.name for e in s.errors] == ["router", "fetch_customer_data"]
    marked = next(line for line in s.replay().splitlines() if "fetch_customer_data" in line)
    assert marked.endswith("← PROBLEM")


def test_agentops_start_and_end_session_with_end_states(cap: Capture) -> None:
    first = agentotel.start_session(tags=["a"])
    assert agentotel.get_session() is first
    agentotel.end_session("Success")
    second = agentotel.start_session(tags=["b"])
    agentotel.end_session("Fail", end_state_reason="boom")
    third = agentotel.start_session()
    agentotel.end_session("indeterminate")
    assert (first.end_state, second.end_state, third.end_state) == ("Success", "Fail", "Indeterminate")
    assert second.end_state_reason == "boom"
    assert agentotel.get_session() is third
    agentotel.end_session("Success")  # nothing running: does nothing, raises nothing
    assert third.end_state == "Indeterminate"


def test_unknown_end_state_is_indeterminate_not_an_error(cap: Capture) -> None:
    s = agentotel.start_session()
    agentotel.end_session("Maybe")
    assert s.end_state == "Indeterminate"


def test_nested_sessions_roll_up_each_call_once(cap: Capture) -> None:
    with agentotel.session("outer") as outer:
        agentotel.record(
            agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=1000, completion_tokens=100)
        )
        with agentotel.session("inner") as inner:
            agentotel.record(
                agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=2000, completion_tokens=10)
            )
            lookup("q")
    assert inner.parent_id == outer.id
    assert len(inner.llm_calls) == 1 and len(outer.llm_calls) == 2
    assert outer.input_tokens == 3000 and outer.output_tokens == 110
    assert outer.cost == pytest.approx(inner.cost + outer.llm_calls[0].cost)
    assert [e.kind for e in outer.events] == ["llm", "session", "llm", "tool"]
    root = next(s for s in cap.spans if s.attributes[sc.SESSION_ID] == outer.id and s.parent is None)
    assert root.attributes[sc.AGENTOTEL_SESSION_LLM_CALL_COUNT] == 2
    assert root.attributes[sc.AGENTOTEL_SESSION_COST_AMOUNT] == pytest.approx(outer.cost)
    inner_root = next(s for s in cap.spans if s.name == "invoke_agent inner")
    assert inner_root.parent.span_id == root.context.span_id


def test_rebuilt_session_equals_the_live_one(cap_content: Capture) -> None:
    with pytest.raises(ValueError), agentotel.session("support", tags=["x"]) as live:
        agentotel.record(agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=10, completion_tokens=5))
        with agentotel.session("inner"):
            lookup("hello")
        fetch_customer(None)
    rebuilt = cap_content.session("support")
    assert rebuilt.to_dict() == live.to_dict()
    assert rebuilt.replay() == live.replay()
    assert agentotel.sessions_from_spans(cap_content.spans)[0].to_dict() == live.to_dict()


def test_decorated_sync_and_async_functions_each_get_a_session(cap: Capture) -> None:
    @agentotel.session("sync-agent", tags=["t"])
    def run(x: int) -> int:
        lookup("a")
        return x * 2

    @agentotel.session
    async def arun(x: int) -> int:
        await asyncio.sleep(0)
        lookup("b")
        return x + 1

    assert run(2) == 4
    assert asyncio.run(arun(2)) == 3
    names = [s.name for s in cap.root_sessions]
    assert names == ["sync-agent", "arun"]
    assert all(len(s.tool_calls) == 1 for s in cap.root_sessions)


def test_concurrent_sessions_in_threads_never_mix(cap: Capture) -> None:
    sessions: dict[int, agentotel.Session] = {}
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        with agentotel.session(f"t{n}") as s:
            barrier.wait()
            for i in range(20):
                lookup(f"{n}-{i}")
        sessions[n] = s

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for s in sessions.values():
        assert len(s.tool_calls) == 20
        assert {e.session_id for e in s.events} == {s.id}
        assert {e.trace_id for e in s.events} == {s.trace_id}


def test_concurrent_sessions_in_asyncio_tasks_never_mix(cap: Capture) -> None:
    @agentotel.tool
    async def slow_tool(n: int) -> int:
        await asyncio.sleep(0.001)
        return n

    async def one(n: int) -> agentotel.Session:
        async with agentotel.session(f"task{n}") as s:
            for i in range(10):
                await slow_tool(i)
        return s

    async def main() -> list[agentotel.Session]:
        return await asyncio.gather(*(one(n) for n in range(20)))

    for s in asyncio.run(main()):
        assert len(s.tool_calls) == 10
        assert {e.session_id for e in s.events} == {s.id}


def test_get_session_prefers_the_innermost_running_then_the_last_ended(cap: Capture) -> None:
    with agentotel.session("outer") as outer:
        with agentotel.session("inner") as inner:
            assert agentotel.get_session() is inner
        assert agentotel.get_session() is outer
    assert agentotel.get_session() is outer
    assert agentotel.get_session(inner.id) is inner


def test_ended_sessions_are_kept_in_a_bounded_buffer(cap: Capture) -> None:
    saved = settings.max_ended_sessions
    settings.max_ended_sessions = 5
    try:
        made = []
        for i in range(20):
            with agentotel.session(f"s{i}") as s:
                pass
            made.append(s)
        kept = registry.ended()
        assert len(kept) == 5
        assert [s.id for s in kept] == [s.id for s in made[-5:]]
        assert registry.get(made[0].id) is None
    finally:
        settings.max_ended_sessions = saved


def test_events_per_session_are_bounded_and_drops_counted(cap: Capture) -> None:
    saved = settings.max_events_per_session
    settings.max_events_per_session = 10
    try:
        with agentotel.session("big") as s:
            for i in range(25):
                lookup(str(i))
        assert len(s.events) == 10
        assert s.dropped_events == 15
        root = next(span for span in cap.spans if span.parent is None)
        assert root.attributes[sc.AGENTOTEL_SESSION_DROPPED_EVENTS] == 15
        assert "Dropped events: 15" in s.replay()
    finally:
        settings.max_events_per_session = saved


def test_session_url_follows_the_template(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    with agentotel.session("u") as s:
        pass
    assert s.url == f"agentotel replay {s.id}"
    monkeypatch.setattr(settings, "session_url_template", "http://localhost:16686/trace/{trace_id}?s={session_id}")
    assert s.url == f"http://localhost:16686/trace/{s.trace_id}?s={s.id}"


def test_odd_tags_do_not_break_the_session(cap: Capture) -> None:
    s = agentotel.start_session(tags="single")
    agentotel.end_session("Success")
    t = agentotel.start_session(tags=[1, None, 2.5])
    agentotel.end_session("Success")
    assert s.tags == ["single"] and t.tags == ["1", "None", "2.5"]
