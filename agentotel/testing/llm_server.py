"""A scripted, local LLM server that speaks the OpenAI and Anthropic wire formats.

`LLMServer` is a small HTTP server built on the standard library only. The real ``openai`` and ``anthropic`` Python
SDKs work against it through their ``base_url`` option, so an agent can be run end to end - plain calls, streams,
tool calls, errors, timeouts - without network access and with reproducible answers::

    import openai
    from agentotel.testing.llm_server import LLMServer, Reply, ToolCall

    with LLMServer() as server:
        server.script(Reply(tool_calls=[ToolCall("call_1", "get_weather", {"city": "Paris"})]), Reply("Sunny."))
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")  # or anthropic.Anthropic(
        #     base_url=server.anthropic_base_url, api_key="test")
        first = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
        assert first.choices[0].finish_reason == "tool_calls"
        assert server.requests[0].body["model"] == "gpt-4o-mini"

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/responses``, ``POST /v1/embeddings`` (OpenAI) and
``POST /v1/messages`` (Anthropic). Each answers with JSON, or with server-sent events when the request body has
``"stream": true``. Any other method or path gets a 404 with OpenAI's error shape.

Each request to one of those endpoints takes the next scripted `Reply` (see `LLMServer.script`); when none is queued,
the server's responder answers, and the default responder (`default_responder`) answers deterministically from the
last user message, so runs are reproducible.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "SCRIPT_FORMAT",
    "LLMServer",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptError",
    "ToolCall",
    "WireReply",
    "default_responder",
    "embedding_for",
    "last_user_text",
    "load_replies",
    "reply_from_json",
    "wire_reply",
]

logger = logging.getLogger(__name__)

#: Paths served, and the endpoint name recorded for each in `RecordedRequest.endpoint`.
ROUTES: dict[str, str] = {
    "/v1/chat/completions": "chat.completions",
    "/v1/responses": "responses",
    "/v1/embeddings": "embeddings",
    "/v1/messages": "messages",
}

#: Dimension of the vectors returned by ``/v1/embeddings`` when the request does not ask for ``dimensions``.
EMBEDDING_DIMENSIONS = 8

_STOP_TIMEOUT = 5.0  # seconds stop() waits for the server thread
_POLL_INTERVAL = 0.05  # seconds; bounds how long stop() waits for the serve loop to notice

_OPENAI_TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
_ANTHROPIC_TO_OPENAI_STOP = {v: k for k, v in _OPENAI_TO_ANTHROPIC_STOP.items()}
_ANTHROPIC_TO_OPENAI_STOP["stop_sequence"] = "stop"
_ANTHROPIC_TO_OPENAI_STOP["pause_turn"] = "stop"

_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_OPENAI_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "not_found"),
    409: ("invalid_request_error", "conflict"),
    422: ("invalid_request_error", None),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class ToolCall:
    """One tool (function) call made by the model in a `Reply`.

    ``id`` is used verbatim as OpenAI's ``tool_calls[].id`` / Responses ``call_id`` and as Anthropic's ``tool_use``
    block id; ``arguments`` is sent JSON-encoded to OpenAI and as the ``input`` object to Anthropic. Arguments given
    as JSON text (what a recorded model wrote, kept as written) go to OpenAI as they are, and to Anthropic parsed
    (an empty object when the text is no JSON object).
    """

    id: str
    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)

    @property
    def arguments_text(self) -> str:
        """The arguments as OpenAI sends them: JSON text."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)

    @property
    def arguments_object(self) -> dict[str, Any]:
        """The arguments as Anthropic sends them: an object."""
        if isinstance(self.arguments, dict):
            return self.arguments
        try:
            parsed = json.loads(self.arguments)
        except ValueError:
            return {}
        return parsed if isinstance(parsed, dict) else {}


