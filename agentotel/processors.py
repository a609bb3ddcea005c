"""The span processors agentotel adds to a tracer provider: session stamping and live sessions, cost, and a
swappable export pipeline. Every hook here catches its own faults: a processor never raises into the app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import baggage, context
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from . import semconv as sc
from ._config import settings
from .live import SessionRegistry, registry
from .pricing import cost_attributes, cost_of_attributes
from .records import record_from_span, span_attributes

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
    return str(carried) if carried else None


def set_attributes_on_ending(span: Span, attributes: Mapping[str, Any]) -> None:
    """Sets `attributes` on a span from a processor's `_on_ending` hook. Never raises.

    The OpenTelemetry specification lets OnEnding change the span, but SDK 1.45 marks the span ended before it
    calls `_on_ending`, so `set_attribute` would be dropped with a warning. The span's attributes are still
    private to the span at that point (no exporter has seen it), so they are written under the span's lock.
    """
    try:
        if span.is_recording():
            span.set_attributes(attributes)
            return
        bounded = span._attributes
        with span._lock:
            was_immutable = bounded._immutable  # type: ignore[union-attr]
            bounded._immutable = False  # type: ignore[union-attr]
            try:
                for key, value in attributes.items():
                    bounded[key] = value  # type: ignore[index]
            finally:
                bounded._immutable = was_immutable  # type: ignore[union-attr]
    except Exception:
        log.debug("Could not set attributes on an ending span", exc_info=True)


def _stamp(span: Span, session_id: str) -> None:
    """Sets `session.id` on a span that is starting. Never raises.

    `on_start` runs inside `start_span`, before the span is handed to anyone: the span's lock and the attribute
    checks of `set_attribute` guard nothing yet, and cost a tenth of a bare span. So the id goes straight into the
    SDK's attribute dict when the span's limits (attribute count and value length) leave room for it, and
    through `set_attribute` otherwise (or when the SDK's internals are not what this expects).
    """
    bounded = getattr(span, "_attributes", None)
    inner = getattr(bounded, "_dict", None)
    if (
        type(inner) is dict
        and getattr(bounded, "_immutable", True) is False
        and (bounded.maxlen is None or len(inner) < bounded.maxlen)  # type: ignore[union-attr]
        and (bounded.max_value_len is None or len(session_id) <= bounded.max_value_len)  # type: ignore[union-attr]
    ):
        inner[sc.SESSION_ID] = session_id
    else:
        span.set_attribute(sc.SESSION_ID, session_id)


class SessionSpanProcessor(SpanProcessor):
    """Stamps `session.id` on every span started inside a session, and files ended spans under their sessions."""

    def __init__(self, sessions: SessionRegistry | None = None) -> None:
        self._sessions = sessions or registry

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            session_id = session_id_in(parent_context)
            if session_id is not None and _SESSION_ID not in span_attributes(span):
                _stamp(span, session_id)
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


class CostSpanProcessor(SpanProcessor):
    """Records the cost of any span that carries GenAI token usage (ours, the anthropic SDK's, or another
    instrumentation's) before the span ends, so every exporter sees it. Unknown models get no cost."""

    def _on_ending(self, span: Span) -> None:
        try:
            attributes = span_attributes(span)
            if not (_INPUT in attributes or _OUTPUT in attributes or _PROMPT in attributes):
                return  # most spans: no usage, nothing to price
            if sc.AGENTOTEL_USAGE_COST_AMOUNT in attributes:
                return
            cost = cost_of_attributes(attributes)
            if cost is not None:
                set_attributes_on_ending(span, cost_attributes(cost))
        except Exception:
            log.debug("Could not record the cost of a span", exc_info=True)


class ExportPipeline(SpanProcessor):
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

    def _on_ending(self, span: Span) -> None:
        for processor in self._processors:
            try:
                processor._on_ending(span)
            except Exception:
                log.debug("An export processor failed while a span ended", exc_info=True)

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
        ok = True
        for processor in self._processors:
            try:
                ok = processor.force_flush(timeout_millis) and ok
            except Exception:
                ok = False
        return ok


def _shutdown_quietly(processor: SpanProcessor) -> None:
    try:
        processor.shutdown()
    except Exception:
        log.debug("An export processor failed to shut down", exc_info=True)


class AgentotelSpanProcessor(SpanProcessor):
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
        from .redaction import RedactionSpanProcessor  # it writes attributes with this module's helper

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

    def _on_ending(self, span: Span) -> None:
        if settings.capture_content:  # content attributes exist only then; redact them before anyone sees them
            try:
                self.redaction._on_ending(span)
            except Exception:
                log.debug("Could not redact a span", exc_info=True)
        try:
            self.cost._on_ending(span)
        except Exception:
            log.debug("Could not record the cost of a span", exc_info=True)
        pipeline = self.pipeline
        if pipeline._processors:
            try:
                pipeline._on_ending(span)
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
