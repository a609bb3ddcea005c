"""The seed's support agent as a LangGraph `create_react_agent` (LangChain's `ChatOpenAI` on the real `openai` SDK,
against the scripted model), recorded by agentotel's LangChain callback handler: the session's story, counts, cost
and content are the hand-written agent's, however the graph is run; steps nest as the graph runs; a model no
provider instrumentation records gets an LLM step of ours; other LangChain tracers beside ours do not change the
counts; a fault in the handler never reaches the graph."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph.prebuilt")
pytest.importorskip("langchain_openai")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException, tool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import agentotel
from agentotel import semconv as sc
from agentotel.instrumentation import langchain as lc
from agentotel.instrumentation.openai import OpenAIInstrumentor
from agentotel.testing.llm_server import LLMServer

from . import support

pytestmark = pytest.mark.filterwarnings("ignore:create_react_agent has been moved:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
OURS = "agentotel"
"""The instrumentation scope of the steps agentotel makes (tools, agents, operations, LLM steps of ours)."""
PROVIDER_SCOPE = "agentotel.instrumentation.openai"
DUMPS = os.environ.get("AGENTOTEL_SPAN_DUMPS")
"""A folder to write the spans of the runs beside other tracers to, as JSON (for reading their span shapes)."""


# --------------------------------------------------------------------------------------------------------------------
# The support agent in LangGraph


def _tools() -> list[BaseTool]:
    @tool(support.FETCH_TOOL)
    def fetch_customer_data(customer_id: str | None) -> dict[str, Any]:
        """Fetch the customer's record by id."""
        return support.fetch_customer_data(customer_id)

    @tool(support.INVOICE_TOOL)
    def lookup_invoice(customer_id: str) -> dict[str, Any]:
        """Look up the customer's invoices."""
        return support.lookup_invoice(customer_id)

    return [fetch_customer_data, lookup_invoice]


def _chat_openai(server: LLMServer, **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        model=support.MODEL, base_url=server.openai_base_url, api_key="sk-test-not-a-real-key", max_retries=0, **options
    )


def _graph(model: Any) -> Any:
    # Tool errors go back to the model as text, as the hand-written agent does (ToolNode's default re-raises them).
    return create_react_agent(model, ToolNode(_tools(), handle_tool_errors=True), prompt=support.INSTRUCTIONS)


def _answer(state: Any) -> str:
    return str(state["messages"][-1].content)


def _inputs(message: str) -> dict[str, Any]:
    return {"messages": [("user", message)]}


def _runner(graph: Any, mode: str = "invoke") -> Callable[[str], str]:
    """`agent(message) -> answer`, running the graph one of LangGraph's ways."""

    def invoke(message: str) -> str:
        return _answer(graph.invoke(_inputs(message)))

    def stream(message: str) -> str:
        states = list(graph.stream(_inputs(message), stream_mode="values"))
        return _answer(states[-1])

    async def astream(message: str) -> str:
        states = [state async for state in graph.astream(_inputs(message), stream_mode="values")]
        return _answer(states[-1])

    runners: dict[str, Callable[[str], str]] = {
        "invoke": invoke,
        "stream": stream,
        "ainvoke": lambda message: _answer(asyncio.run(graph.ainvoke(_inputs(message)))),
        "astream": lambda message: asyncio.run(astream(message)),
    }
    return runners[mode]


class ScriptedChatModel(GenericFakeChatModel):
    """A chat model no provider instrumentation records (LangChain's fake, which calls no SDK), answering as the
    scripted model does, with its usage, under a real priced model name of provider openai."""

    model_name: str = support.MODEL

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        params["ls_model_name"] = self.model_name
        return params


def _scripted_model(customer_id: str | None) -> ScriptedChatModel:
    first, second = support.FIRST_CALL_TOKENS, support.SECOND_CALL_TOKENS
    replies = [
        AIMessage(
            content="",
            tool_calls=[{"name": support.FETCH_TOOL, "args": {"customer_id": customer_id}, "id": support.CALL_ID}],
            usage_metadata={"input_tokens": first[0], "output_tokens": first[1], "total_tokens": sum(first)},
            response_metadata={"model_name": support.MODEL, "finish_reason": "tool_calls"},
        ),
        AIMessage(
            content=support.ANSWER,
            usage_metadata={"input_tokens": second[0], "output_tokens": second[1], "total_tokens": sum(second)},
            response_metadata={"model_name": support.MODEL, "finish_reason": "stop"},
        ),
    ]
    return ScriptedChatModel(messages=iter(replies))


