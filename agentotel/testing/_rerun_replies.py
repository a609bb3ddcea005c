"""What a recorded model call answered, as a `Reply` the `LLMServer` wire code sends in any provider's format.

The reply carries what the recording holds: the text and tool calls of the output messages, the finish reason, the
response id and model, and the usage (input tokens with cache reads and writes, output tokens with reasoning), so
that the re-run's instrumentation records the same tokens and cost. A call that failed answers with the HTTP status
its error stands for (`x-should-retry: false`: the SDK raises at once, as the recorded call ended), or, for a
timeout or a lost connection, with that transport error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import semconv as sc
from ..model import Event
from ..pricing import usage_from_attributes
from .llm_server import Reply, ToolCall

__all__ = ["TransportFailure", "recorded_reply"]

NO_RETRY = {"x-should-retry": "false"}
"""Headers that make the openai and anthropic SDKs raise an error reply's exception without retrying."""

_STATUS_OF_ERROR = {
    "BadRequestError": 400,
    "AuthenticationError": 401,
    "PermissionDeniedError": 403,
    "NotFoundError": 404,
    "ConflictError": 409,
    "RequestTooLargeError": 413,
    "UnprocessableEntityError": 422,
    "RateLimitError": 429,
    "InternalServerError": 500,
    "ServiceUnavailableError": 503,
    "DeadlineExceededError": 504,
    "OverloadedError": 529,
}
"""The HTTP status each of the SDKs' error classes is raised for (by the last part of its name)."""

_OUTPUT_TO_FINISH = {"tool_call": "tool_calls"}


@dataclass(frozen=True)
class TransportFailure:
    """A recorded call that never got an answer: `timeout` or `connection`."""

    kind: str
    message: str


def _error_name(event: Event) -> str:
    recorded = event.attributes.get(sc.ERROR_TYPE) or (event.error.type if event.error else "")
    return str(recorded).rsplit(".", 1)[-1]


def _failure(event: Event) -> Reply | TransportFailure:
    name = _error_name(event)
    message = event.error.message if event.error is not None and event.error.message else name or "error"
    if "Timeout" in name:
        return TransportFailure("timeout", message)
    if "Connection" in name:
        return TransportFailure("connection", message)
    status = _STATUS_OF_ERROR.get(name, 500)
    return Reply(text=message, status=status, headers=dict(NO_RETRY))


def _tool_call(part: Mapping[str, Any], index: int) -> ToolCall:
    arguments = part.get("arguments")
    if not isinstance(arguments, (dict, str)):
        arguments = {} if arguments is None else json.dumps(arguments)
    return ToolCall(str(part.get("id") or f"call_rerun_{index}"), str(part.get("name") or ""), arguments)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def recorded_reply(event: Event) -> Reply | TransportFailure:
    """The reply a recorded model call got (see the module's docstring). The call must hold its output messages
    unless it failed (`sessions_file.content_problems` says so before a re-run starts)."""
    if event.error is not None and not isinstance(event.returns, list):
        return _failure(event)
    texts: list[str] = []
    calls: list[ToolCall] = []
    finish: Any = None
    messages = event.returns if isinstance(event.returns, list) else []
    message = next((m for m in messages if isinstance(m, Mapping)), {})
    for part in message.get("parts") or []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text" and isinstance(part.get("content"), str):
            texts.append(part["content"])
        elif part.get("type") == "tool_call":
            calls.append(_tool_call(part, len(calls)))
    attributes = event.attributes
    reasons = attributes.get(sc.GEN_AI_RESPONSE_FINISH_REASONS)
    if isinstance(reasons, (list, tuple)) and reasons:
        finish = reasons[0]
    elif message.get("finish_reason"):
        finish = _OUTPUT_TO_FINISH.get(str(message["finish_reason"]), message["finish_reason"])
    usage = usage_from_attributes(attributes)
    response_id = attributes.get(sc.GEN_AI_RESPONSE_ID)
    model = attributes.get(sc.GEN_AI_RESPONSE_MODEL) or event.model
    return Reply(
        text="".join(texts),
        tool_calls=calls,
        input_tokens=None if usage is None else usage.input_tokens,
        output_tokens=None if usage is None else usage.output_tokens,
        cached_tokens=0 if usage is None else usage.cache_read_tokens,
        cache_creation_tokens=0 if usage is None else usage.cache_write_tokens,
        reasoning_tokens=_int(attributes.get(sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS)),
        finish_reason=str(finish or "stop"),
        model=None if model is None else str(model),
        response_id=None if response_id is None else str(response_id),
    )


def embeddings_reply(event: Event | None) -> Reply:
    """The reply to an embeddings request: the vectors `LLMServer` makes (a recording holds none), the recorded
    call's input tokens."""
    if event is None:
        return Reply()
    usage = usage_from_attributes(event.attributes)
    model = event.attributes.get(sc.GEN_AI_RESPONSE_MODEL) or event.model
    return Reply(
        input_tokens=None if usage is None else usage.input_tokens, model=None if model is None else str(model)
    )
