"""The seed's support agent in Pydantic AI (its `OpenAIChatModel` on the real `openai` SDK, against the scripted
model), traced by Pydantic AI's own instrumentation as agentotel turns it on: the session's story, counts, cost and
content are the hand-written agent's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from openai import AsyncOpenAI
from opentelemetry.sdk.trace import ReadableSpan
from pydantic_ai import Agent
from pydantic_ai.capabilities.instrumentation import Instrumentation
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider

from agentotel import semconv as sc
from agentotel.instrumentation import pydantic_ai as pyd
from agentotel.testing.llm_server import LLMServer

from . import support

ROOT = Path(__file__).resolve().parents[2]
PYDANTIC_SCOPE = "pydantic-ai"


def _agent(server: LLMServer, *, instrument: InstrumentationSettings | bool | None = None) -> Agent[None, str]:
    client = AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    model = OpenAIChatModel(support.MODEL, provider=OpenAIProvider(openai_client=client))
    agent = Agent(
        model,
        name="support",
        instructions=support.INSTRUCTIONS,
        tools=[support.fetch_customer_data, support.lookup_invoice],
    )
    if instrument is not None:
        agent.instrument = instrument
    return agent


def _runner(agent: Agent[None, str]) -> Callable[[str], str]:
    return lambda message: agent.run_sync(message).output


def _pydantic_tool_span(run: support.SupportRun) -> ReadableSpan:
    spans = [
        s
        for s in run.spans
        if s.name == f"execute_tool {support.FETCH_TOOL}"
        and s.instrumentation_scope is not None
        and s.instrumentation_scope.name == PYDANTIC_SCOPE
    ]
    assert len(spans) == 1, [s.name for s in run.spans]
    return spans[0]


@pytest.fixture
def ours() -> Iterator[InstrumentationSettings]:
    """agentotel's settings, as `init()` gave them to Pydantic AI; agentotel's own again after the test, whatever
    the test did to Pydantic AI's default."""
    instrumentor = pyd.PydanticAIInstrumentor()
    assert instrumentor.settings is not None, "agentotel did not turn Pydantic AI's instrumentation on"
    yield instrumentor.settings
    instrumentor.uninstrument()
    Agent.instrument_all(False)
    instrumentor.instrument()
    assert instrumentor.settings is not None and Agent._instrument_default is instrumentor.settings


# --------------------------------------------------------------------------------------------------------------------
# The seed