# --------------------------------------------------------------------------------------------------------------------
# Reading the spans


def _scope(span: ReadableSpan) -> str | None:
    return span.instrumentation_scope.name if span.instrumentation_scope is not None else None


def _named(spans: list[ReadableSpan], name: str, scope: str | None = OURS) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name and (scope is None or _scope(s) == scope)]


def _parent(span: ReadableSpan, spans: list[ReadableSpan]) -> ReadableSpan | None:
    if span.parent is None:
        return None
    return next((s for s in spans if s.context is not None and s.context.span_id == span.parent.span_id), None)


def _parent_name(span: ReadableSpan, spans: list[ReadableSpan]) -> str | None:
    parent = _parent(span, spans)
    return None if parent is None else parent.name


def _llm_steps_of_ours(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [
        s
        for s in spans
        if _scope(s) == OURS and (s.attributes or {}).get(sc.AGENTOTEL_STEP_KIND) == sc.AGENTOTEL_STEP_KIND_VALUE_LLM
    ]


def _dump(spans: list[ReadableSpan], name: str) -> None:
    """Writes the spans (name, scope, ids, parent, attributes, events) to `$AGENTOTEL_SPAN_DUMPS/{name}`."""
    if not DUMPS:
        return
    names = {s.context.span_id: s.name for s in spans if s.context is not None}

    def one(span: ReadableSpan) -> dict[str, Any]:
        parent_id = span.parent.span_id if span.parent is not None else None
        return {
            "name": span.name,
            "scope": _scope(span),
            "kind": span.kind.name,
            "span_id": f"{span.context.span_id:016x}" if span.context is not None else None,
            "parent_id": f"{parent_id:016x}" if parent_id is not None else None,
            "parent_name": names.get(parent_id) if parent_id is not None else None,
            "status": span.status.status_code.name,
            "attributes": dict(span.attributes or {}),
            "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        }

    ordered = sorted(spans, key=lambda s: s.start_time or 0)
    Path(DUMPS).mkdir(parents=True, exist_ok=True)
    Path(DUMPS, name).write_text(json.dumps([one(s) for s in ordered], indent=2, default=str), encoding="utf-8")


@pytest.fixture
def handler() -> Iterator[Any]:
    """The handler, checked to have no run left open after the test."""
    recorder = lc.handler()
    assert recorder is not None and lc.LangChainInstrumentor().applied, "LangChain is not instrumented"
    yield recorder
    assert recorder.open_runs == 0


# --------------------------------------------------------------------------------------------------------------------
# The seed


@pytest.mark.parametrize("capture_content", [False, True])
def test_langgraph_agent_meets_the_seed(llm: LLMServer, handler: Any, capture_content: bool) -> None:
    support.script(llm, "cust_42")
    run = support.run(_runner(_graph(_chat_openai(llm))), capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=False)
    if capture_content:
        support.assert_content_recorded(run)
    else:
        support.assert_no_content(run)


def test_langgraph_agent_attributes_the_tool_error(llm: LLMServer, handler: Any) -> None:
    support.script(llm, None)
    run = support.run(_runner(_graph(_chat_openai(llm))), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=True)
    (tool_span,) = _named(run.spans, f"execute_tool {support.FETCH_TOOL}")
    assert tool_span.status.status_code is StatusCode.ERROR
    assert (tool_span.attributes or {})[sc.ERROR_TYPE] == "ValueError"


@pytest.mark.parametrize("mode", ["stream", "ainvoke", "astream"])
def test_each_way_of_running_the_graph_meets_the_seed(llm: LLMServer, handler: Any, mode: str) -> None:
    """`stream` / `astream` with the model streaming too (usage from the stream's last chunk)."""
    streaming = mode in ("stream", "astream")
    support.script(llm, "cust_42", streamed_chunks=3 if streaming else None)
    model = _chat_openai(llm, streaming=True, stream_usage=True) if streaming else _chat_openai(llm)
    run = support.run(_runner(_graph(model), mode), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=False)
    support.assert_no_content(run)
    assert len(_named(run.spans, "invoke_agent LangGraph")) == 1
    assert len(_named(run.spans, "agent")) == 2 and len(_named(run.spans, "tools")) == 1


def test_no_step_stays_current_once_the_graph_returns(handler: Any) -> None:
    """LangChain's async callback managers end each run from a task of their own, where the caller's context cannot
    be reset: the step still reads as ended there, so what the caller does next is not put inside it. Likewise for
    a stream the caller stops reading."""
    outer_tracer = trace.get_tracer("test")

    async def main() -> list[bool]:
        with outer_tracer.start_as_current_span("caller") as caller:
            await _graph(_scripted_model("cust_42")).ainvoke(_inputs(support.USER_MESSAGE))
            after_ainvoke = trace.get_current_span() is caller
            async for _ in _graph(_scripted_model("cust_42")).astream(_inputs(support.USER_MESSAGE)):
                pass
            return [after_ainvoke, trace.get_current_span() is caller]

    with support.recorded(capture_content=False):
        assert asyncio.run(main()) == [True, True]
        with outer_tracer.start_as_current_span("caller") as caller:
            for _ in _graph(_scripted_model("cust_42")).stream(_inputs(support.USER_MESSAGE)):
                break  # the graph's generator is closed, and its run ends, as the loop lets go of it
            assert trace.get_current_span() is caller


def test_steps_nest_as_the_graph_runs(llm: LLMServer, handler: Any) -> None:
    """Graph → nodes → the provider's LLM spans and the tool call, each under the step that ran it; the session
    root holds the graph; no LLM step of ours, since the openai SDK's instrumentation records the calls."""
    support.script(llm, "cust_42")
    run = support.run(_runner(_graph(_chat_openai(llm))), capture_content=False)
    spans = run.spans
    (graph,) = _named(spans, "invoke_agent LangGraph")
    attributes = graph.attributes or {}
    assert attributes[sc.AGENTOTEL_STEP_KIND] == sc.AGENTOTEL_STEP_KIND_VALUE_AGENT
    assert attributes[sc.GEN_AI_OPERATION_NAME] == sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT
    assert attributes[sc.GEN_AI_AGENT_NAME] == "LangGraph"
    root = _parent(graph, spans)
    assert root is not None and (root.attributes or {})[sc.AGENTOTEL_STEP_KIND] == sc.AGENTOTEL_STEP_KIND_VALUE_SESSION
    nodes = _named(spans, "agent") + _named(spans, "tools")
    assert len(nodes) == 3
    for node in nodes:
        assert (node.attributes or {})[sc.AGENTOTEL_STEP_KIND] == sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION
        assert _parent(node, spans) is graph
    chats = _named(spans, f"chat {support.MODEL}", PROVIDER_SCOPE)
    assert len(chats) == support.LLM_CALLS
    assert all(_parent_name(chat, spans) == "agent" for chat in chats)
    (tool_span,) = _named(spans, f"execute_tool {support.FETCH_TOOL}")
    assert _parent_name(tool_span, spans) == "tools"
    tool_attributes = tool_span.attributes or {}
    assert tool_attributes[sc.GEN_AI_TOOL_CALL_ID] == support.CALL_ID
    assert tool_attributes[sc.GEN_AI_OPERATION_NAME] == sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL
    assert sc.GEN_AI_TOOL_CALL_ARGUMENTS not in tool_attributes and sc.GEN_AI_TOOL_CALL_RESULT not in tool_attributes
    assert _llm_steps_of_ours(spans) == []
    assert all(s.end_time is not None for s in spans)


# --------------------------------------------------------------------------------------------------------------------
# Models: an LLM step of ours only where no provider instrumentation records the call


@pytest.mark.parametrize("capture_content", [False, True])
def test_a_model_no_provider_records_gets_an_llm_step(handler: Any, capture_content: bool) -> None:
    run = support.run(_runner(_graph(_scripted_model("cust_42"))), capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=False)
    steps = _llm_steps_of_ours(run.spans)
    assert len(steps) == support.LLM_CALLS
    first = steps[0] if steps[0].start_time <= steps[1].start_time else steps[1]
    attributes = first.attributes or {}
    assert first.name == f"chat {support.MODEL}" and first.kind is SpanKind.CLIENT
    assert attributes[sc.GEN_AI_OPERATION_NAME] == sc.GEN_AI_OPERATION_NAME_VALUE_CHAT
    assert attributes[sc.GEN_AI_PROVIDER_NAME] == sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI
    assert attributes[sc.GEN_AI_REQUEST_MODEL] == attributes[sc.GEN_AI_RESPONSE_MODEL] == support.MODEL
    assert (attributes[sc.GEN_AI_USAGE_INPUT_TOKENS], attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        support.FIRST_CALL_TOKENS
    )
    assert tuple(attributes[sc.AGENTOTEL_RESPONSE_TOOL_CALL_IDS]) == (support.CALL_ID,)
    assert tuple(attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("tool_calls",)
    assert attributes[sc.AGENTOTEL_USAGE_COST_AMOUNT] > 0
    assert all(_parent_name(step, run.spans) == "agent" for step in steps)
    if not capture_content:
        support.assert_no_content(run)
        assert sc.GEN_AI_INPUT_MESSAGES not in attributes
        return
    inputs = json.loads(str(attributes[sc.GEN_AI_INPUT_MESSAGES]))
    assert [m["role"] for m in inputs] == ["system", "user"]
    assert inputs[0]["parts"] == [{"type": "text", "content": support.INSTRUCTIONS}]
    outputs = json.loads(str(attributes[sc.GEN_AI_OUTPUT_MESSAGES]))
    assert outputs == [
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": support.CALL_ID,
                    "name": support.FETCH_TOOL,
                    "arguments": {"customer_id": "cust_42"},
                }
            ],
            "finish_reason": "tool_call",
        }
    ]
    second = json.loads(str((steps[1] if steps[1] is not first else steps[0]).attributes[sc.GEN_AI_INPUT_MESSAGES]))
    assert second[-1]["role"] == "tool" and second[-1]["parts"][0]["id"] == support.CALL_ID
    support.assert_content_recorded(run)


