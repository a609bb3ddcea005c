"""Cost from token usage: the cached fast path agrees with genai-prices, tiers included; unknown models unpriced."""

from __future__ import annotations

import pytest
from genai_prices import Usage as GenaiUsage
from genai_prices import calc_price

from agentotel import semconv as sc
from agentotel.pricing import PriceBook, Usage, cost_of_attributes

CASES = [
    ("openai", "gpt-4o", Usage(1000, 100, 200, 0)),
    ("openai", "gpt-4o-mini", Usage(123_456, 789, 0, 0)),
    ("anthropic", "claude-sonnet-4-5", Usage(5000, 300, 1000, 500)),
    ("anthropic", "claude-sonnet-4-5", Usage(250_000, 300, 1000, 500)),  # above the 200k tier
    ("anthropic", "claude-3-5-haiku-latest", Usage(10, 10, 0, 0)),
    ("google", "gemini-2.5-pro", Usage(300_000, 10, 0, 0)),
]


@pytest.mark.parametrize(("provider", "model", "usage"), CASES)
def test_fast_path_matches_genai_prices(provider: str, model: str, usage: Usage) -> None:
    expected = calc_price(
        GenaiUsage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model_ref=model,
        provider_id=provider,
    ).total_price
    assert PriceBook().cost(provider, model, usage) == pytest.approx(float(expected), rel=1e-12, abs=1e-15)


def test_unknown_model_has_no_cost_not_zero() -> None:
    assert PriceBook().cost("openai", "no-such-model-xyz", Usage(10, 10)) is None
    assert PriceBook().cost("openai", None, Usage(10, 10)) is None


def test_price_is_resolved_once_per_model(monkeypatch: pytest.MonkeyPatch) -> None:
    book = PriceBook()
    calls = []
    original = book._resolve

    def counting(provider: str, model: str) -> object:
        calls.append((provider, model))
        return original(provider, model)

    monkeypatch.setattr(book, "_resolve", counting)
    for _ in range(50):
        book.cost("openai", "gpt-4o", Usage(10, 10))
        book.cost("openai", "no-such-model-xyz", Usage(10, 10))
    assert calls == [("openai", "gpt-4o"), ("openai", "no-such-model-xyz")]


def test_cost_from_span_attributes_reads_current_and_deprecated_names() -> None:
    current = {
        sc.GEN_AI_PROVIDER_NAME: "openai",
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o",
        sc.GEN_AI_USAGE_INPUT_TOKENS: 1000,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
    }
    old = {
        sc.GEN_AI_SYSTEM: "openai",
        sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
        sc.GEN_AI_USAGE_PROMPT_TOKENS: 1000,
        sc.GEN_AI_USAGE_COMPLETION_TOKENS: 100,
    }
    assert cost_of_attributes(current) == pytest.approx(0.0035)
    assert cost_of_attributes(old) == pytest.approx(0.0035)
    assert cost_of_attributes({sc.GEN_AI_REQUEST_MODEL: "gpt-4o"}) is None


def test_a_frameworks_own_provider_name_is_priced_by_the_model() -> None:
    """Strands writes `gen_ai.system=strands-agents`, Google ADK `gcp.vertex.agent`: genai-prices knows neither, so
    the model alone says whose price it is. A provider genai-prices knows is never second-guessed."""
    from genai_prices import Usage as GenaiUsage
    from genai_prices import calc_price

    from agentotel.pricing import PriceBook, Usage

    book = PriceBook()
    expected = float(
        calc_price(GenaiUsage(input_tokens=300, output_tokens=30), "gpt-4o-mini", provider_id="openai").total_price
    )
    assert book.cost("strands-agents", "gpt-4o-mini", Usage(300, 30)) == pytest.approx(expected)
    assert book.cost("gcp.vertex.agent", "gpt-4o-mini", Usage(300, 30)) == pytest.approx(expected)
    assert book.cost("groq", "gpt-4o-mini", Usage(300, 30)) is None  # groq has no such model: no guess
