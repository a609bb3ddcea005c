"""The seed's support agent in Google ADK (an `LlmAgent` with two function tools, run by a `Runner` over an in-memory
session service), its model ADK's `OpenAILlm` pointed at the scripted server: the seed's assertions on the session,
and what `GoogleADKInstrumentor` does to ADK's own spans (content capture, tool errors a callback answered)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from frameworks import support
from google.adk.agents import LlmAgent
from google.adk.integrations.openai import OpenAILlm
from google.adk.plugins.plugin_manager import PluginManager
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.adk.telemetry import context as adk_context
from google.adk.telemetry import tracing as adk_tracing
from google.genai import types
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.instrumentation import google_adk
from agentotel.instrumentation.google_adk import GoogleADKInstrumentor
from agentotel.testing.llm_server import LLMServer

ADK_SCOPE = "gcp.vertex.agent"
APP = "support"
USER = "customer"


def _answer_tool_error(tool: Any, args: dict[str, Any], tool_context: Any, error: Exception) -> dict[str, Any]:
    """The seed's `except ValueError: result = f"Error: {error}"`, as ADK says it: the model gets the error."""
    return {"error": f"Error: {error}"}


def _agent(server: LLMServer, *, answer_errors: bool = True) -> Callable[[str], str]:
    """The support agent: `agent(message)` runs one turn in a new ADK session and returns the final text."""
    # The app's own client, closed in the loop that used it (ADK's default one would be closed by the garbage
    # collector, after `asyncio.run` closed its loop).
    client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    agent = LlmAgent(
        name="support_agent",
        model=OpenAILlm(model=support.MODEL, client=client),
        instruction=support.INSTRUCTIONS,
        tools=[support.fetch_customer_data, support.lookup_invoice],
        on_tool_error_callback=_answer_tool_error if answer_errors else None,
    )
    sessions = InMemorySessionService()
    runner = Runner(agent=agent, app_name=APP, session_service=sessions)

    async def turn(message: str) -> str:
        session = await sessions.create_session(app_name=APP, user_id=USER)
        answer = ""
        content = types.Content(role="user", parts=[types.Part(text=message)])
        try:
            async for event in runner.run_async(user_id=USER, session_id=session.id, new_message=content):
                if event.is_final_response() and event.content and event.content.parts:
                    answer = "".join(part.text or "" for part in event.content.parts)
        finally:
            await client.close()
        return answer

    return lambda message: asyncio.run(turn(message))


def _adk_spans(run: support.SupportRun, prefix: str) -> list[ReadableSpan]:
    return [
        s
        for s in run.spans
        if s.instrumentation_scope is not None
        and s.instrumentation_scope.name == ADK_SCOPE
        and s.name.startswith(prefix)
    ]


def _tool_span(run: support.SupportRun) -> ReadableSpan:
    spans = _adk_spans(run, f"execute_tool {support.FETCH_TOOL}")
    assert len(spans) == 1, [s.name for s in run.spans]
    return spans[0]


# --------------------------------------------------------------------------------------------------------------------
# The seed's assertions


