"""`agentotel.init()`: wires agentotel's processors into the tracer provider and sets up export.

Coexists with what the app (or `opentelemetry-instrument`) already configured: an SDK tracer provider that is
already the global one gets our processors added, never replaced. Never phones home: with no exporter given and
no `OTEL_*` export variable set, spans go to the embedded session store (`store/`; `AGENTOTEL_STORE=off` turns
it off) besides the live sessions.

How the process ends (`_install_process_hooks`, once): each way out ends the sessions still open `Indeterminate`
with a reason and flushes what is buffered, in bounded time:
- interpreter exit: `atexit`;
- a `multiprocessing` worker's normal end (fork start method: it leaves by `os._exit`, which skips atexit):
  multiprocessing's own exit finalizers (`util.Finalize`, armed in each worker by `util.register_after_fork`);
- SIGTERM (`docker stop`, `Pool.terminate()`): a handler that flushes first, then does what SIGTERM did before —
  calls the app's own handler, or, when it was the default, ends open sessions, shuts export down (what could not
  be sent is counted and said) and dies by the signal as it would have. It is installed only from the main thread,
  only over the default or a Python handler (an ignored SIGTERM, or one handled outside Python, is left alone),
  and not at all with `AGENTOTEL_SIGTERM=off`. A handler the app sets after `init()` replaces it.
A child made by a bare `os.fork()` that leaves by `os._exit` runs none of these: call `agentotel.force_flush()`
first. In a forked child, the locks agentotel's module-level objects hold are made anew (a parent's thread may have
held one at the fork).
"""

from __future__ import annotations

import atexit
import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import FrameType
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
from ._loss import _bounded, batch_processor
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


def export_processors(exporters: Sequence[SpanExporter] | None = None, *, from_env: bool = True) -> list[SpanProcessor]:
    """What agentotel's export pipeline holds: the one choice of exporters, for `init()` and for the zero-code
    configurator (`distro.py`). Each exporter in its processor (`_processor_for`).

    - `exporters` given (`init(exporter=...)`): those, and the store beside them only when `AGENTOTEL_STORE` names
      a path;
    - else the exporters the `OTEL_*` variables ask for (`exporters_from_env`; none with `from_env=False`, when the
      SDK's configurator made them on its own provider), and the store (`store.store_exporters`) when nothing else
      exports, or beside the others when `AGENTOTEL_STORE` names a path. Any `OTEL_TRACES_EXPORTER` value, `none`
      included, is the user's choice of export: the store then runs only where `AGENTOTEL_STORE` names a path.
    """
    if exporters is not None:
        chosen = list(exporters)
        other_export = True
    else:
        chosen = exporters_from_env() if from_env else []
        other_export = bool(chosen) or bool(os.environ.get("OTEL_TRACES_EXPORTER", "").strip())
    chosen += store_exporters(other_export=other_export)
    return [_processor_for(e) for e in chosen]


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
                state.pipeline.replace(export_processors())
        assert state.pipeline is not None
        if exporter is not None:
            state.pipeline.replace(export_processors([exporter] if isinstance(exporter, SpanExporter) else exporter))
        if not state.initialized:
            install_default_propagators()  # the session id goes to internal hosts only (`propagation.py`)
        _install_process_hooks()
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


EXIT_REASON = "the process exited with the session open"
SIGTERM_REASON = "the process was terminated (SIGTERM) with the session open"
SIGTERM_ENV = "AGENTOTEL_SIGTERM"
EXIT_FLUSH_MS = 5_000
"""Longest the exporters are waited for at exit, all together."""
EXIT_END_BUDGET_S = 2.0
"""How long sessions still open at exit end with their totals; past it the others end without (`sessions.py`)."""
SIGTERM_FLUSH_MS = 3_000
"""Longest a SIGTERM waits for the exporters, all together, before the app's handler or the default runs."""
SIGTERM_BUDGET_S = 6.0
"""Longest all a SIGTERM does before the app's handler or the default runs (docker stop waits 10 s)."""


def _end_open_sessions(reason: str = EXIT_REASON, flush_ms: int = EXIT_FLUSH_MS) -> None:
    """At interpreter exit (or a multiprocessing worker's), ends sessions still open as Indeterminate with `reason`
    and flushes what is buffered, every exporter within one deadline of `flush_ms`. Never raises."""
    try:
        from .sessions import end_every_session

        end_every_session("Indeterminate", reason, EXIT_END_BUDGET_S)
    except Exception:
        log.debug("Could not end open sessions at exit", exc_info=True)
    force_flush(flush_ms)


_hooks_installed = False
_sigterm_installed = False
_terminating = False


def _install_process_hooks() -> None:
    """The process-exit wiring, once per process (SIGTERM's handler also later, from the main thread, if an earlier
    `init()` ran in another). Never raises."""
    global _hooks_installed
    if not _hooks_installed:
        _hooks_installed = True
        atexit.register(_end_open_sessions)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)
        _arm_this_worker()
    _install_sigterm_handler()


def _arm_this_worker() -> None:
    """When this process is a `multiprocessing` worker that set agentotel up itself (its parent had not), has its
    normal end flush too. Never raises."""
    try:
        multiprocessing = sys.modules.get("multiprocessing")
        if multiprocessing is not None and multiprocessing.parent_process() is not None:
            _at_worker_start(None)
    except Exception:
        pass