@dataclass
class Reply:
    """One scripted answer of the server.

    Attributes:
        text: the assistant's text. May be empty when the reply only calls tools. For structured outputs give the
            JSON text the SDK should parse; it is sent as given.
        tool_calls: tool calls the model makes, in order.
        input_tokens: total prompt tokens, *including* ``cached_tokens`` and ``cache_creation_tokens`` (OpenAI's
            convention). Anthropic replies report ``input_tokens - cached_tokens - cache_creation_tokens`` (never
            below 0) as ``input_tokens``, since Anthropic's count excludes cache reads and writes. Default: the
            number of whitespace-separated words in the request's prompt (at least 1), plus ``cached_tokens`` and
            ``cache_creation_tokens``.
        output_tokens: completion tokens, *including* ``reasoning_tokens``. Default: the number of words in
            ``text`` and in the JSON-encoded tool arguments (at least 1), plus ``reasoning_tokens``.
        cached_tokens: prompt tokens read from the cache (OpenAI ``cached_tokens``, Anthropic
            ``cache_read_input_tokens``).
        reasoning_tokens: reasoning tokens (OpenAI ``reasoning_tokens``; Anthropic
            ``output_tokens_details.thinking_tokens``, sent only when non-zero).
        cache_creation_tokens: prompt tokens written to the cache (Anthropic ``cache_creation_input_tokens``, OpenAI
            ``cache_write_tokens``, the latter sent only when non-zero).
        finish_reason: OpenAI finish reason: ``"stop"``, ``"length"``, ``"tool_calls"`` or ``"content_filter"``
            (Anthropic's own values are accepted too). Mapped to Anthropic's stop_reason as stop→end_turn,
            length→max_tokens, tool_calls→tool_use, content_filter→refusal; other values pass through unchanged.
            When the reply has tool calls and finish_reason is left at ``"stop"``, ``"tool_calls"`` (``tool_use``) is
            reported, as the real APIs do. On the Responses API ``"length"`` and ``"content_filter"`` give an
            ``"incomplete"`` response.
        model: model name reported; default: the request's ``model``.
        response_id: the response's id (OpenAI's ``chatcmpl-...`` / ``resp_...``, Anthropic's ``msg_...``); default:
            one made from the request's sequence number. A re-run serves the recorded one.
        status: 200, or an HTTP error status from 400 to 599, which makes an error reply in the provider's JSON
            error shape (OpenAI ``{"error": {"message", "type", "param", "code"}}``, Anthropic ``{"type": "error",
            "error": {"type", "message"}}``), whose message is ``text`` when given. The SDKs raise their typed errors
            for it (with ``max_retries=0``; otherwise they retry 408, 409, 429 and 5xx first).
        error_body: the exact JSON body of an error reply, instead of the provider's shape built from ``status``.
        delay: seconds to wait before answering (to test client timeouts). Interrupted when the server stops.
        chunks: for streams, how many chunks the text is split into (default: one per word). Tool-call arguments
            are streamed in two chunks.
        abort_stream_after: for streams, close the connection after this many delta events (text and tool-argument
            chunks) without finishing the stream; 0 closes it before the first delta. The client sees the body end
            early (the SDKs raise a connection error). When there are fewer deltas, the stream is cut after the last.
        headers: extra response headers, e.g. ``{"retry-after-ms": "0"}``.
    """

    text: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_creation_tokens: int = 0
    finish_reason: str = "stop"
    model: str | None = None
    response_id: str | None = None
    status: int = 200
    error_body: dict[str, Any] | None = None
    delay: float = 0.0
    chunks: int | None = None
    abort_stream_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status != 200 and not 400 <= self.status <= 599:
            raise ValueError(f"Reply.status must be 200 or an error status from 400 to 599, got {self.status}")
        if self.delay < 0:
            raise ValueError("Reply.delay must not be negative")
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("Reply.chunks must be at least 1")
        if self.abort_stream_after is not None and self.abort_stream_after < 0:
            raise ValueError("Reply.abort_stream_after must not be negative")
        for name in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cache_creation_tokens"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"Reply.{name} must not be negative")


@dataclass(frozen=True)
class RecordedRequest:
    """A request the server received.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: request path without the query string, e.g. ``"/v1/chat/completions"``.
        headers: request headers, names lower-cased. They include the client's API key: the server keeps them
            here only and never logs them.
        body: the JSON body parsed, or None when there is no body or it is not valid JSON.
        query: the query string, without ``?`` (``""`` when none).
        endpoint: ``"chat.completions"``, ``"responses"``, ``"embeddings"`` or ``"messages"``, or None for a path
            that is not served.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    query: str = ""
    endpoint: str | None = None

    @property
    def json(self) -> Any:
        """The JSON body (the same as `body`)."""
        return self.body

    @property
    def stream(self) -> bool:
        """Whether the request asked for a server-sent event stream."""
        return isinstance(self.body, dict) and self.body.get("stream") is True


Responder = Callable[[RecordedRequest], Reply]
"""Answers a request that found no scripted reply."""


# --------------------------------------------------------------------------------------------------------------------
# Reading requests


def _text_of(content: Any) -> str:
    """The text in a message content: a string, a list of parts/blocks, or a block with text/content/output."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text for text in (_text_of(part) for part in content) if text)
    if isinstance(content, dict):
        if isinstance(content.get("text"), str):
            return str(content["text"])
        for key in ("content", "output"):
            if key in content:
                return _text_of(content[key])
    return ""


