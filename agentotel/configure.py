"""`agentotel.init()`: wires agentotel's processors into the tracer provider and sets up export.

Coexists with what the app (or `opentelemetry-instrument`) already configured: an SDK tracer provider that is
already the global one gets our processors added, never replaced. Never phones home: with no exporter given and
no `OTEL_*` export variable set, spans go to the embedded session store (`store.py`; `AGENTOTEL_STORE=off` turns
it off) besides the live sessions.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from . import _clock as clock
from . import semconv as sc
from ._config import content_capture_from_env, content_events_from_env, scope_names, settings
from ._loss import batch_processor
from .processors import AgentotelSpanProcessor, ExportPipeline
from .propagation import install_default_propagators
from .redaction import redaction
from .store import StoreBatchProcessor, StoreSpanExporter, store_exporters

log = logging.getLogger("agentotel")

_lock = threading.RLock()


class _State:
    provider: TracerProvider | None = None
    owns_provider = False
    pipeline: ExportPipeline | None = None
    initialized = False


state = _State()

_LOCAL_EXPORTERS = (InMemorySpanExporter, ConsoleSpanExporter)


def _processor_for(exporter: SpanExporter) -> SpanProcessor:
    """A simple (synchronous) processor for in-process exporters, whose spans tests read at once; a batching one
    for everything else, so that no network exporter ever blocks the app, whose lost spans are counted and whose
    flush and shutdown are bounded (`_loss.py`)."""
    if isinstance(exporter, _LOCAL_EXPORTERS):
        return SimpleSpanProcessor(exporter)
    if isinstance(exporter, StoreSpanExporter):
        return StoreBatchProcessor(exporter)  # lists running sessions too
    return batch_processor(exporter)


def exporters_from_env() -> list[SpanExporter]:
    """The exporters the standard `OTEL_*` variables ask for. Never raises: a name that cannot load is logged.

    `OTEL_TRACES_EXPORTER` names them (`otlp`, `console`, `none`, or any `opentelemetry_traces_exporter` entry
    point); with it unset, an OTLP endpoint variable alone turns OTLP on. `otlp` follows
    `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`/`OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` by default, or `grpc`).
    """
    names_raw = os.environ.get("OTEL_TRACES_EXPORTER")
    if names_raw is None:
        has_endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        )
        names_raw = "otlp" if has_endpoint else ""
    names = [n.strip().lower() for n in names_raw.split(",") if n.strip()]
    exporters: list[SpanExporter] = []
    for name in names:
        if name == "none":
            continue
        if name == "otlp":
            protocol = (
                os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "http/protobuf"
            ).strip()
            name = "otlp_proto_grpc" if protocol == "grpc" else "otlp_proto_http"
        exporter = _load_exporter(name)
        if exporter is not None:
            exporters.append(exporter)
    return exporters


def _load_exporter(name: str) -> SpanExporter | None:
    try:
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        for entry_point in found:
            exporter_class = entry_point.load()
            return exporter_class()  # type: ignore[no-any-return]
        log.warning("No span exporter named %r is installed (OTEL_TRACES_EXPORTER); spans are not exported", name)
    except Exception:
        log.warning("Could not start the %r span exporter", name, exc_info=True)
    return None


def _resolve_provider(service_name: str | None) -> tuple[TracerProvider | None, bool]:
    """The SDK provider to add to: the global one when it is an SDK provider, else a new one made global."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current, current is state.provider and state.owns_provider
    attributes = {sc.SERVICE_NAME: service_name} if service_name else {}
    provider = TracerProvider(resource=Resource.create(attributes), id_generator=clock.id_generator)
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        # Someone else's provider won the race, or the global provider is a non-SDK one we must not replace.
        other = trace.get_tracer_provider()
        if isinstance(other, TracerProvider):
            return other, False
        log.warning("The global tracer provider is not an OpenTelemetry SDK provider; agentotel cannot add to it")
        return None, False
    return provider, True


