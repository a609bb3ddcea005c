"""The seed's support agent written with the OpenAI Agents SDK (`openai-agents`), recorded by
`agentotel.instrumentation.openai_agents`: the real SDK and the real `openai` client against the scripted
`LLMServer` on loopback.

Offline: the SDK's default tracing processor exports every trace to OpenAI's servers (in a background thread,
with whatever `OPENAI_API_KEY` says). The `_only_our_processor` fixture sets the SDK's processors to agentotel's
alone (`agents.set_trace_processors([...])`) before the first test, and does not put the default one back (a
test run later in the session that ran an agent would try the network). Tests that uninstrument and instrument
again leave the list as they found it: agentotel's processor alone. Not `set_tracing_disabled` /
`OPENAI_AGENTS_DISABLE_TRACING`: those stop the SDK from making spans at all, so agentotel would see nothing
either.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    Model,
    ModelResponse,
    ModelSettings,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    SpanError,
    UserError,
    function_tool,
    generation_span,
    input_guardrail,
    set_trace_processors,
)
from agents.tracing import agent_span, get_trace_provider, trace
from agents.tracing.spans import SpanImpl
from agents.usage import Usage
from openai import AsyncOpenAI
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import agentotel
from agentotel import semconv as sc
from agentotel.instrumentation import instrument_installed, openai_agents
from agentotel.instrumentation.openai import OpenAIInstrumentor
from agentotel.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from agentotel.testing.llm_server import LLMServer, Reply, ToolCall

from . import support

# --------------------------------------------------------------------------------------------------------------------
# Set-up


def _registered() -> tuple[Any, ...]:
    return tuple(get_trace_provider()._multi_processor._processors)  # type: ignore[attr-defined]


@pytest.fixture(scope="module", autouse=True)
def _only_our_processor() -> None:
    """agentotel's processor alone, for this module and after it: the SDK's default one, which exports to
    OpenAI's servers, is not put back (a later test running an agent would try the network)."""
    instrumentor = OpenAIAgentsInstrumentor()
    if not instrumentor.applied:
        instrumentor.instrument()
    assert instrumentor.applied and instrumentor.processor is not None
    set_trace_processors([instrumentor.processor])


def _processor() -> Any:
    processor = OpenAIAgentsInstrumentor().processor
    assert processor is not None
    return processor


def _model(server: LLMServer, api: str) -> Model:
    """The seed's model through the real `openai` client: Chat Completions or the Responses API. A client per
    run: `run_sync` and `asyncio.run` may each run on a loop of their own."""
    client = AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    if api == "responses":
        return OpenAIResponsesModel(model=support.MODEL, openai_client=client)
    return OpenAIChatCompletionsModel(model=support.MODEL, openai_client=client)


def _support_agent(model: Model, **kwargs: Any) -> Agent[Any]:
    tools = kwargs.pop("tools", None) or [
        function_tool(support.fetch_customer_data),
        function_tool(support.lookup_invoice),
    ]
    return Agent(name="support", instructions=support.INSTRUCTIONS, model=model, tools=tools, **kwargs)


async def _streamed(agent: Agent[Any], message: str) -> str:
    result = Runner.run_streamed(agent, message)
    async for _ in result.stream_events():
        pass
    return str(result.final_output)


def _runner(make: Callable[[], Agent[Any]], streamed: bool) -> Callable[[str], str]:
    """`agent(message) -> str` for `support.run`: the SDK's agent run with `Runner.run_sync`, or streamed."""

    def agent(message: str) -> str:
        if streamed:
            return asyncio.run(_streamed(make(), message))
        return str(Runner.run_sync(make(), message).final_output)

    return agent


