"""Cost of a model call in USD, from its token usage, with prices from `genai-prices`.

A `genai_prices.calc_price` call costs about 50 µs, more than a whole traced call should add, so the price of
each (provider, model) is resolved once and kept. For the common flat (or below-first-tier) price the cost is
then a few float multiplications; tiered prices above a tier's threshold go back to genai-prices' own
calculation, so the figures always agree with it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from . import semconv as sc

log = logging.getLogger("agentotel")

COST_SOURCE = "genai-prices"
CURRENCY = "USD"

# Provider names in the GenAI conventions that genai-prices knows by another id.
_PROVIDER_IDS: dict[str, str] = {
    sc.GEN_AI_PROVIDER_NAME_VALUE_AZURE_AI_OPENAI: "azure",
    sc.GEN_AI_PROVIDER_NAME_VALUE_AWS_BEDROCK: "aws",
    sc.GEN_AI_PROVIDER_NAME_VALUE_GCP_GEMINI: "google",
    sc.GEN_AI_PROVIDER_NAME_VALUE_GCP_VERTEX_AI: "google",
    sc.GEN_AI_PROVIDER_NAME_VALUE_MISTRAL_AI: "mistral",
    sc.GEN_AI_PROVIDER_NAME_VALUE_X_AI: "x-ai",
}
_UNIT_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok")


@dataclass(frozen=True)
class Usage:
    """Token usage of one call. `input_tokens` includes cached tokens, as the GenAI conventions define it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True)
class _Price:
    """Per-token prices of one model, valid while the call's input tokens stay below `flat_below`."""

    model_price: Any
    per_token: tuple[float, float, float, float]
    flat_below: float

    def cost(self, usage: Usage) -> float:
        if usage.input_tokens < self.flat_below:
            p_in, p_read, p_write, p_out = self.per_token
            uncached = max(0, usage.input_tokens - usage.cache_read_tokens - usage.cache_write_tokens)
            return (
                uncached * p_in
                + usage.cache_read_tokens * p_read
                + usage.cache_write_tokens * p_write
                + usage.output_tokens * p_out
            )
        return float(self.model_price.calc_price(_genai_usage(usage))["total_price"])


def _genai_usage(usage: Usage) -> Any:
    from genai_prices import Usage as GenaiUsage

    return GenaiUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


def _base_and_threshold(price: Any) -> tuple[float, float]:
    """A price's base per-MTok figure and the input-token count where its first tier starts (inf when flat)."""
    if price is None:
        return 0.0, float("inf")
    if isinstance(price, (Decimal, int, float)):
        return float(price), float("inf")
    tiers = getattr(price, "tiers", None) or []
    threshold = min((float(t.start) for t in tiers), default=float("inf"))
    return float(price.base), threshold


_known_providers: frozenset[str] | None = None


def _knows_provider(provider_id: str) -> bool:
    """Whether genai-prices has a provider of that id (read once from its bundled data; all, should that fail)."""
    global _known_providers
    if _known_providers is None:
        try:
            from genai_prices import data

            _known_providers = frozenset(str(p.id) for p in data.providers)
        except Exception:
            _known_providers = frozenset()
            return True
    return provider_id in _known_providers or not _known_providers


class PriceBook:
    """Prices resolved once per (provider, model). Thread-safe; `cost()` never raises."""

    def __init__(self) -> None:
        self._prices: dict[tuple[str, str], _Price | None] = {}
        self._lock = threading.Lock()

    def _resolve(self, provider: str, model: str) -> _Price | None:
        try:
            from genai_prices import Usage as GenaiUsage
            from genai_prices import calc_price

            provider_id = _PROVIDER_IDS.get(provider, provider) or None
            zero = GenaiUsage(input_tokens=0, output_tokens=0)
            try:
                found = calc_price(zero, model_ref=model, provider_id=provider_id)
            except LookupError:
                if provider_id is None or _knows_provider(provider_id):
                    raise
                # A framework's own name in the provider attribute (Strands writes "strands-agents", Google ADK
                # "gcp.vertex.agent"): the model alone says whose price it is.
                found = calc_price(zero, model_ref=model)
        except LookupError:
            log.debug("genai-prices has no price for model %r of provider %r: its calls get no cost", model, provider)
            return None
        except Exception:
            log.debug("Could not look up the price of %r/%r", provider, model, exc_info=True)
            return None
        model_price = found.model_price
        prices = [_base_and_threshold(getattr(model_price, key, None)) for key in _UNIT_KEYS]
        per_token = tuple(base / 1_000_000 for base, _ in prices)
        flat_below = min(threshold for _, threshold in prices)
        return _Price(model_price, per_token, flat_below)  # type: ignore[arg-type]

    def cost(self, provider: str | None, model: str | None, usage: Usage) -> float | None:
        """The call's cost in USD, or `None` when the model has no known price. Never raises."""
        if not model:
            return None
        key = (provider or "", model)
        if key in self._prices:
            price = self._prices[key]
        else:
            resolved = self._resolve(*key)
            with self._lock:
                price = self._prices.setdefault(key, resolved)
        if price is None:
            return None
        try:
            return price.cost(usage)
        except Exception:
            log.debug("Could not price a call of %r", model, exc_info=True)
            return None