@pytest.fixture
def openai_uninstrumented() -> Iterator[None]:
    instrumentor = OpenAIInstrumentor()
    was = instrumentor.is_instrumented_by_opentelemetry
    if was:
        instrumentor.uninstrument()
    try:
        yield
    finally:
        if was:
            instrumentor.instrument()


def test_chat_openai_gets_an_llm_step_when_the_openai_sdk_is_not_instrumented(
    llm: LLMServer, handler: Any, openai_uninstrumented: None
) -> None:
    support.script(llm, "cust_42")
    run = support.run(_runner(_graph(_chat_openai(llm))), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=False)
    support.assert_no_content(run)
    assert _named(run.spans, f"chat {support.MODEL}", PROVIDER_SCOPE) == []
    steps = _llm_steps_of_ours(run.spans)
    assert len(steps) == support.LLM_CALLS
    assert all((s.attributes or {})[sc.GEN_AI_PROVIDER_NAME] == sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI for s in steps)
    assert all(_parent_name(step, run.spans) == "agent" for step in steps)


class _Draft(TypedDict):
    text: str


def test_a_step_the_app_opens_inside_a_node_parents_what_it_runs(handler: Any) -> None:
    """An `@agentotel.operation` a node calls the model from is the model step's parent, not the node."""
    model = _scripted_model("cust_42")

    @agentotel.operation("draft_reply")
    def draft() -> str:
        return str(model.invoke("draft the reply").content)

    def answer(state: _Draft) -> _Draft:
        return {"text": draft()}

    builder = StateGraph(_Draft)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    with support.recorded(capture_content=False) as captured:
        builder.compile(name="writer").invoke({"text": ""})
    spans = captured.spans
    (step,) = _llm_steps_of_ours(spans)
    assert _parent_name(step, spans) == "draft_reply"
    (operation,) = _named(spans, "draft_reply")
    assert _parent_name(operation, spans) == "answer"


