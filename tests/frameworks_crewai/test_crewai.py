"""The seed's support agent as a CrewAI crew (one agent, one task, the two tools), its model the scripted
`LLMServer` through `crewai.LLM` — CrewAI's native OpenAI class, which calls the real `openai` SDK with native
function calling — traced by agentotel's CrewAI and OpenAI instrumentations."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import wrapt
from crewai import LLM, Agent, Crew, Task
from crewai.events.event_bus import CrewAIEventsBus
from crewai.tools import tool
from opentelemetry.sdk.trace import ReadableSpan

import agentotel.instrumentation.crewai as crewai_instrumentation
from agentotel import semconv as sc
from agentotel.instrumentation.crewai import CrewAIInstrumentor
from agentotel.instrumentation.openai import OpenAIInstrumentor
from agentotel.testing.llm_server import LLMServer, Reply
from tests.frameworks import support

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # CrewAI warns about its own internals

CREW_NAME = "billing crew"
ROLE = "Billing support agent"
TASK_DESCRIPTION = "Answer the customer's message: {message}"


@tool(support.FETCH_TOOL)
def fetch_customer_data(customer_id: str | None) -> str:
    """Fetches the customer's record (name, plan, e-mail) by their id."""
    return json.dumps(support.fetch_customer_data(customer_id))


@tool(support.INVOICE_TOOL)
def lookup_invoice(customer_id: str) -> str:
    """Lists the customer's invoices."""
    return json.dumps(support.lookup_invoice(customer_id))


