"""`CrewAIInstrumentor`: a CrewAI run as agentotel steps, made from the events on CrewAI's event bus.

What each event makes (the span contract of `steps.py`):

- crew kickoff started / completed / failed: an agent step `invoke_agent {crew name}`;
- task started / completed / failed: an operation step named after the task (its `name`, else the first line of
  its description as written, before `{inputs}` are filled in: the filled-in text is the user's content);
- agent execution (and a lone `Agent.kickoff()`, CrewAI's "lite agent") started / completed / error: an agent
  step `invoke_agent {role}`;
- tool usage started / finished / error: `execute_tool {name}`, with its arguments and result under content
  capture, and the call id the model gave it (read from the model's response that asked for it). CrewAI catches a
  tool's exception and hands its text to the model: the step is failed all the same, by that exception; a tool
  that returns CrewAI's `ToolFailure` fails its step too;
- LLM call started / completed / failed: nothing when an agentotel provider instrumentation records the call
  (CrewAI's native OpenAI and Anthropic classes call the `openai` / `anthropic` SDKs, and
  `crewai.LLM(model="gpt-4o-mini", ...)` is the native OpenAI class); else a `chat {model}` span of its own, with
  the tokens CrewAI reports (the event's usage; before 1.13, what the LLM's token counter added) and their cost.

A failure CrewAI reports only as text (agent, task, crew, LLM call) gets the type of the exception CrewAI is
handling when it emits it, when that exception is the one the text is of.

Threading, and what nests how. CrewAI's public listener API (`crewai_event_bus.on(EventType)`, `BaseEventListener`,
`off()` to unregister) runs synchronous handlers in a thread pool of its own, each in a copy of the emitter's
context, in no guaranteed order. A handler there cannot make a span current where the work happens: the provider
span of an LLM call (made in CrewAI's thread by the `openai` instrumentation) would not nest under the agent step,
and a step could even start after its own children. So this module observes `CrewAIEventsBus.emit` itself (one
`wrapt` wrapper on the bus's public method; `aemit` too), in the emitting thread, right after CrewAI has given the
event its ids, and before the emitter goes on. Each started step is made current there (`attach`) and the
matching end, which CrewAI emits in the same context (its own scope stack lives in the same context variables),
restores it (`detach`). CrewAI carries context variables into the threads it runs an agent's LLM calls and tools in
(`asyncio.to_thread`, `copy_context().run`), so:

    session (the app's) > crew step > task step > agent step > LLM call (provider span) and tool step
    > anything the tool itself traces

An end event names its start by CrewAI's `started_event_id` (1.10.1 and later); open steps are kept by that id,
removed at their end, and at most `_OPEN_LIMIT` are kept (past it the oldest is ended as it is). An end ends the
step CrewAI pairs it with even when CrewAI mispairs them (a second `llm_call_failed` closing the agent's scope).
Every fault in here is logged at debug level and swallowed: CrewAI's own emit, its return value and its exceptions
pass unchanged.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry.trace import Span

from .. import semconv as sc
from ..steps import tracer
from ._framework import (
    FrameworkInstrumentor,
    attach,
    detach,
    end_step,
    record_failure,
    set_result,
    start_agent,
    start_step,
    start_tool,
)
from ._genai import LLMCall, as_int, field, message, text_part, tool_call_part
from ._openai_messages import chat_input_messages

log = logging.getLogger("agentotel")

__all__ = ["CrewAIInstrumentor"]

_OPEN_LIMIT = 4096
"""Steps open at once, at most (a start whose end never comes must not grow memory without bound)."""
_PENDING_CALLS_LIMIT = 1024
"""Model responses whose tool calls are still waiting for their tool to run, at most."""
_TASK_NAME_LENGTH = 80


@dataclass(slots=True)
class _Step:
    """A step begun by a CrewAI event: its span, the token that made it current, and for a model call its
    `LLMCall` (which ends its own span) and the LLM's token counts before it (releases before 1.13 report no usage
    per call)."""

    span: Span
    token: object | None
    kind: str
    call: LLMCall | None = None
    usage_before: tuple[int, int, int] | None = None

    def end(self) -> None:
        """Restores the context and ends the span. Never raises."""
        detach(self.token)
        if self.call is not None:
            self.call.end()
        else:
            end_step(self.span)


class _OpenSteps:
    """Steps begun and not yet ended, by the id of the event that began them. Thread-safe, bounded."""

    def __init__(self, limit: int = _OPEN_LIMIT) -> None:
        self._steps: dict[str, _Step] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def add(self, event_id: Any, step: _Step) -> None:
        """Keeps `step` until its end; past the limit, ends the oldest as it is (its end never came). A step whose
        event has no id could never be ended: it ends at once."""
        if event_id is None:
            step.end()
            return
        evicted: _Step | None = None
        with self._lock:
            if len(self._steps) >= self._limit:
                evicted = self._steps.pop(next(iter(self._steps)))
            self._steps[str(event_id)] = step
        if evicted is not None:
            evicted.token = None  # made current in another context, long ago: not restored from here
            evicted.end()

    def pop(self, event_id: Any) -> _Step | None:
        if event_id is None:
            return None
        with self._lock:
            return self._steps.pop(str(event_id), None)

    def drain(self) -> list[_Step]:
        with self._lock:
            steps, self._steps = list(self._steps.values()), {}
        return steps

    def __len__(self) -> int:
        return len(self._steps)


class _ToolCallIds:
    """The tool calls a model response asked for, until their tools run: scope -> [(name, arguments, call id)].

    The scope is CrewAI's enclosing event (`parent_event_id`), the same for an agent's LLM call and the tool calls
    that follow it, though CrewAI runs them in different threads. A newer response in a scope replaces the older's
    calls. Thread-safe, bounded."""

    def __init__(self, limit: int = _PENDING_CALLS_LIMIT) -> None:
        self._calls: dict[str, list[tuple[str, Any, str]]] = {}
        self._lock = threading.Lock()
        self._limit = limit

    def asked(self, scope: str, calls: list[tuple[str, Any, str]]) -> None:
        with self._lock:
            self._calls.pop(scope, None)
            if len(self._calls) >= self._limit:
                self._calls.pop(next(iter(self._calls)))
            self._calls[scope] = calls

    def take(self, scope: str, name: str, arguments: Any) -> str | None:
        """The id of the call of `name` (with these arguments, when several), removed. `None` when none."""
        with self._lock:
            calls = self._calls.get(scope)
            if not calls:
                return None
            named = [c for c in calls if c[0] == name]
            if not named:
                return None
            chosen = next((c for c in named if c[1] == arguments), named[0])
            calls.remove(chosen)
            if not calls:
                del self._calls[scope]
            return chosen[2]

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()

    def __len__(self) -> int:
        return len(self._calls)


_open = _OpenSteps()
_tool_call_ids = _ToolCallIds()


# --------------------------------------------------------------------------------------------------------------------
# Reading events


def _begin(event: Any, span: Span, kind: str) -> None:
    _open.add(getattr(event, "event_id", None), _Step(span, attach(span), kind))


def _finish(event: Any) -> _Step | None:
    """The step the ending `event` closes, no longer kept (None when it was not ours)."""
    return _open.pop(getattr(event, "started_event_id", None))


def _handled_exception(message: str | None) -> BaseException | None:
    """The exception being handled where CrewAI emits a failure event, when it is the one the event reports (CrewAI
    emits them from its `except` blocks, with only the exception's text). Gives the failure its real type."""
    error = sys.exc_info()[1]
    if not isinstance(error, Exception):
        return None
    text = str(error)
    if message is None or text == message or (text and text in message):
        return error
    return None


def _fail(span: Span, event: Any) -> None:
    """Marks `span` failed by what the failure `event` reports: an exception object, else its text (typed by the
    exception being handled, or by the class the event names). Never raises."""
    error = getattr(event, "error", None)
    if isinstance(error, BaseException):
        record_failure(span, error)
        return
    message = None if error is None else str(error)
    handled = _handled_exception(message)
    if handled is not None:
        record_failure(span, handled)
        return
    kind = getattr(event, "error_type", None)  # TaskFailedEvent: the exception's class
    type_name = _type_name(kind) if isinstance(kind, type) and issubclass(kind, BaseException) else None
    record_failure(span, type_name=type_name, message=message)


def _type_name(kind: type) -> str:
    """A class's name as `error.type` gives it (`steps.error_type_name`): bare for builtins, else dotted."""
    module = kind.__module__
    return kind.__qualname__ if module in ("builtins", "__main__") else f"{module}.{kind.__qualname__}"


def _end(source: Any, event: Any) -> None:
    step = _finish(event)
    if step is not None:
        step.end()


def _failed(source: Any, event: Any) -> None:
    step = _finish(event)
    if step is not None:
        _fail(step.span, event)
        step.end()


def _crew_started(source: Any, event: Any) -> None:
    name = getattr(event, "crew_name", None) or getattr(source, "name", None) or "crew"
    _begin(event, start_agent(str(name), agent_id=_id_of(source)), sc.AGENTOTEL_STEP_KIND_VALUE_AGENT)


def _id_of(obj: Any) -> str | None:
    value = getattr(obj, "id", None)
    return None if value is None else str(value)


def _task_name(task: Any) -> str:
    """A task's step name: its `name`, else its description as written (placeholders not filled in), first line,
    shortened. Never raises."""
    try:
        name = getattr(task, "name", None)
        if name:
            return str(name)
        text = getattr(task, "_original_description", None) or getattr(task, "description", None) or "task"
        line = str(text).strip().splitlines()[0] if str(text).strip() else "task"
        if len(line) <= _TASK_NAME_LENGTH:
            return line
        return line[: _TASK_NAME_LENGTH - 1].rsplit(" ", 1)[0].rstrip(" ,.;:") + "…"
    except Exception:
        return "task"


def _task_started(source: Any, event: Any) -> None:
    task = getattr(event, "task", None) or source
    kind = sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION
    _begin(event, start_step(kind, _task_name(task)), kind)


def _agent_started(source: Any, event: Any) -> None:
    agent = getattr(event, "agent", None) or source
    role = getattr(agent, "role", None) or "agent"
    _begin(event, start_agent(str(role), agent_id=_id_of(agent)), sc.AGENTOTEL_STEP_KIND_VALUE_AGENT)


def _lite_agent_started(source: Any, event: Any) -> None:
    info = getattr(event, "agent_info", None) or {}
    role = info.get("role") if isinstance(info, dict) else None
    agent_id = info.get("id") if isinstance(info, dict) else None
    name = str(role or getattr(source, "role", None) or "agent")
    _begin(event, start_agent(name, agent_id=agent_id), sc.AGENTOTEL_STEP_KIND_VALUE_AGENT)


def _tool_started(source: Any, event: Any) -> None:
    name = str(getattr(event, "tool_name", None) or "tool")
    arguments = getattr(event, "tool_args", None)
    scope = getattr(event, "parent_event_id", None)
    call_id = _tool_call_ids.take(str(scope), name, arguments) if scope is not None else None
    _begin(event, start_tool(name, call_id=call_id, arguments=arguments), sc.AGENTOTEL_STEP_KIND_VALUE_TOOL)


def _tool_finished(source: Any, event: Any) -> None:
    step = _finish(event)
    if step is None:
        return
    if step.kind != sc.AGENTOTEL_STEP_KIND_VALUE_TOOL:  # a mispaired end: the step CrewAI says it closes just ends
        step.end()
        return
    set_result(step.span, getattr(event, "output", None))
    failure = getattr(event, "failure", None)  # CrewAI's ToolFailure: the tool ran and said it did not succeed
    if failure is not None:
        record_failure(step.span, type_name=_type_name(type(failure)), message=str(getattr(failure, "message", "")))
    step.end()


# --------------------------------------------------------------------------------------------------------------------
# Model calls

# CrewAI's native LLM classes (by the module they come from) and the agentotel instrumentor of the SDK they call.
_SDK_INSTRUMENTORS: tuple[tuple[str, str, str], ...] = (
    ("crewai.llms.providers.openai.", "agentotel.instrumentation.openai", "OpenAIInstrumentor"),
    ("crewai.llms.providers.anthropic.", "agentotel.instrumentation.anthropic", "AnthropicInstrumentor"),
)
_instrumentor_of_class: dict[type, Any] = {}
"""LLM class -> the instrumentor of the SDK it calls (None: an SDK agentotel does not instrument). Bounded."""
_CLASSES_LIMIT = 64

_PROVIDERS = {
    "openai": sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI,
    "anthropic": sc.GEN_AI_PROVIDER_NAME_VALUE_ANTHROPIC,
    "azure": sc.GEN_AI_PROVIDER_NAME_VALUE_AZURE_AI_OPENAI,
    "bedrock": sc.GEN_AI_PROVIDER_NAME_VALUE_AWS_BEDROCK,
    "gemini": sc.GEN_AI_PROVIDER_NAME_VALUE_GCP_GEMINI,
    "google": sc.GEN_AI_PROVIDER_NAME_VALUE_GCP_GEMINI,
    "vertex_ai": sc.GEN_AI_PROVIDER_NAME_VALUE_GCP_VERTEX_AI,
    "groq": sc.GEN_AI_PROVIDER_NAME_VALUE_GROQ,
    "mistral": sc.GEN_AI_PROVIDER_NAME_VALUE_MISTRAL_AI,
    "deepseek": sc.GEN_AI_PROVIDER_NAME_VALUE_DEEPSEEK,
    "xai": sc.GEN_AI_PROVIDER_NAME_VALUE_X_AI,
    "cohere": sc.GEN_AI_PROVIDER_NAME_VALUE_COHERE,
}


def _sdk_instrumentor(cls: type) -> Any:
    for prefix, module_name, class_name in _SDK_INSTRUMENTORS:
        if any(k.__module__.startswith(prefix) for k in cls.__mro__):
            module = importlib.import_module(module_name)
            return getattr(module, class_name)()  # BaseInstrumentor is a singleton per class
    return None


def recorded_by_provider_instrumentation(llm: Any) -> bool:
    """Whether an agentotel provider instrumentation records the calls of this CrewAI LLM: it calls an SDK
    agentotel instruments, and that instrumentation is on now. Never raises (False when it cannot tell)."""
    try:
        cls = type(llm)
        if cls not in _instrumentor_of_class:
            if len(_instrumentor_of_class) >= _CLASSES_LIMIT:
                _instrumentor_of_class.clear()
            _instrumentor_of_class[cls] = _sdk_instrumentor(cls)
        instrumentor = _instrumentor_of_class[cls]
        return instrumentor is not None and bool(instrumentor.is_instrumented_by_opentelemetry)
    except Exception:
        log.debug("Could not tell whether a CrewAI LLM's calls are recorded", exc_info=True)
        return False


def _llm_started(source: Any, event: Any) -> None:
    if recorded_by_provider_instrumentation(source):
        return
    model = getattr(event, "model", None) or getattr(source, "model", None)
    model = None if model is None else str(model)
    provider = str(getattr(source, "provider", None) or "")
    attributes = {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_CHAT,
        sc.GEN_AI_PROVIDER_NAME: _PROVIDERS.get(provider.lower(), provider or None),
        sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_LLM,
        sc.GEN_AI_REQUEST_MODEL: model,
        sc.GEN_AI_REQUEST_TEMPERATURE: getattr(event, "temperature", None),
        sc.GEN_AI_REQUEST_MAX_TOKENS: as_int(getattr(event, "max_tokens", None)),
    }
    call = LLMCall(tracer, sc.GEN_AI_OPERATION_NAME_VALUE_CHAT, model, attributes)
    if call.capture_content:
        call.content(sc.GEN_AI_INPUT_MESSAGES, _input_messages(getattr(event, "messages", None)))
    usage_before = None if _has_usage_field(event) else _usage_so_far(source)
    step = _Step(call.span, attach(call.span), sc.AGENTOTEL_STEP_KIND_VALUE_LLM, call, usage_before)
    _open.add(getattr(event, "event_id", None), step)


def _has_usage_field(event: Any) -> bool:
    return "usage" in (getattr(type(event), "model_fields", None) or {})


def _usage_so_far(llm: Any) -> tuple[int, int, int] | None:
    """The LLM's token counts so far (input, output, cache read), from CrewAI's public summary. Never raises."""
    try:
        summary = llm.get_token_usage_summary()
        return (
            int(summary.prompt_tokens or 0),
            int(summary.completion_tokens or 0),
            int(getattr(summary, "cached_prompt_tokens", 0) or 0),
        )
    except Exception:
        return None


def _call_usage(source: Any, event: Any, step: _Step) -> tuple[int | None, int | None, int | None]:
    """A call's (input, output, cache read) tokens: what the event reports, else (releases before 1.13) what the
    LLM counted since the call began."""
    usage = getattr(event, "usage", None)
    if isinstance(usage, dict):
        return (
            as_int(usage.get("prompt_tokens", usage.get("input_tokens"))),
            as_int(usage.get("completion_tokens", usage.get("output_tokens"))),
            as_int(usage.get("cached_prompt_tokens")),
        )
    now = _usage_so_far(source)
    if step.usage_before is None or now is None:
        return None, None, None
    before = step.usage_before
    return now[0] - before[0], now[1] - before[1], now[2] - before[2]


def _input_messages(messages: Any) -> list[dict[str, Any]] | None:
    if isinstance(messages, str):
        return [message("user", [text_part(messages)])]
    return chat_input_messages(messages) if isinstance(messages, list) else None


def _requested_tool_calls(response: Any) -> list[tuple[str, Any, Any]]:
    """(name, arguments, id) of each tool call in a CrewAI LLM response (native function calling gives the
    provider's tool calls, as dicts or SDK objects; a text answer has none)."""
    if not isinstance(response, list):
        return []
    calls = []
    for item in response:
        function = field(item, "function")
        name = field(function, "name") if function is not None else None
        if name:
            calls.append((str(name), field(function, "arguments"), field(item, "id")))
    return calls


def _remember_tool_calls(event: Any, calls: list[tuple[str, Any, Any]]) -> None:
    scope = getattr(event, "parent_event_id", None)
    if scope is None:
        return
    pending = [(name, _parsed(arguments), str(call_id)) for name, arguments, call_id in calls if call_id]
    if pending:
        _tool_call_ids.asked(str(scope), pending)


def _parsed(arguments: Any) -> Any:
    """Tool call arguments as CrewAI hands them to the tool (a dict), from the JSON text the model sent."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def _llm_completed(source: Any, event: Any) -> None:
    response = getattr(event, "response", None)
    calls = _requested_tool_calls(response)
    if calls:
        _remember_tool_calls(event, calls)
    step = _finish(event)
    if step is None:
        return
    if step.call is not None:
        _record_response(step.call, _call_usage(source, event, step), event, calls)
    step.end()


def _record_response(
    call: LLMCall, usage: tuple[int | None, int | None, int | None], event: Any, calls: list[tuple[str, Any, Any]]
) -> None:
    """What a model call's completion event tells: its usage, response id, finish reason, and (content capture)
    the answer or the tool calls it asked for."""
    input_tokens, output_tokens, cached = usage
    call.set(sc.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
    call.set(sc.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
    if cached:
        call.set(sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cached)
    finish_reason = getattr(event, "finish_reason", None)
    call.set(sc.GEN_AI_RESPONSE_ID, getattr(event, "response_id", None))
    if finish_reason:
        call.set(sc.GEN_AI_RESPONSE_FINISH_REASONS, [str(finish_reason)])
    if call.capture_content:
        response = getattr(event, "response", None)
        parts = [tool_call_part(i, n, a) for n, a, i in calls] if calls else [text_part(str(response))]
        call.content(sc.GEN_AI_OUTPUT_MESSAGES, [message("assistant", parts, finish_reason=finish_reason)])


_HANDLERS: dict[str, Callable[[Any, Any], None]] = {
    "crew_kickoff_started": _crew_started,
    "crew_kickoff_completed": _end,
    "crew_kickoff_failed": _failed,
    "task_started": _task_started,
    "task_completed": _end,
    "task_failed": _failed,
    "agent_execution_started": _agent_started,
    "agent_execution_completed": _end,
    "agent_execution_error": _failed,
    "lite_agent_execution_started": _lite_agent_started,
    "lite_agent_execution_completed": _end,
    "lite_agent_execution_error": _failed,
    "tool_usage_started": _tool_started,
    "tool_usage_finished": _tool_finished,
    "tool_usage_error": _failed,
    "llm_call_started": _llm_started,
    "llm_call_completed": _llm_completed,
    "llm_call_failed": _failed,
}
"""CrewAI event type -> what it does to the steps. Every other event passes by with one dict look-up.

An ending event ends the step CrewAI pairs it with (`started_event_id`), whatever that step is: some releases emit
a second `llm_call_failed` that closes the agent's scope, and a step that nothing ends would never be exported."""


def observe(source: Any, event: Any) -> None:
    """Turns one emitted CrewAI event into steps. Never raises."""
    try:
        event_type = getattr(event, "type", None)
        handler = _HANDLERS.get(event_type) if isinstance(event_type, str) else None
        if handler is not None:
            handler(source, event)
    except Exception:
        log.debug("Could not record a CrewAI event", exc_info=True)


# --------------------------------------------------------------------------------------------------------------------
# Observing the bus


class _Switch:
    """Whether the wrappers record: a wrapper another library wrapped over cannot be taken out, only turned off."""

    on = False


def _event_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    source = args[0] if args else kwargs.get("source")
    event = args[1] if len(args) > 1 else kwargs.get("event")
    return source, event


def _emit(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = wrapped(*args, **kwargs)  # CrewAI gives the event its ids (and scope) here
    if _Switch.on:
        observe(*_event_of(args, kwargs))
    return result


async def _aemit(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = await wrapped(*args, **kwargs)
    if _Switch.on:
        observe(*_event_of(args, kwargs))
    return result


_WRAPPERS: tuple[tuple[str, Callable[..., Any]], ...] = (("emit", _emit), ("aemit", _aemit))


def _is_ours(attribute: Any, wrapper: Callable[..., Any]) -> bool:
    """Whether our `wrapper` is in the chain of wrappers around a method."""
    while isinstance(attribute, wrapt.FunctionWrapper):
        if getattr(attribute, "_self_wrapper", None) is wrapper:
            return True
        attribute = attribute.__wrapped__
    return False


class CrewAIInstrumentor(FrameworkInstrumentor):
    """Records CrewAI crews, tasks, agents, tools (and model calls no provider instrumentation records) as
    agentotel steps, from CrewAI's event bus. See the module's docstring for what nests how."""

    module_name = "crewai"
    requirements = ("crewai >= 1.10.1",)

    def apply(self, module: ModuleType) -> None:
        bus_module = importlib.import_module("crewai.events.event_bus")
        bus = bus_module.CrewAIEventsBus
        for method, wrapper in _WRAPPERS:
            if method in vars(bus) and not _is_ours(vars(bus)[method], wrapper):
                wrapt.wrap_function_wrapper(bus, method, wrapper)
        _Switch.on = True

    def remove(self) -> None:
        _Switch.on = False
        bus = importlib.import_module("crewai.events.event_bus").CrewAIEventsBus
        for method, wrapper in _WRAPPERS:
            current = vars(bus).get(method)
            if isinstance(current, wrapt.FunctionWrapper) and getattr(current, "_self_wrapper", None) is wrapper:
                setattr(bus, method, current.__wrapped__)
        for step in _open.drain():  # their ends will not be seen now
            step.token = None
            step.end()
        _tool_call_ids.clear()
