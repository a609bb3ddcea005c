"""The seed's support agent with its tools behind MCP: a hand-written loop asks the scripted model through the real
`openai` client, and the tool call it gets goes through an MCP `ClientSession` over stdio to the server in
`mcp_support_server.py` (a subprocess). The `tools/call` is the session's tool call; a traced server's spans join
the session's trace."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.client import Client
from mcp.types import CallToolResult
from openai import AsyncOpenAI
from otlp_receiver import OTLPReceiver

import agentotel
from agentotel import semconv as sc
from agentotel.instrumentation import mcp as mcp_instrumentation
from agentotel.model import Session, build_sessions
from agentotel.records import SpanRecord, records_from_spans
from agentotel.sources.otlp_json import records_from_otlp_json
from agentotel.testing.llm_server import LLMServer

from . import support

ROOT = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).resolve().parent / "mcp_support_server.py"
SERVER_SERVICE = "support-mcp-server"
STEP = f"execute_tool {support.FETCH_TOOL}"
SERVER_SPAN = f"tools/call {support.FETCH_TOOL}"
CLIENT_SPAN = f"MCP send tools/call {support.FETCH_TOOL}"


def _server(receiver: OTLPReceiver | None = None, *, capture_content: bool = False) -> StdioServerParameters:
    """The server's launch: untraced, or traced and exporting OTLP to `receiver`."""
    env = {"AGENTOTEL_STORE": "off", "PYTHONPATH": str(ROOT)}
    if receiver is not None:
        env.update(
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic",  # the server calls no model; they take seconds
            OTEL_TRACES_EXPORTER="otlp",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="50",
            OTEL_SERVICE_NAME=SERVER_SERVICE,
            OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true" if capture_content else "false",
        )
    return StdioServerParameters(command=sys.executable, args=[str(SERVER)], env=env)


def _text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


async def _converse(llm: LLMServer, server: StdioServerParameters, message: str) -> str:
    """The seed's agent loop, its tools on the MCP server: the model's tool call becomes a `tools/call`, whose
    result (or error text) goes back to the model."""
    client = AsyncOpenAI(base_url=llm.openai_base_url, api_key="sk-test", max_retries=0)
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        tools: list[Any] = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.input_schema},
            }
            for t in listed.tools
        ]
        messages: list[Any] = [
            {"role": "system", "content": support.INSTRUCTIONS},
            {"role": "user", "content": message},
        ]
        first = await client.chat.completions.create(model=support.MODEL, messages=messages, tools=tools)
        call = (first.choices[0].message.tool_calls or [])[0]
        result = await session.call_tool(call.function.name, json.loads(call.function.arguments))  # type: ignore[union-attr]
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": _text(result)},
        ]
        second = await client.chat.completions.create(model=support.MODEL, messages=messages, tools=tools)
        return second.choices[0].message.content or ""


def _agent(llm: LLMServer, server: StdioServerParameters) -> Callable[[str], str]:
    return lambda message: asyncio.run(_converse(llm, server, message))


def _fetch_steps(session: Session) -> list[Any]:
    return [e for e in session.tool_calls if e.action_type == support.FETCH_TOOL]


@dataclass
class TracedRun:
    """A run of the agent against a traced server: the client's run, its records and the server's."""

    run: support.SupportRun
    local: list[SpanRecord]
    remote: list[SpanRecord]

    @property
    def joined(self) -> Session:
        """The session rebuilt from both processes' spans."""
        (session,) = [s for s in build_sessions([*self.local, *self.remote]) if s.id == self.run.live.id]
        return session


def _traced_run(customer_id: str | None, *, capture_content: bool = False) -> TracedRun:
    with LLMServer() as llm, OTLPReceiver("http/protobuf") as receiver:
        support.script(llm, customer_id)
        run = support.run(
            _agent(llm, _server(receiver, capture_content=capture_content)), capture_content=capture_content
        )
        # Exported by the server's batching processor, at the latest when it exits at the end of the connection.
        receiver.wait_for_spans(lambda spans: any(s.name == SERVER_SPAN for s in spans), timeout=30)
        remote = [r for request in receiver.requests for r in records_from_otlp_json(MessageToDict(request.message))]
    return TracedRun(run, records_from_spans(run.spans), remote)


@pytest.fixture(scope="module")
def traced() -> Callable[[str | None], TracedRun]:
    """The run against a traced server for a customer id, made once for the tests that read it (a traced server
    takes seconds to start)."""
    runs: dict[str | None, TracedRun] = {}

    def get(customer_id: str | None) -> TracedRun:
        if customer_id not in runs:
            runs[customer_id] = _traced_run(customer_id)
        return runs[customer_id]

    return get


# --------------------------------------------------------------------------------------------------------------------
# The seed


