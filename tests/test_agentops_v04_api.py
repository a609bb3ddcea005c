"""AgentOps 0.4's API runs with `import agentotel as agentops` as the only change: code written as AgentOps'
0.4 docs show it (start_trace / end_trace, the trace as a context manager, @trace and the entity decorators,
@tool(cost=...), @guardrail, update_trace_metadata), its sessions asserted on."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
from opentelemetry.trace import StatusCode

import agentotel as agentops
from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.model import Event, Session
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer, Reply

METADATA = sc.AGENTOTEL_SESSION_METADATA


def _span(cap: Capture, name: str) -> Any:
    (span,) = [s for s in cap.spans if s.name == name]
    return span


def _parent_of(session: Session, event: Event) -> Event | None:
    by_id = {e.span_id: e for e in session.events}
    return by_id.get(event.parent_span_id or "")


# --- start_trace / end_trace ------------------------------------------------------------------------------------


def test_init_takes_agentops_04_arguments() -> None:
    kept = list(settings.default_tags)
    try:
        agentops.init(
            api_key="test-api-key",
            endpoint="https://api.agentops.ai",
            app_url="https://app.agentops.ai",
            max_wait_time=5000,
            max_queue_size=512,
            tags=None,
            default_tags=None,
            trace_name="my-workflow",
            instrument_llm_calls=True,
            auto_start_session=False,
            auto_init=True,
            skip_auto_end_session=False,
            env_data_opt_out=True,
            log_level="CRITICAL",
            fail_safe=True,
            log_session_replay_url=False,
            exporter_endpoint="https://otlp.agentops.ai/v1/traces",
            export_flush_interval=1000,
            some_future_option=object(),
        )
    finally:
        settings.default_tags = kept
    assert agentops.get_session() is None or agentops.get_session().ended  # init starts no session by itself


def test_start_trace_is_a_session_with_its_name_tags_and_end_state(cap: Capture) -> None:
    trace = agentops.start_trace("customer-service-workflow", tags=["customer-query", "priority-high"])
    assert agentops.get_session() is trace.session
    assert trace.span.is_recording()
    agentops.end_trace(trace, "Success")
    session = cap.session()
    assert (session.name, session.tags, session.end_state) == (
        "customer-service-workflow",
        ["customer-query", "priority-high"],
        "Success",
    )
    assert session.id == trace.session.id
    assert trace.session.ended and agentops.get_session() is trace.session  # the last ended one


@pytest.mark.parametrize(
    ("end_state", "expected", "reason"),
    [
        ("Success", "Success", None),
        ("Error", "Fail", None),
        ("Fail", "Fail", None),
        ("Indeterminate", "Indeterminate", None),
        ("Escalation_Required", "Indeterminate", "Escalation_Required"),
        (agentops.TraceState.SUCCESS, "Success", None),
        (agentops.TraceState.ERROR, "Fail", None),
        (agentops.ERROR, "Fail", None),
        (agentops.UNSET, "Indeterminate", None),
        (StatusCode.OK, "Success", None),
        (StatusCode.ERROR, "Fail", None),
    ],
)
def test_agentops_end_states_become_agentotel_end_states(
    cap: Capture, end_state: Any, expected: str, reason: str | None
) -> None:
    trace = agentops.start_trace("batch_item_1")
    agentops.end_trace(trace, end_state)
    session = cap.session()
    assert (session.end_state, session.end_state_reason) == (expected, reason)
    assert type(session.end_state) is str


def test_end_trace_defaults_to_success(cap: Capture) -> None:
    trace = agentops.start_trace("defaults")
    agentops.end_trace(trace)
    assert cap.session().end_state == "Success"


def test_start_trace_as_a_context_manager(cap: Capture) -> None:
    with agentops.start_trace("context_managed_trace") as trace:
        span_context = trace.span.get_span_context()
        trace.span.set_attribute("custom.workflow.step", "data_processing")
    with pytest.raises(ValueError, match="Something went wrong"), agentops.start_trace("risky_operation"):
        raise ValueError("Something went wrong")
    mixed = agentops.start_trace("mixed_usage")
    with mixed:  # an existing trace used as a context manager
        pass
    ok, risky, used = (cap.session(name) for name in ("context_managed_trace", "risky_operation", "mixed_usage"))
    assert ok.end_state == "Success" and ok.trace_id == format(span_context.trace_id, "032x")
    assert ok.root_attributes["custom.workflow.step"] == "data_processing"
    assert (risky.end_state, risky.end_state_reason) == ("Fail", "ValueError: Something went wrong")
    assert used.end_state == "Success"
    assert agentops.get_session() is mixed.session  # nothing left running, nothing left current


def test_end_trace_without_a_handle_ends_every_running_trace(cap: Capture) -> None:
    first = agentops.start_trace("task_1")
    second = agentops.start_trace("task_2")
    in_thread: list[agentops.TraceContext] = []
    worker = threading.Thread(target=lambda: in_thread.append(agentops.start_trace("worker_1")))
    worker.start()
    worker.join()
    agentops.end_trace(end_state="Emergency_Shutdown")
    for trace in (first, second, in_thread[0]):
        assert trace.session.ended
        assert (trace.session.end_state, trace.session.end_state_reason) == ("Indeterminate", "Emergency_Shutdown")
    assert {s.name for s in cap.sessions} == {"task_1", "task_2", "worker_1"}
    agentops.end_trace()  # none left: nothing to do, no error


def test_end_trace_of_an_ended_trace_leaves_it_as_it_ended(cap: Capture, caplog: pytest.LogCaptureFixture) -> None:
    trace = agentops.start_trace("once")
    agentops.end_trace(trace, "Success")
    with caplog.at_level(logging.WARNING, logger="agentotel"):
        agentops.end_trace(trace, "Error")
        agentops.end_trace("not a trace", "Error")  # type: ignore[arg-type]
    assert trace.session.end_state == "Success"
    assert [s.end_state for s in cap.sessions] == ["Success"]
    assert "had already ended Success" in caplog.text
    assert "takes what start_trace() returned" in caplog.text


def test_dict_tags_are_the_trace_metadata(cap: Capture) -> None:
    with agentops.start_trace("user_request", tags={"user_id": "12345", "priority": "high", "attempt": 2}):
        pass
    session = cap.session()
    assert session.tags == []
    assert session.root_attributes[f"{METADATA}.user_id"] == "12345"
    assert session.root_attributes[f"{METADATA}.attempt"] == 2


def test_a_trace_started_inside_another_is_nested_in_it(cap: Capture) -> None:
    with agentops.start_trace("outer_workflow") as outer, agentops.start_trace("inner_task") as inner:
        pass
    assert inner.session.parent_id == outer.session.id
    assert [s.name for s in cap.root_sessions] == ["outer_workflow"]


# --- decorators -------------------------------------------------------------------------------------------------


def test_decorated_steps_nest_as_the_decorators_nest_with_their_kinds(cap: Capture) -> None:
    @agentops.agent
    class CustomerServiceAgent:
        @agentops.operation
        def analyze_request(self, request: str) -> str:
            return self.summarise(f"Analyzed: {request}")

        def summarise(self, text: str) -> str:  # a public method called from the agent's own step: part of it
            return text

        @agentops.tool(cost=0.02)
        def lookup_customer(self, customer_id: str) -> str:
            return f"Customer data for {customer_id}"

    @agentops.task
    def fetch(order_id: str) -> str:
        return lookup_order(order_id)

    @agentops.tool(name="order_lookup", cost=0.01)
    def lookup_order(order_id: str) -> str:
        return f"Order {order_id} details"

    @agentops.workflow(name="resolve")
    def resolve() -> str:
        return fetch("12345")

    trace = agentops.start_trace("customer-service")
    agent = CustomerServiceAgent()
    assert agent.lookup_customer("CUST_123") == "Customer data for CUST_123"
    assert agent.analyze_request("billing issue") == "Analyzed: billing issue"
    resolve()
    agentops.end_trace(trace, "Success")

    session = cap.session()
    shape = [(e.kind, e.name, getattr(_parent_of(session, e), "name", None)) for e in session.events]
    assert shape == [
        ("agent", "CustomerServiceAgent", None),
        ("tool", "lookup_customer", "CustomerServiceAgent"),
        ("agent", "CustomerServiceAgent", None),
        ("operation", "analyze_request", "CustomerServiceAgent"),
        ("operation", "resolve", None),
        ("operation", "fetch", "resolve"),
        ("tool", "order_lookup", "fetch"),
    ]
    assert _span(cap, "resolve").attributes[sc.AGENTOTEL_OPERATION_KIND] == "workflow"
    assert _span(cap, "fetch").attributes[sc.AGENTOTEL_OPERATION_KIND] == "task"
    assert sc.AGENTOTEL_OPERATION_KIND not in _span(cap, "analyze_request").attributes
    agent_spans = [s for s in cap.spans if s.name == "invoke_agent CustomerServiceAgent"]
    assert [s.attributes[sc.GEN_AI_AGENT_NAME] for s in agent_spans] == ["CustomerServiceAgent"] * 2


def test_tool_cost_is_on_the_tool_span_and_in_the_session_total(cap: Capture, llm: LLMServer) -> None:
    llm.script(Reply("Positive.", input_tokens=12, output_tokens=3))
    client = openai.OpenAI(max_retries=0)

    @agentops.operation
    def analyze_sentiment(text: str) -> str:
        response = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": f"Analyze sentiment: {text}"}]
        )
        return response.choices[0].message.content.strip()

    @agentops.tool(cost=0.01)
    def lookup_order(order_id: str) -> str:
        return f"Order {order_id} details"

    @agentops.tool(cost=0.05)
    def web_search(query: str) -> str:
        return f"Search results for: {query}"

    @agentops.tool
    def calculator(expression: str) -> int:
        return len(expression)

    trace = agentops.start_trace("customer_request_1", tags=["customer-service"])
    analyze_sentiment("I love this product!")
    lookup_order("12345")
    web_search("refund policy")
    calculator("1+1")
    agentops.end_trace(trace, "Success")

    session = cap.session()
    tool_span = _span(cap, "execute_tool web_search")
    assert tool_span.attributes[sc.AGENTOTEL_USAGE_COST_AMOUNT] == 0.05
    assert tool_span.attributes[sc.AGENTOTEL_USAGE_COST_CURRENCY] == "USD"
    assert sc.AGENTOTEL_USAGE_COST_AMOUNT not in _span(cap, "execute_tool calculator").attributes
    (model_call,) = session.llm_calls
    assert model_call.cost is not None and model_call.cost > 0
    assert [t.cost for t in session.tool_calls] == [0.01, 0.05, None]
    assert session.cost == pytest.approx(model_call.cost + 0.06)
    assert session.known_cost == session.cost
    assert session.root_attributes[sc.AGENTOTEL_SESSION_COST_AMOUNT] == pytest.approx(session.cost)


def test_tool_cost_alone_is_the_cost_of_a_session_and_of_the_one_around_it(cap: Capture) -> None:
    @agentops.tool(cost=0.25)
    def transcribe(audio: str) -> str:
        return audio

    with agentops.start_trace("outer"):
        with agentops.start_trace("inner"):
            transcribe("a")
        transcribe("b")
    outer, inner = cap.session("outer"), cap.session("inner")
    assert inner.root_attributes[sc.AGENTOTEL_SESSION_COST_AMOUNT] == 0.25
    assert outer.root_attributes[sc.AGENTOTEL_SESSION_COST_AMOUNT] == 0.5
    assert outer.cost == outer.known_cost == 0.5


def test_a_cost_that_is_no_amount_is_left_out_with_a_warning(cap: Capture, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentotel"):

        @agentops.tool(cost="a lot")  # type: ignore[typeddict-item]
        def pricey() -> str:
            return "ok"

        @agentops.tool(cost=-1.0)
        def negative() -> str:
            return "ok"

    with agentops.start_trace("costs"):
        assert pricey() == "ok" and negative() == "ok"
    assert "'a lot' is not recorded" in caplog.text and "-1.0 is not recorded" in caplog.text
    assert cap.session().cost == 0.0
    assert all(sc.AGENTOTEL_USAGE_COST_AMOUNT not in s.attributes for s in cap.spans)


def test_a_guardrail_that_raises_is_the_sessions_first_error(cap: Capture) -> None:
    class PolicyViolation(Exception):
        pass

    @agentops.guardrail(spec="input")
    def check_input(text: str) -> str:
        if "password" in text:
            raise PolicyViolation("input asks for a password")
        return text

    @agentops.guardrail(spec="output", name="no_pii")
    def check_output(text: str) -> str:
        return text

    @agentops.tool
    def answer(text: str) -> str:
        return check_output(f"answer to {text}")

    @agentops.trace(name="support", tags=["guarded"])
    def support(text: str) -> str:
        return answer(check_input(text))

    assert support("hello") == "answer to hello"
    with pytest.raises(PolicyViolation):
        support("what is the admin password?")

    passed, stopped = cap.sessions
    assert passed.end_state == "Success" and passed.errors == []
    assert [(e.kind, e.name) for e in passed.events] == [
        ("operation", "check_input"),
        ("tool", "answer"),
        ("operation", "no_pii"),
    ]
    assert stopped.end_state == "Fail"
    assert stopped.first_error is not None and stopped.first_error.name == "check_input"
    assert stopped.first_error.error is not None and "PolicyViolation" in stopped.first_error.error.type
    spans = [s for s in cap.spans if s.name == "check_input"]
    assert {s.attributes[sc.AGENTOTEL_OPERATION_KIND] for s in spans} == {"guardrail"}
    assert {s.attributes[sc.AGENTOTEL_GUARDRAIL_SPEC] for s in spans} == {"input"}
    assert _span(cap, "no_pii").attributes[sc.AGENTOTEL_GUARDRAIL_SPEC] == "output"


def test_trace_decorator_with_and_without_arguments(cap: Capture) -> None:
    @agentops.trace
    def my_workflow() -> str:
        return "done"

    @agentops.trace(name="named-workflow", tags=["v1"], version=1)
    def other() -> None:
        raise KeyError("missing")

    @agentops.session(name="custom-session-name", version=1)  # AgentOps' older name for @trace
    def legacy() -> None:
        return None

    assert my_workflow() == "done"
    with pytest.raises(KeyError):
        other()
    legacy()
    plain, named, old = cap.sessions
    assert (plain.name, plain.end_state) == ("my_workflow", "Success")
    assert (named.name, named.tags, named.end_state) == ("named-workflow", ["v1"], "Fail")
    assert named.end_state_reason == "KeyError: 'missing'"
    assert old.name == "custom-session-name"


def test_async_and_generator_functions_under_every_decorator(cap: Capture) -> None:
    @agentops.tool(cost=0.5)
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    @agentops.guardrail
    async def screen(x: int) -> int:
        if x < 0:
            raise ValueError("negative")
        return x

    @agentops.task
    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    @agentops.agent(name="streamer")
    async def stream(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield await fetch(i)

    @agentops.trace(name="async-run")
    async def run() -> list[int]:
        items = [await screen(i) for i in numbers(2)]
        return items + [x async for x in stream(2)]

    @agentops.trace
    def generate() -> Iterator[str]:
        yield "a"
        yield "b"

    @agentops.trace
    async def agenerate() -> AsyncIterator[str]:
        yield "c"

    async def main() -> list[Any]:
        first = await run()
        with pytest.raises(ValueError):
            async with agentops.start_trace("async-with"):
                await screen(-1)
        return [first, list(generate()), [x async for x in agenerate()]]

    assert asyncio.run(main()) == [[0, 1, 0, 2], ["a", "b"], ["c"]]
    run_session = cap.session("async-run")
    kinds = [(e.kind, e.name, getattr(_parent_of(run_session, e), "name", None)) for e in run_session.events]
    assert kinds == [
        ("operation", "numbers", None),
        ("operation", "screen", None),
        ("operation", "screen", None),
        ("agent", "streamer", None),
        ("tool", "fetch", "streamer"),
        ("tool", "fetch", "streamer"),
    ]
    assert run_session.cost == 1.0 and run_session.end_state == "Success"
    failed = cap.session("async-with")
    assert failed.end_state == "Fail" and failed.first_error is not None and failed.first_error.name == "screen"
    assert cap.session("generate").end_state == "Success"
    assert cap.session("agenerate").end_state == "Success"


def test_agent_class_with_async_methods_and_older_track_agent(cap: Capture) -> None:
    @agentops.track_agent(name="research-assistant")
    class Researcher:
        def __init__(self, topic: str) -> None:
            self.topic = topic

        async def research(self) -> str:
            return await self.search(self.topic)

        @agentops.tool
        async def search(self, query: str) -> str:
            return f"results for {query}"

    async def main() -> str:
        with agentops.start_trace("research"):
            return await Researcher("otel").research()

    assert asyncio.run(main()) == "results for otel"
    assert [(e.kind, e.name) for e in cap.session().events] == [("agent", "research-assistant"), ("tool", "search")]


def test_capture_flags_keep_a_steps_content_out(cap_content: Capture) -> None:
    @agentops.tool(capture_request=False)
    def secret_lookup(token: str) -> str:
        return "found"

    @agentops.tool(capture_response=False)
    def private_result(query: str) -> str:
        return "private"

    with agentops.start_trace("content"):
        secret_lookup("sk-123")
        private_result("q")
    secret, private = cap_content.session().tool_calls
    assert secret.params is None and secret.returns == "found"
    assert private.params == {"query": "q"} and private.returns is None


# --- update_trace_metadata --------------------------------------------------------------------------------------


def test_update_trace_metadata_sets_metadata_on_the_session(cap: Capture) -> None:
    @agentops.operation
    def process_batch(batch: list[str]) -> str:
        # from inside a step: the metadata goes to the session, not to the step
        assert agentops.update_trace_metadata({"processed_records": len(batch)})
        return f"Processed {len(batch)} items"

    trace = agentops.start_trace("etl-pipeline", tags=["data-processing"])
    assert agentops.update_trace_metadata(
        {
            "operation_name": "ETL Pipeline Execution",
            "total_batches": 3,
            "progress_percentage": 12.5,
            "successful_operation": True,
            "processing_steps": ["validation", "transformation", "output"],
            "tags": ["etl", "async-operation"],
            "ignored": None,
        }
    )
    process_batch(["record1", "record2"])
    assert agentops.update_trace_metadata({"customer_id": "CUST_456", "order_value": 99.99}, prefix="business")
    agentops.end_trace(trace, "Success")

    session = cap.session()
    attributes = session.root_attributes
    assert attributes[f"{METADATA}.operation_name"] == "ETL Pipeline Execution"
    assert attributes[f"{METADATA}.total_batches"] == 3
    assert attributes[f"{METADATA}.progress_percentage"] == 12.5
    assert attributes[f"{METADATA}.successful_operation"] is True
    assert list(attributes[f"{METADATA}.processing_steps"]) == ["validation", "transformation", "output"]
    assert attributes[f"{METADATA}.processed_records"] == 2
    assert f"{METADATA}.ignored" not in attributes
    assert attributes["business.customer_id"] == "CUST_456" and attributes["business.order_value"] == 99.99
    assert session.tags == ["data-processing", "etl", "async-operation"]
    assert all(not k.startswith(METADATA) for s in cap.spans if s.name == "process_batch" for k in s.attributes)


def test_update_trace_metadata_outside_a_trace_warns_and_returns_false(
    cap: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="agentotel"):
        assert agentops.update_trace_metadata({"stage": "nowhere"}) is False
        trace = agentops.start_trace("ended")
        agentops.end_trace(trace)
        assert agentops.update_trace_metadata({"stage": "late"}) is False
    assert caplog.text.count("no trace is running") == 2
    assert f"{METADATA}.stage" not in cap.session().root_attributes


def test_bad_metadata_values_are_left_out_with_warnings_never_raised(
    cap: Capture, caplog: pytest.LogCaptureFixture
) -> None:
    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("never called")

    trace = agentops.start_trace("bad-metadata")
    with caplog.at_level(logging.WARNING, logger="agentotel"):
        assert agentops.update_trace_metadata({"thing": Opaque(), 7: "seven", "": "empty", "s": {1, 2}}) is False
        assert agentops.update_trace_metadata(["not", "a", "dict"]) is False  # type: ignore[arg-type]
        assert agentops.update_trace_metadata({"id": "x"}, prefix="session") is False  # would overwrite session.id
        assert agentops.update_trace_metadata({"end_state": "Fail"}, prefix="agentotel.session") is False
        assert agentops.update_trace_metadata({"tags": [1, 2]}) is False
        assert agentops.update_trace_metadata({}) is False
        assert agentops.update_trace_metadata({"mixed": [1, "two"], "nested": {"a": [1]}, "ok": "yes"}) is True
    agentops.end_trace(trace)
    assert "Opaque" in caplog.text and "takes a dict" in caplog.text and "would overwrite" in caplog.text
    session = cap.session()
    attributes = session.root_attributes
    assert session.id == attributes[sc.SESSION_ID] and session.end_state == "Success"
    assert attributes[f"{METADATA}.mixed"] == '[1,"two"]'
    assert attributes[f"{METADATA}.nested"] == '{"a":[1]}'
    assert attributes[f"{METADATA}.ok"] == "yes"
    assert not any(key.endswith(("thing", ".s", ".7")) for key in attributes)