def _last_turn(endpoint: str | None, body: Any) -> tuple[str, str]:
    """("user" | "tool" | "none", text) for the last user message or tool result of a request body."""
    if not isinstance(body, dict):
        return "none", ""
    if endpoint == "responses":
        items = body.get("input")
        if isinstance(items, str):
            return "user", items
        for item in reversed(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                continue
            if str(item.get("type", "")).endswith("_call_output"):
                return "tool", _text_of(item.get("output"))
            if item.get("role") == "user":
                return "user", _text_of(item.get("content"))
        return "none", ""
    if endpoint == "embeddings":
        return "none", ""
    messages = body.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        if role in ("tool", "function"):
            return "tool", _text_of(content)
        if role == "user":
            if isinstance(content, list):
                results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
                if results:
                    return "tool", _text_of(results)
            return "user", _text_of(content)
    return "none", ""


def last_user_text(request: RecordedRequest) -> str:
    """The text of the request's last user message or tool result ("" when there is none).

    Works for chat completions (``messages``), Responses (``input``) and Anthropic messages. Text parts of a
    multi-part content are joined with single spaces; non-text parts are ignored.
    """
    return _last_turn(request.endpoint, request.body)[1]


def _requested_schema(endpoint: str | None, body: Any) -> tuple[str, dict[str, Any]] | None:
    """("json_schema", schema) or ("json_object", {}) when the request asks for structured output, else None."""
    if not isinstance(body, dict):
        return None
    fmt: Any = None
    if endpoint == "chat.completions":
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema")
            schema = spec.get("schema") if isinstance(spec, dict) else None
            return "json_schema", schema if isinstance(schema, dict) else {}
    elif endpoint == "responses":
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
    elif endpoint == "messages":
        config = body.get("output_config")
        fmt = config.get("format") if isinstance(config, dict) else None
        if fmt is None:
            fmt = body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return "json_schema", schema if isinstance(schema, dict) else {}
    if isinstance(fmt, dict) and fmt.get("type") == "json_object":
        return "json_object", {}
    return None


def _example_for_schema(schema: Any, root: dict[str, Any], text: str, depth: int = 0) -> Any:
    """A small deterministic instance of a JSON schema: defaults, first enum values, strings set to ``text``."""
    if not isinstance(schema, dict) or depth > 12:
        return None
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part) if isinstance(target, dict) else None
        return _example_for_schema(target, root, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            usable = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return _example_for_schema((usable or options)[0], root, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        return {name: _example_for_schema(sub, root, text, depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = schema.get("minItems", 0)
        item = _example_for_schema(schema.get("items"), root, text, depth + 1)
        return [item] * (count if isinstance(count, int) else 0)
    if kind == "string":
        formats = {"date-time": "1970-01-01T00:00:00Z", "date": "1970-01-01", "time": "00:00:00", "uri": "urn:x"}
        return formats.get(str(schema.get("format")), text)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        low = low if isinstance(low, (int, float)) else 0
        value = max(0, low + (1 if "exclusiveMinimum" in schema else 0))
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    return None


def default_responder(request: RecordedRequest) -> Reply:
    """The answer given when no reply is scripted and the server has no responder. Deterministic.

    - A structured-output request (JSON schema) gets a small instance of the schema as JSON text: defaults and first
      enum values where the schema has them, ``"You said: ..."`` for strings, 0 for numbers, false, [] and nested
      objects. A JSON-object request gets ``{"reply": "You said: ..."}``.
    - When the last turn is a tool result: ``"Tool result: <its text>"``.
    - Otherwise ``"You said: <last user message>"`` (``"Hello from LLMServer."`` when there is no user message).

    It never calls tools, so an agent loop run against it ends after one model call per user turn.
    """
    kind, text = _last_turn(request.endpoint, request.body)
    answer = {"user": f"You said: {text}", "tool": f"Tool result: {text}"}.get(kind, "Hello from LLMServer.")
    structured = _requested_schema(request.endpoint, request.body)
    if structured is not None:
        mode, schema = structured
        if mode == "json_schema":
            return Reply(text=json.dumps(_example_for_schema(schema, schema, answer)))
        return Reply(text=json.dumps({"reply": answer}))
    return Reply(text=answer)


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value, depth first."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return []


_PROMPT_KEYS = ("messages", "input", "system", "instructions")
_NON_TEXT_KEYS = frozenset({"role", "type", "id", "call_id", "tool_use_id", "tool_call_id", "cache_control", "name"})


def _prompt_words(body: Any) -> int:
    """Number of whitespace-separated words in the text of a request's prompt."""
    if not isinstance(body, dict):
        return 0

    def words(value: Any) -> int:
        if isinstance(value, str):
            return len(value.split())
        if isinstance(value, list):
            return sum(words(item) for item in value)
        if isinstance(value, dict):
            return sum(words(v) for k, v in value.items() if k not in _NON_TEXT_KEYS)
        return 0

    return sum(words(body.get(key)) for key in _PROMPT_KEYS)


# --------------------------------------------------------------------------------------------------------------------
# Building answers


@dataclass(frozen=True)
class _Usage:
    total_input: int  # includes cache reads and writes
    uncached_input: int
    cached: int
    cache_write: int
    output: int  # includes reasoning
    reasoning: int


def _usage(reply: Reply, body: Any) -> _Usage:
    cached, write = reply.cached_tokens, reply.cache_creation_tokens
    total = reply.input_tokens
    if total is None:
        total = max(1, _prompt_words(body)) + cached + write
    output = reply.output_tokens
    if output is None:
        words = len(reply.text.split()) + sum(len(tc.arguments_text.split()) for tc in reply.tool_calls)
        output = max(1, words) + reply.reasoning_tokens
    return _Usage(total, max(0, total - cached - write), cached, write, output, reply.reasoning_tokens)


def _split_text(text: str, chunks: int | None) -> list[str]:
    """Split text into pieces that join back to it: one per word (leading whitespace kept), or ``chunks`` slices."""
    if not text:
        return []
    if chunks is None:
        pieces = re.findall(r"\s*\S+", text)
        tail = text[len("".join(pieces)) :]
        if tail:
            if pieces:
                pieces[-1] += tail
            else:
                pieces = [tail]
        return pieces
    count = max(1, min(chunks, len(text)))
    size, extra = divmod(len(text), count)
    out, pos = [], 0
    for i in range(count):
        step = size + (1 if i < extra else 0)
        out.append(text[pos : pos + step])
        pos += step
    return out


def _openai_finish(reply: Reply) -> str:
    reason = _ANTHROPIC_TO_OPENAI_STOP.get(reply.finish_reason, reply.finish_reason)
    if reply.tool_calls and reason == "stop":
        return "tool_calls"
    return reason


def _anthropic_stop(reply: Reply) -> str:
    return _OPENAI_TO_ANTHROPIC_STOP.get(_openai_finish(reply), reply.finish_reason)


def embedding_for(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """The unit vector ``/v1/embeddings`` returns for ``text``: deterministic, float32-exact.

    Token-array inputs are keyed by their JSON encoding (``json.dumps(tokens)``).
    """
    digest = b""
    counter = 0
    while len(digest) < 4 * dimensions:
        digest += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    values = [int.from_bytes(digest[4 * i : 4 * i + 4], "little") / 2**31 - 1.0 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(v / norm for v in values))
    return list(struct.unpack(f"<{dimensions}f", packed))


@dataclass(frozen=True)
class _Event:
    name: str | None  # SSE "event:" field; None for data-only events
    data: str
    delta: bool = False  # counts toward Reply.abort_stream_after

    def encode(self) -> bytes:
        """The event as it goes on the wire."""
        return ((f"event: {self.name}\n" if self.name else "") + f"data: {self.data}\n\n").encode()


def _sse(name: str | None, payload: Any, delta: bool = False) -> _Event:
    return _Event(name, payload if isinstance(payload, str) else json.dumps(payload), delta)


class _Builder:
    """Builds the JSON answer or the SSE events of one reply to one request."""

    def __init__(self, reply: Reply, body: dict[str, Any], seq: int) -> None:
        self.reply = reply
        self.body = body
        self.seq = seq
        self.created = int(time.time())
        model = reply.model if reply.model is not None else body.get("model")
        self.model = model if isinstance(model, str) else "unknown"
        self.usage = _usage(reply, body)

    # OpenAI chat completions ----------------------------------------------------------------------------------------

    def _chat_usage(self) -> dict[str, Any]:
        u = self.usage
        prompt_details: dict[str, Any] = {"cached_tokens": u.cached, "audio_tokens": 0}
        if u.cache_write:
            prompt_details["cache_write_tokens"] = u.cache_write
        return {
            "prompt_tokens": u.total_input,
            "completion_tokens": u.output,
            "total_tokens": u.total_input + u.output,
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": {
                "reasoning_tokens": u.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _chat_base(self, obj: str) -> dict[str, Any]:
        return {
            "id": self.reply.response_id or f"chatcmpl-llmserver{self.seq:06d}",
            "object": obj,
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_llmserver",
        }

    def chat_completion(self) -> dict[str, Any]:
        reply = self.reply
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.text if reply.text or not reply.tool_calls else None,
            "refusal": None,
            "annotations": [],
        }
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": tc.id,
                    "type": "function",
                    "function": {"name": tc.name, "arguments": tc.arguments_text},
                }
                for tc in reply.tool_calls
            ]
        return {
            **self._chat_base("chat.completion"),
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _openai_finish(reply)}],
            "usage": self._chat_usage(),
        }

    def chat_completion_events(self) -> list[_Event]:
        reply = self.reply
        options = self.body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        base = self._chat_base("chat.completion.chunk")
        if include_usage:
            base["usage"] = None

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

        first_content = "" if reply.text or not reply.tool_calls else None
        events = [_sse(None, chunk({"role": "assistant", "content": first_content, "refusal": None}))]
        events += [_sse(None, chunk({"content": piece}), delta=True) for piece in _split_text(reply.text, reply.chunks)]
        for index, tc in enumerate(reply.tool_calls):
            start = {"index": index, "id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": ""}}
            events.append(_sse(None, chunk({"tool_calls": [start]})))
            for piece in _split_text(tc.arguments_text, 2):
                piece_delta = {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                events.append(_sse(None, chunk(piece_delta), delta=True))
        events.append(_sse(None, chunk({}, _openai_finish(reply))))
        if include_usage:
            events.append(_sse(None, {**base, "choices": [], "usage": self._chat_usage()}))
        events.append(_sse(None, "[DONE]"))
        return events

    # OpenAI Responses -----------------------------------------------------------------------------------------------

    def _response_items(self) -> list[dict[str, Any]]:
        reply = self.reply
        items: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            items.append(
                {
                    "id": f"msg_llmserver{self.seq:06d}",
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": [], "logprobs": []}],
                }
            )
        for index, tc in enumerate(reply.tool_calls):
            items.append(
                {
                    "id": f"fc_llmserver{self.seq:06d}_{index}",
                    "type": "function_call",
                    "status": "completed",
                    "call_id": tc.id,
                    "name": tc.name,
                    "arguments": tc.arguments_text,
                }
            )
        return items

    def response(self, final: bool = True) -> dict[str, Any]:
        body, u = self.body, self.usage
        finish = _openai_finish(self.reply)
        incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish)
        status = ("incomplete" if incomplete else "completed") if final else "in_progress"
        return {
            "id": self.reply.response_id or f"resp_llmserver{self.seq:06d}",
            "object": "response",
            "created_at": self.created,
            "status": status,
            "completed_at": self.created if status == "completed" else None,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": incomplete} if incomplete and final else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "max_tool_calls": body.get("max_tool_calls"),
            "metadata": body.get("metadata") or {},
            "model": self.model,
            "output": self._response_items() if final else [],
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": {
                "input_tokens": u.total_input,
                "input_tokens_details": {"cached_tokens": u.cached, "cache_write_tokens": u.cache_write},
                "output_tokens": u.output,
                "output_tokens_details": {"reasoning_tokens": u.reasoning},
                "total_tokens": u.total_input + u.output,
            }
            if final
            else None,
            "user": body.get("user"),
        }

    def response_events(self) -> list[_Event]:
        events: list[_Event] = []

        def add(kind: str, is_delta: bool = False, **fields: Any) -> None:
            events.append(_sse(kind, {"type": kind, "sequence_number": len(events), **fields}, is_delta))

        add("response.created", response=self.response(final=False))
        add("response.in_progress", response=self.response(final=False))
        for index, item in enumerate(self._response_items()):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                add(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                common = {"item_id": item["id"], "output_index": index, "content_index": 0}
                add("response.content_part.added", part=empty_part, **common)
                for piece in _split_text(text, self.reply.chunks):
                    add("response.output_text.delta", True, delta=piece, logprobs=[], **common)
                add("response.output_text.done", text=text, logprobs=[], **common)
                add("response.content_part.done", part=item["content"][0], **common)
            else:
                add(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "arguments": ""},
                )
                common = {"item_id": item["id"], "output_index": index}
                for piece in _split_text(item["arguments"], 2):
                    add("response.function_call_arguments.delta", True, delta=piece, **common)
                add("response.function_call_arguments.done", name=item["name"], arguments=item["arguments"], **common)
            add("response.output_item.done", output_index=index, item=item)
        final = self.response()
        add("response.completed" if final["status"] == "completed" else "response.incomplete", response=final)
        return events

    # OpenAI embeddings ----------------------------------------------------------------------------------------------

    def embeddings(self) -> dict[str, Any]:
        raw = self.body.get("input")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
            inputs: list[Any] = [raw]
        else:
            inputs = raw if isinstance(raw, list) else [raw]
        dims = self.body.get("dimensions")
        dims = dims if isinstance(dims, int) and dims > 0 else EMBEDDING_DIMENSIONS
        as_base64 = self.body.get("encoding_format") == "base64"
        data = []
        prompt_tokens = 0
        for index, item in enumerate(inputs):
            key = item if isinstance(item, str) else json.dumps(item)
            prompt_tokens += max(
                1, len(item.split()) if isinstance(item, str) else len(item) if isinstance(item, list) else 1
            )
            vector: Any = embedding_for(key, dims)
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode("ascii")
            data.append({"object": "embedding", "index": index, "embedding": vector})
        if self.reply.input_tokens is not None:
            prompt_tokens = self.reply.input_tokens
        return {
            "object": "list",
            "data": data,
            "model": self.model,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
        }

    # Anthropic messages ---------------------------------------------------------------------------------------------

    def _anthropic_usage(self, start: bool = False) -> dict[str, Any]:
        u = self.usage
        usage: dict[str, Any] = {
            "input_tokens": u.uncached_input,
            "cache_creation_input_tokens": u.cache_write,
            "cache_read_input_tokens": u.cached,
            "output_tokens": min(1, u.output) if start else u.output,
        }
        if u.reasoning and not start:
            usage["output_tokens_details"] = {"thinking_tokens": u.reasoning}
        if start:
            usage["service_tier"] = "standard"
        return usage

    def _anthropic_blocks(self) -> list[dict[str, Any]]:
        reply = self.reply
        blocks: list[dict[str, Any]] = []
        if reply.text or not reply.tool_calls:
            blocks.append({"type": "text", "text": reply.text})
        blocks += [
            {"type": "tool_use", "id": tc.id, "name": tc.name, "input": tc.arguments_object} for tc in reply.tool_calls
        ]
        return blocks

    def message(self) -> dict[str, Any]:
        usage = self._anthropic_usage()
        usage["service_tier"] = "standard"
        return {
            "id": self.reply.response_id or f"msg_llmserver{self.seq:06d}",
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": self._anthropic_blocks(),
            "stop_reason": _anthropic_stop(self.reply),
            "stop_sequence": None,
            "usage": usage,
        }

    def message_events(self) -> list[_Event]:
        events: list[_Event] = []

        def add(kind: str, is_delta: bool = False, **fields: Any) -> None:
            events.append(_sse(kind, {"type": kind, **fields}, is_delta))

        start = {**self.message(), "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = self._anthropic_usage(start=True)
        add("message_start", message=start)
        for index, block in enumerate(self._anthropic_blocks()):
            if block["type"] == "text":
                add("content_block_start", index=index, content_block={"type": "text", "text": ""})
                if index == 0:
                    add("ping")
                for piece in _split_text(block["text"], self.reply.chunks):
                    add("content_block_delta", True, index=index, delta={"type": "text_delta", "text": piece})
            else:
                add("content_block_start", index=index, content_block={**block, "input": {}})
                if index == 0:
                    add("ping")
                for piece in _split_text(json.dumps(block["input"]), 2):
                    json_delta = {"type": "input_json_delta", "partial_json": piece}
                    add("content_block_delta", True, index=index, delta=json_delta)
            add("content_block_stop", index=index)
        add(
            "message_delta",
            delta={"stop_reason": _anthropic_stop(self.reply), "stop_sequence": None},
            usage=self._anthropic_usage(),
        )
        add("message_stop")
        return events


def _error_body(anthropic: bool, status: int, message: str) -> dict[str, Any]:
    if anthropic:
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind, code = _OPENAI_ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


@dataclass(frozen=True)
class WireReply:
    """One answer as a provider sends it: an HTTP status, the reply's extra headers, and either a JSON body
    (`payload`) or a stream of server-sent events (`events`)."""

    status: int
    headers: dict[str, str]
    payload: Any = None
    events: tuple[_Event, ...] | None = None

    @property
    def stream(self) -> bool:
        return self.events is not None

    @property
    def content_type(self) -> str:
        return "text/event-stream; charset=utf-8" if self.stream else "application/json"

    def body(self) -> bytes:
        """The whole body: the JSON, or every event of the stream one after another."""
        if self.events is not None:
            return b"".join(event.encode() for event in self.events)
        return json.dumps(self.payload).encode()


def wire_reply(endpoint: str | None, body: Any, reply: Reply, seq: int) -> WireReply:
    """`reply` to a request of `endpoint` (a `ROUTES` value) with JSON `body`, in that API's wire format: what
    `LLMServer` sends, built without a server (a re-run answers in-process with it). `seq` numbers the reply's ids.

    An endpoint that is not served gets a 404, a body that is no JSON object a 400, an error `Reply` its error body
    (both in the provider's shape); a streamed request (``"stream": true``) gets events. Raises when the request
    is too unusual to answer (the server answers 500 then)."""
    anthropic = endpoint == "messages"
    if endpoint is None or endpoint not in ROUTES.values():
        served = ", ".join(f"POST {p}" for p in ROUTES)
        return WireReply(404, {}, _error_body(False, 404, f"LLMServer has no route for {endpoint}; it serves {served}"))
    if not isinstance(body, dict):
        return WireReply(400, {}, _error_body(anthropic, 400, "The request body must be a JSON object"))
    if reply.status >= 400:
        error = reply.error_body
        if error is None:
            error = _error_body(anthropic, reply.status, reply.text or f"Scripted error reply (HTTP {reply.status})")
        return WireReply(reply.status, dict(reply.headers), error)
    builder = _Builder(reply, body, seq)
    if body.get("stream") is True and endpoint != "embeddings":
        events = {
            "chat.completions": builder.chat_completion_events,
            "responses": builder.response_events,
            "messages": builder.message_events,
        }[endpoint]()
        return WireReply(200, dict(reply.headers), events=tuple(events))
    payload = {
        "chat.completions": builder.chat_completion,
        "responses": builder.response,
        "messages": builder.message,
        "embeddings": builder.embeddings,
    }[endpoint]()
    return WireReply(200, dict(reply.headers), payload)


# --------------------------------------------------------------------------------------------------------------------
# HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 1024
    """The listen backlog: socketserver's default of 5 resets connections when hundreds of clients connect at once
    (a load test's thousand sessions) while the accepting thread waits for the CPU."""

    def __init__(self, address: tuple[str, int], owner: LLMServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        if ":" in address[0]:  # an IPv6 address (`::1`): the socket must be of its family
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self.connections_lock:
            self.connections.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Never print tracebacks: client disconnects are normal, and a traceback could show request data.
        error = sys.exc_info()[1]
        if isinstance(error, OSError) or self.owner._stopping.is_set():
            return
        logger.warning("LLMServer: unexpected %s while serving a request", type(error).__name__)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the client's delayed
    # ACK hold the body back ~40 ms on every plain reply.
    disable_nagle_algorithm = True
    server_version = "agentotel-llmserver"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: requests carry API keys in their headers."""

    def handle(self) -> None:
        try:
            super().handle()
        except OSError:  # client went away (reset, broken pipe, timeout) or the server is stopping
            self.close_connection = True

    def do_POST(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        owner = self.server.owner
        path, _, query = self.path.partition("?")
        raw = self._read_body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        endpoint = ROUTES.get(path.rstrip("/")) if self.command == "POST" else None
        request = RecordedRequest(
            method=self.command,
            path=path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            query=query,
            endpoint=endpoint,
        )
        seq = owner._record(request)
        anthropic = endpoint == "messages"
        if endpoint is None:
            served = ", ".join(f"POST {p}" for p in ROUTES)
            message = f"LLMServer has no route for {self.command} {path}; it serves {served}"
            self._send_json(404, _error_body(False, 404, message), seq)
            return
        if not isinstance(body, dict):
            self._send_json(400, _error_body(anthropic, 400, "The request body must be a JSON object"), seq)
            return
        reply = owner._next_reply(request)
        if reply.delay and owner._stopping.wait(reply.delay):
            self.close_connection = True
            return
        try:
            wire = wire_reply(endpoint, body, reply, seq)
        except Exception as error:  # an unusual request body: answer 500 rather than drop the connection
            with owner._lock:
                owner.errors.append(error)
            message = f"LLMServer could not build a reply: {type(error).__name__}: {error}"
            self._send_json(500, _error_body(anthropic, 500, message), seq)
            return
        if wire.events is not None:
            self._send_stream(list(wire.events), seq, reply)
        else:
            self._send_json(wire.status, wire.payload, seq, wire.headers)

    def _common_headers(self, seq: int, extra: dict[str, str] | None) -> None:
        request_id = f"req_llmserver{seq:06d}"
        self.send_header("x-request-id", request_id)
        self.send_header("request-id", request_id)
        for name, value in (extra or {}).items():
            self.send_header(name, value)

    def _send_json(self, status: int, payload: Any, seq: int, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._common_headers(seq, extra)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_stream(self, events: list[_Event], seq: int, reply: Reply) -> None:
        cut = len(events)
        if reply.abort_stream_after is not None:
            deltas = [i for i, event in enumerate(events) if event.delta]
            if reply.abort_stream_after < len(deltas):
                cut = deltas[reply.abort_stream_after]
            else:
                cut = deltas[-1] + 1 if deltas else max(0, len(events) - 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers(seq, reply.headers)
        self.end_headers()
        for event in events[:cut]:
            data = event.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        if cut < len(events):
            self.close_connection = True  # end the body without its last chunk: the client sees an aborted stream
            return
        self.wfile.write(b"0\r\n\r\n")


# --------------------------------------------------------------------------------------------------------------------
# The server


class LLMServer:
    """A scripted OpenAI- and Anthropic-compatible HTTP server running in a background daemon thread.

    ``LLMServer(responder)`` binds nothing until `start` (or ``with LLMServer() as server:``), which binds
    ``host:port`` (port 0: a free port) and serves until `stop`. It handles concurrent requests, one thread each,
    keeps connections alive (plain replies carry Content-Length; streams use chunked transfer encoding) and never
    prints tracebacks or request headers.

    Args:
        responder: answers requests that find no scripted reply; default: `default_responder`. If it raises, the
            request gets a 500 error reply and the exception is appended to `errors`.
        host: address to bind; default loopback only.
        port: port to bind; 0 picks a free one.

    Attributes:
        requests: every request received, in arrival order, including unserved paths (see `RecordedRequest`).
        errors: exceptions raised by the responder, or while building a reply (each answered with a 500 error).
    """

    def __init__(self, responder: Responder | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.responder: Responder = responder or default_responder
        self.host = host
        self.port = port
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._seq = 0
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> LLMServer:
        """Bind and start serving in a daemon thread; returns self. Does nothing if already running.

        A stopped server can be started again; with port 0 it then gets a new port.
        """
        with self._lock:
            if self._httpd is not None:
                return self
            httpd = _HTTPServer((self.host, self.port), self)
            self._stopping.clear()
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": _POLL_INTERVAL},
                name=f"LLMServer:{httpd.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and open connections, and join the server thread.

        Idempotent. Returns within a few seconds at most: requests still waiting on a `Reply.delay` are woken and
        dropped, and their daemon threads are not waited for.
        """
        with self._lock:
            httpd, thread = self._httpd, self._thread
            self._httpd = self._thread = None
        if httpd is None:
            return
        self._stopping.set()
        if thread is not None and thread.is_alive():
            httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(_STOP_TIMEOUT)

    def __enter__(self) -> LLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is started and not stopped."""
        return self._httpd is not None

    # Addresses ---------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server. Raises RuntimeError before `start`."""
        httpd = self._httpd
        if httpd is None:
            raise RuntimeError("LLMServer is not running: call start() or use it as a context manager")
        host, port = httpd.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def openai_base_url(self) -> str:
        """Base URL for ``openai.OpenAI(base_url=..., api_key=...)``: `url` + ``/v1``."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """Base URL for ``anthropic.Anthropic(base_url=..., api_key=...)``: `url`."""
        return self.url

    # Script ------------------------------------------------------------------------------------------------------

    def script(self, *replies: Reply | str) -> None:
        """Queue replies. Each request to a served endpoint takes the next one, in order (a string stands for
        ``Reply(text=...)``); when the queue is empty, the responder answers. Thread-safe.

        Embeddings requests take a reply too: its status, delay, headers and input_tokens apply, and the vectors
        come from `embedding_for`.
        """
        queued = [Reply(text=r) if isinstance(r, str) else r for r in replies]
        with self._lock:
            self._queue.extend(queued)

    @property
    def pending(self) -> int:
        """Number of scripted replies not yet taken."""
        with self._lock:
            return len(self._queue)

    # Used by the handler -----------------------------------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> int:
        with self._lock:
            self.requests.append(request)
            self._seq += 1
            return self._seq

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        try:
            reply = self.responder(request)
            if not isinstance(reply, Reply):
                raise TypeError(f"responder returned {type(reply).__name__}, not Reply")
        except Exception as error:
            with self._lock:
                self.errors.append(error)
            return Reply(text=f"LLMServer responder raised {type(error).__name__}: {error}", status=500)
        return reply

    def __repr__(self) -> str:
        where = self.url if self._httpd is not None else "not running"
        return f"<LLMServer {where}, {len(self.requests)} requests, {self.pending} scripted replies pending>"


# --------------------------------------------------------------------------------------------------------------------
# Scripts in files (`agentotel serve-llm --script FILE`)

SCRIPT_FORMAT = """\
A script file lists the replies the server gives, in order, one per model request (chat completions, Responses,
Anthropic messages or embeddings); once they are used up the default responder answers ("You said: ...").

- JSON: a list of replies, e.g. ["Hello!", {"text": "Sunny.", "output_tokens": 3}]. One reply alone (an object
  or a string) is a list of one.
- JSON Lines (.jsonl, or any file that is not one JSON document): one reply per line; blank lines are skipped.

A reply is a string (its text) or an object with any of Reply's fields: text, tool_calls (a list of {"name",
"arguments" (an object or JSON text), "id" (default call_1, call_2, ... in each reply)}), input_tokens,
output_tokens, cached_tokens, reasoning_tokens, cache_creation_tokens, finish_reason, model, response_id, status
(200, or an error status from 400 to 599), error_body (an object), delay (seconds), chunks, abort_stream_after,
headers (an object of strings)."""


class ScriptError(ValueError):
    """A script file that cannot be read or is not a list of replies: the message is one line, naming the file and
    the reply (or line) at fault."""


_REPLY_FIELDS: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "tool_calls": (list,),
    "input_tokens": (int,),
    "output_tokens": (int,),
    "cached_tokens": (int,),
    "reasoning_tokens": (int,),
    "cache_creation_tokens": (int,),
    "finish_reason": (str,),
    "model": (str,),
    "response_id": (str,),
    "status": (int,),
    "error_body": (dict,),
    "delay": (int, float),
    "chunks": (int,),
    "abort_stream_after": (int,),
    "headers": (dict,),
}
"""Each field's JSON types; the last one names them in a message (`delay`: a number)."""
_NULLABLE = frozenset(
    {"input_tokens", "output_tokens", "model", "response_id", "error_body", "chunks", "abort_stream_after"}
)
"""Fields whose `null` means "the default"."""
_TOOL_CALL_FIELDS = ("id", "name", "arguments")
_JSON_TYPE_NAMES = {str: "a string", int: "a whole number", float: "a number", list: "a list", dict: "an object"}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _tool_call_from_json(value: Any, number: int) -> ToolCall:
    if not isinstance(value, dict):
        raise ValueError(f"tool call {number} is {_json_type(value)}, not an object with name and arguments")
    unknown = sorted(set(value) - set(_TOOL_CALL_FIELDS))
    if unknown:
        raise ValueError(
            f"tool call {number} has an unknown field {unknown[0]!r} (a tool call has id, name, arguments)"
        )
    name = value.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"tool call {number} needs a name (a string)")
    call_id = value.get("id", f"call_{number}")
    if not isinstance(call_id, str) or not call_id:
        raise ValueError(f"tool call {number}: id must be a string")
    arguments = value.get("arguments", {})
    if not isinstance(arguments, (dict, str)):
        raise ValueError(f"tool call {number}: arguments must be an object or JSON text, not {_json_type(arguments)}")
    return ToolCall(call_id, name, arguments)


