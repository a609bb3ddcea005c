"""`agentotel.testing.rerun`: a recorded session re-runs the agent offline (the real `openai` / `anthropic` SDKs and
LangGraph, answered in-process in their own wire formats), reaching the same steps, tokens and cost; a change of the
agent is reported at the step where it left the recording, with the two requests and both replays."""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import anthropic
import httpx2
import openai
import pytest

import agentotel
from agentotel import semconv as sc
from agentotel import steps
from agentotel._rerun_hook import servable
from agentotel.cli_export import cmd_export
from agentotel.cli_render import Output
from agentotel.demo import MESSAGES, run_demo, support_agent
from agentotel.model import Session
from agentotel.sessions_file import load_session
from agentotel.testing import RecordingError, RerunDivergence, RerunStopped, capture, rerun
from agentotel.testing.llm_server import LLMServer, Reply, ToolCall

# --------------------------------------------------------------------------------------------------------------------
# Set-up


@contextmanager
def offline() -> Iterator[list[Any]]:
    """Nothing listens and nothing may be reached while the block runs: every IP connection the process tries fails
    (and is noted: the block must try none), and no API key or base URL is set."""
    attempts: list[Any] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def refused(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError(f"this test has no network: connect to {address}")
        connect(self, address)

    def refused_ex(self: socket.socket, address: Any) -> int:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            return 111
        return connect_ex(self, address)

    names = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL")
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        with (
            mock.patch.object(socket.socket, "connect", refused),
            mock.patch.object(socket.socket, "connect_ex", refused_ex),
        ):
            yield attempts
    finally:
        os.environ.update(saved)
    assert attempts == [], f"the re-run tried the network: {attempts}"


@pytest.fixture
def demo_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo agent's client is put back after the test (the agent keeps it in a module global)."""
    monkeypatch.setattr(support_agent, "_client", None)


@pytest.fixture(scope="module")
def demo_sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo's sessions (run on loopback, content capture on), exported from its store as `agentotel export`
    does: `failing` (the guide's "charged twice": one LLM call, then the tool fails) and `billing` (two calls)."""
    folder = tmp_path_factory.mktemp("demo")
    store = folder / "demo.db"
    run = run_demo(store)
    assert run.stored
    by_message = dict(zip(run.messages, run.sessions, strict=True))
    exported = {}
    for name, message in (("failing", MESSAGES[2]), ("billing", MESSAGES[1])):
        path = folder / f"{name}.jsonl"
        args = argparse.Namespace(
            ref=by_message[message].id, source=str(store), output=str(path), require_content=True, json=False
        )
        assert cmd_export(args, Output(io.StringIO())) == 0
        exported[name] = path
    return exported


def _tools_of(session: Session) -> list[str | None]:
    return [e.action_type for e in session.action_events]


def _figures(session: Session) -> tuple[Any, ...]:
    calls = session.llm_calls
    return (
        session.input_tokens,
        session.output_tokens,
        session.cost,
        [e.cache_read_tokens for e in calls],
        [e.attributes.get(sc.GEN_AI_RESPONSE_ID) for e in calls],
        [e.attributes.get(sc.GEN_AI_RESPONSE_MODEL) for e in calls],
        [list(e.attributes.get(sc.GEN_AI_RESPONSE_FINISH_REASONS) or ()) for e in calls],
        [e.attributes.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS) for e in calls],
    )


# --------------------------------------------------------------------------------------------------------------------
# The demo's failing session


def test_the_demo_failing_session_reruns_offline_to_the_same_end(
    demo_sessions: dict[str, Path], demo_client: None
) -> None:
    recording = load_session(demo_sessions["failing"])
    assert recording.end_state == "Fail" and _tools_of(recording) == ["classify_intent", "fetch_customer_data"]
    with offline(), rerun(demo_sessions["failing"]) as run:
        support_agent.use_client(openai.OpenAI())  # no key, no base URL: the real SDK, as the guide's code makes it
        with pytest.raises(ValueError, match="customer_id cannot be None"):
            support_agent.run_support_agent(MESSAGES[2])
    session = run.session
    assert session.id != recording.id, "a new run, not the recording"
    assert _tools_of(session) == _tools_of(recording)
    assert session.end_state == "Fail" and session.end_state_reason == recording.end_state_reason
    assert session.first_error is not None and session.first_error.action_type == "fetch_customer_data"
    assert _figures(session) == _figures(recording) and session.cost > 0
    assert [(c.index, c.matched, c.served) for c in run.calls] == [(1, True, True)]
    assert run.divergences == []


def test_the_demo_billing_session_reruns_with_both_calls_answered(
    demo_sessions: dict[str, Path], demo_client: None
) -> None:
    recording = load_session(demo_sessions["billing"])
    with offline(), rerun(demo_sessions["billing"]) as run:
        support_agent.use_client(openai.OpenAI())
        answer = support_agent.run_support_agent(MESSAGES[1])
    assert answer == recording.llm_calls[-1].returns[0]["parts"][0]["content"]
    assert run.session.end_state == "Success" and _tools_of(run.session) == _tools_of(recording)
    assert _figures(run.session) == _figures(recording)
    assert [c.matched for c in run.calls] == [True, True]


def test_a_changed_prompt_fails_naming_the_step_and_showing_both_requests(
    demo_sessions: dict[str, Path], demo_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask = support_agent._ask
    monkeypatch.setattr(support_agent, "_ask", lambda prompt: ask(prompt.replace("Classify:", "Classify the intent:")))
    with pytest.raises(RerunDivergence) as raised, offline(), rerun(demo_sessions["failing"]) as run:
        support_agent.use_client(openai.OpenAI())
        support_agent.run_support_agent(MESSAGES[2])
    message = str(raised.value)
    assert message.startswith(
        f"agentotel re-run of {demo_sessions['failing']} diverged at LLM call 1 of 1 (chat gpt-4o): the request "
        "differs from the recorded one."
    )
    assert "-user: Classify: I was charged twice for my subscription" in message
    assert "+user: Classify the intent: I was charged twice for my subscription" in message
    assert "The recorded session, around that step:" in message and "This run, around that step:" in message
    recorded_part, now_part = message.split("This run, around that step:")
    assert "LLM Call (gpt-4o)   ← DIVERGES HERE" in recorded_part and "← DIVERGES HERE" in now_part
    assert "Action: fetch_customer_data   ← PROBLEM" in recorded_part, "the recorded replay goes on past the step"
    # Strict: the model call got an error in OpenAI's format, so the agent stopped there (no tool ran).
    assert isinstance(raised.value.__cause__, openai.BadRequestError)
    assert _tools_of(run.session) == ["classify_intent"]
    assert [(c.matched, c.served) for c in run.calls] == [(False, False)]
    assert [d.step for d in raised.value.divergences] == ["LLM call 1 of 1 (chat gpt-4o)"]


def test_not_strict_serves_the_recorded_reply_and_reports_every_divergence(
    demo_sessions: dict[str, Path], demo_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ask = support_agent._ask
    monkeypatch.setattr(support_agent, "_ask", lambda prompt: ask(prompt.upper()))
    with offline(), rerun(demo_sessions["billing"], strict=False) as run:
        support_agent.use_client(openai.OpenAI())
        support_agent.run_support_agent(MESSAGES[1])
    assert [d.step for d in run.divergences] == ["LLM call 1 of 2 (chat gpt-4o)", "LLM call 2 of 2 (chat gpt-4o)"]
    assert all(d.reason == "the request differs from the recorded one" for d in run.divergences)
    assert "+user: CLASSIFY: MY ACCOUNT C-1042" in run.divergences[0].diff
    assert run.session.end_state == "Success", "the recorded replies were served: the run went on to the end"
    assert [(c.matched, c.served) for c in run.calls] == [(False, True), (False, True)]


# --------------------------------------------------------------------------------------------------------------------
# Calls too many, too few, another tool sequence


def _asker(prompts: list[str], *, notify: bool = False) -> list[str]:
    """A small agent: one model call per prompt in one session, and a `notify` tool call at the end if asked."""
    client = openai.OpenAI(max_retries=0)
    answers = []
    with agentotel.session("asker"):
        for prompt in prompts:
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}])
            answers.append(reply.choices[0].message.content or "")
        if notify:
            notify_user(answers[-1])
    return answers


