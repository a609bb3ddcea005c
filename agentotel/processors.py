"""The span processors agentotel adds to a tracer provider: session stamping and live sessions, cost, and a
swappable export pipeline. Every hook here catches its own faults: a processor never raises into the app."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable

from opentelemetry import baggage, context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import semconv as sc
from ._config import settings
from ._sdk import EndingProcessor, forward_on_ending, set_attribute_on_start, set_attributes_on_ending, span_attributes
from .conventions import kind_of
from .live import SessionRegistry, registry
from .pricing import cost_attributes, cost_of_attributes
from .records import record_from_span
from .redaction import RedactionSpanProcessor, guard_error_text, is_agentotel_span, strip_foreign_content

log = logging.getLogger("agentotel")

_SESSION_ID = sc.SESSION_ID  # a module global: read for every span, twice

SESSION_CONTEXT_KEY = context.create_key("agentotel.session")
"""The context key under which the innermost active `Session` is kept."""


def session_id_in(ctx: Context | None) -> str | None:
    """The id of the innermost session in `ctx` (or the current context): our own, else one carried in baggage
    from another process."""
    session = context.get_value(SESSION_CONTEXT_KEY, ctx)
    if session is not None:
        return getattr(session, "id", None)
    carried = baggage.get_baggage(sc.SESSION_ID, ctx)
    if not carried or settings.session_baggage == "ignore":  # `propagation.py`: the trust rule
        return None
    return str(carried)


class SessionSpanProcessor(SpanProcessor):
    """Stamps `session.id` on every span started inside a session, and files ended spans under their sessions."""

    def __init__(self, sessions: SessionRegistry | None = None) -> None:
        self._sessions = sessions or registry

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            session_id = session_id_in(parent_context)
            if session_id is not None and _SESSION_ID not in span_attributes(span):
                set_attribute_on_start(span, _SESSION_ID, session_id)
        except Exception:
            log.debug("Could not stamp a span with its session", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            if _SESSION_ID not in span_attributes(span):
                return
            self._sessions.on_record(record_from_span(span))
        except Exception:
            log.debug("Could not file an ended span under its session", exc_info=True)


_INPUT, _OUTPUT, _PROMPT = sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS
_OPENINFERENCE_INPUT = sc.LLM_TOKEN_COUNT_PROMPT


class CostSpanProcessor(EndingProcessor):
    """Records the cost of any model-call span that carries token usage (ours, the anthropic SDK's, or another
    instrumentation's, in the GenAI or OpenInference names) before the span ends, so every exporter sees it.
    Unknown models get no cost; a span that is not a model call (a chain or agent span rolling up its children's
    usage) gets none either, so that a backend summing costs counts each call once."""

    def on_ending(self, span: Span) -> None:
        try:
            attributes = span_attributes(span)
            if not (
                _INPUT in attributes
                or _OUTPUT in attributes
                or _PROMPT in attributes
                or _OPENINFERENCE_INPUT in attributes
            ):
                return  # most spans: no usage, nothing to price
            if sc.AGENTOTEL_USAGE_COST_AMOUNT in attributes or kind_of(attributes) != sc.AGENTOTEL_STEP_KIND_VALUE_LLM:
                return
            cost = cost_of_attributes(attributes)
            if cost is not None:
                set_attributes_on_ending(span, cost_attributes(cost))
        except Exception:
            log.debug("Could not record the cost of a span", exc_info=True)


class ExportPipeline(EndingProcessor):
    """A processor that forwards to a set of processors which can be replaced while spans flow.

    `init(exporter=...)` swaps the exporters in place without stacking a new pipeline on the provider.
    """

    def __init__(self) -> None:
        self._processors: tuple[SpanProcessor, ...] = ()
        self._lock = threading.Lock()

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        return self._processors

    def replace(self, processors: Iterable[SpanProcessor]) -> None:
        """Uses `processors` from now on; the ones replaced are flushed and shut down."""
        with self._lock:
            old, self._processors = self._processors, tuple(processors)
        for processor in old:
            if processor not in self._processors:
                _shutdown_quietly(processor)

    def add(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processors = (*self._processors, processor)

    def remove(self, processor: SpanProcessor) -> None:
        with self._lock:
            self._processors = tuple(p for p in self._processors if p is not processor)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self._processors:
            try:
                processor.on_start(span, parent_context=parent_context)
            except Exception:
                log.debug("An export processor failed on span start", exc_info=True)

    def on_ending(self, span: Span) -> None:
        forward_on_ending(self._processors, span)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            try:
                processor.on_end(span)
            except Exception:
                log.debug("An export processor failed on span end", exc_info=True)

    def shutdown(self) -> None:
        for processor in self._processors:
            _shutdown_quietly(processor)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flushes every processor within one deadline shared by all of them (as the SDK's provider does): N
        exporters never take N times the timeout. `False` when one failed or the time ran out."""
        deadline = time.monotonic() + timeout_millis / 1000
        ok = True
        for processor in self._processors:
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0:
                return False
            try:
                ok = processor.force_flush(left) and ok
            except Exception:
                ok = False
        return ok


def _shutdown_quietly(processor: SpanProcessor) -> None:
    try:
        processor.shutdown()
    except Exception:
        log.debug("An export processor failed to shut down", exc_info=True)


class AgentotelSpanProcessor(EndingProcessor):
    """The one processor `init()` adds to the provider: session stamping and live sessions, content redaction,
    cost, then the export pipeline, in that order, by calling those processors' hooks directly.

    The SDK calls every processor's three hooks for every span, through its own loop: three processors on the
    provider cost nine calls a span where one costs three, a tenth of a bare span. The three stay separate
    classes, each with one job, for apps that compose their own pipelines; this one only sequences them, and
    skips the export pipeline while it holds no processor. Never raises (each hook catches its own faults, and
    this catches what a replaced hook lets through).
    """

    def __init__(
        self,
        sessions: SessionSpanProcessor | None = None,
        cost: CostSpanProcessor | None = None,
        pipeline: ExportPipeline | None = None,
    ) -> None:
        self.sessions = sessions or SessionSpanProcessor()
        self.redaction = RedactionSpanProcessor()
        self.cost = cost or CostSpanProcessor()
        self.pipeline = pipeline or ExportPipeline()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self.sessions.on_start(span, parent_context)
        except Exception:
            log.debug("Could not stamp a span with its session", exc_info=True)
        pipeline = self.pipeline
        if pipeline._processors:
            try:
                pipeline.on_start(span, parent_context)
            except Exception:
                log.debug("An export processor failed on span start", exc_info=True)

    def on_ending(self, span: Span) -> None:
        # The content policy, before anyone sees the span: redacted with capture on, none from anyone with it off.
        if settings.capture_content:
            try:
                self.redaction.on_ending(span)
            except Exception:
                log.debug("Could not redact a span", exc_info=True)
        elif not is_agentotel_span(span):  # agentotel's own spans hold no content with capture off
            strip_foreign_content(span)
        guard_error_text(span)
        try:
            self.cost.on_ending(span)
        except Exception:
            log.debug("Could not record the cost of a span", exc_info=True)
        pipeline = self.pipeline
        if pipeline._processors:
            try:
                pipeline.on_ending(span)
            except Exception:
                log.debug("An export processor failed while a span ended", exc_info=True)

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self.sessions.on_end(span)
        except Exception:
            log.debug("Could not file an ended span under its session", exc_info=True)
        pipeline = self.pipeline
        if pipeline._processors:
            try:
                pipeline.on_end(span)
            except Exception:
                log.debug("An export processor failed on span end", exc_info=True)

    def shutdown(self) -> None:
        self.pipeline.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.pipeline.force_flush(timeout_millis)