def reply_from_json(value: Any) -> Reply:
    """The `Reply` a script file's entry stands for: a string (the reply's text) or an object of `Reply`'s fields
    (`tool_calls` as a list of {"id", "name", "arguments"}). Raises `ValueError` saying what is wrong, in one line."""
    if isinstance(value, str):
        return Reply(text=value)
    if not isinstance(value, dict):
        raise ValueError(f"a reply is a string or an object, not {_json_type(value)}")
    fields: dict[str, Any] = {}
    for key, item in value.items():
        kinds = _REPLY_FIELDS.get(key)
        if kinds is None:
            raise ValueError(f"unknown field {key!r} (a reply has {', '.join(_REPLY_FIELDS)})")
        if item is None and key in _NULLABLE:
            continue
        if isinstance(item, bool) or not isinstance(item, kinds):
            raise ValueError(f"{key} must be {_JSON_TYPE_NAMES[kinds[-1]]}, not {_json_type(item)}")
        fields[key] = item
    delay = fields.get("delay")
    if delay is not None and not (math.isfinite(delay) and delay <= threading.TIMEOUT_MAX):
        raise ValueError(f"delay must be a finite number of seconds, not {delay!r}")
    if "headers" in fields:
        headers = fields["headers"]
        if not all(isinstance(v, str) for v in headers.values()):
            raise ValueError("headers must map names to strings")
    if "tool_calls" in fields:
        fields["tool_calls"] = [_tool_call_from_json(c, n) for n, c in enumerate(fields["tool_calls"], start=1)]
    return Reply(**fields)