prices = PriceBook()
"""The process-wide price book."""


def _int(value: object) -> int:
    if type(value) is int:
        return value
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


_INPUT, _PROMPT = sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS
_OUTPUT, _COMPLETION = sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_COMPLETION_TOKENS
_CACHE_READ = sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
_CACHE_WRITE, _CACHE_CREATION = sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS


def usage_from_attributes(attributes: Mapping[str, Any]) -> Usage | None:
    """The token usage a span's GenAI attributes state, or `None` when they state none.

    Reads the current attribute names and, for older instrumentations, the deprecated prompt/completion ones.
    Runs for every LLM span a session is rebuilt from: each name is a module global and the deprecated ones are
    looked up only when the current one is missing.
    """
    get = attributes.get
    input_tokens = get(_INPUT)
    if input_tokens is None:
        input_tokens = get(_PROMPT)
    output_tokens = get(_OUTPUT)
    if output_tokens is None:
        output_tokens = get(_COMPLETION)
    if input_tokens is None and output_tokens is None:
        return _openinference_usage(attributes)
    cache_write = get(_CACHE_WRITE)
    if cache_write is None:
        cache_write = get(_CACHE_CREATION)
    return Usage(_int(input_tokens), _int(output_tokens), _int(get(_CACHE_READ)), _int(cache_write))


def _openinference_usage(attributes: Mapping[str, Any]) -> Usage | None:
    """Token usage in OpenInference's names (`llm.token_count.*`; its prompt count includes cached tokens)."""
    get = attributes.get
    input_tokens, output_tokens = get(sc.LLM_TOKEN_COUNT_PROMPT), get(sc.LLM_TOKEN_COUNT_COMPLETION)
    if input_tokens is None and output_tokens is None:
        return None
    return Usage(
        _int(input_tokens),
        _int(output_tokens),
        _int(get(sc.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ)),
        _int(get(sc.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_WRITE)),
    )


def model_of(attributes: Mapping[str, Any]) -> str | None:
    """The model a span's call used: the response's model, else the requested one (OpenInference's names for
    spans that have no GenAI ones)."""
    get = attributes.get
    model = get(sc.GEN_AI_RESPONSE_MODEL) or get(sc.GEN_AI_REQUEST_MODEL)
    if not model:
        model = get(sc.LLM_MODEL_NAME) or get(sc.EMBEDDING_MODEL_NAME)
    return str(model) if model else None


def provider_of(attributes: Mapping[str, Any]) -> str | None:
    """The provider of a span's call, from the current attribute or the deprecated `gen_ai.system` (OpenInference's
    `llm.provider` / `llm.system` for spans that have neither)."""
    get = attributes.get
    provider = get(sc.GEN_AI_PROVIDER_NAME) or get(sc.GEN_AI_SYSTEM) or get(sc.LLM_PROVIDER) or get(sc.LLM_SYSTEM)
    return str(provider) if provider else None


def cost_of_attributes(attributes: Mapping[str, Any]) -> float | None:
    """The cost in USD of the call a span's GenAI attributes describe, or `None`. Never raises."""
    try:
        usage = usage_from_attributes(attributes)
        if usage is None:
            return None
        return prices.cost(provider_of(attributes), model_of(attributes), usage)
    except Exception:
        log.debug("Could not price a span", exc_info=True)
        return None


def cost_attributes(cost: float) -> dict[str, Any]:
    """The attributes that record a cost on a span."""
    return {
        sc.AGENTOTEL_USAGE_COST_AMOUNT: cost,
        sc.AGENTOTEL_USAGE_COST_CURRENCY: CURRENCY,
        sc.AGENTOTEL_USAGE_COST_SOURCE: COST_SOURCE,
    }
