"""`OpenAIInstrumentor`: one CLIENT span per model call made with the `openai` SDK, sync and async.

Wrapped (with `wrapt`, undone exactly by `uninstrument()`): `chat.completions.create` and `.parse`,
`responses.create` and `.parse`, `embeddings.create`, on the sync and async resources; and `responses.retrieve`, a
`fetch_response` operation step (a stored response fetched by id: no inference, no tokens, no cost). The SDK routes
everything else through those: `chat.completions.stream(...)` and `responses.stream(...)` call
`create(stream=True)`; `with_raw_response.X` and `with_streaming_response.X` call `X` with a header that makes
`_post` return the raw response. So each call makes exactly one span, and a guard makes sure an SDK method that
calls another wrapped one inside a traced call is not traced twice.

What a call returns decides when its span ends:
- a parsed result: at once, with the response's attributes;
- a stream (`stream=True`, the stream helpers): when the stream ends, fails, is closed or is garbage collected
  (`_genai.StreamProxy`); the helpers' own `close()` is wrapped too, since it closes the HTTP response directly;
- a raw response (`with_raw_response`, `with_streaming_response`): when its body has been read, `parse()`d or
  the response closed (`_openai_results`).

Never raises into the caller: every hook catches its own faults, and the SDK's exceptions reach the caller
unchanged. Messages are recorded only with content capture on; API keys and headers never are.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry import context, trace
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import Tracer

from .. import semconv as sc
from .._version import __version__
from . import _openai_attributes as attributes
from ._framework import FrameworkInstrumentor
from ._genai import (
    Accumulator,
    LLMCall,
    block_error,
    field,
    recorder_of,
    sent_parameters,
    server_attributes,
    text,
)
from ._openai_results import is_raw_response, proxy_stream, wrap_raw_response

log = logging.getLogger("agentotel")

__all__ = ["OpenAIInstrumentor"]


@dataclass(frozen=True)
class Operation:
    """How one kind of OpenAI call becomes span attributes."""

    name: str
    """`gen_ai.operation.name`."""
    request: Callable[[Mapping[str, Any]], dict[str, Any]]
    record: Callable[[LLMCall, Any], None]
    """Writes a parsed result (or its JSON body) onto the call."""
    content: Callable[[LLMCall, Mapping[str, Any]], None] | None = None
    """Writes the request's messages (content capture only)."""
    stream: Callable[[bool], Accumulator] | None = None
    """Makes the accumulator of a streamed call, given whether content is captured."""
    kind: str = sc.AGENTOTEL_STEP_KIND_VALUE_LLM
    """`agentotel.step.kind`: a model call, or an operation (a fetch makes no inference, costs nothing)."""
    positional: tuple[str, ...] = ()
    """The names of the SDK method's positional parameters the request attributes read (`response_id`)."""


CHAT = Operation(
    sc.GEN_AI_OPERATION_NAME_VALUE_CHAT,
    attributes.chat_request_attributes,
    attributes.record_chat_completion,
    attributes.chat_request_content,
    attributes.ChatStream,
)
RESPONSES = Operation(
    sc.GEN_AI_OPERATION_NAME_VALUE_CHAT,  # the Responses API is a chat in the conventions' words
    attributes.responses_request_attributes,
    attributes.record_response,
    attributes.responses_request_content,
    attributes.ResponsesStream,
)
EMBEDDINGS = Operation(
    sc.GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS,
    attributes.embeddings_request_attributes,
    attributes.record_embeddings,
)
FETCH_RESPONSE = Operation(
    sc.GEN_AI_OPERATION_NAME_VALUE_FETCH_RESPONSE,
    attributes.fetch_request_attributes,
    attributes.record_fetched_response,
    stream=attributes.FetchedResponseStream,
    kind=sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION,
    positional=("response_id",),
)