def load_replies(path: str | os.PathLike[str]) -> list[Reply]:
    """The replies a script file lists, in order (see `SCRIPT_FORMAT`): a JSON list, or JSON Lines (one reply a
    line; a `.jsonl` / `.ndjson` file always). Raises `ScriptError` with a one-line message naming the file and the
    reply or line at fault."""
    name = str(path)
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as error:
        raise ScriptError(f"cannot read the script {name}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ScriptError(f"the script {name} is not UTF-8 text") from None
    lines_only = name.lower().endswith((".jsonl", ".ndjson"))
    document_error: json.JSONDecodeError | None = None
    if not lines_only:
        try:
            document = _parse(name, "", text) if text.strip() else []
        except json.JSONDecodeError as error:
            document_error = error
        else:
            entries = document if isinstance(document, list) else [document]
            return [_entry(name, f"reply {n}", entry) for n, entry in enumerate(entries, start=1)]
    from agentotel.sources.otlp_json import json_error_text  # only for a script that is not JSON

    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if document_error is not None and len(lines) < 2:
        raise ScriptError(f"{name} is not JSON: {json_error_text(document_error)}") from None
    replies: list[Reply] = []
    for number, line in lines:
        try:
            entry = _parse(name, f" line {number}", line)
        except json.JSONDecodeError as error:
            if document_error is not None:
                raise ScriptError(
                    f"{name} is neither JSON ({json_error_text(document_error)}) nor JSON Lines (line {number}: "
                    f"{json_error_text(error, line=False)})"
                ) from None
            raise ScriptError(f"{name} line {number} is not JSON: {json_error_text(error, line=False)}") from None
        replies.append(_entry(name, f"line {number}", entry))
    return replies


def _parse(name: str, where: str, text: str) -> Any:
    """`json.loads(text)`. Raises `json.JSONDecodeError` for text that is not JSON, and `ScriptError` for JSON
    `json` cannot hold (nested too deeply, a number too long)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (ValueError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise ScriptError(f"{name}{where} cannot be read: {reason}") from None


def _entry(name: str, where: str, entry: Any) -> Reply:
    try:
        return reply_from_json(entry)
    except (TypeError, ValueError) as error:
        raise ScriptError(f"{name} {where}: {error}") from None


if __name__ == "__main__":
    # `python -m agentotel.testing.llm_server [--host H] [--port N] [--script FILE] [--expose]`: `agentotel serve-llm`.
    from agentotel.cli import main as _main

    sys.exit(_main(["serve-llm", *sys.argv[1:]]))