@agentotel.tool
def notify_user(text: str) -> str:
    return f"sent: {text}"


def _recorded(run_agent: Callable[[], Any], *replies: Reply, capture_content: bool = True) -> Session:
    """The session `run_agent` records against a scripted model on loopback (before any test blocks the network)."""
    with LLMServer() as server:
        server.script(*replies)
        os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"] = server.openai_base_url, "sk-test"
        try:
            with capture(capture_content=capture_content) as cap:
                run_agent()
        finally:
            del os.environ["OPENAI_BASE_URL"], os.environ["OPENAI_API_KEY"]
    return cap.session()


def test_a_call_the_recording_does_not_have_stops_the_run() -> None:
    recording = _recorded(lambda: _asker(["one"]), Reply("first"))
    expected = r"diverged at LLM call 2 \(the recording has 1\): a call the recording"
    with pytest.raises(RerunDivergence, match=expected), offline(), rerun(recording) as run:
        _asker(["one", "two"])
    assert [(c.matched, c.served) for c in run.calls] == [(True, True), (False, False)]
    assert "+user: two" in run.divergences[0].diff


def test_a_recorded_call_not_made_is_reported_at_the_end() -> None:
    recording = _recorded(lambda: _asker(["one", "two"]), Reply("first"), Reply("second"))
    with pytest.raises(RerunDivergence) as raised, offline(), rerun(recording):
        assert _asker(["one"]) == ["first"]
    assert str(raised.value).startswith(
        "agentotel re-run of session "
        f"{recording.id} diverged at LLM call 2 of 2 (chat gpt-4o-mini): the recorded call was not made."
    )
    assert "-user: two" in str(raised.value)


