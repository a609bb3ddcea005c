"""Step decorators: `@tool`, `@agent`, `@operation`, the AgentOps-style `@record_action("name")`, and AgentOps 0.4's
`@workflow`, `@task` and `@guardrail` (operation steps marked with `agentotel.operation.kind`).

Each wraps sync, async, generator and async-generator functions (one core, `_wrapping.wrap`) in a span that is a
child of the current span and belongs to the current session. Each takes AgentOps 0.4's keyword arguments
(`StepOptions`: `name=`, `cost=` for a tool, `spec=` for a guardrail, ...) and decorates a class as AgentOps' do:
each call of the class's public methods is then a step, and the instance's steps nest in it. An exception is recorded
on the step's span and re-raised unchanged. A step cancelled or interrupted (`asyncio.CancelledError` from a task
cancelled or an `asyncio.wait_for` timing out, `KeyboardInterrupt`, `SystemExit`) is marked
`agentotel.step.cancelled` and not failed: the step did not complete, but it did not fail either, so it is never the
error a session is blamed on (the OpenTelemetry SDK records no such exception as an error either). Arguments and
results are recorded only when content capture is on.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable
from typing import Any, TypedDict, TypeVar, Unpack, overload

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import _clock as clock
from . import semconv as sc
from ._config import settings
from ._content import bind_arguments, to_json
from ._rerun_hook import servable
from ._sdk import set_text_attribute
from ._version import __version__
from ._wrapping import wrap
from .pricing import CURRENCY

log = logging.getLogger("agentotel")

F = TypeVar("F", bound=Callable[..., Any])

tracer = trace.get_tracer("agentotel", __version__)
"""agentotel's tracer; a proxy until a provider is set, so it follows the global provider."""

DECLARED_COST_SOURCE = "application"
"""`agentotel.usage.cost.source` of a cost the application gave a tool (`@tool(cost=...)`)."""

_INSTANCE = context.create_key("agentotel-step-instance")
"""The instance of a decorated class whose method call is the current step (`_InstanceScope`)."""


class StepOptions(TypedDict, total=False):
    """The keyword arguments of AgentOps 0.4's decorators (`agentops.sdk.decorators`). Every step decorator takes
    all of them, as AgentOps' do; each uses those that mean something for its step, the others are ignored."""

    name: str | None
    """The step's name (default: the function's or class's)."""
    version: Any
    """Accepted and not recorded."""
    tags: Any
    """Accepted and not recorded on steps (a session's tags: `@trace(tags=...)`)."""
    cost: float | None
    """A tool call's cost in USD, recorded on its span and counted in the session's cost."""
    spec: str | None
    """What a guardrail checks: `"input"` or `"output"`."""
    capture_request: bool
    """False: the step's arguments are not recorded, even with content capture on."""
    capture_response: bool
    """False: the step's result is not recorded, even with content capture on."""


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

    def method_opener(self, func: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], SpanScope | None]:
        """`opener` for a method of a decorated class: no step for a call made from inside another step of the
        same instance (it is part of that one)."""
        open_step = self.opener(func)

        def open_scope(args: tuple[Any, ...], kwargs: dict[str, Any]) -> SpanScope | None:
            instance = args[0] if args else None
            if instance is None or context.get_value(_INSTANCE) is instance:
                return None
            scope = open_step(args, kwargs)
            return _InstanceScope(scope.span, scope._result_key, instance)

        return open_scope

    def decorate_class(self, cls: type) -> type:
        """`cls` itself, each of its public methods (and `__call__`) changed in place so that each call of it is
        this step; the steps inside it (decorated methods too) nest in it. Never raises: a method that cannot be
        wrapped is left as it is."""
        for attribute, value in list(vars(cls).items()):
            if (attribute.startswith("_") and attribute != "__call__") or not inspect.isfunction(value):
                continue
            try:
                setattr(cls, attribute, wrap(servable(value, self.kind, self.attributes), self.method_opener(value)))
            except Exception:
                log.debug("Could not record the calls of %s.%s", cls.__name__, attribute, exc_info=True)
        return cls