@pytest.mark.parametrize("provider", ["openai", "none"])
def test_a_model_called_from_a_thread_of_its_own_nests_under_its_node(
    llm: LLMServer, handler: Any, provider: str
) -> None:
    """A node that calls the model from a thread it starts (which carries no context), handing it the node's
    config: the call's LLM step (the openai SDK's, or ours) is still under the node."""
    support.script(llm, "cust_42")
    model = _chat_openai(llm) if provider == "openai" else _scripted_model("cust_42")

    def answer(state: _Draft, config: RunnableConfig) -> _Draft:
        replies: list[str] = []
        worker = threading.Thread(target=lambda: replies.append(str(model.invoke("reply", config).content)))
        worker.start()
        worker.join(timeout=60)
        return {"text": replies[0]}

    builder = StateGraph(_Draft)
    builder.add_node("answer", answer)
    builder.add_edge(START, "answer")
    builder.add_edge("answer", END)
    with support.recorded(capture_content=False) as captured:
        builder.compile(name="writer").invoke({"text": ""})
    spans = captured.spans
    steps = [s for s in spans if (s.attributes or {}).get(sc.AGENTOTEL_STEP_KIND) == sc.AGENTOTEL_STEP_KIND_VALUE_LLM]
    assert len(steps) == 1, [s.name for s in spans]
    assert _scope(steps[0]) == (PROVIDER_SCOPE if provider == "openai" else OURS)
    assert _parent_name(steps[0], spans) == "answer"


