"""AgentOps-style records: `ActionEvent`, `ToolEvent`, `LLMEvent`, `ErrorEvent`, and `record()` that turns each
into a span in the current session."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opentelemetry.trace import SpanKind

from . import _clock as clock
from . import semconv as sc
from ._config import settings
from .pricing import cost_attributes, cost_of_attributes
from .steps import record_error, set_content, tracer

log = logging.getLogger("agentotel")


@dataclass
class ActionEvent:
    """Something the agent did: `action_type` names it; `params` and `returns` are recorded when content
    capture is on."""

    action_type: str = "action"
    params: Any = None
    returns: Any = None
    init_timestamp: datetime | str | None = None
    end_timestamp: datetime | str | None = None
    logs: Any = None


@dataclass
class ToolEvent:
    """A tool call the agent made outside a `@tool` function."""

    name: str = "tool"
    params: Any = None
    returns: Any = None
    init_timestamp: datetime | str | None = None
    end_timestamp: datetime | str | None = None


@dataclass
class LLMEvent:
    """A model call made outside an instrumented client: model, tokens and (content capture on) prompt and
    completion."""

    model: str = ""
    prompt: Any = None
    completion: Any = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    provider: str | None = None
    init_timestamp: datetime | str | None = None
    end_timestamp: datetime | str | None = None


@dataclass
class ErrorEvent:
    """An error the agent met; `exception` (when given) is recorded with its type, message and stack."""

    exception: BaseException | None = None
    error_type: str | None = None
    details: str | None = None
    code: str | None = None
    trigger_event: Any = None
    logs: Any = field(default=None, repr=False)


def _ns(value: datetime | str | None) -> int | None:
    if value is None:
        return None
    try:
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return int(moment.timestamp() * 1e9)
    except Exception:
        return None


def record(event: ActionEvent | ToolEvent | LLMEvent | ErrorEvent | Any) -> None:
    """Records an AgentOps-style event as a span in the current session. Never raises."""
    try:
        _record(event)
    except Exception:
        log.debug("Could not record an event", exc_info=True)


def _record(event: Any) -> None:
    now = clock.now_ns()
    start = _ns(getattr(event, "init_timestamp", None)) or now
    end = max(start, _ns(getattr(event, "end_timestamp", None)) or now)
    if isinstance(event, ErrorEvent):
        name = event.error_type or (type(event.exception).__name__ if event.exception else "error")
        span = tracer.start_span(name, start_time=start, attributes={sc.AGENTOTEL_STEP_KIND: "operation"})
        if event.exception is not None:
            record_error(span, event.exception)
        else:
            from opentelemetry.trace import Status, StatusCode

            span.set_attribute(sc.ERROR_TYPE, name)
            span.set_status(Status(StatusCode.ERROR, event.details or name))
        span.end(end_time=end)
        return
    if isinstance(event, LLMEvent):
        attributes: dict[str, Any] = {
            sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_LLM,
            sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_CHAT,
            sc.GEN_AI_REQUEST_MODEL: event.model,
        }
        if event.provider:
            attributes[sc.GEN_AI_PROVIDER_NAME] = event.provider
        if event.prompt_tokens is not None:
            attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = int(event.prompt_tokens)
        if event.completion_tokens is not None:
            attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = int(event.completion_tokens)
        cost = cost_of_attributes(attributes)
        if cost is not None:
            attributes.update(cost_attributes(cost))
        span = tracer.start_span(f"chat {event.model}", kind=SpanKind.CLIENT, start_time=start, attributes=attributes)
        if settings.capture_content:
            set_content(span, sc.GEN_AI_INPUT_MESSAGES, event.prompt)
            set_content(span, sc.GEN_AI_OUTPUT_MESSAGES, event.completion)
        span.end(end_time=end)
        return
    if isinstance(event, ToolEvent):
        attributes = {
            sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_TOOL,
            sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
            sc.GEN_AI_TOOL_NAME: event.name,
        }
        span = tracer.start_span(f"execute_tool {event.name}", start_time=start, attributes=attributes)
        if settings.capture_content:
            set_content(span, sc.GEN_AI_TOOL_CALL_ARGUMENTS, event.params)
            set_content(span, sc.GEN_AI_TOOL_CALL_RESULT, event.returns)
        span.end(end_time=end)
        return
    action_type = str(getattr(event, "action_type", None) or type(event).__name__)
    attributes = {sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_ACTION, sc.AGENTOTEL_ACTION_TYPE: action_type}
    span = tracer.start_span(action_type, start_time=start, attributes=attributes)
    if settings.capture_content:
        set_content(span, sc.AGENTOTEL_ACTION_PARAMS, getattr(event, "params", None))
        set_content(span, sc.AGENTOTEL_ACTION_RETURNS, getattr(event, "returns", None))
    span.end(end_time=end)