class _InstanceScope(SpanScope):
    """A step of a decorated class's instance: its span, and the instance, made current together."""

    __slots__ = ("_instance",)

    def __init__(self, span: Span, result_key: str | None, instance: object) -> None:
        super().__init__(span, result_key)
        self._instance = instance

    def activate(self) -> None:
        try:
            ctx = context.set_value(_INSTANCE, self._instance, trace.set_span_in_context(self.span))
            self._token = context.attach(ctx)
        except Exception:
            self._token = None


def declared_cost(cost: Any) -> dict[str, Any]:
    """The attributes that record a cost the application gave a step (USD), or none, with a warning, for a value
    that is no finite amount of at least 0. Never raises."""
    try:
        amount = float(cost) if not isinstance(cost, bool) else math.nan
    except Exception:
        amount = math.nan
    if not math.isfinite(amount) or amount < 0:
        shown = repr(cost) if isinstance(cost, (str, int, float)) else f"a {type(cost).__name__}"
        log.warning("agentotel: a tool's cost must be a number of USD, at least 0; %s is not recorded", shown)
        return {}
    return {
        sc.AGENTOTEL_USAGE_COST_AMOUNT: amount,
        sc.AGENTOTEL_USAGE_COST_CURRENCY: CURRENCY,
        sc.AGENTOTEL_USAGE_COST_SOURCE: DECLARED_COST_SOURCE,
    }


def _tool_step(name: str, description: str | None, cost: Any = None) -> _Step:
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
        sc.GEN_AI_TOOL_NAME: name,
        sc.GEN_AI_TOOL_TYPE: "function",
    }
    if description:
        attributes[sc.GEN_AI_TOOL_DESCRIPTION] = description
    if cost is not None:
        attributes.update(declared_cost(cost))
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


def _operation_step(name: str, operation_kind: str | None = None, spec: Any = None) -> _Step:
    attributes: dict[str, Any] = {}
    if operation_kind:
        attributes[sc.AGENTOTEL_OPERATION_KIND] = operation_kind
    if spec in _GUARDRAIL_SPECS:
        attributes[sc.AGENTOTEL_GUARDRAIL_SPEC] = spec
    elif spec is not None:
        log.debug("A guardrail's spec is 'input' or 'output'; %r is not recorded", spec)
    return _Step(sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION, name, attributes, sc.AGENTOTEL_ACTION_PARAMS, None)


_GUARDRAIL_SPECS = (sc.AGENTOTEL_GUARDRAIL_SPEC_VALUE_INPUT, sc.AGENTOTEL_GUARDRAIL_SPEC_VALUE_OUTPUT)


def _action_step(action_type: str) -> _Step:
    return _Step(
        sc.AGENTOTEL_STEP_KIND_VALUE_ACTION,
        action_type,
        {sc.AGENTOTEL_ACTION_TYPE: action_type},
        sc.AGENTOTEL_ACTION_PARAMS,
        sc.AGENTOTEL_ACTION_RETURNS,
    )


def _decorator(make: Callable[[str], _Step], name_or_func: Any, options: StepOptions) -> Any:
    """Supports `@deco`, `@deco()`, `@deco("name")` and AgentOps' `@deco(name=..., ...)`, on a function or a class
    (`_Step.decorate_class`); the step is named after the function or class by default."""
    given = name_or_func if isinstance(name_or_func, str) and name_or_func else options.get("name")

    def apply(target: Any) -> Any:
        step = make(str(given or getattr(target, "__name__", None) or "step"))
        if options.get("capture_request") is False:
            step.params_key = None
        if options.get("capture_response") is False:
            step.result_key = None
        if inspect.isclass(target):
            return step.decorate_class(target)
        return step.decorate(target)

    if callable(name_or_func):
        return apply(name_or_func)
    return apply


