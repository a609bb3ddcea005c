"""What every agent-framework integration shares: instrumenting a framework when it is imported, and the spans of
the span contract (agent steps, tool calls, other steps) made from a framework's own hooks.

`FrameworkInstrumentor` is a `BaseInstrumentor` (so `opentelemetry-instrument` loads it from its entry point and
`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` turns it off) that never imports its framework itself: importing LangChain or
CrewAI costs seconds and has side effects, so an app that has a framework installed but does not use it must not
pay for it. `instrument()` hooks the framework at once when it is already imported, else when it is
(`wrapt.register_post_import_hook`).

The step helpers write what `steps.py` writes for `@agentotel.tool` / `@agentotel.agent`, for spans opened and
closed in a framework's callbacks rather than around a Python call: the same names, kinds and attributes,
arguments and results only with content capture on, errors with their type and message (also when a framework
only gives the error as text). Nothing here raises into the framework: every function says so or is only called
from code that catches its faults.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Collection, Mapping
from types import ModuleType
from typing import Any, ClassVar

import wrapt
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from .. import _clock as clock
from .. import semconv as sc
from .._config import settings
from .._content import parse_json
from ..steps import record_error, set_content, tracer

log = logging.getLogger("agentotel")

__all__ = [
    "FrameworkInstrumentor",
    "Patches",
    "attach",
    "detach",
    "end_step",
    "record_failure",
    "set_arguments",
    "set_result",
    "start_agent",
    "start_step",
    "start_tool",
]


class FrameworkInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """An instrumentor that hooks its framework when the framework is imported (at once if it already is).

    Subclasses set `module_name` (what the framework is imported as) and `requirements` (the distributions and
    versions it supports, checked by `BaseInstrumentor.instrument` without importing anything), and implement
    `apply(module)` and `remove()`. Neither is called more than once in a row; a fault in either is logged, never
    raised."""

    module_name: ClassVar[str]
    requirements: ClassVar[tuple[str, ...]] = ()

    _enabled = False
    _applied = False
    _hooked = False
    _options: dict[str, Any] = {}  # replaced per instance by `_instrument`
    _lock: ClassVar[threading.Lock]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._lock = threading.Lock()

    def instrumentation_dependencies(self) -> Collection[str]:
        return self.requirements

    def _instrument(self, **kwargs: Any) -> None:
        self._enabled = True
        self._options = kwargs  # what `instrument()` was given (`tracer_provider=`, ...), for `apply`
        module = sys.modules.get(self.module_name)
        if module is not None:
            self._apply_once(module)
            return
        if not type(self)._hooked:
            type(self)._hooked = True  # a post-import hook cannot be removed: one per class, gated by `_enabled`
            try:
                wrapt.register_post_import_hook(self._on_import, self.module_name)
            except Exception:
                log.debug("Could not wait for %s to be imported", self.module_name, exc_info=True)

    def _on_import(self, module: ModuleType) -> None:
        if self._enabled:
            self._apply_once(module)

    def _apply_once(self, module: ModuleType) -> None:
        with self._lock:
            if self._applied or not self._enabled:
                return
            try:
                self.apply(module)
                self._applied = True
            except Exception:
                log.debug("Could not instrument %s", self.module_name, exc_info=True)

    def _uninstrument(self, **kwargs: Any) -> None:
        with self._lock:
            self._enabled = False
            if not self._applied:
                return
            self._applied = False
            try:
                self.remove()
            except Exception:
                log.debug("Could not uninstrument %s", self.module_name, exc_info=True)

    @property
    def applied(self) -> bool:
        """Whether the framework is hooked now (it is imported and instrumented)."""
        return self._applied

    def apply(self, module: ModuleType) -> None:
        """Hooks the imported framework `module`. May raise: the caller logs it and leaves the framework as is."""
        raise NotImplementedError

    def remove(self) -> None:
        """Undoes `apply`. May raise: the caller logs it."""
        raise NotImplementedError


class Patches:
    """The `wrapt` wrappers an integration put on its framework, undone in the reverse order. A method that
    something wrapped again since agentotel did is left as it is (undoing ours would undo theirs): such a wrapper
    stays, and must do nothing once its integration is off. Undoing never raises."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._installed: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, wrapper: Any) -> None:
        """`wrapt.wrap_function_wrapper(owner, name, wrapper)`, remembered. May raise: the caller decides."""
        wrapt.wrap_function_wrapper(owner, name, wrapper)
        self._installed.append((owner, name, vars(owner)[name]))

    def undo(self) -> None:
        installed, self._installed = self._installed, []
        for owner, name, wrapper in reversed(installed):
            try:
                if vars(owner).get(name) is wrapper:
                    setattr(owner, name, wrapper.__wrapped__)
                else:
                    log.debug("%s's %s was wrapped again since agentotel wrapped it: left as it is", self._what, name)
            except Exception:
                log.debug("Could not unwrap %s's %s", self._what, name, exc_info=True)

    @property
    def hooked(self) -> list[str]:
        """`owner:attribute` of each wrapper on now, for diagnostics."""
        return [f"{getattr(owner, '__name__', owner)}:{name}" for owner, name, _ in self._installed]


# --------------------------------------------------------------------------------------------------------------------
# Step spans