@pytest.mark.parametrize("capture_content", [False, True])
def test_pydantic_ai_agent_meets_the_seed(llm: LLMServer, capture_content: bool) -> None:
    support.script(llm, "cust_42")
    run = support.run(_runner(_agent(llm)), capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER
    assert {s.instrumentation_scope.name for s in run.spans if s.instrumentation_scope} >= {PYDANTIC_SCOPE}
    support.assert_seed_behaviour(run, failing=False)
    if capture_content:
        support.assert_content_recorded(run)
    else:
        support.assert_no_content(run)


def test_a_tool_error_ends_the_pydantic_ai_run(llm: LLMServer) -> None:
    """Pydantic AI raises a tool's exception (other than `ModelRetry`) out of `run_sync`: the second model call is
    never made, so the session holds one call, the failed tool call and the run's end as `Fail`."""
    support.script(llm, None)
    run = support.run(_runner(_agent(llm)), capture_content=False)
    assert isinstance(run.error, ValueError) and str(run.error) == "customer_id cannot be None"
    assert len(llm.requests) == 1
    input_tokens, output_tokens = support.FIRST_CALL_TOKENS
    cost = float(
        calc_price(
            Usage(input_tokens=input_tokens, output_tokens=output_tokens), model_ref=support.MODEL, provider_id="openai"
        ).total_price
    )
    for session in (run.live, run.rebuilt):
        assert support.FETCH_TOOL in support.action_types(session), session.replay()
        support.assert_tool_error_attributed(session)
        assert len(session.llm_calls) == 1, session.replay()
        assert (session.input_tokens, session.output_tokens) == support.FIRST_CALL_TOKENS, session.replay()
        assert abs(session.cost - cost) < 1e-12, (session.cost, cost)
        assert session.end_state == "Fail"
    support.assert_no_content(run)


def test_the_tool_error_message_is_on_pydantic_ais_tool_span_with_capture_off(llm: LLMServer) -> None:
    """Pydantic AI keeps only the type with content off; agentotel adds the type and message (not content to it),
    first, so the step's error is the tool's."""
    support.script(llm, None)
    run = support.run(_runner(_agent(llm)), capture_content=False)
    span = _pydantic_tool_span(run)
    events = [dict(e.attributes or {}) for e in span.events if e.name == "exception"]
    assert events[0] == {sc.EXCEPTION_TYPE: "ValueError", sc.EXCEPTION_MESSAGE: "customer_id cannot be None"}
    assert [e.get(sc.EXCEPTION_TYPE) for e in events] == ["ValueError", "ValueError"]  # Pydantic AI's own follows


def test_with_capture_on_pydantic_ai_records_the_tool_error_once(llm: LLMServer) -> None:
    support.script(llm, None)
    run = support.run(_runner(_agent(llm)), capture_content=True)
    events = [e for e in _pydantic_tool_span(run).events if e.name == "exception"]
    assert len(events) == 1 and (events[0].attributes or {})[sc.EXCEPTION_MESSAGE] == "customer_id cannot be None"


# --------------------------------------------------------------------------------------------------------------------
# The settings agentotel gives Pydantic AI


def test_agentotel_turns_on_the_latest_conventions(ours: InstrumentationSettings) -> None:
    assert Agent._instrument_default is ours
    assert ours.version == pyd.CONVENTIONS_VERSION == 6


def test_content_follows_capture_when_each_run_is_traced(llm: LLMServer) -> None:
    """One agent, built once: content capture turned on afterwards (as a later `init(capture_content=True)` does)
    puts content on the spans of the runs made from then on."""
    agent = _agent(llm)
    support.script(llm, "cust_42")
    off = support.run(_runner(agent), capture_content=False)
    support.script(llm, "cust_42")
    on = support.run(_runner(agent), capture_content=True)
    off_span, on_span = _pydantic_tool_span(off), _pydantic_tool_span(on)
    assert sc.GEN_AI_TOOL_CALL_ARGUMENTS not in (off_span.attributes or {})
    assert (on_span.attributes or {})[sc.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"customer_id":"cust_42"}'


def test_an_agents_own_instrumentation_wins(llm: LLMServer) -> None:
    """`agent.instrument = ...`: the agent's settings, not agentotel's (here: no content though capture is on)."""
    theirs = InstrumentationSettings(include_content=False)
    support.script(llm, "cust_42")
    run = support.run(_runner(_agent(llm, instrument=theirs)), capture_content=True)
    assert sc.GEN_AI_TOOL_CALL_ARGUMENTS not in (_pydantic_tool_span(run).attributes or {})
    support.assert_fetched_before_complete(run.live)


def test_content_from_the_apps_own_instrumentation_is_dropped_with_capture_off(llm: LLMServer) -> None:
    """The app's settings keep Pydantic AI's default `include_content=True`: with agentotel's capture off, agentotel's
    processor drops the content from Pydantic AI's spans (attributes and events) before any exporter sees it."""
    support.script(llm, "cust_42")
    run = support.run(_runner(_agent(llm, instrument=InstrumentationSettings())), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    support.assert_no_content(run)


def test_an_agent_with_instrumentation_off_has_only_agentotels_spans(llm: LLMServer) -> None:
    support.script(llm, "cust_42")
    run = support.run(_runner(_agent(llm, instrument=False)), capture_content=False)
    assert run.error is None
    assert not [s for s in run.spans if s.instrumentation_scope and s.instrumentation_scope.name == PYDANTIC_SCOPE]
    assert len(run.live.llm_calls) == support.LLM_CALLS  # agentotel's own OpenAI spans


def test_an_instrumentation_capability_wins(llm: LLMServer) -> None:
    client = AsyncOpenAI(base_url=llm.openai_base_url, api_key="sk-test", max_retries=0)
    agent = Agent(
        OpenAIChatModel(support.MODEL, provider=OpenAIProvider(openai_client=client)),
        tools=[support.fetch_customer_data],
        capabilities=[Instrumentation(settings=InstrumentationSettings(include_content=False))],
    )
    support.script(llm, "cust_42")
    run = support.run(_runner(agent), capture_content=True)
    assert sc.GEN_AI_TOOL_CALL_ARGUMENTS not in (_pydantic_tool_span(run).attributes or {})


def test_instrument_all_called_by_the_app_wins_and_stays(ours: InstrumentationSettings) -> None:
    theirs = InstrumentationSettings(version=5)
    Agent.instrument_all(theirs)
    instrumentor = pyd.PydanticAIInstrumentor()
    instrumentor.uninstrument()
    try:
        assert Agent._instrument_default is theirs  # agentotel takes back only its own
    finally:
        instrumentor.instrument()
    assert Agent._instrument_default is theirs  # nor does it override the app's when it hooks Pydantic AI again


def test_uninstrument_gives_pydantic_ai_back_its_default(ours: InstrumentationSettings) -> None:
    instrumentor = pyd.PydanticAIInstrumentor()
    instrumentor.uninstrument()
    try:
        assert Agent._instrument_default is False
        assert not hasattr(Instrumentation.wrap_tool_execute, "__wrapped__")
    finally:
        instrumentor.instrument()
    assert Agent._instrument_default is instrumentor.settings is not None
    assert hasattr(Instrumentation.wrap_tool_execute, "__wrapped__")


# --------------------------------------------------------------------------------------------------------------------
# Never breaking the agent


def test_a_failing_error_hook_leaves_the_tools_error_as_it_is(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(error: BaseException) -> str:
        raise RuntimeError("hook fault")

    monkeypatch.setattr(pyd, "error_type_name", broken)
    support.script(llm, None)
    run = support.run(_runner(_agent(llm)), capture_content=False)
    assert isinstance(run.error, ValueError) and str(run.error) == "customer_id cannot be None"


def test_a_failing_tool_hook_leaves_the_run_as_it_is(llm: LLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(handler: object) -> object:
        raise RuntimeError("hook fault")

    monkeypatch.setattr(pyd, "_recording_errors", broken)
    support.script(llm, "cust_42")
    run = support.run(_runner(_agent(llm)), capture_content=False)
    assert run.error is None and run.response == support.ANSWER
    support.assert_fetched_before_complete(run.live)


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


def test_init_does_not_import_pydantic_ai_and_hooks_it_when_the_app_does() -> None:
    done = _python(
        """
        import sys
        import agentotel
        agentotel.init()
        assert "pydantic_ai" not in sys.modules, "init() imported pydantic_ai"
        from pydantic_ai import Agent
        from agentotel.instrumentation.pydantic_ai import PydanticAIInstrumentor
        assert Agent._instrument_default is PydanticAIInstrumentor().settings is not None
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_instrument_all_made_before_init_is_kept() -> None:
    done = _python(
        """
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings
        theirs = InstrumentationSettings(version=5)
        Agent.instrument_all(theirs)
        import agentotel
        agentotel.init()
        assert Agent._instrument_default is theirs
        print("ok")
        """
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_disabled_instrumentation_leaves_pydantic_ai_off() -> None:
    done = _python(
        """
        import agentotel
        agentotel.init()
        from pydantic_ai import Agent
        from pydantic_ai.capabilities.instrumentation import Instrumentation
        assert Agent._instrument_default is False
        assert not hasattr(Instrumentation.wrap_tool_execute, "__wrapped__")
        print("ok")
        """,
        disabled="agentotel_pydantic_ai",
    )
    assert done.stdout.strip() == "ok", done.stderr