def _seed_run(
    server: LLMServer, api: str, *, streamed: bool, capture_content: bool, customer_id: str | None
) -> support.SupportRun:
    support.script(server, customer_id, streamed_chunks=3 if streamed else None)
    # The SDK asks for a streamed chat completion's usage only from api.openai.com: a compatible server (this
    # one) is asked explicitly, as an app has to.
    settings = ModelSettings(include_usage=True) if streamed else ModelSettings()
    return support.run(
        _runner(lambda: _support_agent(_model(server, api), model_settings=settings), streamed),
        capture_content=capture_content,
    )


def _by_id(spans: list[ReadableSpan]) -> dict[int, ReadableSpan]:
    return {s.context.span_id: s for s in spans}


def _ancestors(span: ReadableSpan, spans: list[ReadableSpan]) -> list[ReadableSpan]:
    by_id, found = _by_id(spans), []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        found.append(by_id[parent.span_id])
        parent = found[-1].parent
    return found


def _named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def _one(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = _named(spans, name)
    assert len(found) == 1, f"{len(found)} spans named {name!r} in {[s.name for s in spans]}"
    return found[0]


def _llm_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get(sc.AGENTOTEL_STEP_KIND) == sc.AGENTOTEL_STEP_KIND_VALUE_LLM]


# --------------------------------------------------------------------------------------------------------------------
# The seed


MATRIX = pytest.mark.parametrize(
    ("api", "streamed"), [("chat", False), ("responses", False), ("chat", True), ("responses", True)]
)


@MATRIX
def test_the_seed_agent_meets_the_seed(llm: LLMServer, api: str, streamed: bool) -> None:
    run = _seed_run(llm, api, streamed=streamed, capture_content=False, customer_id="cust_42")
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=False)
    support.assert_no_content(run)
    assert _processor().open_count == 0  # every step's state was removed when it ended


@MATRIX
def test_the_tool_error_is_attributed(llm: LLMServer, api: str, streamed: bool) -> None:
    """The SDK hands the model a message in place of the tool's `ValueError`; the tool step still failed, with
    the exception's type and message."""
    run = _seed_run(llm, api, streamed=streamed, capture_content=False, customer_id=None)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=True)
    support.assert_no_content(run)