def support_crew(server: LLMServer) -> Crew:
    model = LLM(model=support.MODEL, base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    agent = Agent(
        role=ROLE,
        goal="Resolve the customer's billing issue",
        backstory=support.INSTRUCTIONS,
        llm=model,
        tools=[fetch_customer_data, lookup_invoice],
        max_iter=3,
    )
    task = Task(description=TASK_DESCRIPTION, expected_output="A short reply to the customer", agent=agent)
    return Crew(name=CREW_NAME, agents=[agent], tasks=[task])


def crew_agent(server: LLMServer) -> Callable[[str], str]:
    """The seed's `agent(message) -> reply`, done by the crew."""
    crew = support_crew(server)
    return lambda message: crew.kickoff(inputs={"message": message}).raw


def run_crew(server: LLMServer, customer_id: str | None, *, capture_content: bool) -> support.SupportRun:
    support.script(server, customer_id)
    return support.run(crew_agent(server), capture_content=capture_content)


def named(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def crewai_steps(spans: list[ReadableSpan]) -> list[str]:
    """The names of the steps made from CrewAI's events."""
    ours = {f"invoke_agent {CREW_NAME}", TASK_DESCRIPTION, f"invoke_agent {ROLE}"}
    return [s.name for s in spans if s.name in ours or s.name.startswith("execute_tool ")]


def of_kind(spans: list[ReadableSpan], kind: str) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get(sc.AGENTOTEL_STEP_KIND) == kind]


def chat_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return of_kind(spans, sc.AGENTOTEL_STEP_KIND_VALUE_LLM)


@pytest.fixture(autouse=True)
def _no_state_left() -> Iterator[None]:
    """Every test leaves no per-event state behind."""
    yield
    assert len(crewai_instrumentation._open) == 0
    assert len(crewai_instrumentation._tool_call_ids) == 0


# --------------------------------------------------------------------------------------------------------------------
# The seed's assertions


@pytest.mark.parametrize("capture_content", [False, True])
def test_crew_meets_the_seed(llm: LLMServer, capture_content: bool) -> None:
    run = run_crew(llm, "cust_42", capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER
    assert len(llm.requests) == support.LLM_CALLS
    support.assert_seed_behaviour(run, failing=False)
    if capture_content:
        support.assert_content_recorded(run)
    else:
        support.assert_no_content(run)


def test_the_tool_error_crewai_hands_to_the_model_fails_the_tool_step(llm: LLMServer) -> None:
    run = run_crew(llm, None, capture_content=False)
    assert run.error is None and run.response == support.ANSWER  # CrewAI fed the error to the model, which answered
    assert "customer_id cannot be None" in json.dumps(llm.requests[1].body["messages"])
    support.assert_seed_behaviour(run, failing=True)
    tool_span = named(run.spans, f"execute_tool {support.FETCH_TOOL}")
    assert tool_span.status.status_code.name == "ERROR"
    assert (tool_span.attributes or {})[sc.ERROR_TYPE] == "ValueError"
    support.assert_no_content(run)


# --------------------------------------------------------------------------------------------------------------------
# The steps and how they nest


def test_crew_task_agent_tool_and_llm_spans_nest(llm: LLMServer) -> None:
    run = run_crew(llm, "cust_42", capture_content=False)
    spans = run.spans
    (root,) = of_kind(spans, sc.AGENTOTEL_STEP_KIND_VALUE_SESSION)
    crew = named(spans, f"invoke_agent {CREW_NAME}")
    task = named(spans, "Answer the customer's message: {message}")
    agent = named(spans, f"invoke_agent {ROLE}")
    tool_span = named(spans, f"execute_tool {support.FETCH_TOOL}")
    calls = chat_spans(spans)

    assert parent_of(crew) == span_id(root)
    assert parent_of(task) == span_id(crew)
    assert parent_of(agent) == span_id(task)
    assert parent_of(tool_span) == span_id(agent)
    assert len(calls) == support.LLM_CALLS
    assert all(parent_of(c) == span_id(agent) for c in calls), "the provider's LLM spans nest under the agent step"
    assert all(c.name == f"chat {support.MODEL}" for c in calls)

    assert (crew.attributes or {})[sc.AGENTOTEL_STEP_KIND] == sc.AGENTOTEL_STEP_KIND_VALUE_AGENT
    assert (crew.attributes or {})[sc.GEN_AI_AGENT_NAME] == CREW_NAME
    assert (task.attributes or {})[sc.AGENTOTEL_STEP_KIND] == sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION
    assert (agent.attributes or {})[sc.GEN_AI_OPERATION_NAME] == sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT
    assert (agent.attributes or {})[sc.GEN_AI_AGENT_NAME] == ROLE
    tool_attributes = tool_span.attributes or {}
    assert tool_attributes[sc.AGENTOTEL_STEP_KIND] == sc.AGENTOTEL_STEP_KIND_VALUE_TOOL
    assert tool_attributes[sc.GEN_AI_OPERATION_NAME] == sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL
    assert tool_attributes[sc.GEN_AI_TOOL_NAME] == support.FETCH_TOOL
    assert tool_attributes[sc.GEN_AI_TOOL_CALL_ID] == support.CALL_ID, "the model's call id, from its response"
    assert sc.GEN_AI_TOOL_CALL_ARGUMENTS not in tool_attributes and sc.GEN_AI_TOOL_CALL_RESULT not in tool_attributes

    # Ordered in time as CrewAI ran them: each child inside its parent, the tool between the two model calls.
    for parent, child in ((root, crew), (crew, task), (task, agent), (agent, tool_span), *((agent, c) for c in calls)):
        assert parent.start_time is not None and child.start_time is not None
        assert parent.start_time <= child.start_time and child.end_time <= parent.end_time  # type: ignore[operator]
    first, second = sorted(calls, key=lambda s: s.start_time or 0)
    assert first.end_time <= tool_span.start_time and tool_span.end_time <= second.start_time  # type: ignore[operator]


def test_content_capture_records_the_tool_arguments_and_result(llm: LLMServer) -> None:
    run = run_crew(llm, "cust_42", capture_content=True)
    attributes = named(run.spans, f"execute_tool {support.FETCH_TOOL}").attributes or {}
    assert json.loads(str(attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"customer_id": "cust_42"}
    assert json.loads(str(attributes[sc.GEN_AI_TOOL_CALL_RESULT]))["plan"] == "pro"


def test_a_task_is_named_by_its_description_as_written_not_the_filled_in_one(llm: LLMServer) -> None:
    """The filled-in description holds the customer's message: content, which a span name must not carry."""
    run = run_crew(llm, "cust_42", capture_content=False)
    operations = of_kind(run.spans, sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION)
    assert [s.name for s in operations] == [TASK_DESCRIPTION]
    assert not any(secret in s.name for s in run.spans for secret in support.SECRETS)


def test_a_named_task_and_a_long_description_make_short_step_names() -> None:
    named_task = Task(name="refund", description="Refund the customer", expected_output="done")
    long_task = Task(description="Look at " + "every invoice " * 20 + "\nand more", expected_output="done")
    assert crewai_instrumentation._task_name(named_task) == "refund"
    shortened = crewai_instrumentation._task_name(long_task)
    assert shortened.startswith("Look at every invoice") and shortened.endswith("…") and len(shortened) <= 80


async def test_an_async_kickoff_nests_the_same_way(llm: LLMServer) -> None:
    support.script(llm, "cust_42")
    crew = support_crew(llm)
    with support.recorded(capture_content=False) as captured:
        result = await crew.kickoff_async(inputs={"message": support.USER_MESSAGE})
    assert result.raw == support.ANSWER
    spans = captured.spans
    agent = named(spans, f"invoke_agent {ROLE}")
    assert parent_of(agent) == span_id(named(spans, TASK_DESCRIPTION))
    assert [parent_of(c) for c in chat_spans(spans)] == [span_id(agent)] * support.LLM_CALLS
    assert parent_of(named(spans, f"execute_tool {support.FETCH_TOOL}")) == span_id(agent)


def test_an_agent_kicked_off_alone_is_an_agent_step_with_its_calls_inside(llm: LLMServer) -> None:
    """`Agent.kickoff()` without a crew: CrewAI's "lite agent" events."""
    support.script(llm, None)
    agent = support_crew(llm).agents[0]
    run = support.run(lambda message: agent.kickoff(message).raw, capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=True)
    step = named(run.spans, f"invoke_agent {ROLE}")
    inside = [*chat_spans(run.spans), named(run.spans, f"execute_tool {support.FETCH_TOOL}")]
    assert [parent_of(s) for s in inside] == [span_id(step)] * 3


def test_a_failing_crew_fails_its_steps_with_the_exception(llm: LLMServer) -> None:
    """The model is down: CrewAI reports the failure of the agent, task and crew as text; the steps get the real
    exception type (the one CrewAI is handling when it emits them)."""
    llm.script(*[Reply(text="model overloaded", status=400) for _ in range(8)])
    run = support.run(crew_agent(llm), capture_content=False)
    assert run.error is not None
    error_type = f"{type(run.error).__module__}.{type(run.error).__qualname__}"
    steps = [s for s in run.spans if s.name in (f"invoke_agent {CREW_NAME}", TASK_DESCRIPTION, f"invoke_agent {ROLE}")]
    assert {s.name for s in steps} == {f"invoke_agent {CREW_NAME}", TASK_DESCRIPTION, f"invoke_agent {ROLE}"}
    for span in steps:  # the agent step once per attempt: CrewAI retries a failed agent execution
        assert span.status.status_code.name == "ERROR", span.name
        assert (span.attributes or {})[sc.ERROR_TYPE] == error_type, span.name
    assert run.live.first_error is not None


# --------------------------------------------------------------------------------------------------------------------
# LLM calls no provider instrumentation records


@pytest.fixture
def openai_uninstrumented() -> Iterator[None]:
    OpenAIInstrumentor().uninstrument()
    try:
        yield
    finally:
        OpenAIInstrumentor().instrument()


@pytest.mark.usefixtures("openai_uninstrumented")
@pytest.mark.parametrize("capture_content", [False, True])
def test_llm_calls_no_provider_instrumentation_records_get_spans_of_their_own(
    llm: LLMServer, capture_content: bool
) -> None:
    assert not crewai_instrumentation.recorded_by_provider_instrumentation(support_crew(llm).agents[0].llm)
    run = run_crew(llm, "cust_42", capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=False)  # the tokens and cost CrewAI reports, each call once
    agent = named(run.spans, f"invoke_agent {ROLE}")
    calls = chat_spans(run.spans)
    assert [c.name for c in calls] == [f"chat {support.MODEL}"] * support.LLM_CALLS
    assert all(parent_of(c) == span_id(agent) for c in calls)
    assert all(sc.SERVER_ADDRESS not in (c.attributes or {}) for c in calls), "made from CrewAI's events"
    if capture_content:
        output = json.loads(str((calls[0].attributes or {})[sc.GEN_AI_OUTPUT_MESSAGES]))
        assert output[0]["parts"][0]["name"] == support.FETCH_TOOL
    else:
        support.assert_no_content(run)


def test_llm_calls_the_openai_instrumentation_records_get_no_second_span(llm: LLMServer) -> None:
    assert crewai_instrumentation.recorded_by_provider_instrumentation(support_crew(llm).agents[0].llm)
    run = run_crew(llm, "cust_42", capture_content=False)
    assert all(sc.SERVER_ADDRESS in (c.attributes or {}) for c in chat_spans(run.spans))


# --------------------------------------------------------------------------------------------------------------------
# Never breaking the crew, and undoing it all


def test_a_failing_hook_never_breaks_the_crew(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(source: Any, event: Any) -> None:
        raise RuntimeError("a bug in the instrumentation")

    for event_type in list(crewai_instrumentation._HANDLERS):
        monkeypatch.setitem(crewai_instrumentation._HANDLERS, event_type, broken)
    run = run_crew(llm, None, capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    assert not crewai_steps(run.spans)
    assert len(chat_spans(run.spans)) == support.LLM_CALLS  # the provider's spans are still there


def test_a_failing_span_helper_never_breaks_the_crew(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the instrumentation")

    monkeypatch.setattr(crewai_instrumentation, "start_tool", broken)
    monkeypatch.setattr(crewai_instrumentation, "attach", broken)
    run = run_crew(llm, "cust_42", capture_content=False)
    assert run.error is None and run.response == support.ANSWER


def emit_is_wrapped() -> bool:
    return isinstance(vars(CrewAIEventsBus)["emit"], wrapt.FunctionWrapper)


def test_uninstrument_removes_the_hooks_and_instrument_puts_them_back(llm: LLMServer) -> None:
    instrumentor = CrewAIInstrumentor()
    assert instrumentor.applied and emit_is_wrapped()
    instrumentor.uninstrument()
    try:
        assert not instrumentor.applied and not emit_is_wrapped()
        assert not isinstance(vars(CrewAIEventsBus)["aemit"], wrapt.FunctionWrapper)
        run = run_crew(llm, "cust_42", capture_content=False)
        assert run.response == support.ANSWER
        assert not crewai_steps(run.spans)
    finally:
        instrumentor.instrument()
    assert instrumentor.applied and emit_is_wrapped()
    support.script(llm, "cust_42")
    run = support.run(crew_agent(llm), capture_content=False)
    support.assert_seed_behaviour(run, failing=False)


def test_a_wrapper_laid_over_ours_stays_and_ours_turns_off(llm: LLMServer) -> None:
    """Another library wrapped `emit` after us: uninstrumenting must not take its wrapper out."""
    seen: list[str] = []

    def theirs(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        seen.append(type(args[1] if len(args) > 1 else kwargs["event"]).__name__)
        return wrapped(*args, **kwargs)

    ours = vars(CrewAIEventsBus)["emit"]
    wrapt.wrap_function_wrapper(CrewAIEventsBus, "emit", theirs)
    instrumentor = CrewAIInstrumentor()
    try:
        instrumentor.uninstrument()
        run = run_crew(llm, "cust_42", capture_content=False)
        assert "CrewKickoffStartedEvent" in seen
        assert not crewai_steps(run.spans)
        instrumentor.instrument()  # ours is still in the chain: turned back on, not laid a second time
        support.script(llm, "cust_42")
        run = support.run(crew_agent(llm), capture_content=False)
        assert len([s for s in run.spans if s.name == f"invoke_agent {ROLE}"]) == 1
    finally:
        setattr(CrewAIEventsBus, "emit", ours)  # noqa: B010 - takes their wrapper out again


def test_open_steps_are_bounded() -> None:
    steps = crewai_instrumentation._OpenSteps(limit=2)
    ended: list[str] = []

    class Span:
        def __init__(self, name: str) -> None:
            self.name = name

        def end(self, end_time: int | None = None) -> None:
            ended.append(self.name)

    for name in ("a", "b", "c"):
        steps.add(name, crewai_instrumentation._Step(Span(name), None, "tool"))  # type: ignore[arg-type]
    assert ended == ["a"] and len(steps) == 2
    assert steps.pop("a") is None and steps.pop("b") is not None and steps.pop(None) is None


def test_pending_tool_call_ids_are_bounded_and_taken_once() -> None:
    ids = crewai_instrumentation._ToolCallIds(limit=2)
    ids.asked("s1", [("fetch", {"id": 1}, "call_1"), ("fetch", {"id": 2}, "call_2")])
    ids.asked("s2", [("lookup", {}, "call_3")])
    ids.asked("s3", [("lookup", {}, "call_4")])
    assert len(ids) == 2 and ids.take("s1", "fetch", {"id": 1}) is None  # the oldest scope went
    assert ids.take("s2", "fetch", {}) is None and ids.take("s2", "lookup", {}) == "call_3"
    assert ids.take("s2", "lookup", {}) is None and len(ids) == 1


class Event:
    """A stand-in for a CrewAI event, with only what the instrumentation reads."""

    def __init__(self, type: str, event_id: str, started_event_id: str | None = None, **fields: Any) -> None:
        self.type, self.event_id, self.started_event_id = type, event_id, started_event_id
        self.parent_event_id = None
        vars(self).update(fields)


def test_an_end_event_crewai_pairs_with_another_kind_of_step_still_ends_it() -> None:
    """CrewAI 1.10 emits a second `llm_call_failed` that closes the agent's scope (and then each later end closes
    its parent's): every step still ends, failed by what CrewAI reports, and none is left open."""

    class Role:
        role, id = ROLE, "agent-1"

    with support.recorded(capture_content=False) as captured:
        crewai_instrumentation.observe(
            None, Event("task_started", "t", task=Task(description="Do it", expected_output="x"))
        )
        crewai_instrumentation.observe(None, Event("agent_execution_started", "a", agent=Role()))
        crewai_instrumentation.observe(None, Event("llm_call_failed", "f", started_event_id="a", error="overloaded"))
        crewai_instrumentation.observe(None, Event("tool_usage_finished", "g", started_event_id="t", output="x"))
    agent, task = named(captured.spans, f"invoke_agent {ROLE}"), named(captured.spans, "Do it")
    assert agent.status.status_code.name == "ERROR" and agent.status.description == "Error: overloaded"
    assert task.status.status_code.name == "UNSET" and sc.GEN_AI_TOOL_CALL_RESULT not in (task.attributes or {})


def test_observe_passes_over_what_it_does_not_know() -> None:
    """No event, an object that is no event, an ending event whose start it never saw: nothing happens."""

    class Ended:
        type = "tool_usage_finished"
        started_event_id = "never-started"

    for event in (None, object(), Ended()):
        crewai_instrumentation.observe(None, event)