_CHAT_MODULE = "openai.resources.chat.completions.completions"
_RESPONSES_MODULE = "openai.resources.responses.responses"
_EMBEDDINGS_MODULE = "openai.resources.embeddings"

# (module, class, method, operation, async)
METHODS: tuple[tuple[str, str, str, Operation, bool], ...] = (
    (_CHAT_MODULE, "Completions", "create", CHAT, False),
    (_CHAT_MODULE, "Completions", "parse", CHAT, False),
    (_CHAT_MODULE, "AsyncCompletions", "create", CHAT, True),
    (_CHAT_MODULE, "AsyncCompletions", "parse", CHAT, True),
    (_RESPONSES_MODULE, "Responses", "create", RESPONSES, False),
    (_RESPONSES_MODULE, "Responses", "parse", RESPONSES, False),
    (_RESPONSES_MODULE, "AsyncResponses", "create", RESPONSES, True),
    (_RESPONSES_MODULE, "AsyncResponses", "parse", RESPONSES, True),
    (_RESPONSES_MODULE, "Responses", "retrieve", FETCH_RESPONSE, False),
    (_RESPONSES_MODULE, "AsyncResponses", "retrieve", FETCH_RESPONSE, True),
    (_EMBEDDINGS_MODULE, "Embeddings", "create", EMBEDDINGS, False),
    (_EMBEDDINGS_MODULE, "AsyncEmbeddings", "create", EMBEDDINGS, True),
)

_CHAT_HELPERS = "openai.lib.streaming.chat._completions"
_RESPONSES_HELPERS = "openai.lib.streaming.responses._responses"

# The stream helpers' `close()` closes the HTTP response itself, past our stream proxy, and their `__exit__` calls
# it without the exception leaving the block: (module, class, async).
HELPER_STREAMS: tuple[tuple[str, str, bool], ...] = (
    (_CHAT_HELPERS, "ChatCompletionStream", False),
    (_CHAT_HELPERS, "AsyncChatCompletionStream", True),
    (_RESPONSES_HELPERS, "ResponseStream", False),
    (_RESPONSES_HELPERS, "AsyncResponseStream", True),
)
# What `chat.completions.stream(...)` / `responses.stream(...)` return: a manager whose `with` block yields the helper
# stream, and whose `__exit__` closes it without passing on the exception leaving the block: (module, class, async).
STREAM_MANAGERS: tuple[tuple[str, str, bool], ...] = (
    (_CHAT_HELPERS, "ChatCompletionStreamManager", False),
    (_CHAT_HELPERS, "AsyncChatCompletionStreamManager", True),
    (_RESPONSES_HELPERS, "ResponseStreamManager", False),
    (_RESPONSES_HELPERS, "AsyncResponseStreamManager", True),
)

_HOST_PROVIDERS = {
    "api.openai.com": sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI,
    "api.groq.com": sc.GEN_AI_PROVIDER_NAME_VALUE_GROQ,
    "api.deepseek.com": sc.GEN_AI_PROVIDER_NAME_VALUE_DEEPSEEK,
    "api.x.ai": sc.GEN_AI_PROVIDER_NAME_VALUE_X_AI,
    "api.mistral.ai": sc.GEN_AI_PROVIDER_NAME_VALUE_MISTRAL_AI,
}

_IN_CALL: contextvars.ContextVar[bool] = contextvars.ContextVar("agentotel_openai_in_call", default=False)
"""True while a traced call runs: an SDK method it calls that is wrapped too is not traced a second time."""


def provider_name(client: Any) -> str:
    """`gen_ai.provider.name` for an OpenAI client: Azure by its class, OpenAI-compatible services by their host,
    else openai. Never raises."""
    try:
        if "Azure" in type(client).__name__:
            return sc.GEN_AI_PROVIDER_NAME_VALUE_AZURE_AI_OPENAI
        host = getattr(field(client, "base_url"), "host", None)
        return _HOST_PROVIDERS.get(str(host), sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI)
    except Exception:
        return sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI


