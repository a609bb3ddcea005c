"""Step decorators: `@tool`, `@agent`, `@operation` and the AgentOps-style `@record_action("name")`.

Each wraps sync, async, generator and async-generator functions (one core, `_wrapping.wrap`) in a span that is a
child of the current span and belongs to the current session. An exception is recorded on the step's span and
re-raised unchanged. A step cancelled or interrupted (`asyncio.CancelledError` from a task cancelled or an
`asyncio.wait_for` timing out, `KeyboardInterrupt`, `SystemExit`) is marked `agentotel.step.cancelled` and not
failed: the step did not complete, but it did not fail either, so it is never the error a session is blamed on
(the OpenTelemetry SDK records no such exception as an error either). Arguments and results are recorded only when
content capture is on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar, overload

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import _clock as clock
from . import semconv as sc
from ._config import settings
from ._content import bind_arguments, to_json
from ._rerun_hook import servable
from ._span_attributes import set_text_attribute
from ._version import __version__
from ._wrapping import wrap

log = logging.getLogger("agentotel")

F = TypeVar("F", bound=Callable[..., Any])

tracer = trace.get_tracer("agentotel", __version__)
"""agentotel's tracer; a proxy until a provider is set, so it follows the global provider."""


def error_type_name(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"


def record_error(span: Span, error: BaseException) -> None:
    """Marks `span` as failed by `error`: the exception event, status ERROR and `error.type`. Never raises."""
    try:
        span.record_exception(error)
        span.set_attribute(sc.ERROR_TYPE, error_type_name(error))
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    except Exception:
        log.debug("Could not record an error on its span", exc_info=True)


def set_content(span: Span, key: str, value: Any) -> None:
    """Sets a content attribute as bounded JSON, marking the span when it was cut. Never raises."""
    try:
        text, truncated = to_json(value, settings.content_max_length)
        set_text_attribute(span, key, text)
        if truncated:
            span.set_attribute(sc.AGENTOTEL_CONTENT_TRUNCATED, True)
    except Exception:
        log.debug("Could not record content on a span", exc_info=True)


class SpanScope:
    """A step's span, made current while the step's code runs. Its methods never raise."""

    __slots__ = ("_result_key", "_token", "span")

    def __init__(self, span: Span, result_key: str | None) -> None:
        self.span = span
        self._result_key = result_key
        self._token: object | None = None

    def activate(self) -> None:
        try:
            self._token = context.attach(trace.set_span_in_context(self.span))
        except Exception:
            self._token = None

    def deactivate(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            context.detach(token)  # type: ignore[arg-type]

    def finish(self, error: BaseException | None, result: Any) -> None:
        span = self.span
        try:
            if error is not None:
                if isinstance(error, Exception):
                    record_error(span, error)
                elif not isinstance(error, GeneratorExit):  # a generator closed early completed as far as asked
                    span.set_attribute(sc.AGENTOTEL_STEP_CANCELLED, True)
            elif self._result_key is not None and settings.capture_content:
                set_content(span, self._result_key, result)
            span.end(clock.now_ns())
        except Exception:
            log.debug("Could not end a step's span", exc_info=True)


class _Step:
    """What a decorator knows about its step: kind, span name and the attributes every call starts with."""

    def __init__(
        self,
        kind: str,
        span_name: str,
        attributes: dict[str, Any],
        params_key: str | None,
        result_key: str | None,
        span_kind: SpanKind = SpanKind.INTERNAL,
    ) -> None:
        self.kind = kind
        self.span_name = span_name
        self.attributes = {sc.AGENTOTEL_STEP_KIND: kind, **attributes}
        self.params_key = params_key
        self.result_key = result_key
        self.span_kind = span_kind

    def opener(self, func: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], SpanScope]:
        # Read once here rather than from `self` on every call.
        span_name, span_kind, first, params_key, result_key = (
            self.span_name,
            self.span_kind,
            self.attributes,
            self.params_key,
            self.result_key,
        )

        def open_scope(args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanScope:
            attributes = first
            if params_key is not None and settings.capture_content:
                # Passed with the span's first attributes: a `set_attribute` after the start takes the span's lock
                # and checks the value again, a sixth of a content-capturing step's overhead.
                try:
                    text, truncated = to_json(bind_arguments(func, args, kwargs), settings.content_max_length)
                    attributes = {**first, params_key: text}
                    if truncated:
                        attributes[sc.AGENTOTEL_CONTENT_TRUNCATED] = True
                except Exception:
                    log.debug("Could not record a step's arguments", exc_info=True)
            # Positional (name, context, kind, attributes, links, start_time, as `Tracer.start_span` declares them):
            # the proxy tracer passes keywords on as a new dict, and the SDK matches each by name.
            span = tracer.start_span(span_name, None, span_kind, attributes, None, clock.now_ns())
            return SpanScope(span, result_key)

        return open_scope

    def decorate(self, func: F) -> F:
        return wrap(servable(func, self.kind, self.attributes), self.opener(func))


def _tool_step(name: str, description: str | None) -> _Step:
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
        sc.GEN_AI_TOOL_NAME: name,
        sc.GEN_AI_TOOL_TYPE: "function",
    }
    if description:
        attributes[sc.GEN_AI_TOOL_DESCRIPTION] = description
    return _Step(
        sc.AGENTOTEL_STEP_KIND_VALUE_TOOL,
        f"execute_tool {name}",
        attributes,
        sc.GEN_AI_TOOL_CALL_ARGUMENTS,
        sc.GEN_AI_TOOL_CALL_RESULT,
    )


def _agent_step(name: str) -> _Step:
    attributes = {sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT, sc.GEN_AI_AGENT_NAME: name}
    return _Step(sc.AGENTOTEL_STEP_KIND_VALUE_AGENT, f"invoke_agent {name}", attributes, None, None)


def _operation_step(name: str) -> _Step:
    return _Step(sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION, name, {}, sc.AGENTOTEL_ACTION_PARAMS, None)


def _action_step(action_type: str) -> _Step:
    return _Step(
        sc.AGENTOTEL_STEP_KIND_VALUE_ACTION,
        action_type,
        {sc.AGENTOTEL_ACTION_TYPE: action_type},
        sc.AGENTOTEL_ACTION_PARAMS,
        sc.AGENTOTEL_ACTION_RETURNS,
    )


def _decorator(make: Callable[[str], _Step], name_or_func: Any) -> Any:
    """Supports `@deco`, `@deco()` and `@deco("name")`; the step is named after the function by default."""
    if callable(name_or_func):
        func = name_or_func
        return make(getattr(func, "__name__", "step")).decorate(func)

    def decorate(func: F) -> F:
        return make(name_or_func or getattr(func, "__name__", "step")).decorate(func)

    return decorate


@overload
def tool(name_or_func: F) -> F: ...
@overload
def tool(name_or_func: str | None = None, *, description: str | None = None) -> Callable[[F], F]: ...
def tool(name_or_func: Any = None, *, description: str | None = None) -> Any:
    """Records each call of the function as a tool call (`execute_tool {name}`), arguments and result included
    when content capture is on."""
    return _decorator(lambda name: _tool_step(name, description), name_or_func)


@overload
def agent(name_or_func: F) -> F: ...
@overload
def agent(name_or_func: str | None = None) -> Callable[[F], F]: ...
def agent(name_or_func: Any = None) -> Any:
    """Records each call of the function as an agent step (`invoke_agent {name}`) inside the current session."""
    return _decorator(_agent_step, name_or_func)


@overload
def operation(name_or_func: F) -> F: ...
@overload
def operation(name_or_func: str | None = None) -> Callable[[F], F]: ...
def operation(name_or_func: Any = None) -> Any:
    """Records each call of the function as a step of its own (a span named after it)."""
    return _decorator(_operation_step, name_or_func)


@overload
def record_action(action_type: F) -> F: ...
@overload
def record_action(action_type: str | None = None) -> Callable[[F], F]: ...
def record_action(action_type: Any = None) -> Any:
    """AgentOps' decorator: records each call as an action of `action_type`, params and returns included when
    content capture is on."""
    return _decorator(_action_step, action_type)
