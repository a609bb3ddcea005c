"""`OpenAIAgentsInstrumentor`: the OpenAI Agents SDK (`openai-agents`, imported as `agents`) recorded as agentotel
steps, through the SDK's own tracing hook: a `TracingProcessor` registered with `agents.add_trace_processor`.

How the SDK's spans map to the span contract (each span of ours is current while its step runs, so the work done
inside it, LLM calls, nested tools, `@agentotel.operation`s, lands inside it):

- `AgentSpanData` -> an agent step, `invoke_agent {name}`.
- `FunctionSpanData` -> `execute_tool {name}`; arguments and result (the SDK's JSON text, kept as JSON) only with
  content capture on, and only when the SDK hands them over (`RunConfig.trace_include_sensitive_data`). The SDK's
  function spans carry no tool call id, so the step has none.
- `HandoffSpanData` -> an `operation` step `handoff {from} -> {to}`. Not an agent step: the agent handed to does
  its work in the SDK's next agent span, which is its own `invoke_agent` step; an agent-kind handoff would show
  that agent twice and count an invocation that did nothing.
- `GuardrailSpanData` -> an `operation` step `guardrail {name}`; a tripped guardrail is a failed step
  (`error.type` `GuardrailTripwireTriggered`), so `session.first_error` points at it rather than at the agent
  step the SDK's exception then fails.
- `CustomSpanData` (the app's `custom_span`) and `MCPListToolsSpanData` -> `operation` steps.
- `GenerationSpanData` / `ResponseSpanData` (one model call) -> nothing of ours when something else records the
  call, as agentotel's OpenAI instrumentation does for `OpenAIResponsesModel` and `OpenAIChatCompletionsModel`
  (both call the `openai` SDK); else a `chat {model}` CLIENT span made from the span data (models, token usage,
  so agentotel prices it). Which of the two is told by what happens, not by the model's class: while the model
  call runs, the current span is a stand-in for the agent step (`_ModelCallProbe`) that notes when a span is
  started under it. A span started directly under a model call is that call's recording (an LLM client span:
  the `openai` SDK's calls are made inside one, so even their HTTP spans are not direct children). This holds
  for LiteLLM models too, whose OpenAI-provider calls go through the `openai` SDK and are recorded, while their
  other providers' are not. The one case it gets wrong: an HTTP client instrumentation (httpx, requests) tracing
  a non-`openai` model's request directly under the model call reads as a recorded call, and that call then
  has no LLM span.
- The SDK's `Trace`: an `operation` step named after the workflow only when no span is current when it starts
  (no agentotel session, no span of the app's), so that a run's agents, which the SDK opens one after another,
  stay one trace; inside a session the session already is the run, and a second root-like step would only
  indent the replay. Task and turn spans (0.24) add nothing the agent steps do not show, and are skipped.

Errors. The SDK turns a tool's exception into a message for the model (`failure_error_function`) and, by
default, records only a redacted text on its span (`SpanError`, no type). To learn the exception itself, one
method is wrapped: `SpanImpl.set_error`, the tracing API's own seam where the SDK reports a span's failure. The
SDK calls it from inside the `except` block that caught the exception (for tools, model calls, and the runner's
errors), so the wrapper reads the exception being handled (`sys.exc_info()`) and keeps it for the span's step;
the SDK's behaviour is unchanged (the original runs first, its result is returned). A span that ends because an
exception propagates through it (its `with` block, or the runner's `finally`) gets that exception the same way at
its end. An exception that was already being handled when the span started (the app ran the agent inside an
`except` block) is never taken for the span's. A `SpanError` with no exception behind it is recorded from its
text.

Set-up. agentotel never changes the app's tracing set-up: the SDK's default processor (which exports to OpenAI)
stays. Ours is added beside it, and `uninstrument()` removes it again by rebuilding the processor list without it
(`set_trace_processors`; the SDK has no public getter of that list, so it is read from the default provider, and
where it cannot be the processor stays registered but inert). An app that calls `agents.set_trace_processors`
itself after agentotel hooked the SDK drops ours with the others: it can put `OpenAIAgentsInstrumentor().processor`
in its list (and register it with its own `TraceProvider`, should it replace the SDK's). With the SDK's tracing
disabled (`set_tracing_disabled(True)`, `OPENAI_AGENTS_DISABLE_TRACING`, `RunConfig(tracing_disabled=True)`) the
SDK makes no spans, and agentotel records only the LLM calls.

Never raises into the SDK or the app: every hook catches its own faults (and logs them at debug level). State is
kept per open SDK span, removed when it ends, and capped (`_MAX_OPEN`).
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any, ClassVar

import wrapt
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status
from opentelemetry.util.types import Attributes, AttributeValue

from .. import _clock as clock
from .. import semconv as sc
from ._framework import (
    FrameworkInstrumentor,
    attach,
    detach,
    end_step,
    record_failure,
    set_arguments,
    set_result,
    start_agent,
    start_step,
    start_tool,
)
from ._genai import as_float, as_int, field, server_attributes, text

log = logging.getLogger("agentotel")

__all__ = ["OpenAIAgentsInstrumentor"]

_MAX_OPEN = 10_000
"""Open SDK spans and traces kept at once; past it the oldest is ended (a span the SDK never finished)."""

_OPERATION = sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION
GUARDRAIL_TRIPPED = "GuardrailTripwireTriggered"
"""`error.type` of a guardrail step whose tripwire was triggered."""


# --------------------------------------------------------------------------------------------------------------------
# Per-span state


class _Step:
    """What is kept for one open SDK span (or trace): our span, the context token that made it current, the
    exception it failed with when one is known, and, for a model call, its probe and where it started."""

    __slots__ = ("error", "handled_at_start", "kind", "parent", "probe", "span", "start_ns", "token")

    def __init__(
        self, kind: str, span: Span | None, token: object | None, handled_at_start: BaseException | None
    ) -> None:
        self.kind = kind
        self.span = span
        self.token = token
        self.handled_at_start = handled_at_start
        self.error: BaseException | None = None
        self.probe: _ModelCallProbe | None = None
        self.parent: Context | None = None
        self.start_ns = 0


def _new_exception(step: _Step) -> BaseException | None:
    """The exception being handled now, unless it already was when the step started (not the step's). Only an
    `Exception`: a cancellation or an exit is not a failure of the step."""
    error = sys.exc_info()[1]
    if error is None or error is step.handled_at_start or not isinstance(error, Exception):
        return None
    return error


class _ModelCallProbe(Span):
    """The current span while a model call runs: the agent step's span as it is (every call is passed on), except
    that it notes when someone reads its span context, which is what starting a child span does. Nothing but the
    call's own recording starts a span directly under a model call, so a read means the call is recorded."""

    def __init__(self, span: Span) -> None:
        self._span = span
        self.used = False

    def get_span_context(self) -> trace.SpanContext:
        self.used = True
        return self._span.get_span_context()

    def end(self, end_time: int | None = None) -> None:
        pass  # the step is ours to end, not whoever finds it current

    def set_attributes(self, attributes: Mapping[str, AttributeValue]) -> None:
        self._span.set_attributes(attributes)

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def add_event(self, name: str, attributes: Attributes = None, timestamp: int | None = None) -> None:
        self._span.add_event(name, attributes, timestamp)

    def add_link(self, context: trace.SpanContext, attributes: Attributes = None) -> None:
        self._span.add_link(context, attributes)

    def update_name(self, name: str) -> None:
        self._span.update_name(name)

    def is_recording(self) -> bool:
        return self._span.is_recording()

    def set_status(self, status: Status | trace.StatusCode, description: str | None = None) -> None:
        self._span.set_status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        self._span.record_exception(exception, attributes, timestamp, escaped)


# --------------------------------------------------------------------------------------------------------------------
# Span data -> steps


def _start_agent(data: Any) -> Span:
    return start_agent(str(data.name))


def _start_function(data: Any) -> Span:
    return start_tool(str(data.name))


def _handoff_name(source: Any, target: Any) -> str:
    return f"handoff {source or 'agent'} -> {target}" if target else f"handoff {source or 'agent'}"


def _start_handoff(data: Any) -> Span:
    return start_step(_OPERATION, _handoff_name(data.from_agent, data.to_agent))


def _start_guardrail(data: Any) -> Span:
    return start_step(_OPERATION, f"guardrail {data.name}")


def _start_custom(data: Any) -> Span:
    return start_step(_OPERATION, str(data.name))


def _start_mcp_tools(data: Any) -> Span:
    server = getattr(data, "server", None)
    return start_step(_OPERATION, f"mcp list_tools {server}" if server else "mcp list_tools")


_STARTS = {
    "agent": _start_agent,
    "function": _start_function,
    "handoff": _start_handoff,
    "guardrail": _start_guardrail,
    "custom": _start_custom,
    "mcp_tools": _start_mcp_tools,
}
"""`SpanData.type` -> the step it opens. Model calls ("generation", "response") are handled apart; other types
(task, turn, speech, transcription) make no step."""

_MODEL_CALLS = frozenset(("generation", "response"))


def _end_function(span: Span, data: Any) -> None:
    arguments = getattr(data, "input", None)
    if arguments:
        set_arguments(span, arguments)
    result = getattr(data, "output", None)
    if result is not None:
        set_result(span, result)


def _end_handoff(span: Span, data: Any) -> None:
    if getattr(data, "to_agent", None):  # known only once the SDK has resolved the handoff
        span.update_name(_handoff_name(data.from_agent, data.to_agent))


def _end_guardrail(span: Span, data: Any) -> None:
    if getattr(data, "triggered", False):
        record_failure(span, type_name=GUARDRAIL_TRIPPED, message=f"guardrail {data.name!r} triggered its tripwire")


_ENDS = {"function": _end_function, "handoff": _end_handoff, "guardrail": _end_guardrail}


def _span_error_message(error: Any) -> str:
    """The text of the SDK's `SpanError` (`{"message", "data"}`), with the data's error detail when it has one."""
    message = str(field(error, "message", "") or "")
    data = field(error, "data")
    detail = field(data, "error") if isinstance(data, Mapping) else None
    if isinstance(detail, str) and detail and detail not in message:
        return f"{message}: {detail}" if message else detail
    return message


def _record_errors(step: _Step, span: Span, sdk_span: Any) -> None:
    """Marks the step failed by the exception it is known to have failed with, else by the SDK's error text (not
    a guardrail's: its trip is recorded from its span data)."""
    error = step.error or _new_exception(step)
    if error is not None:
        record_failure(span, error)
        return
    span_error = getattr(sdk_span, "error", None)
    if span_error and step.kind != "guardrail":
        record_failure(span, message=_span_error_message(span_error))


# --------------------------------------------------------------------------------------------------------------------
# A model call nothing else recorded: its LLM span, from the span data


def _usage_attributes(usage: Any) -> dict[str, Any]:
    """Token usage as GenAI attributes, from the SDK's usage dict (or a `Response`'s usage object)."""
    found: dict[str, Any] = {}
    if usage is None:
        return found
    for key, name in ((sc.GEN_AI_USAGE_INPUT_TOKENS, "input_tokens"), (sc.GEN_AI_USAGE_OUTPUT_TOKENS, "output_tokens")):
        value = as_int(field(usage, name))
        if value is not None:
            found[key] = value
    cached = as_int(field(field(usage, "input_tokens_details"), "cached_tokens"))
    if cached:
        found[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cached
    reasoning = as_int(field(field(usage, "output_tokens_details"), "reasoning_tokens"))
    if reasoning:
        found[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = reasoning
    return found


_REQUEST_SETTINGS = (
    (sc.GEN_AI_REQUEST_TEMPERATURE, "temperature", as_float),
    (sc.GEN_AI_REQUEST_TOP_P, "top_p", as_float),
    (sc.GEN_AI_REQUEST_MAX_TOKENS, "max_tokens", as_int),
)


def _model_call_attributes(data: Any) -> tuple[str | None, dict[str, Any]]:
    """The requested model and the LLM span's attributes, from a generation's or a response's span data."""
    attributes: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_CHAT}
    response = getattr(data, "response", None)  # a response span's, when the SDK keeps it (sensitive data on)
    model = text(getattr(data, "model", None)) or text(field(response, "model"))
    config = getattr(data, "model_config", None)
    if isinstance(config, Mapping):
        provider = text(config.get("provider"))
        if provider:
            attributes[sc.GEN_AI_PROVIDER_NAME] = provider
        attributes.update(server_attributes(config.get("base_url")))
        for key, name, convert in _REQUEST_SETTINGS:
            value = convert(config.get(name))
            if value is not None:
                attributes[key] = value
    if model:
        attributes[sc.GEN_AI_REQUEST_MODEL] = model
    response_model = text(field(response, "model"))
    if response_model:
        attributes[sc.GEN_AI_RESPONSE_MODEL] = response_model
    response_id = text(field(response, "id"))
    if response_id:
        attributes[sc.GEN_AI_RESPONSE_ID] = response_id
    usage = getattr(data, "usage", None) or field(response, "usage")
    attributes.update(_usage_attributes(usage))
    return model, attributes


def _record_model_call(step: _Step, sdk_span: Any) -> None:
    """The LLM span of a model call that nothing recorded, from its start to now. Never raises."""
    try:
        model, attributes = _model_call_attributes(sdk_span.span_data)
        span = start_step(
            sc.AGENTOTEL_STEP_KIND_VALUE_LLM,
            f"chat {model}" if model else "chat",
            attributes,
            parent=step.parent,
            start_ns=step.start_ns,
            span_kind=SpanKind.CLIENT,
        )
        _record_errors(step, span, sdk_span)
        end_step(span)
    except Exception:
        log.debug("Could not record an OpenAI Agents model call", exc_info=True)


# --------------------------------------------------------------------------------------------------------------------
# The tracing processor


class _Processor:
    """agentotel's `agents.tracing.TracingProcessor` (made a subclass of it when the SDK is hooked, so that this
    module imports nothing of the SDK before). The SDK calls it synchronously, in the context of the code that
    starts or ends each span. Its hooks never raise."""

    def __init__(self) -> None:
        self.enabled = True
        self._open: dict[str, _Step] = {}
        self._lock = threading.Lock()

    # The SDK's hooks

    def on_trace_start(self, sdk_trace: Any) -> None:
        if not self.enabled:
            return
        try:
            if trace.get_current_span().get_span_context().is_valid:
                return  # inside a session or a span of the app's: the run is a part of it already
            group = getattr(sdk_trace, "group_id", None)
            attributes = {sc.GEN_AI_CONVERSATION_ID: str(group)} if group else None
            span = start_step(_OPERATION, str(getattr(sdk_trace, "name", None) or "Agent workflow"), attributes)
            self._keep(str(sdk_trace.trace_id), _Step("trace", span, attach(span), sys.exc_info()[1]))
        except Exception:
            log.debug("Could not record the start of an OpenAI Agents trace", exc_info=True)

    def on_trace_end(self, sdk_trace: Any) -> None:
        try:
            step = self._open.pop(str(sdk_trace.trace_id), None)
            if step is None or step.span is None:
                return
            detach(step.token)
            error = _new_exception(step)
            if error is not None:
                record_failure(step.span, error)
            end_step(step.span)
        except Exception:
            log.debug("Could not record the end of an OpenAI Agents trace", exc_info=True)

    def on_span_start(self, sdk_span: Any) -> None:
        if not self.enabled:
            return
        try:
            kind = sdk_span.span_data.type
            start = _STARTS.get(kind)
            if start is not None:
                span = start(sdk_span.span_data)
                self._keep(sdk_span.span_id, _Step(kind, span, attach(span), sys.exc_info()[1]))
            elif kind in _MODEL_CALLS:
                self._keep(sdk_span.span_id, self._model_call(kind))
        except Exception:
            log.debug("Could not record the start of an OpenAI Agents span", exc_info=True)

    def on_span_end(self, sdk_span: Any) -> None:
        try:
            step = self._open.pop(sdk_span.span_id, None)
            if step is None:
                return
            detach(step.token)
            if step.probe is not None:
                if not step.probe.used:
                    _record_model_call(step, sdk_span)
                return
            span = step.span
            if span is None:
                return
            try:
                end = _ENDS.get(step.kind)
                if end is not None:
                    end(span, sdk_span.span_data)
                _record_errors(step, span, sdk_span)
            finally:
                end_step(span)
        except Exception:
            log.debug("Could not record the end of an OpenAI Agents span", exc_info=True)

    def shutdown(self) -> None:
        pass  # spans are exported by agentotel's pipeline, flushed and shut down with it

    def force_flush(self) -> None:
        pass

    # Ours

    def note_error(self, sdk_span: Any) -> None:
        """Keeps the exception being handled as the failure of `sdk_span`'s step; called when the SDK sets the
        span's error. Never raises."""
        try:
            step = self._open.get(sdk_span.span_id)
            if step is not None and step.error is None:
                step.error = _new_exception(step)
        except Exception:
            log.debug("Could not note the error of an OpenAI Agents span", exc_info=True)

    def close(self) -> None:
        """Stops recording and ends the steps still open (so they are exported, not lost). Never raises."""
        self.enabled = False
        with self._lock:
            steps, self._open = list(self._open.values()), {}
        for step in steps:
            if step.span is not None:
                end_step(step.span)

    def _model_call(self, kind: str) -> _Step:
        """A model call's state: the probe made current in place of the agent step, and where the call started."""
        parent = context.get_current()
        probe = _ModelCallProbe(trace.get_current_span(parent))
        step = _Step(kind, None, attach(probe), sys.exc_info()[1])
        step.probe, step.parent, step.start_ns = probe, parent, clock.now_ns()
        return step

    def _keep(self, key: str, step: _Step) -> None:
        """Files an open step; past `_MAX_OPEN`, the oldest is ended first (a span the SDK never finished)."""
        evicted: _Step | None = None
        with self._lock:
            if len(self._open) >= _MAX_OPEN:
                oldest = next(iter(self._open))
                evicted = self._open.pop(oldest)
            self._open[key] = step
        if evicted is not None and evicted.span is not None:
            end_step(evicted.span)

    @property
    def open_count(self) -> int:
        """How many SDK spans and traces are open (for tests: it is 0 once a run has ended)."""
        return len(self._open)


def _registered_processors(tracing: ModuleType) -> tuple[Any, ...] | None:
    """The processors the SDK's trace provider calls, or `None` when they cannot be read (the SDK has no public
    getter: this reads its default provider's list)."""
    provider = tracing.get_trace_provider()
    found = getattr(getattr(provider, "_multi_processor", None), "_processors", None)
    return tuple(found) if isinstance(found, (tuple, list)) else None


class OpenAIAgentsInstrumentor(FrameworkInstrumentor):
    """Records OpenAI Agents SDK runs: agents, tools, handoffs, guardrails and model calls nothing else records,
    through a tracing processor of the SDK's (see the module's docstring)."""

    module_name = "agents"
    requirements = ("openai-agents >= 0.6.0",)

    _processor: ClassVar[_Processor | None] = None
    _wrapped_set_error: ClassVar[tuple[type, Any] | None] = None
    """The class whose `set_error` is wrapped, and the wrapper installed there."""

    @property
    def processor(self) -> Any:
        """The tracing processor registered with the SDK, or `None` while the SDK is not hooked. An app that sets
        the SDK's processors itself (`agents.set_trace_processors`) includes it in its list to keep recording."""
        return type(self)._processor

    def apply(self, module: ModuleType) -> None:
        tracing = importlib.import_module("agents.tracing")
        processor_class = type("AgentotelTracingProcessor", (_Processor, tracing.TracingProcessor), {})
        processor: _Processor = processor_class()
        self._wrap_set_error(processor)
        try:
            tracing.add_trace_processor(processor)
        except Exception:
            self._unwrap_set_error()
            raise
        type(self)._processor = processor

    def remove(self) -> None:
        processor, type(self)._processor = type(self)._processor, None
        self._unwrap_set_error()
        if processor is None:
            return
        processor.close()
        tracing = importlib.import_module("agents.tracing")
        current = _registered_processors(tracing)
        if current is not None and any(p is processor for p in current):
            tracing.set_trace_processors([p for p in current if p is not processor])

    @classmethod
    def _wrap_set_error(cls, processor: _Processor) -> None:
        """Wraps `SpanImpl.set_error` so the processor learns the exception behind a span's error. Left out (and
        the error recorded from its text) when this SDK has no such method."""
        spans = importlib.import_module("agents.tracing.spans")
        owner = getattr(spans, "SpanImpl", None)
        if owner is None or "set_error" not in vars(owner):
            return

        def set_error(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            result = wrapped(*args, **kwargs)
            if processor.enabled:
                processor.note_error(instance)
            return result

        installed: Any = wrapt.wrap_function_wrapper(owner, "set_error", set_error)
        cls._wrapped_set_error = (owner, installed)

    @classmethod
    def _unwrap_set_error(cls) -> None:
        """Puts the original `set_error` back, unless someone wrapped it after us: then ours stays, inert (its
        processor is closed), rather than taking their wrapper off."""
        wrapped = cls._wrapped_set_error
        cls._wrapped_set_error = None
        if wrapped is None:
            return
        owner, ours = wrapped
        original = ours.__wrapped__
        if vars(owner).get("set_error") is ours:
            setattr(owner, "set_error", original)  # noqa: B010 (mypy sees no `set_error` on a `type`)