def start_step(
    kind: str,
    span_name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: Context | None = None,
    start_ns: int | None = None,
    span_kind: SpanKind = SpanKind.INTERNAL,
) -> Span:
    """Starts a span of agentotel step kind `kind` (`semconv.AGENTOTEL_STEP_KIND_VALUE_*`), a child of `parent`
    (default: the current context). Never raises: a span that cannot be started is the invalid, non-recording
    span."""
    try:
        first = {sc.AGENTOTEL_STEP_KIND: kind, **(attributes or {})}
        return tracer.start_span(
            span_name, parent, span_kind, first, None, clock.now_ns() if start_ns is None else start_ns
        )
    except Exception:
        log.debug("Could not start a step's span", exc_info=True)
        return trace.INVALID_SPAN


def start_tool(
    name: str,
    *,
    call_id: str | None = None,
    description: str | None = None,
    tool_type: str = "function",
    arguments: Any = None,
    attributes: Mapping[str, Any] | None = None,
    parent: Context | None = None,
    start_ns: int | None = None,
) -> Span:
    """Starts an `execute_tool {name}` span, as `@agentotel.tool` makes, with the call id and (content capture only)
    the arguments. Never raises."""
    first: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
        sc.GEN_AI_TOOL_NAME: name,
        sc.GEN_AI_TOOL_TYPE: tool_type,
    }
    if call_id:
        first[sc.GEN_AI_TOOL_CALL_ID] = str(call_id)
    if description:
        first[sc.GEN_AI_TOOL_DESCRIPTION] = str(description)[:1024]
    if attributes:
        first.update(attributes)
    span = start_step(
        sc.AGENTOTEL_STEP_KIND_VALUE_TOOL, f"execute_tool {name}", first, parent=parent, start_ns=start_ns
    )
    if arguments is not None:
        set_arguments(span, arguments)
    return span


def start_agent(
    name: str,
    *,
    agent_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    parent: Context | None = None,
    start_ns: int | None = None,
) -> Span:
    """Starts an `invoke_agent {name}` agent step, as `@agentotel.agent` makes. Never raises."""
    first: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: name,
    }
    if agent_id:
        first[sc.GEN_AI_AGENT_ID] = str(agent_id)
    if attributes:
        first.update(attributes)
    return start_step(
        sc.AGENTOTEL_STEP_KIND_VALUE_AGENT, f"invoke_agent {name}", first, parent=parent, start_ns=start_ns
    )


def _set_json_content(span: Span, key: str, value: Any) -> None:
    """A content attribute from a value, or from JSON text a framework already encoded (kept as the JSON it is,
    not encoded a second time into a JSON string). Content capture only. Never raises."""
    if not settings.capture_content:
        return
    try:
        if isinstance(value, str):
            parsed = parse_json(value)
            if parsed is not value and isinstance(parsed, (dict, list)):
                value = parsed
        set_content(span, key, value)
    except Exception:
        log.debug("Could not record a step's content", exc_info=True)


def set_arguments(span: Span, arguments: Any) -> None:
    """Records a tool call's arguments (a value, or JSON text) on its span; content capture only. Never raises."""
    _set_json_content(span, sc.GEN_AI_TOOL_CALL_ARGUMENTS, arguments)


def set_result(span: Span, result: Any) -> None:
    """Records a tool call's result on its span; content capture only. Never raises."""
    _set_json_content(span, sc.GEN_AI_TOOL_CALL_RESULT, result)


def record_failure(
    span: Span,
    error: BaseException | None = None,
    *,
    type_name: str | None = None,
    message: str | None = None,
) -> None:
    """Marks a step failed: by the exception when there is one (its event, status and `error.type`, as `@tool`
    records it), else by the type name and message a framework reports in its place (a tool error it turned into
    text for the model). Never raises."""
    if error is not None:
        record_error(span, error)
        return
    try:
        kind = type_name or "Error"
        text = message or ""
        span.add_event(
            "exception",
            {sc.EXCEPTION_TYPE: kind, sc.EXCEPTION_MESSAGE: text},
        )
        span.set_attribute(sc.ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, f"{kind.rsplit('.', 1)[-1]}: {text}" if text else kind))
    except Exception:
        log.debug("Could not record an error on its span", exc_info=True)


def end_step(span: Span, end_ns: int | None = None) -> None:
    """Ends a step's span. Never raises."""
    try:
        span.end(clock.now_ns() if end_ns is None else end_ns)
    except Exception:
        log.debug("Could not end a step's span", exc_info=True)


# --------------------------------------------------------------------------------------------------------------------
# Making a span current from callbacks


def attach(span: Span) -> object | None:
    """Makes `span` current in this context (so that work done inside it, LLM calls and nested tools, become its
    children) and returns the token `detach` takes. Never raises."""
    try:
        return context.attach(trace.set_span_in_context(span))
    except Exception:
        log.debug("Could not make a step's span current", exc_info=True)
        return None


def detach(token: object | None) -> None:
    """Undoes `attach`. A framework may end a step in another context than the one it started it in (another task
    or thread): then the token cannot be reset there, and is left as it is, without the error the API would log.
    Never raises."""
    if token is None:
        return
    try:
        if isinstance(token, contextvars.Token):
            token.var.reset(token)
        else:
            context.detach(token)  # type: ignore[arg-type]
    except (ValueError, RuntimeError):
        pass  # made in another context, or reset already
    except Exception:
        log.debug("Could not restore the context after a step", exc_info=True)