@pytest.mark.parametrize("capture_content", [False, True])
def test_adk_agent_meets_the_seed(llm: LLMServer, capture_content: bool) -> None:
    support.script(llm, "cust_42")
    run = support.run(_agent(llm), capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER, run.error
    support.assert_seed_behaviour(run, failing=False)
    if capture_content:
        support.assert_content_recorded(run)
    else:
        support.assert_no_content(run)


def test_adk_agent_attributes_the_tool_error(llm: LLMServer) -> None:
    support.script(llm, None)
    run = support.run(_agent(llm), capture_content=False)
    assert run.error is None and run.response == support.ANSWER, run.error
    support.assert_seed_behaviour(run, failing=True)
    support.assert_no_content(run)


# --------------------------------------------------------------------------------------------------------------------
# ADK's own spans, as the instrumentor configures them


def test_adk_spans_nest_agentotel_chat_under_adk_model_call(llm: LLMServer) -> None:
    """The shape agentotel's model reads: ADK's agent span holds its model calls and the tool call, and each of
    agentotel's `chat` spans is the child of ADK's `generate_content` span of the same call."""
    support.script(llm, "cust_42")
    run = support.run(_agent(llm), capture_content=False)
    by_id = {s.context.span_id: s for s in run.spans}
    (agent,) = _adk_spans(run, "invoke_agent ")
    model_calls = _adk_spans(run, "generate_content ")
    chats = [s for s in run.spans if s.attributes and s.attributes.get(sc.AGENTOTEL_STEP_KIND) == "llm"]
    assert len(model_calls) == len(chats) == support.LLM_CALLS
    for chat in chats:
        assert chat.parent is not None and by_id[chat.parent.span_id] in model_calls
    for child in [*model_calls, _tool_span(run)]:
        assert child.parent is not None and child.parent.span_id == agent.context.span_id
    usage = [(s.attributes or {}).get(sc.GEN_AI_USAGE_INPUT_TOKENS) for s in model_calls]
    assert usage == [support.FIRST_CALL_TOKENS[0], support.SECOND_CALL_TOKENS[0]]


OFF, SPAN, EVENT = "NO_CONTENT", "SPAN_ONLY", "EVENT_ONLY"


@pytest.mark.parametrize(
    ("capture", "keep", "environment", "mode", "legacy"),
    [
        (False, (), {}, OFF, False),
        (True, (), {}, SPAN, True),
        (False, ("gcp.vertex.agent",), {}, SPAN, True),  # the user keeps ADK's content with agentotel's off
        (False, ("gcp",), {}, SPAN, True),
        (False, ("pydantic-ai",), {}, OFF, False),
        (True, (), {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}, EVENT, True),  # ADK's reading
        (True, (), {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "NO_CONTENT"}, OFF, True),
        (False, (), {"ADK_CAPTURE_MESSAGE_CONTENT_IN_SPANS": "true"}, OFF, True),
        (True, (), {"ADK_CAPTURE_MESSAGE_CONTENT_IN_SPANS": "false"}, SPAN, False),
    ],
)
def test_adk_resolves_its_content_switches_from_agentotel_unless_the_user_set_them(
    monkeypatch: pytest.MonkeyPatch,
    capture: bool,
    keep: tuple[str, ...],
    environment: dict[str, str],
    mode: str,
    legacy: bool,
) -> None:
    monkeypatch.setattr(settings, "capture_content", capture)
    monkeypatch.setattr(settings, "keep_content_from", keep, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    config = adk_context.TelemetryConfig()  # what ADK resolves for a run that brings no config of its own
    assert config.resolved_content_capturing_mode.value == mode
    assert config.should_add_content_to_legacy_spans is legacy


def test_adk_config_the_app_passes_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "capture_content", True)
    config = adk_context.TelemetryConfig(capture_message_content=adk_context.ContentCapturingMode.NO_CONTENT)
    assert not config.should_add_content_to_experimental_spans and not config.should_add_content_to_legacy_spans


def test_adk_tool_span_carries_content_with_capture_on(llm: LLMServer) -> None:
    support.script(llm, "cust_42")
    on = support.run(_agent(llm), capture_content=True)
    attributes = _tool_span(on).attributes or {}
    assert json.loads(str(attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"customer_id": "cust_42"}
    assert json.loads(str(attributes[sc.GEN_AI_TOOL_CALL_RESULT]))["name"] == "Ada"
    for span in _adk_spans(on, "generate_content "):
        assert sc.GEN_AI_INPUT_MESSAGES in (span.attributes or {}), span.name


@pytest.fixture
def legacy_schema(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """ADK's schema-1 spans, whose content knob (`ADK_CAPTURE_MESSAGE_CONTENT_IN_SPANS`) defaults on in ADK."""
    monkeypatch.setenv("ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN", "1")
    yield


@pytest.mark.usefixtures("legacy_schema")
def test_adk_legacy_spans_follow_capture(llm: LLMServer) -> None:
    support.script(llm, "cust_42")
    support.assert_no_content(support.run(_agent(llm), capture_content=False))

    support.script(llm, "cust_42")
    on = support.run(_agent(llm), capture_content=True)
    arguments = (_tool_span(on).attributes or {})["gcp.vertex.agent.tool_call_args"]
    assert json.loads(str(arguments)) == {"customer_id": "cust_42"}


def test_adk_tool_error_a_callback_answered_is_recorded_on_its_span(llm: LLMServer) -> None:
    support.script(llm, None)
    run = support.run(_agent(llm), capture_content=False)
    span = _tool_span(run)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {}).get(sc.ERROR_TYPE) == "ValueError"
    (event,) = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {}).get(sc.EXCEPTION_MESSAGE) == "customer_id cannot be None"
    assert not google_adk._pending, "a noted tool error outlived its span's record"


def test_adk_tool_error_no_callback_answered_is_adks_own(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an error callback ADK records the exception itself and re-raises it: agentotel records nothing more
    (ADK 2.13 writes two `exception` events there, from `trace_tool_call` and from its span's context manager)."""
    recorded: list[BaseException | None] = []
    monkeypatch.setattr(google_adk, "record_failure", lambda span, error=None, **kwargs: recorded.append(error))
    support.script(llm, None)
    run = support.run(_agent(llm, answer_errors=False), capture_content=False)
    assert isinstance(run.error, ValueError), run.error
    span = _tool_span(run)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {}).get(sc.ERROR_TYPE) == "ValueError"
    assert recorded == []
    assert not google_adk._pending


@pytest.mark.parametrize("broken", ["_is_tool_span", "_argument", "record_failure"])
def test_adk_agent_runs_when_agentotels_hooks_fail(
    llm: LLMServer, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("hook bug")

    monkeypatch.setattr(google_adk, broken, fail)
    support.script(llm, None)
    try:
        run = support.run(_agent(llm), capture_content=False)
    finally:
        google_adk._pending.clear()  # a note the broken hook could not take back
    assert run.error is None and run.response == support.ANSWER, run.error


HOOKED = (
    (adk_context, "_read_content_capturing_mode"),
    (adk_context, "_read_add_content_to_legacy_spans"),
    (adk_tracing, "trace_tool_call"),
    (PluginManager, "run_on_tool_error_callback"),
)


def _wrapped() -> list[bool]:
    return [hasattr(vars(owner)[name], "__wrapped__") for owner, name in HOOKED]


def test_adk_uninstrument_restores_adk_and_instrument_hooks_it_again(llm: LLMServer) -> None:
    instrumentor = GoogleADKInstrumentor()
    assert instrumentor.applied and _wrapped() == [True] * len(HOOKED), instrumentor.hooks
    instrumentor.uninstrument()
    try:
        assert _wrapped() == [False] * len(HOOKED)
        support.script(llm, "cust_42")
        run = support.run(_agent(llm), capture_content=False)
        # ADK's own default again: its legacy knob is on, but the schema-2 spans have no legacy content.
        assert run.response == support.ANSWER
        assert adk_context.TelemetryConfig().should_add_content_to_legacy_spans is True
    finally:
        instrumentor.instrument()
    assert _wrapped() == [True] * len(HOOKED)
    assert adk_context.TelemetryConfig().should_add_content_to_legacy_spans is False


LAZY_IMPORT = """
import sys
import agentotel
agentotel.init()
import google.adk
from agentotel.instrumentation.google_adk import GoogleADKInstrumentor
heavy = [name for name in ("google.adk.telemetry.tracing", "google.adk.plugins.plugin_manager") if name in sys.modules]
print("before", GoogleADKInstrumentor().applied, heavy, GoogleADKInstrumentor().hooks)
from google.adk.agents import LlmAgent  # what an app does next
from google.adk.runners import Runner
import google.adk.telemetry.tracing  # what ADK's first run imports
print("after", GoogleADKInstrumentor().hooks)
"""


def test_adk_is_hooked_as_its_modules_are_imported_and_not_before() -> None:
    """`init()` then `import google.adk` loads nothing of ADK's telemetry; each hook is installed as the app's
    imports bring its module in."""
    env = {**os.environ, "AGENTOTEL_STORE": "off"}
    done = subprocess.run(
        [sys.executable, "-c", LAZY_IMPORT], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["before"] == "True [] []", done.stdout
    for hook in ("_read_content_capturing_mode", "trace_tool_call", "run_on_tool_error_callback"):
        assert hook in lines["after"], done.stdout
