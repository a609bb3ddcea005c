"""The seed's support agent in Strands Agents (an `Agent` with two `@tool`s), its model Strands' `OpenAIModel`
pointed at the scripted server: the seed's assertions on the session, and what `StrandsInstrumentor` does to
Strands' own spans (content capture, the conventions of its tool spans)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from frameworks import support
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from strands import Agent, tool
from strands.models.openai import OpenAIModel
from strands.telemetry import tracer as strands_tracing

from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.instrumentation import strands as instrumentation
from agentotel.instrumentation.strands import StrandsInstrumentor
from agentotel.testing.llm_server import LLMServer

STRANDS_SCOPE = "strands.telemetry.tracer"
REDACTED = "[REDACTED]"


def _agent(server: LLMServer) -> Callable[[str], str]:
    """The support agent: `agent(message)` runs one invocation and returns the answer's text."""
    model = OpenAIModel(
        client_args={"base_url": server.openai_base_url, "api_key": "sk-test", "max_retries": 0},
        model_id=support.MODEL,
    )
    agent = Agent(
        name="support_agent",
        model=model,
        system_prompt=support.INSTRUCTIONS,
        tools=[tool(support.fetch_customer_data), tool(support.lookup_invoice)],
        callback_handler=None,
    )
    return lambda message: str(agent(message)).strip()


def _strands_spans(run: support.SupportRun, prefix: str) -> list[ReadableSpan]:
    return [
        s
        for s in run.spans
        if s.instrumentation_scope is not None
        and s.instrumentation_scope.name == STRANDS_SCOPE
        and s.name.startswith(prefix)
    ]


def _tool_span(run: support.SupportRun) -> ReadableSpan:
    spans = _strands_spans(run, f"execute_tool {support.FETCH_TOOL}")
    assert len(spans) == 1, [s.name for s in run.spans]
    return spans[0]


@pytest.fixture
def fresh_tracer(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A new Strands tracer for the test's agent (it reads `OTEL_SEMCONV_STABILITY_OPT_IN` once, when made); the
    process's own is put back after."""
    monkeypatch.setattr(strands_tracing, "_tracer_instance", None)
    yield


# --------------------------------------------------------------------------------------------------------------------
# The seed's assertions


@pytest.mark.parametrize("capture_content", [False, True])
def test_strands_agent_meets_the_seed(llm: LLMServer, capture_content: bool) -> None:
    support.script(llm, "cust_42")
    run = support.run(_agent(llm), capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER, run.error
    support.assert_seed_behaviour(run, failing=False)
    if capture_content:
        support.assert_content_recorded(run)
    else:
        support.assert_no_content(run)


def test_strands_agent_attributes_the_tool_error(llm: LLMServer) -> None:
    support.script(llm, None)
    run = support.run(_agent(llm), capture_content=False)
    assert run.error is None and run.response == support.ANSWER, run.error
    support.assert_seed_behaviour(run, failing=True)
    support.assert_no_content(run)


# --------------------------------------------------------------------------------------------------------------------
# Strands' own spans, as the instrumentor configures them


def test_strands_spans_nest_agentotel_chat_under_strands_model_call(llm: LLMServer) -> None:
    """The shape agentotel's model reads: Strands' agent span holds one event-loop cycle per model call, each
    cycle a `chat` span (with agentotel's `chat` span of the same call as its child) and the cycle's tool calls."""
    support.script(llm, "cust_42")
    run = support.run(_agent(llm), capture_content=False)
    by_id = {s.context.span_id: s for s in run.spans}
    (agent,) = _strands_spans(run, "invoke_agent ")
    cycles = _strands_spans(run, "execute_event_loop_cycle")
    model_calls = _strands_spans(run, "chat")
    chats = [s for s in run.spans if s.attributes and s.attributes.get(sc.AGENTOTEL_STEP_KIND) == "llm"]
    assert len(cycles) == len(model_calls) == len(chats) == support.LLM_CALLS
    for cycle in cycles:
        assert cycle.parent is not None and cycle.parent.span_id == agent.context.span_id
    for chat in chats:
        assert chat.parent is not None and by_id[chat.parent.span_id] in model_calls
    tool_parent = _tool_span(run).parent
    assert tool_parent is not None and by_id[tool_parent.span_id] is cycles[0]
    usage = [(s.attributes or {}).get(sc.GEN_AI_USAGE_INPUT_TOKENS) for s in model_calls]
    assert usage == [support.FIRST_CALL_TOKENS[0], support.SECOND_CALL_TOKENS[0]]


def _content_values(run: support.SupportRun) -> dict[str, list[Any]]:
    """Every content attribute of Strands' spans, by name; and the names of their span events."""
    keys = (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS)
    keys += (sc.GEN_AI_TOOL_CALL_ARGUMENTS, sc.GEN_AI_TOOL_CALL_RESULT)
    found: dict[str, list[Any]] = {"events": []}
    for span in _strands_spans(run, ""):
        for key in keys:
            if key in (span.attributes or {}):
                found.setdefault(key, []).append((span.attributes or {})[key])
        found["events"] += [e.name for e in span.events if e.name != "exception"]
    return found


@pytest.mark.parametrize(
    ("capture", "keep", "recorded"),
    [
        (False, (), False),
        (True, (), True),
        (False, ("strands",), True),  # the user keeps Strands' content with agentotel's off
        (False, ("strands.telemetry.tracer",), True),
        (False, ("gcp.vertex.agent",), False),
    ],
)
def test_strands_records_content_as_agentotel_captures_it(
    monkeypatch: pytest.MonkeyPatch, capture: bool, keep: tuple[str, ...], recorded: bool
) -> None:
    monkeypatch.setattr(settings, "capture_content", capture)
    monkeypatch.setattr(settings, "keep_content_from", keep, raising=False)
    tracer = strands_tracing.get_tracer()
    for name in (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_TOOL_CALL_ARGUMENTS, sc.GEN_AI_TOOL_CALL_RESULT):
        assert tracer._redact(name, "text") == ("text" if recorded else REDACTED), name


def test_strands_redaction_the_user_set_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """With Strands' own redaction list, only the listed attribute is recorded, although agentotel captures; the
    list alone chooses no conventions, so agentotel's still apply."""
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_unredacted_attributes=gen_ai.tool.call.arguments")
    monkeypatch.setattr(settings, "capture_content", True)
    tracer = strands_tracing.Tracer()  # Strands reads the variable once, when a tracer is made
    assert tracer._redact(sc.GEN_AI_TOOL_CALL_ARGUMENTS, "text") == "text"
    assert tracer._redact(sc.GEN_AI_TOOL_CALL_RESULT, "text") == REDACTED
    assert tracer.use_latest_genai_conventions and tracer._span_attributes_only


@pytest.mark.parametrize(
    ("opt_in", "latest", "attributes_only"),
    [
        (None, True, True),
        ("http", True, True),  # another library's token chooses nothing of Strands'
        ("gen_ai_unredacted_attributes=", True, True),
        ("gen_ai_latest_experimental", True, False),  # the user's choice, as Strands reads it
        ("gen_ai_stable", False, False),
    ],
)
def test_strands_conventions_are_agentotels_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch, opt_in: str | None, latest: bool, attributes_only: bool
) -> None:
    if opt_in is None:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    else:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", opt_in)
    tracer = strands_tracing.Tracer()
    assert (tracer.use_latest_genai_conventions, tracer._span_attributes_only) == (latest, attributes_only)


def test_strands_tool_span_carries_content_as_attributes_with_capture_on(llm: LLMServer) -> None:
    support.script(llm, "cust_42")
    run = support.run(_agent(llm), capture_content=True)
    on = _content_values(run)
    assert on["events"] == [], "content left as span events"
    assert REDACTED not in {value for key, values in on.items() if key != "events" for value in values}
    attributes = _tool_span(run).attributes or {}
    assert json.loads(str(attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS])) == {"customer_id": "cust_42"}
    (block,) = json.loads(str(attributes[sc.GEN_AI_TOOL_CALL_RESULT]))  # Strands' content blocks: [{"text": …}]
    assert json.loads(block["text"])["name"] == "Ada"