def test_another_tool_sequence_is_a_divergence() -> None:
    recording = _recorded(lambda: _asker(["one"], notify=True), Reply("first"))
    with offline(), rerun(recording, strict=False) as run:
        _asker(["one"], notify=False)
    assert [(d.kind, d.step) for d in run.divergences] == [("steps", "the tool sequence")]
    assert "-notify_user" in run.divergences[0].diff
    with offline(), rerun(recording) as run:
        _asker(["one"], notify=True)
    assert run.divergences == []


# --------------------------------------------------------------------------------------------------------------------
# Each wire format, plain and streamed

OPENAI_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up a word",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
]
RESPONSES_TOOLS = [{"type": "function", **OPENAI_TOOLS[0]["function"]}]
ANTHROPIC_TOOLS = [{"name": "lookup", "description": "Look up a word", "input_schema": {"type": "object"}}]


def _chat_turn(client: openai.OpenAI, messages: list[Any], stream: bool) -> tuple[str, list[dict[str, Any]]]:
    if not stream:
        message = (
            client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS)
            .choices[0]
            .message
        )
        return message.content or "", [c.model_dump() for c in message.tool_calls or []]
    text, calls = "", {}
    chunks = client.chat.completions.create(
        model="gpt-4o-mini", messages=messages, tools=OPENAI_TOOLS, stream=True, stream_options={"include_usage": True}
    )
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                found = calls.setdefault(
                    call.index, {"id": call.id, "type": "function", "function": {"name": "", "arguments": ""}}
                )
                found["function"]["name"] += (call.function.name or "") if call.function else ""
                found["function"]["arguments"] += (call.function.arguments or "") if call.function else ""
    return text, list(calls.values())


def _chat_agent(stream: bool) -> str:
    client = openai.OpenAI(max_retries=0)
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a cat?"}]
    _, calls = _chat_turn(client, messages, stream)
    messages += [{"role": "assistant", "content": None, "tool_calls": calls}]
    messages += [{"role": "tool", "tool_call_id": calls[0]["id"], "content": json.dumps({"cat": "a small feline"})}]
    return _chat_turn(client, messages, stream)[0]


