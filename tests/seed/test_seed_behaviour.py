"""What the seed guide's tests rely on, checked so that they cannot pass vacuously: the sessions they read
really hold the agent's steps, the failing case is attributed to its step, and cost is the calls' exact price."""

from __future__ import annotations

import importlib.util

import pytest
from genai_prices import Usage, calc_price

import agentotel as agentops
from agentotel.testing import capture

from .support_agent import extract_customer_id, run_support_agent

HAS_OPENAI_INSTRUMENTOR = importlib.util.find_spec("agentotel.instrumentation.openai") is not None


def test_session_read_in_the_test_holds_the_nested_agent_run() -> None:
    with capture() as cap, agentops.session("test") as outer:
        run_support_agent("I was charged twice for my subscription")
        assert agentops.get_session() is outer
    assert [e.action_type for e in outer.action_events] == [
        "classify_intent",
        "fetch_customer_data",
        "session_complete",
    ]
    inner = next(s for s in cap.sessions if s.parent_id == outer.id)
    assert inner.tags == ["support", "v2.1"] and inner.end_state == "Success"


def test_missing_customer_id_is_attributed_to_fetch_customer_data() -> None:
    assert extract_customer_id("Guest here: I was charged twice") is None
    with pytest.raises(ValueError), capture():
        run_support_agent("Guest here: I was charged twice")
    failed = agentops.get_session()
    assert failed is not None and failed.end_state == "Fail"
    assert failed.end_state_reason == "customer_id cannot be None"
    assert failed.first_error is not None and failed.first_error.action_type == "fetch_customer_data"
    replay = failed.replay()
    assert "Action: fetch_customer_data   ← PROBLEM" in replay
    assert "Session ended: Fail" in replay


@pytest.mark.skipif(not HAS_OPENAI_INSTRUMENTOR, reason="the OpenAI instrumentor is not installed")
def test_cost_is_the_exact_price_of_the_calls() -> None:
    with agentops.session("cost") as s:
        run_support_agent("I was charged twice for my subscription")
    assert len(s.llm_calls) == 2
    expected = float(
        calc_price(Usage(input_tokens=20, output_tokens=1), model_ref="gpt-4o", provider_id="openai").total_price
    )
    expected += float(
        calc_price(Usage(input_tokens=60, output_tokens=12), model_ref="gpt-4o", provider_id="openai").total_price
    )
    assert s.cost == pytest.approx(expected, rel=1e-9)
    assert 0 < s.cost < 0.01