def init(
    api_key: str | None = None,
    *,
    exporter: SpanExporter | Sequence[SpanExporter] | None = None,
    capture_content: bool | None = None,
    service_name: str | None = None,
    tags: Sequence[str] | None = None,
    default_tags: Sequence[str] | None = None,
    max_ended_sessions: int | None = None,
    max_events_per_session: int | None = None,
    redact: Callable[[str, str], str | None] | None = None,
    redact_builtin: bool | None = None,
    keep_content_from: Sequence[str] | None = None,
    instrument: bool = True,
    **ignored: Any,
) -> None:
    """Sets up agentotel. Safe to call more than once: later calls update settings and exporters in place.

    - `exporter`: a span exporter (or several) used in place of those the `OTEL_*` variables configure.
      In-process ones (in-memory, console) export synchronously; others through a batching processor.
    - `capture_content`: record prompts, completions, tool arguments and results (off by default; the
      `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` variable also turns it on).
    - `redact`: a hook `(attribute_name, text) -> text | None` applied to every content attribute (after the
      built-in patterns for secrets and e-mail addresses, which `redact_builtin=False` turns off) before any
      exporter, the store or the live sessions see it; `None` from the hook drops the attribute.
    - `keep_content_from`: instrumentation scope names (e.g. `["pydantic-ai"]`) whose spans keep the content they
      record while `capture_content` is off; by default, with capture off, no library's content leaves the process.
    - `api_key` and other AgentOps arguments are accepted and ignored, so AgentOps code runs unchanged.
    Never raises for a configuration problem: it logs it and carries on with what works.
    """
    del api_key, ignored  # accepted for AgentOps compatibility; agentotel sends nothing anywhere by itself
    with _lock:
        if capture_content is not None:
            settings.capture_content = bool(capture_content)
        elif not state.initialized:
            settings.capture_content = settings.capture_content or content_capture_from_env()
        if not state.initialized:
            settings.content_events = settings.content_events or content_events_from_env()
        chosen_tags = default_tags if default_tags is not None else tags
        if chosen_tags is not None:
            settings.default_tags = [str(t) for t in chosen_tags]
        if max_ended_sessions is not None:
            settings.max_ended_sessions = max(1, int(max_ended_sessions))
        if max_events_per_session is not None:
            settings.max_events_per_session = max(1, int(max_events_per_session))
        if redact is not None:
            redaction.hook = redact
        if redact_builtin is not None:
            redaction.builtin = bool(redact_builtin)
        if keep_content_from is not None:
            settings.keep_content_from = scope_names(list(keep_content_from))

        provider, owns = _resolve_provider(service_name)
        if provider is None:
            return
        if state.provider is not provider:
            state.provider, state.owns_provider = provider, owns
            processor = AgentotelSpanProcessor()  # one processor: the SDK calls each one's hooks for every span
            state.pipeline = processor.pipeline
            provider.add_span_processor(processor)
            if owns:
                from_env = exporters_from_env()
                other_export = bool(from_env) or bool(os.environ.get("OTEL_TRACES_EXPORTER", "").strip())
                from_env += store_exporters(other_export=other_export)
                state.pipeline.replace(_processor_for(e) for e in from_env)
        assert state.pipeline is not None
        if exporter is not None:
            exporters = [exporter] if isinstance(exporter, SpanExporter) else list(exporter)
            exporters += store_exporters(other_export=True)  # beside a given exporter only when AGENTOTEL_STORE is set
            state.pipeline.replace(_processor_for(e) for e in exporters)
        if not state.initialized:
            atexit.register(_end_open_sessions)
            install_default_propagators()  # the session id goes to internal hosts only (`propagation.py`)
        state.initialized = True
    if instrument:
        _instrument_clients()


def store_in_use() -> Path | None:
    """The path of the session store agentotel's pipeline writes to, or `None` when it writes to none. Never
    raises."""
    try:
        for processor in state.pipeline.processors if state.pipeline is not None else ():
            exporter: Any = getattr(processor, "exporter", None) or getattr(processor, "span_exporter", None)
            exporter = getattr(exporter, "exporter", exporter)  # inside the loss-counting wrapper
            if isinstance(exporter, StoreSpanExporter):
                return exporter.path
    except Exception:
        log.debug("Could not tell whether the session store is in use", exc_info=True)
    return None


def ensure_initialized() -> None:
    """Calls `init()` with defaults unless it has run. Never raises."""
    if not state.initialized:
        try:
            init()
        except Exception:
            log.debug("agentotel could not initialise itself", exc_info=True)


def _instrument_clients() -> None:
    """Instruments the LLM client SDKs that are installed. Never raises."""
    try:
        from .instrumentation import instrument_installed

        instrument_installed()
    except ImportError:
        pass
    except Exception:
        log.debug("Could not instrument the LLM clients", exc_info=True)


def _end_open_sessions() -> None:
    """At interpreter exit, ends sessions still open as Indeterminate and flushes what is buffered."""
    try:
        from .sessions import end_all_sessions

        end_all_sessions("Indeterminate", "the process exited with the session open")
    except Exception:
        log.debug("Could not end open sessions at exit", exc_info=True)
    try:
        if state.pipeline is not None:
            state.pipeline.force_flush(5_000)
    except Exception:
        pass


def add_export_processor(processor: SpanProcessor) -> None:
    """Adds a processor beside the configured exporters (the testing capture uses this)."""
    ensure_initialized()
    if state.pipeline is not None:
        state.pipeline.add(processor)


def remove_export_processor(processor: SpanProcessor) -> None:
    if state.pipeline is not None:
        state.pipeline.remove(processor)


def force_flush(timeout_millis: int = 5_000) -> bool:
    """Exports what is buffered: agentotel's pipeline, and the provider's own processors when the provider is
    someone else's (e.g. `opentelemetry-instrument`'s exporters). Never raises."""
    try:
        ok = state.pipeline.force_flush(timeout_millis) if state.pipeline else True
        if state.provider is not None and not state.owns_provider:
            ok = state.provider.force_flush(timeout_millis) and ok
        return ok
    except Exception:
        return False