_CLIENT_ATTRIBUTES: dict[tuple[type, int], tuple[Any, dict[str, Any]]] = {}
"""(client class, id of its base URL) -> (that URL, provider and server attributes): a client's base URL is parsed
once, not on every call. The URL is kept beside the id, so a reused id of a collected URL is never mistaken."""
_CLIENT_ATTRIBUTES_LIMIT = 256


def client_attributes(client: Any) -> dict[str, Any]:
    """`gen_ai.provider.name`, `server.address` and `server.port` of a client, read once per base URL. Never
    raises."""
    base_url = getattr(client, "base_url", None)
    key = (type(client), id(base_url))
    cached = _CLIENT_ATTRIBUTES.get(key)
    if cached is not None and cached[0] is base_url:
        return cached[1]
    found = {sc.GEN_AI_PROVIDER_NAME: provider_name(client), **server_attributes(base_url)}
    if len(_CLIENT_ATTRIBUTES) >= _CLIENT_ATTRIBUTES_LIMIT:  # bounded: apps that make a client per call
        _CLIENT_ATTRIBUTES.clear()
    _CLIENT_ATTRIBUTES[key] = (base_url, found)
    return found


def start_call(tracer: Tracer, operation: Operation, resource: Any, kwargs: Mapping[str, Any]) -> LLMCall | None:
    """Starts the call's span with the request's attributes (and messages, with content capture), or returns
    `None` when it cannot. Never raises."""
    try:
        kwargs = sent_parameters(kwargs)
        model = text(kwargs.get("model"))
        start_attributes: dict[str, Any] = {
            sc.GEN_AI_OPERATION_NAME: operation.name,
            **client_attributes(getattr(resource, "_client", None)),
            sc.AGENTOTEL_STEP_KIND: operation.kind,
            sc.GEN_AI_REQUEST_MODEL: model,
            **operation.request(kwargs),
        }
        call = LLMCall(tracer, operation.name, model, start_attributes)
    except Exception:
        log.debug("Could not start the span of an OpenAI call", exc_info=True)
        return None
    if call.capture_content and operation.content is not None:
        try:
            operation.content(call, kwargs)
        except Exception:
            log.debug("Could not record the messages of an OpenAI call", exc_info=True)
    return call


def _enter(call: LLMCall) -> tuple[object, contextvars.Token[bool]] | None:
    """Makes the call's span current while the SDK works (its HTTP spans, if traced, nest under it)."""
    try:
        return context.attach(trace.set_span_in_context(call.span)), _IN_CALL.set(True)
    except Exception:
        log.debug("Could not make an OpenAI call's span current", exc_info=True)
        return None


def _leave(tokens: tuple[object, contextvars.Token[bool]] | None) -> None:
    if tokens is None:
        return
    try:
        _IN_CALL.reset(tokens[1])
        context.detach(tokens[0])  # type: ignore[arg-type]
    except Exception:
        log.debug("Could not restore the context after an OpenAI call", exc_info=True)


def fail_call(operation: Operation, call: LLMCall, error: BaseException) -> None:
    """Ends the span with the SDK's error. Errors that carry the model's answer (`LengthFinishReasonError` and
    its kin from the parse helpers) still give their usage and cost. Never raises."""
    try:
        answer = getattr(error, "completion", None)
        if answer is not None:
            operation.record(call, answer)
    except Exception:
        log.debug("Could not record the answer an OpenAI error carried", exc_info=True)
    call.end(error)


def finish_call(operation: Operation, call: LLMCall, result: Any) -> Any:
    """What the caller gets back: the SDK's result, or a proxy of it that ends the span later (streams, raw
    responses). Ends the span now for anything else. Never raises: on its own fault it returns the result."""
    try:
        if is_raw_response(result):
            return wrap_raw_response(result, operation.record, call, operation.stream)
        proxied = proxy_stream(result, call, operation.stream)
        if proxied is not None:
            return proxied
        operation.record(call, result)
    except Exception:
        log.debug("Could not record the result of an OpenAI call", exc_info=True)
    call.end()
    return result