def test_runs_beyond_the_limit_are_not_recorded(handler: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler follows at most `MAX_RUNS` runs at once: beyond that a run gets no step, and the graph runs on."""
    monkeypatch.setattr(lc, "MAX_RUNS", 1)
    with support.recorded(capture_content=False) as captured:
        answer = _runner(_graph(_scripted_model("cust_42")))(support.USER_MESSAGE)
    assert answer == support.ANSWER
    assert [s.name for s in captured.spans] == ["invoke_agent LangGraph"]


# --------------------------------------------------------------------------------------------------------------------
# Tools, called directly and by a graph


def _billing_tool() -> BaseTool:
    @agentotel.operation("load_customer")
    def load(customer_id: str) -> dict[str, Any]:
        return support.fetch_customer_data(customer_id)

    @tool(support.FETCH_TOOL)
    def fetch_customer_data(customer_id: str) -> dict[str, Any]:
        """Fetch the customer's record by id."""
        return load(customer_id)

    return fetch_customer_data


def test_a_tool_called_directly_is_a_tool_call_with_its_nested_steps(handler: Any) -> None:
    fetch = _billing_tool()
    call = {"type": "tool_call", "name": support.FETCH_TOOL, "args": {"customer_id": "cust_42"}, "id": "call_direct"}
    with support.recorded(capture_content=True) as captured:
        fetch.invoke({"customer_id": "cust_42"})
        message = asyncio.run(fetch.ainvoke(call))
    assert message.tool_call_id == "call_direct"
    spans = captured.spans
    tools = _named(spans, f"execute_tool {support.FETCH_TOOL}")
    assert len(tools) == 2
    for tool_span in tools:
        attributes = tool_span.attributes or {}
        assert json.loads(str(attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"customer_id": "cust_42"}
        assert json.loads(str(attributes[sc.GEN_AI_TOOL_CALL_RESULT]))["name"] == "Ada"
        assert attributes[sc.GEN_AI_TOOL_DESCRIPTION] == "Fetch the customer's record by id."
    assert [(t.attributes or {}).get(sc.GEN_AI_TOOL_CALL_ID) for t in tools] == [None, "call_direct"]
    operations = _named(spans, "load_customer")
    assert len(operations) == 2
    assert [_parent(op, spans) for op in operations] == tools


def test_a_tool_error_reported_as_text_fails_its_step(handler: Any) -> None:
    """A `ToolException` the tool turns into text for the model (a `ToolMessage` with `status="error"`): the step
    fails; the text (which may quote the arguments) is recorded only with content capture. (Called without a tool
    call id, a tool returns the bare text, and LangChain tells no handler it was an error.)"""

    @tool("refund")
    def refund(customer_id: str) -> str:
        """Refund the duplicate charge."""
        raise ToolException(f"no duplicate charge for {customer_id}")

    refund.handle_tool_error = True

    for capture_content in (False, True):
        with support.recorded(capture_content=capture_content) as captured:
            call = {"type": "tool_call", "name": "refund", "args": {"customer_id": "cust_42"}, "id": "call_refund"}
            assert refund.invoke(call).content == "no duplicate charge for cust_42"
        (span,) = _named(captured.spans, "execute_tool refund")
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})[sc.ERROR_TYPE] == "ToolException"
        (event,) = span.events
        message = (event.attributes or {})[sc.EXCEPTION_MESSAGE]
        assert message == ("no duplicate charge for cust_42" if capture_content else "")