@MATRIX
def test_content_is_recorded_with_capture_on(llm: LLMServer, api: str, streamed: bool) -> None:
    run = _seed_run(llm, api, streamed=streamed, capture_content=True, customer_id="cust_42")
    support.assert_seed_behaviour(run, failing=False)
    tool = _one(run.spans, f"execute_tool {support.FETCH_TOOL}")
    assert json.loads(str((tool.attributes or {})[sc.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"customer_id": "cust_42"}
    support.assert_content_recorded(run)


def test_a_tool_error_the_sdk_raises_is_attributed(llm: LLMServer) -> None:
    """With `failure_error_function=None` the SDK raises (a `UserError` from the tool's `ValueError`): the tool
    step failed with the `ValueError`, and is the session's first error."""
    support.script(llm, None)
    tools = [function_tool(support.fetch_customer_data, failure_error_function=None)]
    run = support.run(_runner(lambda: _support_agent(_model(llm, "chat"), tools=tools), False), capture_content=False)
    assert isinstance(run.error, UserError)
    for session in (run.live, run.rebuilt):
        support.assert_tool_error_attributed(session)


# --------------------------------------------------------------------------------------------------------------------
# The shape of the trace


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_llm_calls_are_the_openai_instrumentations_inside_the_agent_step(llm: LLMServer, api: str) -> None:
    run = _seed_run(llm, api, streamed=False, capture_content=False, customer_id="cust_42")
    agent = _one(run.spans, "invoke_agent support")
    llm_spans = _llm_spans(run.spans)
    assert len(llm_spans) == support.LLM_CALLS
    for span in llm_spans:
        assert span.instrumentation_scope is not None
        assert span.instrumentation_scope.name == "agentotel.instrumentation.openai"  # none of ours
        assert agent in _ancestors(span, run.spans)
    tool = _one(run.spans, f"execute_tool {support.FETCH_TOOL}")
    assert tool.parent is not None and tool.parent.span_id == agent.context.span_id
    assert (tool.attributes or {})[sc.GEN_AI_TOOL_TYPE] == "function"
    assert len({s.context.trace_id for s in run.spans}) == 1


def test_a_tools_own_steps_nest_inside_it(llm: LLMServer) -> None:
    @agentotel.operation("load_customer")
    def load(customer_id: str) -> dict[str, Any]:
        return support.fetch_customer_data(customer_id)

    def fetch_customer_data(customer_id: str) -> dict[str, Any]:
        return load(customer_id)

    support.script(llm, "cust_42")
    tools = [function_tool(fetch_customer_data)]
    run = support.run(_runner(lambda: _support_agent(_model(llm, "chat"), tools=tools), False), capture_content=False)
    assert run.error is None
    tool = _one(run.spans, f"execute_tool {support.FETCH_TOOL}")
    operation = _one(run.spans, "load_customer")
    assert operation.parent is not None and operation.parent.span_id == tool.context.span_id


def test_parallel_tool_calls_each_get_their_step(llm: LLMServer) -> None:
    """The SDK runs the tools of one model reply concurrently (a task each): each step is its own, inside the
    agent step, and none is left open."""
    llm.script(
        Reply(
            tool_calls=[
                ToolCall("call_fetch", support.FETCH_TOOL, {"customer_id": "cust_42"}),
                ToolCall("call_invoice", support.INVOICE_TOOL, {"customer_id": "cust_42"}),
            ]
        ),
        Reply(text=support.ANSWER),
    )
    run = support.run(_runner(lambda: _support_agent(_model(llm, "chat")), False), capture_content=False)
    assert run.error is None
    agent = _one(run.spans, "invoke_agent support")
    for name in (support.FETCH_TOOL, support.INVOICE_TOOL):
        tool = _one(run.spans, f"execute_tool {name}")
        assert tool.parent is not None and tool.parent.span_id == agent.context.span_id
    assert _processor().open_count == 0


def test_an_agent_used_as_a_tool_runs_inside_the_tool_step(llm: LLMServer) -> None:
    """`Agent.as_tool`: the inner agent's run, and its LLM call, are inside the outer agent's tool step."""
    billing = Agent(name="billing", instructions="You handle billing.", model=_model(llm, "chat"))
    ask_billing = billing.as_tool(tool_name="ask_billing", tool_description="Ask the billing agent.")
    llm.script(
        Reply(tool_calls=[ToolCall("call_ask", "ask_billing", {"input": "refund?"})]),
        Reply(text="Refunded."),
        Reply(text=support.ANSWER),
    )
    run = support.run(
        _runner(lambda: _support_agent(_model(llm, "chat"), tools=[ask_billing]), False), capture_content=False
    )
    assert run.error is None and run.response == support.ANSWER
    tool = _one(run.spans, "execute_tool ask_billing")
    inner = _one(run.spans, "invoke_agent billing")
    assert tool in _ancestors(inner, run.spans)
    assert [s for s in _llm_spans(run.spans) if inner in _ancestors(s, run.spans)]
    assert len(run.live.llm_calls) == 3


def _handoff_agents(server: LLMServer) -> Agent[Any]:
    billing = Agent(name="billing", instructions="You handle billing.", model=_model(server, "chat"))
    return Agent(name="triage", instructions="Route the customer.", model=_model(server, "chat"), handoffs=[billing])


def _script_handoff(server: LLMServer) -> None:
    server.script(
        Reply(tool_calls=[ToolCall("call_handoff_1", "transfer_to_billing", {})], input_tokens=50, output_tokens=5),
        Reply(text=support.ANSWER, input_tokens=60, output_tokens=7),
    )


def test_a_handoff_is_a_step_between_the_two_agents(llm: LLMServer) -> None:
    _script_handoff(llm)
    run = support.run(_runner(lambda: _handoff_agents(llm), False), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    triage, billing = _one(run.spans, "invoke_agent triage"), _one(run.spans, "invoke_agent billing")
    handoff = _one(run.spans, "handoff triage -> billing")
    attributes = handoff.attributes or {}
    assert attributes[sc.AGENTOTEL_STEP_KIND] == sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION
    assert handoff.parent is not None and handoff.parent.span_id == triage.context.span_id
    first, second = sorted(_llm_spans(run.spans), key=lambda s: s.start_time or 0)
    assert triage in _ancestors(first, run.spans) and billing not in _ancestors(first, run.spans)
    assert billing in _ancestors(second, run.spans)
    assert [e.name for e in run.live.events if e.kind == "agent"] == ["triage", "billing"]
    assert run.live.first_error is None and len(run.live.llm_calls) == 2


def test_a_run_outside_any_session_is_one_trace(llm: LLMServer) -> None:
    """With no session or span around it, the SDK's trace is a step of its own: both agents, one after the
    other, stay one trace under it."""
    _script_handoff(llm)
    with support.recorded(capture_content=False) as captured:
        result = Runner.run_sync(_handoff_agents(llm), support.USER_MESSAGE)
    agentotel.force_flush()
    assert result.final_output == support.ANSWER
    spans = captured.spans
    root = _one(spans, "Agent workflow")
    assert root.parent is None
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    for name in ("invoke_agent triage", "invoke_agent billing"):
        agent = _one(spans, name)
        assert agent.parent is not None and agent.parent.span_id == root.context.span_id


def test_a_tripped_guardrail_is_the_failed_step(llm: LLMServer) -> None:
    @input_guardrail(run_in_parallel=False)
    async def no_refunds(ctx: Any, agent: Any, message: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info={"refund": True}, tripwire_triggered=True)

    run = support.run(
        _runner(lambda: _support_agent(_model(llm, "chat"), input_guardrails=[no_refunds]), False),
        capture_content=False,
    )
    assert isinstance(run.error, InputGuardrailTripwireTriggered)
    guardrail = _one(run.spans, "guardrail no_refunds")
    agent = _one(run.spans, "invoke_agent support")
    assert guardrail.parent is not None and guardrail.parent.span_id == agent.context.span_id
    assert guardrail.status.status_code is StatusCode.ERROR
    for session in (run.live, run.rebuilt):
        first = session.first_error
        assert first is not None and first.name == "guardrail no_refunds", session.replay()
        assert first.error is not None and first.error.type == openai_agents.GUARDRAIL_TRIPPED
        assert "no_refunds" in first.error.message
    assert not _llm_spans(run.spans)  # the guardrail ran first and stopped the run


def test_a_guardrail_that_passes_is_a_plain_step(llm: LLMServer) -> None:
    @input_guardrail
    async def polite(ctx: Any, agent: Any, message: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)

    support.script(llm, "cust_42")
    run = support.run(
        _runner(lambda: _support_agent(_model(llm, "chat"), input_guardrails=[polite]), False),
        capture_content=False,
    )
    assert run.error is None
    assert _one(run.spans, "guardrail polite").status.status_code is StatusCode.UNSET
    support.assert_seed_behaviour(run, failing=False)


# --------------------------------------------------------------------------------------------------------------------
# Model calls nothing else records


class ScriptedModel(Model):
    """A model that answers the seed's script without HTTP (as a LiteLLM or a provider's own model would, from
    the `openai` SDK's point of view): its generation spans are the only record of its calls."""

    def __init__(self, customer_id: str | None) -> None:
        self.customer_id = customer_id
        self.calls = 0

    def _reply(self) -> tuple[list[Any], tuple[int, int]]:
        self.calls += 1
        if self.calls == 1:
            arguments = json.dumps({"customer_id": self.customer_id})
            call = ResponseFunctionToolCall(
                id="fc_1", call_id=support.CALL_ID, name=support.FETCH_TOOL, arguments=arguments, type="function_call"
            )
            return [call], support.FIRST_CALL_TOKENS
        text = ResponseOutputText(text=support.ANSWER, type="output_text", annotations=[])
        message = ResponseOutputMessage(
            id="msg_1", content=[text], role="assistant", status="completed", type="message"
        )
        return [message], support.SECOND_CALL_TOKENS

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        with generation_span(model=support.MODEL, model_config={"temperature": 0.0}) as span:
            output, (input_tokens, output_tokens) = self._reply()
            span.span_data.usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
            usage = Usage(
                requests=1,
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                total_tokens=input_tokens + output_tokens,
            )
            return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


@pytest.mark.parametrize("customer_id", ["cust_42", None])
def test_a_model_call_nothing_records_is_recorded_from_its_span(customer_id: str | None) -> None:
    run = support.run(_runner(lambda: _support_agent(ScriptedModel(customer_id)), False), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=customer_id is None)
    support.assert_no_content(run)
    agent = _one(run.spans, "invoke_agent support")
    llm_spans = _llm_spans(run.spans)
    assert [s.name for s in llm_spans] == [f"chat {support.MODEL}"] * 2
    for span in llm_spans:
        attributes = span.attributes or {}
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == agent.context.span_id
        assert attributes[sc.GEN_AI_REQUEST_MODEL] == support.MODEL
        assert attributes[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.0
        assert attributes[sc.AGENTOTEL_USAGE_COST_AMOUNT] > 0  # priced by agentotel


class FailingModel(ScriptedModel):
    """A model whose call fails, reporting it on its generation span as the SDK's own models do."""

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        with generation_span(model=support.MODEL) as span:
            try:
                raise ConnectionError("the provider is down")
            except Exception as error:
                span.set_error(SpanError(message="Error getting response", data={"error": str(error)}))
                raise


def test_a_failing_model_call_nothing_records_is_a_failed_llm_step() -> None:
    run = support.run(_runner(lambda: _support_agent(FailingModel(None)), False), capture_content=False)
    assert isinstance(run.error, ConnectionError)
    for session in (run.live, run.rebuilt):
        first = session.first_error
        assert first is not None and first.kind == "llm", session.replay()
        assert first.error is not None and first.error.type == "ConnectionError"
        assert "the provider is down" in first.error.message


@pytest.fixture
def openai_uninstrumented() -> Iterator[None]:
    instrumentor = OpenAIInstrumentor()
    instrumentor.uninstrument()
    try:
        yield
    finally:
        instrumentor.instrument()


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_model_calls_are_recorded_from_their_spans_when_the_openai_sdk_is_not_instrumented(
    llm: LLMServer, api: str, openai_uninstrumented: None
) -> None:
    """What tells a recorded model call from one nothing records is what happened, not the model's class."""
    run = _seed_run(llm, api, streamed=False, capture_content=False, customer_id="cust_42")
    support.assert_seed_behaviour(run, failing=False)
    llm_spans = _llm_spans(run.spans)
    assert len(llm_spans) == support.LLM_CALLS
    assert all(s.instrumentation_scope is not None and s.instrumentation_scope.name == "agentotel" for s in llm_spans)


# --------------------------------------------------------------------------------------------------------------------
# Robustness


def test_a_failing_hook_never_breaks_the_run(
    llm: LLMServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("a bug in agentotel")

    monkeypatch.setitem(openai_agents._STARTS, "function", broken)  # on a span's start
    monkeypatch.setattr(openai_agents, "_record_errors", broken)  # on every step's end
    with caplog.at_level(logging.DEBUG):
        run = _seed_run(llm, "chat", streamed=False, capture_content=False, customer_id="cust_42")
    assert run.error is None and run.response == support.ANSWER
    assert _named(run.spans, "invoke_agent support")
    assert not _named(run.spans, f"execute_tool {support.FETCH_TOOL}")
    sdk_errors = [r for r in caplog.records if r.name.startswith("openai.agents") and r.levelno >= logging.WARNING]
    assert not sdk_errors, [r.getMessage() for r in sdk_errors]  # our faults never reached the SDK's handler
    assert _processor().open_count == 0


def test_steps_left_open_by_the_sdk_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Spans the SDK starts and never finishes: past the cap the oldest steps are ended (exported, not lost) and
    forgotten. In a context of its own, since those spans are made current and never reset."""
    monkeypatch.setattr(openai_agents, "_MAX_OPEN", 3)
    processor = _processor()
    leaked: list[Any] = []

    def leak() -> None:
        with trace("leaky"):
            for n in range(5):
                span = agent_span(name=f"never_finished_{n}")
                span.start()
                leaked.append(span)
                assert processor.open_count <= 3

    with support.recorded(capture_content=False) as captured:
        contextvars.copy_context().run(leak)
        agentotel.force_flush()
        ended = {s.name for s in captured.spans}
        assert {"leaky", "invoke_agent never_finished_0", "invoke_agent never_finished_1"} <= ended
        for span in reversed(leaked):
            span.finish()
    assert processor.open_count == 0


async def test_an_exception_handled_around_the_run_is_not_the_runs(llm: LLMServer) -> None:
    """An agent run inside an `except` block: the exception being handled is not taken for a step's failure."""
    support.script(llm, "cust_42")
    with support.recorded(capture_content=False) as captured:
        try:
            raise KeyError("the app's own")
        except KeyError:
            result = await Runner.run(_support_agent(_model(llm, "chat")), support.USER_MESSAGE)
    agentotel.force_flush()
    assert result.final_output == support.ANSWER
    assert _named(captured.spans, "invoke_agent support")
    failed = [s.name for s in captured.spans if s.status.status_code is StatusCode.ERROR]
    assert not failed


def test_uninstrument_removes_the_processor(llm: LLMServer) -> None:
    instrumentor = OpenAIAgentsInstrumentor()
    processor = instrumentor.processor
    instrumentor.uninstrument()
    try:
        assert not instrumentor.applied and instrumentor.processor is None
        assert processor not in _registered()
        assert not hasattr(vars(SpanImpl)["set_error"], "__wrapped__")
        run = _seed_run(llm, "chat", streamed=False, capture_content=False, customer_id="cust_42")
        assert run.error is None
        assert not _named(run.spans, "invoke_agent support")  # the SDK's spans are no longer recorded
        assert len(_llm_spans(run.spans)) == support.LLM_CALLS  # the openai SDK's calls still are
    finally:
        instrumentor.instrument()
    assert instrumentor.applied and _registered() == (instrumentor.processor,)


# --------------------------------------------------------------------------------------------------------------------
# Loading


def _python(code: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "AGENTOTEL_STORE": "off"}
    environment.pop("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=environment, capture_output=True, text=True, timeout=120
    )


def test_the_sdk_is_hooked_when_it_is_imported_not_before() -> None:
    result = _python(
        """
        import sys
        import agentotel
        agentotel.init()
        from agentotel.instrumentation.openai_agents import OpenAIAgentsInstrumentor
        instrumentor = OpenAIAgentsInstrumentor()
        assert "agents" not in sys.modules, "init() imported the SDK"
        assert not instrumentor.applied
        import agents
        from agents.tracing import get_trace_provider
        assert instrumentor.applied
        assert instrumentor.processor in get_trace_provider()._multi_processor._processors
        print("ok")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_disabled_instrumentations_variable_keeps_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """`instrument_installed()` (what `init()` runs) leaves the SDK alone when the variable names it, though the
    SDK is imported (it would be hooked at once otherwise)."""
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.uninstrument()
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "agentotel_openai_agents")
    try:
        done = instrument_installed()
        assert "agentotel_openai_agents" not in done and "agentotel_openai" in done, done
        assert not instrumentor.applied and instrumentor.processor is None
        assert not any(isinstance(p, openai_agents._Processor) for p in _registered())
    finally:
        instrumentor.instrument()