Tokens = tuple[object, contextvars.Token[bool]] | None


def _begin(
    tracer: Tracer, operation: Operation, resource: Any, kwargs: Mapping[str, Any]
) -> tuple[LLMCall | None, Tokens]:
    """The call's span, made current, or `(None, None)` when the call runs untraced (inside another traced call,
    or when tracing it fails). Never raises: the wrapper runs the SDK's method whatever happens here."""
    call: LLMCall | None = None
    try:
        if _IN_CALL.get():
            return None, None
        call = start_call(tracer, operation, resource, kwargs)
        if call is None:
            return None, None
        return call, _enter(call)
    except Exception:
        log.debug("Could not start tracing an OpenAI call; it runs untraced", exc_info=True)
        if call is not None:
            call.end()
        return None, None


def _leave_quietly(tokens: Tokens) -> None:
    """`_leave`, and at the least the in-call mark put back should it fail (else every later call in this context
    would go untraced). Never raises."""
    try:
        _leave(tokens)
    except Exception:
        log.debug("Could not restore the context after an OpenAI call", exc_info=True)
        try:
            if tokens is not None:
                _IN_CALL.reset(tokens[1])
        except Exception:
            pass


def _failed(operation: Operation, call: LLMCall, error: BaseException, tokens: Tokens) -> None:
    """Ends the span of a call the SDK raised from. Never raises: the caller re-raises the SDK's error as it is."""
    try:
        fail_call(operation, call, error)
    except Exception:
        log.debug("Could not record the failure of an OpenAI call", exc_info=True)
    _leave_quietly(tokens)


def _returned(operation: Operation, call: LLMCall, result: Any, tokens: Tokens) -> Any:
    """What the caller gets: `finish_call`'s answer, or the SDK's result as it is should that fail. Never raises."""
    _leave_quietly(tokens)
    try:
        return finish_call(operation, call, result)
    except Exception:
        log.debug("Could not record the result of an OpenAI call", exc_info=True)
        return result


