"""Two instrumentations of the same LLM call (agentotel's and the official `opentelemetry-instrumentation-openai-v2`,
whichever wraps the other): the session counts the call, its tokens and its cost once, live and rebuilt alike. The
second span stays visible as an event, marked as a duplicate of the one that counts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from genai_prices import Usage, calc_price
from openai.resources.chat.completions.completions import Completions

import agentotel
from agentotel import semconv as sc
from agentotel.instrumentation.openai import OpenAIInstrumentor
from agentotel.model import KIND_LLM, Session
from agentotel.records import records_from_spans
from agentotel.sources.store import StoreSource
from agentotel.store import Store
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer, Reply

v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")

USER = [{"role": "user", "content": "hello"}]
CALLS = [(100, 20), (200, 40), (300, 60)]  # (input, output) tokens of the three calls


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture(params=["openai-v2 outside", "agentotel outside"])
def both_instrumented(request: pytest.FixtureRequest) -> Iterator[str]:
    """The official instrumentor active beside agentotel's, wrapping it (instrumented last) or wrapped by it."""
    official = v2.OpenAIInstrumentor()
    ours = OpenAIInstrumentor()
    if request.param == "agentotel outside":
        ours.uninstrument()
        official.instrument()
        ours.instrument()
    else:
        official.instrument()
    try:
        yield request.param
    finally:
        # `uninstrument()` takes off the outermost wrapper, whoever put it there: undo in the reverse order.
        if request.param == "agentotel outside":
            ours.uninstrument()
            official.uninstrument()
            ours.instrument()
        else:
            official.uninstrument()
        create = vars(Completions)["create"]  # agentotel's wrapper, alone again
        assert create._self_wrapper.__module__ == "agentotel.instrumentation.openai"
        assert not hasattr(create.__wrapped__, "_self_wrapper")


def price(input_tokens: int, output_tokens: int) -> float:
    return float(calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens), "gpt-4o").total_price)


def run_agent(server: LLMServer) -> agentotel.LiveSession:
    """Three calls: plain, streamed, async."""
    server.script(*(Reply("ok", input_tokens=i, output_tokens=o) for i, o in CALLS))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    aclient = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    with agentotel.session("twice-traced") as s:
        client.chat.completions.create(model="gpt-4o", messages=USER)
        stream = client.chat.completions.create(
            model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
        )
        for _ in stream:
            pass
        asyncio.run(aclient.chat.completions.create(model="gpt-4o", messages=USER))
    client.close()
    return s


def assert_counted_once(session: Session) -> None:
    expected_cost = sum(price(i, o) for i, o in CALLS)
    llm_events = [e for e in session.events if e.kind == KIND_LLM]
    assert len(llm_events) == 6, "both instrumentations' spans are there, as events"
    assert len(session.llm_calls) == 3
    assert [e for e in llm_events if e.duplicate_of is not None] == [
        e for e in llm_events if e not in session.llm_calls
    ]
    counted = {e.span_id for e in session.llm_calls}
    assert all(e.duplicate_of in counted for e in llm_events if e.duplicate_of)
    assert session.input_tokens == sum(i for i, _ in CALLS)
    assert session.output_tokens == sum(o for _, o in CALLS)
    assert session.cost == pytest.approx(expected_cost)
    totals = session.totals()
    assert totals[sc.AGENTOTEL_SESSION_LLM_CALL_COUNT] == 3
    assert totals[sc.AGENTOTEL_SESSION_COST_AMOUNT] == pytest.approx(expected_cost)
    assert session.replay().count("counted once") == 3, "the replay says which spans are the second tracing"


def test_a_call_traced_twice_counts_once_live_and_rebuilt(
    both_instrumented: str, server: LLMServer, cap: Capture, tmp_path: Path
) -> None:
    live = run_agent(server)
    scopes = {span.instrumentation_scope.name for span in cap.spans if span.name == "chat gpt-4o"}
    assert len(scopes) == 2, f"two instrumentations traced the calls: {scopes}"
    assert_counted_once(live)

    # The totals the root span carries (what backends and the store list) count each call once.
    (root,) = [span for span in cap.spans if span.name == "invoke_agent twice-traced"]
    assert root.attributes[sc.AGENTOTEL_SESSION_LLM_CALL_COUNT] == 3

    # Rebuilt from the exported spans, and from the store: the same rule, the same totals.
    assert_counted_once(cap.session("twice-traced"))
    db = tmp_path / "sessions.db"
    with Store(db, create=True) as store:
        store.write(records_from_spans(cap.spans))
    with StoreSource(db) as source:
        (summary,) = source.sessions()
        assert (summary.llm_calls, summary.cost) == (3, pytest.approx(sum(price(i, o) for i, o in CALLS)))
        assert_counted_once(source.session(summary.id))


def test_separate_calls_are_never_taken_for_duplicates(server: LLMServer, cap: Capture) -> None:
    """Only a call inside another call of the same provider is a duplicate: calls one after another, or side by
    side in threads, each count."""
    s = run_agent(server)
    assert len(s.llm_calls) == 3 and all(e.duplicate_of is None for e in s.events)
    assert s.cost == pytest.approx(sum(price(i, o) for i, o in CALLS))
