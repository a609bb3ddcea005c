"""agentotel's own spans for the anthropic SDK's `messages.create` and `messages.stream`, used when the installed
SDK does not trace itself (releases before native tracing, or when asked to).

Each call gets one `chat {model}` CLIENT span (`_genai.LLMCall`) with the request parameters, the response id, model
and stop reason, the token usage as the GenAI conventions define it (`gen_ai.usage.input_tokens` includes cache reads
and writes, which Anthropic reports apart), its cost, and its messages when content capture is on. An error is
recorded on the span and re-raised unchanged. A stream's span ends exactly once: when the stream is exhausted,
fails, is closed or leaves its `with` block (failed, when an exception leaves it), or is garbage collected
unfinished. Parameters sent in `extra_body` are recorded as the named ones are.

The SDK's methods are wrapped on their classes (`Messages`, `AsyncMessages`) with `wrapt`; the caller gets the
SDK's own objects back (streams behind a transparent proxy). Nothing here raises into the caller: the wrapped call
runs outside every `try` that guards agentotel's own work.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry import context, trace
from opentelemetry.trace import Tracer

from .. import semconv as sc
from .._config import settings
from . import _anthropic_messages as messages
from ._genai import (
    AsyncStreamProxy,
    LLMCall,
    StreamProxy,
    StreamRecorder,
    as_float,
    as_int,
    block_error,
    field,
    quietly,
    sent_parameters,
    server_attributes,
    stop_sequences,
    text,
)

log = logging.getLogger("agentotel")

if TYPE_CHECKING:
    _ObjectProxy = wrapt.ObjectProxy[Any]
else:  # wrapt before 2.0 has no generic ObjectProxy at run time
    _ObjectProxy = wrapt.ObjectProxy

# The places this module wraps: (module, class, method). Every SDK release since 0.40 has the first four; the beta
# messages (`client.beta.messages`: the same call with beta features, answered by the same `Message` shape) are
# wrapped where the installed SDK has them.
WRAPPED_METHODS: tuple[tuple[str, str, str], ...] = (
    ("anthropic.resources.messages", "Messages", "create"),
    ("anthropic.resources.messages", "Messages", "stream"),
    ("anthropic.resources.messages", "AsyncMessages", "create"),
    ("anthropic.resources.messages", "AsyncMessages", "stream"),
    ("anthropic.resources.beta.messages.messages", "Messages", "create"),
    ("anthropic.resources.beta.messages.messages", "Messages", "stream"),
    ("anthropic.resources.beta.messages.messages", "AsyncMessages", "create"),
    ("anthropic.resources.beta.messages.messages", "AsyncMessages", "stream"),
)

# --------------------------------------------------------------------------------------------------------------------
# What a call's request and response say


def request_attributes(resource: Any, kwargs: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    """The attributes a call's span starts with, from the method's keyword arguments. Never raises.

    Only named parameters are read: headers (and so API keys) never reach the span.
    """
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_CHAT,
        sc.GEN_AI_PROVIDER_NAME: sc.GEN_AI_PROVIDER_NAME_VALUE_ANTHROPIC,
        sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_LLM,
    }
    try:
        attributes[sc.GEN_AI_REQUEST_MODEL] = text(kwargs.get("model"))
        attributes[sc.GEN_AI_REQUEST_MAX_TOKENS] = as_int(kwargs.get("max_tokens"))
        attributes[sc.GEN_AI_REQUEST_TEMPERATURE] = as_float(kwargs.get("temperature"))
        attributes[sc.GEN_AI_REQUEST_TOP_P] = as_float(kwargs.get("top_p"))
        attributes[sc.GEN_AI_REQUEST_TOP_K] = as_float(kwargs.get("top_k"))
        attributes[sc.GEN_AI_REQUEST_STOP_SEQUENCES] = stop_sequences(kwargs.get("stop_sequences"))
        if stream:
            attributes[sc.GEN_AI_REQUEST_STREAM] = True
        client = getattr(resource, "_client", None)
        attributes.update(server_attributes(getattr(client, "base_url", None)))
    except Exception:
        log.debug("Could not read the request of an anthropic call", exc_info=True)
    return {key: value for key, value in attributes.items() if value is not None}


def usage_attributes(usage: Any) -> dict[str, Any]:
    """Anthropic usage as GenAI attributes. Anthropic's `input_tokens` leaves out the tokens read from and written to
    the cache; the conventions' `gen_ai.usage.input_tokens` includes them, so they are added back. Never raises."""
    attributes: dict[str, Any] = {}
    try:
        uncached = as_int(field(usage, "input_tokens"))
        read = as_int(field(usage, "cache_read_input_tokens"))
        written = as_int(field(usage, "cache_creation_input_tokens"))
        if uncached is not None:
            attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] = uncached + (read or 0) + (written or 0)
        if read is not None:
            attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = read
        if written is not None:
            attributes[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = written
        output = as_int(field(usage, "output_tokens"))
        if output is not None:
            attributes[sc.GEN_AI_USAGE_OUTPUT_TOKENS] = output
    except Exception:
        log.debug("Could not read the usage of an anthropic response", exc_info=True)
    return attributes


def record_message(call: LLMCall, message: Any) -> None:
    """Records a whole `Message` (a model, or the dict of a raw body) on the call's span. Never raises."""
    try:
        stop_reason = text(field(message, "stop_reason"))
        call.set(sc.GEN_AI_RESPONSE_ID, text(field(message, "id")))
        call.set(sc.GEN_AI_RESPONSE_MODEL, text(field(message, "model")))
        call.set(sc.GEN_AI_RESPONSE_FINISH_REASONS, [stop_reason] if stop_reason else None)
        call.set_all(usage_attributes(field(message, "usage")))
        if call.capture_content:
            call.content(sc.GEN_AI_OUTPUT_MESSAGES, messages.output_messages(field(message, "content"), stop_reason))
    except Exception:
        log.debug("Could not record an anthropic response", exc_info=True)


def record_request_content(call: LLMCall, kwargs: dict[str, Any]) -> None:
    """The system instructions and input messages, when content capture is on. Never raises."""
    if not call.capture_content:
        return
    try:
        call.content(sc.GEN_AI_SYSTEM_INSTRUCTIONS, messages.system_instructions(kwargs.get("system")))
        call.content(sc.GEN_AI_INPUT_MESSAGES, messages.input_messages(kwargs.get("messages")))
    except Exception:
        log.debug("Could not record the messages of an anthropic request", exc_info=True)


_INPUT_USAGE = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


class MessageAccumulator:
    """Rebuilds a streamed `Message` from its server-sent events (`message_start`, `content_block_*`,
    `message_delta`), keeping content only when it is captured, and at most `settings.content_max_length`
    characters of each block, so that a long stream holds bounded memory."""

    def __init__(self, keep_content: bool) -> None:
        self.keep_content = keep_content
        self.limit = settings.content_max_length
        self.id: str | None = None
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.blocks: dict[int, dict[str, Any]] = {}

    def add(self, event: Any) -> None:
        kind = field(event, "type")
        if kind == "message_start":
            message = field(event, "message")
            self.id = text(field(message, "id")) or self.id
            self.model = text(field(message, "model")) or self.model
            # Its output count is a placeholder until `message_delta`: a stream cut before that records none.
            self._take_usage(field(message, "usage"), _INPUT_USAGE)
        elif kind == "message_delta":
            self.stop_reason = text(field(field(event, "delta"), "stop_reason")) or self.stop_reason
            # The usage of `message_delta` is cumulative: its counts replace those of `message_start`.
            self._take_usage(field(event, "usage"), (*_INPUT_USAGE, "output_tokens"))
        elif self.keep_content and kind == "content_block_start":
            block = field(event, "content_block")
            self.blocks[as_int(field(event, "index")) or 0] = {
                "type": field(block, "type"),
                "id": field(block, "id"),
                "name": field(block, "name"),
                "text": "",
            }
        elif self.keep_content and kind == "content_block_delta":
            self._take_delta(as_int(field(event, "index")) or 0, field(event, "delta"))

    def _take_usage(self, usage: Any, keys: tuple[str, ...]) -> None:
        for key in keys:
            value = as_int(field(usage, key))
            if value is not None:
                self.usage[key] = value

    def _take_delta(self, index: int, delta: Any) -> None:
        block = self.blocks.setdefault(index, {"type": "text", "id": None, "name": None, "text": ""})
        piece = field(delta, "text") or field(delta, "partial_json") or field(delta, "thinking")
        if isinstance(piece, str) and len(block["text"]) < self.limit:
            block["text"] += piece

    def content(self) -> list[dict[str, Any]]:
        """The streamed content blocks in the shape of a response's `content`."""
        blocks: list[dict[str, Any]] = []
        for _, block in sorted(self.blocks.items()):
            kind = block["type"]
            if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
                blocks.append({"type": kind, "id": block["id"], "name": block["name"], "input": _json(block["text"])})
            elif kind == "thinking":
                blocks.append({"type": "thinking", "thinking": block["text"]})
            elif kind == "text":
                blocks.append({"type": "text", "text": block["text"]})
            else:
                blocks.append({"type": kind})
        return blocks

    def apply(self, call: LLMCall) -> None:
        record_message(
            call,
            {
                "id": self.id,
                "model": self.model,
                "stop_reason": self.stop_reason,
                "usage": self.usage or None,
                "content": self.content() if self.keep_content else None,
            },
        )


def _json(value: str) -> Any:
    """A tool call's streamed arguments: the JSON value they spell, or the text when cut or malformed."""
    if not value:
        return {}
    try:
        return json.loads(value)
    except ValueError:
        return value


# --------------------------------------------------------------------------------------------------------------------
# The call's span around the SDK method


def start_call(tracer: Tracer, resource: Any, kwargs: dict[str, Any], *, stream: bool) -> LLMCall | None:
    """Starts the span of one call. Returns `None` when it cannot (the call then goes on untraced). Never raises."""
    try:
        kwargs = dict(sent_parameters(kwargs))
        attributes = request_attributes(resource, kwargs, stream=stream)
        call = LLMCall(tracer, sc.GEN_AI_OPERATION_NAME_VALUE_CHAT, attributes.get(sc.GEN_AI_REQUEST_MODEL), attributes)
        record_request_content(call, kwargs)
        return call
    except Exception:
        log.debug("Could not start the span of an anthropic call", exc_info=True)
        return None


@contextmanager
def current(call: LLMCall) -> Iterator[None]:
    """Makes the call's span the current one while the SDK sends the request, so spans of the HTTP client nest
    under it. Exceptions pass through untouched: the caller records them."""
    token = None
    try:
        token = context.attach(trace.set_span_in_context(call.span))
    except Exception:
        log.debug("Could not make a model call's span current", exc_info=True)
    try:
        yield
    finally:
        if token is not None:
            try:
                context.detach(token)
            except Exception:
                log.debug("Could not restore the context after a model call", exc_info=True)


def _recorder(call: LLMCall) -> StreamRecorder:
    return StreamRecorder(call, MessageAccumulator(call.capture_content))


def _is_stream(result: Any, *, is_async: bool) -> bool:
    try:
        import anthropic

        return isinstance(result, anthropic.AsyncStream if is_async else anthropic.Stream)
    except Exception:
        return False


def finish_call(call: LLMCall, result: Any, *, is_async: bool) -> Any:
    """Records what the SDK returned and gives it back, a stream behind a proxy that ends the span when the stream
    ends. Never raises: on a fault the caller gets `result` as it is."""
    try:
        if _is_stream(result, is_async=is_async):
            recorder = _recorder(call)
            return AsyncStreamProxy(result, recorder) if is_async else StreamProxy(result, recorder)
        record_message(call, _message_of(result))
        call.end()
    except Exception:
        log.debug("Could not record the result of an anthropic call", exc_info=True)
        call.end()
    return result


def _message_of(result: Any) -> Any:
    """The `Message` a call returned: the result itself, or the parsed body of a raw response that was read whole
    (`with_raw_response`). The body of a response still streaming is never read here: it is the caller's."""
    parse = getattr(result, "parse", None)
    http_response = getattr(result, "http_response", None)
    if http_response is None or not callable(parse):
        return result
    if not getattr(http_response, "is_closed", False) or "text/event-stream" in str(
        http_response.headers.get("content-type", "")
    ):
        return None
    try:
        return parse()  # the SDK caches the parsed body, so the caller's own `parse()` gets the same object
    except Exception:
        log.debug("Could not parse a raw anthropic response", exc_info=True)
        return None


def _fail(call: LLMCall, error: BaseException) -> None:
    call.end(error)


def create_wrapper(tracer: Tracer) -> Callable[..., Any]:
    """The wrapper of `Messages.create`."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = start_call(tracer, instance, kwargs, stream=kwargs.get("stream") is True)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            with current(call):
                result = wrapped(*args, **kwargs)
        except BaseException as error:
            _fail(call, error)
            raise
        return finish_call(call, result, is_async=False)

    return wrapper


def async_create_wrapper(tracer: Tracer) -> Callable[..., Any]:
    """The wrapper of `AsyncMessages.create`."""

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call = start_call(tracer, instance, kwargs, stream=kwargs.get("stream") is True)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            with current(call):
                result = await wrapped(*args, **kwargs)
        except BaseException as error:
            _fail(call, error)
            raise
        return finish_call(call, result, is_async=True)

    return wrapper


# --------------------------------------------------------------------------------------------------------------------
# `messages.stream()`: a manager that sends the request when its `with` block is entered


def _watch_message_stream(stream: Any, recorder: StreamRecorder, *, is_async: bool) -> None:
    """Puts the proxy between a `MessageStream` and the raw event stream it reads, so the span sees each event and
    its end. Every release keeps the raw stream in `_raw_stream` and reads it only once iteration starts. Without
    it the span still ends when the `with` block does, with what the request said."""
    try:
        raw = getattr(stream, "_raw_stream", None)
        if raw is not None:
            stream._raw_stream = AsyncStreamProxy(raw, recorder) if is_async else StreamProxy(raw, recorder)
    except Exception:
        log.debug("Could not watch the events of an anthropic message stream", exc_info=True)


def _finish(recorder: StreamRecorder | None, error: BaseException | None = None) -> None:
    """Ends a managed stream's span as its `with` block is left, failed by `error` (the exception leaving the
    block, or raised while the SDK closed the stream) when one is given. Never raises."""
    if recorder is not None:
        quietly(recorder.finish, error)


class MessageStreamManagerProxy(_ObjectProxy):
    """`messages.stream()`'s manager, unchanged for the caller. Its call's span starts when the `with` block is
    entered (when the SDK sends the request) and ends once, when the stream ends or the block is left."""

    def __init__(self, wrapped: Any, tracer: Tracer, resource: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_tracer = tracer
        self._self_resource = resource
        self._self_kwargs = kwargs
        self._self_recorder: StreamRecorder | None = None

    def __enter__(self) -> Any:
        call = start_call(self._self_tracer, self._self_resource, self._self_kwargs, stream=True)
        if call is None:
            return self.__wrapped__.__enter__()
        try:
            with current(call):
                stream = self.__wrapped__.__enter__()
        except BaseException as error:
            _fail(call, error)
            raise
        self._self_recorder = _recorder(call)
        _watch_message_stream(stream, self._self_recorder, is_async=False)
        return stream

    def __exit__(self, *exc_info: Any) -> Any:
        failed = block_error(exc_info)
        if failed is not None:  # before the SDK's close, which would end the span as a success
            _finish(self._self_recorder, failed)
        try:
            result = self.__wrapped__.__exit__(*exc_info)
        except BaseException as error:
            _finish(self._self_recorder, error)
            raise
        _finish(self._self_recorder)
        return result


class AsyncMessageStreamManagerProxy(_ObjectProxy):
    """`AsyncMessages.stream()`'s manager; its span lives as `MessageStreamManagerProxy`'s does."""

    def __init__(self, wrapped: Any, tracer: Tracer, resource: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(wrapped)
        self._self_tracer = tracer
        self._self_resource = resource
        self._self_kwargs = kwargs
        self._self_recorder: StreamRecorder | None = None

    async def __aenter__(self) -> Any:
        call = start_call(self._self_tracer, self._self_resource, self._self_kwargs, stream=True)
        if call is None:
            return await self.__wrapped__.__aenter__()
        try:
            with current(call):
                stream = await self.__wrapped__.__aenter__()
        except BaseException as error:
            _fail(call, error)
            raise
        self._self_recorder = _recorder(call)
        _watch_message_stream(stream, self._self_recorder, is_async=True)
        return stream

    async def __aexit__(self, *exc_info: Any) -> Any:
        failed = block_error(exc_info)
        if failed is not None:  # before the SDK's close, which would end the span as a success
            _finish(self._self_recorder, failed)
        try:
            result = await self.__wrapped__.__aexit__(*exc_info)
        except BaseException as error:
            _finish(self._self_recorder, error)
            raise
        _finish(self._self_recorder)
        return result


def stream_wrapper(tracer: Tracer, *, is_async: bool) -> Callable[..., Any]:
    """The wrapper of `Messages.stream` / `AsyncMessages.stream` (both plain methods returning a manager)."""
    proxy = AsyncMessageStreamManagerProxy if is_async else MessageStreamManagerProxy

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        manager = wrapped(*args, **kwargs)
        try:
            return proxy(manager, tracer, instance, kwargs)
        except Exception:
            log.debug("Could not watch an anthropic message stream", exc_info=True)
            return manager

    return wrapper


# --------------------------------------------------------------------------------------------------------------------
# Wrapping and unwrapping


def _wrapper_for(tracer: Tracer, class_name: str, method: str) -> Callable[..., Any]:
    is_async = class_name.startswith("Async")
    if method == "stream":
        return stream_wrapper(tracer, is_async=is_async)
    return async_create_wrapper(tracer) if is_async else create_wrapper(tracer)


def wrap_messages(tracer: Tracer) -> list[tuple[type, str]]:
    """Wraps every method in `WRAPPED_METHODS` that the installed SDK has; returns what it wrapped. Never raises."""
    import importlib

    done: list[tuple[type, str]] = []
    for module_name, class_name, method in WRAPPED_METHODS:
        try:
            owner = getattr(importlib.import_module(module_name), class_name)
            if not callable(owner.__dict__.get(method)):
                continue
            wrapt.wrap_function_wrapper(owner, method, _wrapper_for(tracer, class_name, method))
            done.append((owner, method))
        except Exception:
            log.debug("Could not wrap anthropic %s.%s", class_name, method, exc_info=True)
    return done


def unwrap_messages(wrapped: list[tuple[type, str]]) -> None:
    """Puts back the SDK's own methods that `wrap_messages` replaced. Never raises."""
    for owner, method in wrapped:
        try:
            current_attribute = owner.__dict__.get(method)
            original = getattr(current_attribute, "__wrapped__", None)
            if isinstance(current_attribute, wrapt.FunctionWrapper) and original is not None:
                setattr(owner, method, original)
        except Exception:
            log.debug("Could not unwrap anthropic %s.%s", owner.__name__, method, exc_info=True)