def _request(operation: Operation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    """The call's parameters by name: its keyword arguments, and the positional ones the operation names."""
    if not operation.positional or not args:
        return kwargs
    return {**dict(zip(operation.positional, args, strict=False)), **kwargs}


def sync_wrapper(tracer: Tracer, operation: Operation) -> Callable[..., Any]:
    def traced(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call, tokens = _begin(tracer, operation, instance, _request(operation, args, kwargs))
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as error:
            _failed(operation, call, error, tokens)
            raise
        return _returned(operation, call, result, tokens)

    return traced


def async_wrapper(tracer: Tracer, operation: Operation) -> Callable[..., Any]:
    async def traced(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        call, tokens = _begin(tracer, operation, instance, _request(operation, args, kwargs))
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as error:
            _failed(operation, call, error, tokens)
            raise
        return _returned(operation, call, result, tokens)

    return traced


def _end_helper_stream(helper: Any, error: BaseException | None = None) -> None:
    """Ends the span of the stream a helper (`ChatCompletionStream`, `ResponseStream`) reads, failed by `error` when
    one is given. Never raises."""
    try:
        recorder = recorder_of(getattr(helper, "_raw_stream", None))
        if recorder is not None:
            recorder.finish(error)
    except Exception:
        log.debug("Could not end the span of a closed stream helper", exc_info=True)


def _exit_error(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> BaseException | None:
    """The exception leaving a `with` block, from `__exit__(exc_type, exc, tb)`'s arguments. Never raises."""
    return block_error(args) or block_error((None, kwargs.get("exc")))


def _helper_close(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as error:
        _end_helper_stream(instance, error)
        raise
    _end_helper_stream(instance)
    return result


async def _async_helper_close(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as error:
        _end_helper_stream(instance, error)
        raise
    _end_helper_stream(instance)
    return result


def _helper_exit(stream_of: Callable[[Any], Any]) -> Callable[..., Any]:
    """The wrapper of a helper's (or its manager's) `__exit__`: an exception leaving the block fails the call
    before the SDK closes the stream (which would end the span as a success). `stream_of` finds the helper."""

    def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        error = _exit_error(args, kwargs)
        if error is not None:
            _end_helper_stream(stream_of(instance), error)
        return wrapped(*args, **kwargs)

    return wrapper


def _async_helper_exit(stream_of: Callable[[Any], Any]) -> Callable[..., Any]:
    """`_helper_exit` for the async helpers' `__aexit__`."""

    async def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        error = _exit_error(args, kwargs)
        if error is not None:
            _end_helper_stream(stream_of(instance), error)
        return await wrapped(*args, **kwargs)

    return wrapper


def _itself(helper: Any) -> Any:
    return helper


def _managed_stream(class_name: str) -> Callable[[Any], Any]:
    """Finds the helper stream a manager of `class_name` opened (its private `__stream`; `None` before `__enter__`
    or in an SDK that keeps it elsewhere)."""
    attribute = f"_{class_name}__stream"
    return lambda manager: getattr(manager, attribute, None)


def _owner(module_name: str, class_name: str, method: str) -> Any:
    """The class that defines `method`, or `None` when this SDK version has no such class or method."""
    try:
        owner = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return None
    return owner if owner is not None and method in vars(owner) else None


def _wrap_all(module_name: str, class_name: str, wrappers: Mapping[str, Callable[..., Any]]) -> list[tuple[Any, str]]:
    """Wraps each method of the class that this SDK version defines; returns what it wrapped."""
    done = []
    for method, wrapper in wrappers.items():
        owner = _owner(module_name, class_name, method)
        if owner is not None:
            wrapt.wrap_function_wrapper(owner, method, wrapper)
            done.append((owner, method))
    return done


class OpenAIInstrumentor(FrameworkInstrumentor):
    """Traces the `openai` SDK's model calls. `instrument()` wraps the SDK's methods when the app imports `openai`
    (at once when it already has: `init()` never imports the SDK itself); `uninstrument()` puts the original
    functions back."""

    module_name = "openai"
    requirements = ("openai >= 1.50",)

    def apply(self, module: ModuleType) -> None:
        tracer = trace.get_tracer(__name__, __version__, tracer_provider=self._options.get("tracer_provider"))
        wrapped: list[tuple[Any, str]] = []
        for module_name, class_name, method, operation, is_async in METHODS:
            owner = _owner(module_name, class_name, method)
            if owner is None:
                continue
            make = async_wrapper if is_async else sync_wrapper
            wrapt.wrap_function_wrapper(owner, method, make(tracer, operation))
            wrapped.append((owner, method))
        for module_name, class_name, is_async in HELPER_STREAMS:
            exit_method = "__aexit__" if is_async else "__exit__"
            exit_wrapper = (_async_helper_exit if is_async else _helper_exit)(_itself)
            close_wrapper = _async_helper_close if is_async else _helper_close
            wrapped += _wrap_all(module_name, class_name, {"close": close_wrapper, exit_method: exit_wrapper})
        for module_name, class_name, is_async in STREAM_MANAGERS:
            exit_method = "__aexit__" if is_async else "__exit__"
            exit_wrapper = (_async_helper_exit if is_async else _helper_exit)(_managed_stream(class_name))
            wrapped += _wrap_all(module_name, class_name, {exit_method: exit_wrapper})
        self._agentotel_wrapped = wrapped

    def remove(self) -> None:
        for owner, method in getattr(self, "_agentotel_wrapped", ()):
            unwrap(owner, method)
        self._agentotel_wrapped = []