class _State(TypedDict):
    total: int


def test_a_subgraph_is_an_agent_step_of_its_own(handler: Any) -> None:
    """A compiled graph run as a node, and one invoked inside a node: each an agent step under the node that runs
    it, its own nodes under it."""

    def add_one(state: _State) -> _State:
        return {"total": state["total"] + 1}

    inner = StateGraph(_State)
    inner.add_node("add_one", add_one)
    inner.add_edge(START, "add_one")
    inner.add_edge("add_one", END)
    billing = inner.compile(name="billing")

    def calls_billing(state: _State) -> _State:
        return billing.invoke(state)

    outer = StateGraph(_State)
    outer.add_node("as_node", billing)
    outer.add_node("calls_billing", calls_billing)
    outer.add_edge(START, "as_node")
    outer.add_edge("as_node", "calls_billing")
    outer.add_edge("calls_billing", END)
    graph = outer.compile(name="support")

    with support.recorded(capture_content=False) as captured:
        assert graph.invoke({"total": 0}) == {"total": 2}
    spans = captured.spans
    (root,) = _named(spans, "invoke_agent support")
    subgraphs = _named(spans, "invoke_agent billing")
    assert sorted(_parent_name(s, spans) or "" for s in subgraphs) == ["as_node", "calls_billing"]
    for node in _named(spans, "as_node") + _named(spans, "calls_billing"):
        assert _parent(node, spans) is root
    inner_nodes = _named(spans, "add_one")
    assert len(inner_nodes) == 2 and all(_parent(n, spans) in subgraphs for n in inner_nodes)
    for subgraph in subgraphs:
        parent = _parent(subgraph, spans)
        assert parent is not None and parent.start_time <= subgraph.start_time
        assert subgraph.end_time <= parent.end_time


# --------------------------------------------------------------------------------------------------------------------
# Never breaking the app