def _responses_agent(stream: bool) -> str:
    client = openai.OpenAI(max_retries=0)
    items: list[Any] = [{"role": "user", "content": "What is a cat?"}]

    def turn() -> Any:
        if stream:
            with client.responses.stream(
                model="gpt-4o-mini", instructions="Be brief.", input=items, tools=RESPONSES_TOOLS
            ) as events:
                return events.get_final_response()
        return client.responses.create(
            model="gpt-4o-mini", instructions="Be brief.", input=items, tools=RESPONSES_TOOLS
        )

    call = next(item for item in turn().output if item.type == "function_call")
    items += [{"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments}]
    items += [
        {"type": "function_call_output", "call_id": call.call_id, "output": json.dumps({"cat": "a small feline"})}
    ]
    return str(turn().output_text)


def _anthropic_agent(stream: bool) -> str:
    client = anthropic.Anthropic(max_retries=0)  # made inside the capture: its own tracing records content
    messages: list[Any] = [{"role": "user", "content": "What is a cat?"}]

    def turn() -> Any:
        options: dict[str, Any] = {"model": "claude-3-5-haiku-latest", "max_tokens": 100, "system": "Be brief."}
        if stream:
            with client.messages.stream(messages=messages, tools=ANTHROPIC_TOOLS, **options) as events:
                return events.get_final_message()
        return client.messages.create(messages=messages, tools=ANTHROPIC_TOOLS, **options)

    first = turn()
    use = next(block for block in first.content if block.type == "tool_use")
    messages += [{"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]}]
    messages += [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "a small feline"}]}
    ]
    return str(turn().content[0].text)


AGENTS: dict[str, Callable[[bool], str]] = {
    "chat": _chat_agent,
    "responses": _responses_agent,
    "anthropic": _anthropic_agent,
}
ENDPOINTS = {"chat": "chat.completions", "responses": "responses", "anthropic": "messages"}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("api", list(AGENTS))
def test_each_wire_format_reruns_with_the_recorded_answers_and_usage(
    api: str, stream: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = AGENTS[api]
    replies = (
        Reply(
            tool_calls=[ToolCall("call_cat", "lookup", {"q": "cat"})],
            input_tokens=120,
            output_tokens=18,
            cached_tokens=20,
            reasoning_tokens=6,
            chunks=3,
        ),
        Reply(
            "A cat is a small feline.",
            input_tokens=150,
            output_tokens=7,
            cached_tokens=100,
            cache_creation_tokens=10,
            chunks=3,
        ),
    )
    with LLMServer() as server:
        server.script(*replies)
        with monkeypatch.context() as env:
            env.setenv("OPENAI_BASE_URL", server.openai_base_url)
            env.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
            env.setenv("OPENAI_API_KEY", "sk-test")
            env.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
            with capture(capture_content=True) as cap, agentotel.session("cats"):
                recorded_answer = agent(stream)
        assert len(server.requests) == 2
    recording = cap.session()
    assert len(recording.llm_calls) == 2 and recording.input_tokens == 270
    with offline(), rerun(recording) as run, agentotel.session("cats"):
        answer = agent(stream)
    assert answer == recorded_answer == "A cat is a small feline."
    assert [c.endpoint for c in run.calls] == [ENDPOINTS[api]] * 2
    assert [c.matched for c in run.calls] == [True, True] and run.divergences == []
    assert _figures(run.session) == _figures(recording) and run.session.cost > 0
    assert [e.returns for e in run.session.llm_calls] == [e.returns for e in recording.llm_calls]


# --------------------------------------------------------------------------------------------------------------------
# A framework: LangGraph's ReAct agent on LangChain's ChatOpenAI

LANGGRAPH_CALLS: list[Any] = []


def _langgraph_agent(*, streaming: bool) -> str:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import ToolNode, create_react_agent

    @tool("fetch_customer_data")
    def fetch_customer_data(customer_id: str | None) -> dict[str, Any]:
        """Fetch the customer's record by id."""
        LANGGRAPH_CALLS.append(customer_id)
        if customer_id is None:
            raise ValueError("customer_id cannot be None")
        return {"id": customer_id, "name": "Ada", "plan": "pro"}

    model = ChatOpenAI(model="gpt-4o-mini", max_retries=0, streaming=streaming, stream_usage=True)
    graph = create_react_agent(
        model, ToolNode([fetch_customer_data], handle_tool_errors=True), prompt="You are support."
    )
    with agentotel.session("support"):
        state = graph.invoke({"messages": [("user", "I was charged twice; I am cust_42")]})
    return str(state["messages"][-1].content)


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved:DeprecationWarning")
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("customer_id", ["cust_42", None], ids=["fetched", "tool-fails"])
def test_a_langgraph_agent_reruns_with_real_or_recorded_tools(
    customer_id: str | None, streaming: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("langgraph.prebuilt")
    pytest.importorskip("langchain_openai")
    replies = (
        Reply(
            tool_calls=[ToolCall("call_1", "fetch_customer_data", {"customer_id": customer_id})],
            input_tokens=100,
            output_tokens=10,
        ),
        Reply("I have refunded the duplicate charge.", input_tokens=150, output_tokens=8),
    )
    with LLMServer() as server, monkeypatch.context() as env:
        server.script(*replies)
        env.setenv("OPENAI_BASE_URL", server.openai_base_url)
        env.setenv("OPENAI_API_KEY", "sk-test")
        with capture(capture_content=True) as cap:
            recorded_answer = _langgraph_agent(streaming=streaming)
    recording = cap.session()
    assert _tools_of(recording) == ["fetch_customer_data"]
    LANGGRAPH_CALLS.clear()
    for tools in ("real", "recorded"):
        with offline(), rerun(recording, tools=tools) as run:
            answer = _langgraph_agent(streaming=streaming)
        assert answer == recorded_answer
        assert run.divergences == [] and [c.matched for c in run.calls] == [True, True]
        assert _tools_of(run.session) == _tools_of(recording) and _figures(run.session) == _figures(recording)
        tool_now, tool_then = run.session.tool_calls[0], recording.tool_calls[0]
        assert (tool_now.params, tool_now.returns) == (tool_then.params, tool_then.returns)
        assert str(tool_now.error) == str(tool_then.error)
        assert ([customer_id] if tools == "real" else []) == LANGGRAPH_CALLS, "recorded tools are not run"
        LANGGRAPH_CALLS.clear()


# --------------------------------------------------------------------------------------------------------------------
# Recorded results of @agentotel.tool steps

REFUNDS: list[str] = []


class OrderNotFound(Exception):
    """An exception of the app's own, re-raised by type from the recording."""


def _refund(order_id: str) -> dict[str, str]:
    REFUNDS.append(order_id)  # the side effect a recorded re-run must not repeat
    if order_id.startswith("missing"):
        raise OrderNotFound(f"no order {order_id}")
    return {"refunded": order_id}


def _with_hook(func: Callable[..., Any], kind: str, attributes: dict[str, Any]) -> Callable[..., Any]:
    """`func` as the step wrapper passes it on with the re-run hook in place (`_rerun_hook.servable`), until the step
    wrapper does so itself (then once is enough)."""
    return func if hasattr(steps, "servable") else servable(func, kind, attributes)


refund = agentotel.tool("refund")(
    _with_hook(_refund, sc.AGENTOTEL_STEP_KIND_VALUE_TOOL, {sc.GEN_AI_TOOL_NAME: "refund"})
)


def _refunder(*orders: str) -> list[Any]:
    outcomes: list[Any] = []
    with agentotel.session("refunds"):
        for order in orders:
            try:
                outcomes.append(refund(order))
            except OrderNotFound as error:
                outcomes.append(error)
    return outcomes


def test_recorded_tools_are_served_not_run(cap_content: Any) -> None:
    _refunder("o-1", "missing-2")
    recording = cap_content.session("refunds")
    REFUNDS.clear()
    with rerun(recording, tools="recorded") as run:
        first, second = _refunder("o-1", "missing-2")
    assert REFUNDS == [], "the tool's code did not run"
    assert first == {"refunded": "o-1"}
    assert type(second) is OrderNotFound and str(second) == "no order missing-2"
    assert [(e.params, e.returns, str(e.error)) for e in run.session.tool_calls] == [
        (e.params, e.returns, str(e.error)) for e in recording.tool_calls
    ]
    with rerun(recording) as run:
        _refunder("o-1", "missing-2")
    assert REFUNDS == ["o-1", "missing-2"], "tools='real' (the default) runs them"


def test_other_tool_arguments_stop_a_strict_rerun_and_are_reported_otherwise(cap_content: Any) -> None:
    _refunder("o-1")
    recording = cap_content.session("refunds")
    REFUNDS.clear()
    with (
        pytest.raises(
            RerunDivergence, match=r"diverged at tool call refund \(1 of 1 recorded\): the arguments differ"
        ) as raised,
        rerun(recording, tools="recorded") as run,
    ):
        _refunder("o-9")
    assert '-  "order_id": "o-1"' in str(raised.value) and '+  "order_id": "o-9"' in str(raised.value)
    assert isinstance(raised.value.__cause__, RerunStopped), "the tool raised: the run stopped there"
    with rerun(recording, tools="recorded", strict=False) as run:
        assert _refunder("o-9") == [{"refunded": "o-1"}], "not strict: the recorded result anyway"
        with pytest.raises(RerunStopped, match=r"tool refund \(call 2\) was not run: the recording has no such call"):
            refund("o-10")  # a call the recording does not have cannot be answered, and is not run either
    assert [(d.step, d.reason) for d in run.divergences] == [
        ("tool call refund (1 of 1 recorded)", "the arguments differ from the recorded ones"),
        ("tool call refund (2 of 1 recorded)", "a call the recording does not have"),
    ]
    assert REFUNDS == []


def _triage(text: str) -> str:
    client = openai.OpenAI(max_retries=0)
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": f"Triage: {text}"}]
    )
    return reply.choices[0].message.content or ""


triage = agentotel.record_action("triage")(
    _with_hook(_triage, sc.AGENTOTEL_STEP_KIND_VALUE_ACTION, {sc.AGENTOTEL_ACTION_TYPE: "triage"})
)
"""An action around a model call."""


def test_a_recorded_step_that_called_a_model_runs_with_its_model_call_answered() -> None:
    def agent() -> tuple[str, Any]:
        with agentotel.session("triage"):
            return triage("refund order o-1"), refund("o-1")

    recording = _recorded(agent, Reply("refund"))
    REFUNDS.clear()
    with offline(), rerun(recording, tools="recorded") as run:
        assert agent() == ("refund", {"refunded": "o-1"})
    assert REFUNDS == [], "the plain tool was served"
    assert [c.matched for c in run.calls] == [True], "the action ran: its model call was made, and answered"
    assert run.divergences == [] and _tools_of(run.session) == ["triage", "refund"]


@pytest.mark.skipif(
    not hasattr(steps, "servable"), reason="the step wrapper does not call the re-run hook yet (steps.py patch)"
)
def test_the_demo_reruns_with_recorded_tools(demo_sessions: dict[str, Path], demo_client: None) -> None:
    recording = load_session(demo_sessions["billing"])
    # The customer records are gone: run for real, `fetch_customer_data` would raise LookupError.
    with offline(), rerun(recording, tools="recorded") as run, mock.patch.dict(support_agent.CUSTOMERS, clear=True):
        support_agent.use_client(openai.OpenAI())
        support_agent.run_support_agent(MESSAGES[1])
    assert run.divergences == [] and [c.matched for c in run.calls] == [True, True], "classify_intent ran its call"
    assert run.session.end_state == "Success" and _tools_of(run.session) == _tools_of(recording)
    fetched = [e for e in run.session.action_events if e.action_type == "fetch_customer_data"]
    assert fetched[0].returns == next(
        e.returns for e in recording.action_events if e.action_type == "fetch_customer_data"
    )


@pytest.mark.skipif(
    not hasattr(steps, "servable"), reason="the step wrapper does not call the re-run hook yet (steps.py patch)"
)
def test_a_plain_agentotel_tool_is_served_from_the_recording(cap_content: Any) -> None:
    calls: list[str] = []

    @agentotel.tool
    def send_email(to: str) -> str:
        calls.append(to)
        return f"sent to {to}"

    with agentotel.session("mailer"):
        send_email("ada@example.org")
    recording = cap_content.session("mailer")
    calls.clear()
    with rerun(recording, tools="recorded") as run, agentotel.session("mailer"):
        assert send_email("ada@example.org") == recording.tool_calls[0].returns
    assert calls == [] and run.divergences == []


# --------------------------------------------------------------------------------------------------------------------
# Recorded failures, errors, the interception's reach


def test_a_recorded_model_error_is_raised_again_as_the_same_sdk_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def limited() -> None:
        with pytest.raises(openai.RateLimitError):
            _asker(["hurry"])

    recording = _recorded(limited, Reply("slow down", status=429))
    assert recording.llm_calls[0].error is not None
    with offline(), rerun(recording) as run:
        client = openai.OpenAI()  # retries on 429 by default: the recorded error is answered without a retry
        with agentotel.session("asker"), pytest.raises(openai.RateLimitError, match="slow down"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hurry"}])
    assert [(c.matched, c.served) for c in run.calls] == [(True, True)]


def test_a_file_that_is_not_a_session_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("these are my notes\n", encoding="utf-8")
    with pytest.raises(RecordingError, match="neither an agentotel store") as raised:
        rerun(path)
    assert "\n" not in str(raised.value)
    with pytest.raises(RecordingError, match="no such file"):
        rerun(tmp_path / "missing.jsonl")


def test_a_session_without_content_cannot_be_rerun(tmp_path: Path) -> None:
    recording = _recorded(lambda: _asker(["one"]), Reply("first"))
    path = tmp_path / "no_content.jsonl"
    with pytest.warns(UserWarning, match="LLM call 1 of 1"):
        _recorded(lambda: _asker(["one"]), Reply("first"), capture_content=False).save(path)
    with pytest.raises(RecordingError) as raised:
        rerun(path)
    assert str(raised.value) == (
        f"cannot re-run {path}: it lacks what a re-run needs: LLM call 1 of 1 (chat gpt-4o-mini) has no input or "
        "output messages (record it with content capture on: agentotel.init(capture_content=True))"
    )
    with pytest.raises(ValueError, match="tools must be 'real' or 'recorded'"):
        rerun(recording, tools="mocked")  # type: ignore[arg-type]


def test_one_rerun_at_a_time_and_everything_is_put_back() -> None:
    recording = _recorded(lambda: _asker(["one"]), Reply("first"))
    handle = httpx2.HTTPTransport.handle_request
    with offline(), rerun(recording):
        assert httpx2.HTTPTransport.handle_request is not handle
        assert os.environ["OPENAI_API_KEY"] == "agentotel-rerun-no-key"
        with pytest.raises(RuntimeError, match="already running"), rerun(recording):
            pass
        _asker(["one"])
    assert httpx2.HTTPTransport.handle_request is handle
    assert os.environ.get("OPENAI_API_KEY") != "agentotel-rerun-no-key", "the stand-in key is gone"
    with pytest.raises(RerunDivergence), offline(), rerun(recording):
        _asker(["other"])
    assert httpx2.HTTPTransport.handle_request is handle, "put back after a divergence too"


def test_only_model_requests_are_answered_from_the_recording() -> None:
    recording = _recorded(lambda: _asker(["one"]), Reply("first"))
    with LLMServer() as server, rerun(recording):
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
        with agentotel.session("asker"):
            reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "one"}])
        assert reply.choices[0].message.content == "first"
        assert httpx2.get(f"{server.url}/v1/models").status_code == 404, "other requests still go out"
        assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]