def _after_fork_in_child() -> None:
    """In a forked child: fresh module-level locks (a parent's thread may have held one at the fork), and the
    multiprocessing exit hook armed. Runs inside `os.fork()`: never raises."""
    global _lock
    try:
        _lock = threading.RLock()
        if state.pipeline is not None:
            state.pipeline._lock = threading.Lock()
        from . import _gc
        from .pricing import prices

        prices._lock = threading.Lock()
        _gc._lock = threading.Lock()
        if _gc._depth:  # a parent's thread was building a big batch with the collector paused: not this process
            _gc._depth = 0
            if _gc._paused:
                _gc._paused = False
                gc.enable()
    except Exception:
        pass
    _arm_worker_exit()


class _WorkerExit:
    """The object multiprocessing's after-fork registry holds (weakly) for agentotel."""


_WORKER_EXIT = _WorkerExit()


def _arm_worker_exit() -> None:
    """Has a `multiprocessing` worker forked from this process end its sessions and flush at its normal end: it
    leaves by `os._exit`, after its exit finalizers; `Process._bootstrap` clears those it inherits, then calls the
    after-fork callbacks, which register ours. Never raises."""
    try:
        util = sys.modules.get("multiprocessing.util")
        if util is not None:
            util.register_after_fork(_WORKER_EXIT, _at_worker_start)
    except Exception:
        pass


def _at_worker_start(_owner: object) -> None:
    try:
        from multiprocessing import util

        util.Finalize(None, _end_open_sessions, exitpriority=-100)  # the last of the worker's finalizers
    except Exception:
        log.debug("Could not arm the multiprocessing worker's exit", exc_info=True)


class _SigtermHandler:
    """Flushes on SIGTERM (bounded), then does what SIGTERM did before agentotel: the app's handler, or the
    default (the process ends by the signal). Never raises into the app beyond what its own handler raises."""

    agentotel = True

    def __init__(self, previous: Callable[[int, FrameType | None], Any] | int) -> None:
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        global _terminating
        previous = self.previous
        if callable(previous) and not _terminating:
            # The app handles SIGTERM: what ended is exported first; what is open is its handler's to decide.
            _bounded(lambda: force_flush(SIGTERM_FLUSH_MS), SIGTERM_BUDGET_S, "sigterm")
            return previous(signum, frame)
        if not _terminating:  # a second SIGTERM while the first is handled does not wait again
            _terminating = True
            # A worker thread does the work, waited for with a bound: this frame may hold a lock it needs.
            _bounded(_finish_on_sigterm, SIGTERM_BUDGET_S, "sigterm")
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        except Exception:
            pass
        os._exit(128 + signal.SIGTERM)  # only when the signal could not end the process: the status a shell shows


def _finish_on_sigterm() -> None:
    """SIGTERM with the default handler: open sessions end, buffered spans are flushed, export shuts down (counting
    and saying what it could not send). Never raises."""
    _end_open_sessions(SIGTERM_REASON, SIGTERM_FLUSH_MS)
    try:
        if state.pipeline is not None:
            state.pipeline.shutdown()
    except Exception:
        log.debug("Could not shut export down on SIGTERM", exc_info=True)


def _install_sigterm_handler() -> None:
    """Installs `_SigtermHandler` where SIGTERM is ours to touch (see the module's docstring). Never raises."""
    global _sigterm_installed
    if _sigterm_installed or os.name != "posix" or not hasattr(signal, "SIGTERM"):
        return
    if os.environ.get(SIGTERM_ENV, "").strip().lower() in ("off", "false", "0", "no", "none"):
        return
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set a handler; a later init() from it will
    try:
        previous = signal.getsignal(signal.SIGTERM)
        if getattr(previous, "agentotel", False):
            _sigterm_installed = True
            return
        if previous is None or previous == signal.SIG_IGN:
            _sigterm_installed = True  # not ours: handled outside Python, or ignored on purpose
            return
        signal.signal(signal.SIGTERM, _SigtermHandler(previous))
        _sigterm_installed = True
    except Exception:  # ValueError from another interpreter than the main one, among others
        log.debug("Could not install agentotel's SIGTERM handler", exc_info=True)


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
    someone else's (e.g. `opentelemetry-instrument`'s exporters), all within `timeout_millis` (each processor gets
    what is left of it, as the SDK's provider does). Never raises."""
    try:
        deadline = time.monotonic() + max(0, timeout_millis) / 1000
        ok = True
        for processor in state.pipeline.processors if state.pipeline is not None else ():
            ok = _flush_within(processor, deadline) and ok
        if state.provider is not None and not state.owns_provider:
            ok = _flush_within(state.provider, deadline) and ok
        return ok
    except Exception:
        return False


def _flush_within(flushable: SpanProcessor | TracerProvider, deadline: float) -> bool:
    left_ms = int((deadline - time.monotonic()) * 1000)
    if left_ms <= 0:
        return False
    try:
        return bool(flushable.force_flush(left_ms))
    except Exception:
        log.debug("An export processor failed to flush", exc_info=True)
        return False