def test_strands_tool_error_is_on_its_span(llm: LLMServer) -> None:
    support.script(llm, None)
    run = support.run(_agent(llm), capture_content=False)
    span = _tool_span(run)
    assert span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]
    assert (event.attributes or {}).get(sc.EXCEPTION_TYPE) == "ValueError"
    assert (event.attributes or {}).get(sc.EXCEPTION_MESSAGE) == "customer_id cannot be None"


@pytest.mark.usefixtures("fresh_tracer")
def test_strands_agent_runs_when_agentotels_hook_fails(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("hook bug")

    monkeypatch.setattr(instrumentation, "user_chose_conventions", fail)
    support.script(llm, "cust_42")
    run = support.run(_agent(llm), capture_content=False)
    assert run.error is None and run.response == support.ANSWER, run.error
    tracer = strands_tracing.get_tracer()
    assert not tracer.use_latest_genai_conventions, "a tracer agentotel could not configure keeps Strands' defaults"
    assert tracer._redact(sc.GEN_AI_INPUT_MESSAGES, "text") == REDACTED  # and its content still follows capture
    support.assert_no_content(run)


def _hooked() -> list[bool]:
    return [
        hasattr(vars(strands_tracing.Tracer)[name], "__wrapped__") for name in ("__init__", "_is_attribute_unredacted")
    ]


def test_strands_uninstrument_restores_strands_and_instrument_configures_it_again() -> None:
    instrumentor = StrandsInstrumentor()
    current = strands_tracing.get_tracer()
    assert instrumentor.applied and _hooked() == [True, True]
    assert current.use_latest_genai_conventions and current._span_attributes_only
    instrumentor.uninstrument()
    try:
        assert _hooked() == [False, False]
        assert not current.use_latest_genai_conventions and not current._span_attributes_only
        assert current._is_attribute_unredacted(sc.GEN_AI_INPUT_MESSAGES), "Strands' default: no redaction"
    finally:
        instrumentor.instrument()
    assert _hooked() == [True, True]
    assert current.use_latest_genai_conventions and current._span_attributes_only