@pytest.mark.parametrize(
    "broken",
    ["start_agent", "start_step", "start_tool", "_record_tool_output", "end_step", "LLMCall", "_record_result"],
)
def test_a_failing_handler_never_breaks_the_graph(
    handler: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(lc, broken, fail)
    with caplog.at_level(logging.WARNING, logger="langchain_core"):
        run = support.run(_runner(_graph(_scripted_model(None))), capture_content=True)
    assert run.error is None and run.response == support.ANSWER
    reached = [r.getMessage() for r in caplog.records if r.name.startswith("langchain_core")]
    assert reached == [], "the handler's fault reached LangChain"
    assert trace.get_current_span() is trace.INVALID_SPAN, "a step was left current"


def test_uninstrument_removes_the_handler(llm: LLMServer, handler: Any) -> None:
    from langchain_core.tracers.context import _configure_hooks

    instrumentor = lc.LangChainInstrumentor()
    instrumentor.uninstrument()
    try:
        assert not instrumentor.applied
        assert not any(hook[0].get() is handler for hook in _configure_hooks)
        support.script(llm, "cust_42")
        run = support.run(_runner(_graph(_chat_openai(llm))), capture_content=False)
        assert run.response == support.ANSWER
        ours = sorted(s.name for s in run.spans if _scope(s) == OURS)
        assert ours == ["invoke_agent session", "session_complete"], ours
        support.assert_counts_and_cost(run.live)  # the openai SDK's spans still count the calls
    finally:
        instrumentor.instrument()
    assert instrumentor.applied
    assert sum(1 for hook in _configure_hooks if hook[0].get() is handler) == 1
    support.script(llm, "cust_42")
    run = support.run(_runner(_graph(_chat_openai(llm))), capture_content=False)
    support.assert_seed_behaviour(run, failing=False)


def test_langchain_is_hooked_only_when_the_app_imports_it() -> None:
    code = textwrap.dedent(
        """
        import sys
        import agentotel
        from agentotel.instrumentation.langchain import LangChainInstrumentor, handler
        from agentotel.testing import capture

        agentotel.init()
        assert "langchain_core" not in sys.modules, "init() imported LangChain"
        assert not LangChainInstrumentor().applied and handler() is None
        from langchain_core.tools import tool
        assert LangChainInstrumentor().applied
        assert "langchain_core.tracers.context" not in sys.modules, "the hook imported LangSmith's tracer early"

        @tool
        def lookup(customer_id: str) -> str:
            '''Look the customer up.'''
            return customer_id

        with capture() as captured:
            lookup.invoke({"customer_id": "cust_42"})
        print([s.name for s in captured.spans])
        """
    )
    env = {**os.environ, "AGENTOTEL_STORE": "off"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['execute_tool lookup']", done.stdout + done.stderr


# --------------------------------------------------------------------------------------------------------------------
# Other LangChain tracers beside ours


def test_openinference_beside_ours_counts_each_call_once(llm: LLMServer, handler: Any) -> None:
    openinference = pytest.importorskip("openinference.instrumentation.langchain")
    instrumentor = openinference.LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=trace.get_tracer_provider())
    try:
        support.script(llm, "cust_42")
        run = support.run(_runner(_graph(_chat_openai(llm))), capture_content=False)
    finally:
        instrumentor.uninstrument()
    _dump(run.spans, "langchain-openinference.json")
    assert run.error is None and run.response == support.ANSWER
    assert any(_scope(s) == "openinference.instrumentation.langchain" for s in run.spans)
    for session in (run.live, run.rebuilt):
        support.assert_fetched_before_complete(session)
        support.assert_counts_and_cost(session)


_LANGSMITH_RUN = textwrap.dedent(
    """
    import json, sys, warnings
    warnings.simplefilter("ignore")
    import agentotel
    agentotel.init()
    from langchain_core.tracers.langchain import wait_for_all_tracers
    from agentotel.testing.llm_server import LLMServer
    from tests.frameworks import support, test_langchain as t

    with LLMServer() as llm:
        support.script(llm, "cust_42")
        graph = t._graph(t._chat_openai(llm))

        def agent(message):
            answer = t._answer(graph.invoke(t._inputs(message)))
            wait_for_all_tracers()  # LangSmith makes its spans from a background thread
            return answer

        run = support.run(agent, capture_content=False)
    t._dump(run.spans, "langchain-langsmith.json")
    assert run.error is None and run.response == support.ANSWER, run.error
    assert any(s.instrumentation_scope.name.startswith("langsmith") for s in run.spans), "LangSmith made no span"
    for session in (run.live, run.rebuilt):
        support.assert_fetched_before_complete(session)
        support.assert_counts_and_cost(session)
    """
)


def test_langsmith_otel_export_beside_ours_counts_each_call_once() -> None:
    """LangSmith's tracer exporting through OpenTelemetry only (onto the global tracer provider, agentotel's), in a
    process of its own: LangSmith keeps its settings and client for the life of the process. Its API endpoint is
    a closed loopback port: nothing leaves the machine."""
    pytest.importorskip("langsmith")
    env = {
        **os.environ,
        "AGENTOTEL_STORE": "off",
        "LANGSMITH_TRACING": "true",
        "LANGSMITH_OTEL_ENABLED": "true",
        "LANGSMITH_OTEL_ONLY": "true",
        "LANGSMITH_API_KEY": "lsv2-test-not-a-real-key",
        "LANGSMITH_ENDPOINT": "http://127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-c", _LANGSMITH_RUN],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