@overload
def tool(name_or_func: F, *, description: str | None = None, **options: Unpack[StepOptions]) -> F: ...
@overload
def tool(
    name_or_func: str | None = None, *, description: str | None = None, **options: Unpack[StepOptions]
) -> Callable[[F], F]: ...
def tool(name_or_func: Any = None, *, description: str | None = None, **options: Unpack[StepOptions]) -> Any:
    """Records each call of the function as a tool call (`execute_tool {name}`), arguments and result included
    when content capture is on. `cost=` (USD, AgentOps 0.4's `@tool(cost=0.05)`) is recorded on each call's span
    and counted in the session's cost; a cost that is no amount is left out with a warning."""
    cost = options.get("cost")
    return _decorator(lambda name: _tool_step(name, description, cost), name_or_func, options)


@overload
def agent(name_or_func: F, **options: Unpack[StepOptions]) -> F: ...
@overload
def agent(name_or_func: str | None = None, **options: Unpack[StepOptions]) -> Callable[[F], F]: ...
def agent(name_or_func: Any = None, **options: Unpack[StepOptions]) -> Any:
    """Records each call of the function as an agent step (`invoke_agent {name}`) inside the current session. On a
    class (AgentOps' `@agent class ResearchAgent`), each call of its public methods is a step of that agent, the
    class's name by default, and the steps its methods make nest in it."""
    return _decorator(_agent_step, name_or_func, options)


@overload
def operation(name_or_func: F, **options: Unpack[StepOptions]) -> F: ...
@overload
def operation(name_or_func: str | None = None, **options: Unpack[StepOptions]) -> Callable[[F], F]: ...
def operation(name_or_func: Any = None, **options: Unpack[StepOptions]) -> Any:
    """Records each call of the function as a step of its own (a span named after it)."""
    return _decorator(_operation_step, name_or_func, options)


@overload
def workflow(name_or_func: F, **options: Unpack[StepOptions]) -> F: ...
@overload
def workflow(name_or_func: str | None = None, **options: Unpack[StepOptions]) -> Callable[[F], F]: ...
def workflow(name_or_func: Any = None, **options: Unpack[StepOptions]) -> Any:
    """AgentOps 0.4's `@workflow`: each call is an operation step marked `agentotel.operation.kind=workflow`."""
    return _decorator(
        lambda name: _operation_step(name, sc.AGENTOTEL_OPERATION_KIND_VALUE_WORKFLOW), name_or_func, options
    )


@overload
def task(name_or_func: F, **options: Unpack[StepOptions]) -> F: ...
@overload
def task(name_or_func: str | None = None, **options: Unpack[StepOptions]) -> Callable[[F], F]: ...
def task(name_or_func: Any = None, **options: Unpack[StepOptions]) -> Any:
    """AgentOps 0.4's `@task`: each call is an operation step marked `agentotel.operation.kind=task`."""
    return _decorator(lambda name: _operation_step(name, sc.AGENTOTEL_OPERATION_KIND_VALUE_TASK), name_or_func, options)


@overload
def guardrail(name_or_func: F, **options: Unpack[StepOptions]) -> F: ...
@overload
def guardrail(name_or_func: str | None = None, **options: Unpack[StepOptions]) -> Callable[[F], F]: ...
def guardrail(name_or_func: Any = None, **options: Unpack[StepOptions]) -> Any:
    """AgentOps 0.4's `@guardrail(spec="input" | "output")`: each call is an operation step marked
    `agentotel.operation.kind=guardrail` (and `agentotel.guardrail.spec`). A guardrail that raises is a failed step,
    so a session it stops names it as its first error."""
    spec = options.get("spec")
    return _decorator(
        lambda name: _operation_step(name, sc.AGENTOTEL_OPERATION_KIND_VALUE_GUARDRAIL, spec), name_or_func, options
    )


@overload
def record_action(action_type: F) -> F: ...
@overload
def record_action(action_type: str | None = None) -> Callable[[F], F]: ...
def record_action(action_type: Any = None) -> Any:
    """AgentOps' decorator: records each call as an action of `action_type`, params and returns included when
    content capture is on."""
    return _decorator(_action_step, action_type, {})