def test_the_pytest_marker_reruns_the_test_and_fails_it_at_a_divergence(pytester: pytest.Pytester) -> None:
    recording = _recorded(lambda: _asker(["hello"]), Reply("Hi there."))
    (pytester.path / "sessions").mkdir()
    recording.save(pytester.path / "sessions" / "hello.jsonl")
    pytester.makepyfile(
        textwrap.dedent(
            """
            import openai
            import pytest

            import agentotel


            def ask(prompt):
                client = openai.OpenAI(max_retries=0)
                with agentotel.session("asker"):
                    reply = client.chat.completions.create(
                        model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}]
                    )
                return reply.choices[0].message.content


            @pytest.mark.agentotel_rerun("sessions/hello.jsonl")
            def test_same(agentotel_rerun):
                assert ask("hello") == "Hi there."
                assert agentotel_rerun.session.end_state == "Success"
                assert [c.matched for c in agentotel_rerun.calls] == [True]


            @pytest.mark.agentotel_rerun("sessions/hello.jsonl")
            def test_changed():
                ask("goodbye")
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--agentotel-no-summary")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*RerunDivergence: agentotel re-run of *hello.jsonl diverged at LLM call 1 of 1 (chat gpt-4o-mini)*"]
    )
    result.stdout.fnmatch_lines(["*-user: hello", "*+user: goodbye"])