@pytest.mark.parametrize("capture_content", [False, True])
def test_mcp_agent_meets_the_seed(llm: LLMServer, capture_content: bool) -> None:
    support.script(llm, "cust_42")
    run = support.run(_agent(llm, _server()), capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=False)
    for session in (run.live, run.rebuilt):
        assert len(_fetch_steps(session)) == 1, session.replay()
    if capture_content:
        support.assert_content_recorded(run)
    else:
        support.assert_no_content(run)


def test_an_is_error_result_is_the_failed_tool_call(llm: LLMServer) -> None:
    """The server's tool raises `ValueError`; the client gets an `isError` result holding its text (the server
    raises it as MCP's `ToolError`), gives it to the model, and the model answers. The client only learns the text:
    the step fails as MCP's `tool_error` with that text as its message."""
    support.script(llm, None)
    run = support.run(_agent(llm, _server()), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    assert "customer_id cannot be None" in json.dumps(llm.requests[1].body["messages"][-1])
    for session in (run.live, run.rebuilt):
        support.assert_fetched_before_complete(session)
        support.assert_counts_and_cost(session)
        first = session.first_error
        assert first is not None and first.action_type == support.FETCH_TOOL, session.replay()
        assert first.error is not None and first.error.type == mcp_instrumentation.TOOL_ERROR, first.error
        assert "customer_id cannot be None" in first.error.message, first.error
    support.assert_no_content(run)
    # The seed's attribution wants the exception's type, `ValueError`, which only the server knows (see the traced
    # server's tests): the client's spans alone fail it on the type.
    with pytest.raises(AssertionError, match="tool_error"):
        support.assert_seed_behaviour(run, failing=True)


# --------------------------------------------------------------------------------------------------------------------
# A traced server


@pytest.mark.parametrize("customer_id", ["cust_42", None])
def test_a_traced_servers_tool_span_joins_the_session_under_the_tool_step(
    traced: Callable[[str | None], TracedRun], customer_id: str | None
) -> None:
    """MCP injects the trace context and baggage into the request's `_meta`: the server's `tools/call` span is a
    child of MCP's client span, itself inside agentotel's tool step, in the session's trace and session."""
    found = traced(customer_id)
    (step,) = [r for r in found.local if r.name == STEP]
    (client,) = [r for r in found.local if r.name == CLIENT_SPAN]
    (served,) = [r for r in found.remote if r.name == SERVER_SPAN]
    assert (client.kind, client.parent_span_id) == ("CLIENT", step.span_id)
    assert (served.kind, served.parent_span_id, served.trace_id) == ("SERVER", client.span_id, step.trace_id)
    assert served.service_name == SERVER_SERVICE
    assert served.attributes[sc.SESSION_ID] == found.run.live.id
    assert served.attributes[sc.GEN_AI_OPERATION_NAME] == sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL
    assert served.attributes[sc.GEN_AI_TOOL_NAME] == step.attributes[sc.GEN_AI_TOOL_NAME] == support.FETCH_TOOL
    assert sc.GEN_AI_TOOL_CALL_ARGUMENTS not in served.attributes  # content capture is off in the server too
    if customer_id is None:
        assert served.failed and served.exceptions, served
        assert (served.exceptions[0].type, served.exceptions[0].message) == ("ValueError", "customer_id cannot be None")
    else:
        assert not served.failed


@pytest.mark.parametrize("customer_id", ["cust_42", None])
def test_with_the_servers_spans_the_session_holds_one_tool_step(
    traced: Callable[[str | None], TracedRun], customer_id: str | None
) -> None:
    """The client's step and the server's `tools/call` span are one tool call (a tool span nested in one of the
    same tool); its error is the server's exception, the seed's `ValueError`."""
    session = traced(customer_id).joined
    assert len(_fetch_steps(session)) == 1, session.replay()
    support.assert_fetched_before_complete(session)
    support.assert_counts_and_cost(session)
    if customer_id is None:
        support.assert_tool_error_attributed(session)
    else:
        assert session.first_error is None, session.replay()


def test_a_traced_servers_span_carries_arguments_and_result_with_capture_on() -> None:
    found = _traced_run("cust_42", capture_content=True)
    (served,) = [r for r in found.remote if r.name == SERVER_SPAN]
    assert json.loads(served.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"customer_id": "cust_42"}
    assert json.loads(served.attributes[sc.GEN_AI_TOOL_CALL_RESULT])["name"] == "Ada"
    assert found.run.error is None


# --------------------------------------------------------------------------------------------------------------------
# One step per call


def test_client_call_tool_is_one_step(llm: LLMServer) -> None:
    """`mcp.Client.call_tool` calls `ClientSession.call_tool` inside: one step, not two."""

    async def call() -> CallToolResult:
        async with Client(_server()) as client:
            return await client.call_tool(support.FETCH_TOOL, {"customer_id": "cust_42"})

    run = support.run(lambda message: _text(asyncio.run(call())), capture_content=True)
    assert run.error is None, run.error
    assert [s.name for s in run.spans if s.name.startswith("execute_tool")] == [STEP]
    (step,) = _fetch_steps(run.live)
    assert step.params == {"customer_id": "cust_42"} and step.returns["name"] == "Ada"


def test_a_call_inside_a_frameworks_step_for_the_tool_adds_no_step(llm: LLMServer) -> None:
    """A framework that makes its own tool step around its MCP call (as Pydantic AI's MCP toolset does) keeps it as
    the only step."""
    fetch = agentotel.tool(support.FETCH_TOOL)

    async def call() -> str:
        async with stdio_client(_server()) as (read, write), ClientSession(read, write) as session:
            await session.initialize()

            @fetch
            async def framework_tool(customer_id: str) -> str:
                return _text(await session.call_tool(support.FETCH_TOOL, {"customer_id": customer_id}))

            return await framework_tool("cust_42")

    run = support.run(lambda message: asyncio.run(call()), capture_content=False)
    assert run.error is None, run.error
    assert [s.name for s in run.spans if s.name.startswith("execute_tool")] == [STEP]


# --------------------------------------------------------------------------------------------------------------------
# Never breaking the agent


def test_a_failing_result_hook_leaves_the_call_as_it_is(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(result: object) -> str:
        raise RuntimeError("hook fault")

    monkeypatch.setattr(mcp_instrumentation, "_text_of", broken)
    monkeypatch.setattr(mcp_instrumentation, "_value_of", broken)
    support.script(llm, None)
    run = support.run(_agent(llm, _server()), capture_content=True)
    assert run.error is None and run.response == support.ANSWER


def test_a_failing_call_hook_leaves_the_call_as_it_is(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: object, kwargs: object) -> tuple[str, object]:
        raise RuntimeError("hook fault")

    monkeypatch.setattr(mcp_instrumentation, "_tool_call", broken)
    support.script(llm, "cust_42")
    run = support.run(_agent(llm, _server()), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    assert not _fetch_steps(run.live)  # the call went through unrecorded


def test_an_error_the_call_raises_fails_the_step_and_is_raised(llm: LLMServer) -> None:
    async def call() -> None:
        async with stdio_client(_server()) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
        await session.call_tool(support.FETCH_TOOL, {"customer_id": "cust_42"})  # the connection is closed

    run = support.run(lambda message: str(asyncio.run(call())), capture_content=False)
    assert run.error is not None
    (step,) = _fetch_steps(run.live)
    assert step.error is not None and step.error.type.rsplit(".", 1)[-1] == type(run.error).__name__


def test_uninstrument_removes_the_hooks() -> None:
    instrumentor = mcp_instrumentation.MCPInstrumentor()
    instrumentor.uninstrument()
    try:
        assert not hasattr(ClientSession.call_tool, "__wrapped__")
        assert not hasattr(Client.call_tool, "__wrapped__")
    finally:
        instrumentor.instrument()
    assert hasattr(ClientSession.call_tool, "__wrapped__") and hasattr(Client.call_tool, "__wrapped__")


# --------------------------------------------------------------------------------------------------------------------
# Loading


def _python(code: str, disabled: str = "") -> subprocess.CompletedProcess[str]:
    """Runs `code` in a fresh interpreter; the LLM clients' instrumentations are off (importing them takes seconds,
    and nothing here calls a model), and so is what `disabled` names."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environ.update(
        AGENTOTEL_STORE="off",
        PYTHONPATH=str(ROOT),
        OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=f"openai,anthropic,{disabled}",
    )
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=environ, capture_output=True, text=True, timeout=120
    )


def test_init_does_not_import_mcp_and_hooks_it_when_the_app_does() -> None:
    done = _python(
        """
        import sys
        import agentotel
        agentotel.init()
        assert "mcp" not in sys.modules, "init() imported mcp"
        from mcp import ClientSession
        from mcp.server.mcpserver import MCPServer
        assert hasattr(ClientSession.call_tool, "__wrapped__")
        assert hasattr(MCPServer.call_tool, "__wrapped__")
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_disabled_instrumentation_leaves_mcp_alone() -> None:
    done = _python(
        """
        import agentotel
        agentotel.init()
        from mcp import ClientSession
        assert not hasattr(ClientSession.call_tool, "__wrapped__")
        print("ok")
        """,
        disabled="agentotel_mcp",
    )
    assert done.stdout.strip() == "ok", done.stderr
