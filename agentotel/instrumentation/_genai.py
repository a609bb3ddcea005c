"""What every LLM client instrumentor needs, whatever the provider: the model call's span (`LLMCall`), the
GenAI JSON message schema (role + parts), request-parameter attributes, and the lifetime of a streamed call's span
(`StreamRecorder` with the `StreamProxy` / `AsyncStreamProxy` that watch the SDK's stream object).

Nothing here raises into user code: every public function and method either states that it never raises or is
only called from code that catches its faults.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import wrapt
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from .. import _clock as clock
from .. import semconv as sc
from .._config import settings
from .._content import parse_json
from .._sdk import set_plain_attributes, span_attributes
from ..pricing import cost_attributes, cost_of_attributes
from ..steps import record_error, set_content
from ._content_events import emit_inference_event

try:  # both SDKs build their responses on pydantic; without it no SDK model can reach `reader`
    from pydantic import BaseModel
except ImportError:  # pragma: no cover - pydantic comes with every SDK this package instruments

    class BaseModel:  # type: ignore[no-redef]
        """Stands in for pydantic's: no object is an instance of it."""


log = logging.getLogger("agentotel")

if TYPE_CHECKING:
    ObjectProxy = wrapt.ObjectProxy[Any]
else:  # wrapt before 2.0 cannot be subscripted at run time
    ObjectProxy = wrapt.ObjectProxy

# --------------------------------------------------------------------------------------------------------------------
# Reading SDK values


def field(obj: Any, name: str, default: Any = None) -> Any:
    """`obj[name]` for a mapping, else `obj.name`; `default` when absent or None. Never raises.

    SDK responses are pydantic models, but raw-response bodies and user-built messages are plain dicts: the
    extractors read both through this one accessor."""
    try:
        # `type(obj) is dict` first: `isinstance(obj, Mapping)` is an ABC check, slow for the SDK's models (no
        # Mapping), and this runs for every field of every response and chunk.
        if type(obj) is dict:
            value = obj.get(name)
        else:
            value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    except Exception:
        return default
    return default if value is None else value


MODEL_TYPES: dict[type, bool] = {}
"""type -> whether its instances are pydantic models read through `__dict__`: pydantic's metaclass derives from
`ABCMeta`, whose `isinstance` costs more than this lookup, and `reader` runs several times per stream chunk."""
MODEL_TYPES_LIMIT = 4096


def reader(obj: Any) -> Callable[[str], Any]:
    """A fast `name -> value or None` reader of one SDK object, for the paths that run on every call or chunk.

    A plain dict answers through its own `get`; a pydantic model (the SDK's responses and chunks) through its
    `__dict__`, which holds its declared fields: reading a field the server left out through the model raises and
    catches an `AttributeError` inside pydantic, a dict lookup costs nanoseconds. Anything else goes through
    `field`. Never raises; the reader it returns never raises either."""
    kind = type(obj)
    if kind is dict:
        return obj.get  # type: ignore[no-any-return]
    is_model = MODEL_TYPES.get(kind)
    if is_model is None:
        is_model = isinstance(obj, BaseModel) and type(getattr(obj, "__dict__", None)) is dict
        if len(MODEL_TYPES) < MODEL_TYPES_LIMIT:
            MODEL_TYPES[kind] = is_model
    if is_model:
        return obj.__dict__.get  # type: ignore[no-any-return]
    return lambda name: field(obj, name)


def items(value: Any) -> list[Any]:
    """`value` as a list when it is a sequence (list, tuple, ...), else `[]`. Never raises.

    An iterator or generator gives `[]`: the SDK accepts them for `messages` and `tools`, and reading one here
    would consume what the SDK is about to send."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if value is None or isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        return []
    try:
        return list(value)
    except Exception:
        return []


def number(value: Any) -> int | float | None:
    """`value` when it is a real number (not a bool, not the SDK's `omit`), else `None`."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return None


def as_float(value: Any) -> float | None:
    """`value` as a float when it is a real number, else `None` (the exact types first: this runs per call)."""
    kind = type(value)
    if kind is float:
        return value  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    found = number(value)
    return None if found is None else float(found)


def as_int(value: Any) -> int | None:
    """`value` as an int when it is a real number, else `None` (the exact types first: this runs per call)."""
    if type(value) is int:
        return value
    found = number(value)
    return None if found is None else int(found)


def text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def stop_sequences(value: Any) -> list[str] | None:
    """The `stop` parameter (a string or a list of them) as a list, or `None`."""
    if isinstance(value, str):
        return [value]
    found = [s for s in items(value) if isinstance(s, str)]
    return found or None


def sent_parameters(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The request's parameters as the SDK sends them: the keys of `extra_body` over the named parameters (the
    OpenAI and Anthropic SDKs merge it into the JSON body last, so its values win, and its `omit` removes a key),
    except `stream`, which only the named parameter decides for the SDK. `kwargs` itself when there is no
    `extra_body` (most calls). Never raises."""
    extra = kwargs.get("extra_body")
    if not extra or not isinstance(extra, Mapping):
        return kwargs
    try:
        return {**kwargs, **{key: value for key, value in extra.items() if key != "stream"}}
    except Exception:  # a mapping of the app's own that cannot be read: the named parameters still are
        return kwargs


def server_attributes(url: Any) -> dict[str, Any]:
    """`server.address` and `server.port` of a client's base URL (an httpx URL or text). Never raises."""
    try:
        host = getattr(url, "host", None)
        port = getattr(url, "port", None)
        scheme = getattr(url, "scheme", None)
        if host is None and isinstance(url, str):
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            host, port, scheme = parts.hostname, parts.port, parts.scheme
        if not host:
            return {}
        attributes: dict[str, Any] = {sc.SERVER_ADDRESS: str(host)}
        if port is None:
            port = {"https": 443, "http": 80}.get(str(scheme or ""))
        if port is not None:
            attributes[sc.SERVER_PORT] = int(port)
        return attributes
    except Exception:
        log.debug("Could not read the server address of a client", exc_info=True)
        return {}


# --------------------------------------------------------------------------------------------------------------------
# The GenAI JSON message schema: {"role", "parts": [...], "name"?, "finish_reason"?}

_OUTPUT_FINISH_REASONS = {"tool_calls": "tool_call", "function_call": "tool_call", "tool_use": "tool_call"}


def text_part(content: Any) -> dict[str, Any]:
    return {"type": "text", "content": content}


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A tool call the model asked for; `arguments` given as JSON text (OpenAI) are parsed back into a value."""
    part: dict[str, Any] = {"type": "tool_call", "id": call_id, "name": name}
    if arguments is not None and arguments != "":
        part["arguments"] = parse_json(arguments)
    return part


def tool_response_part(call_id: Any, response: Any) -> dict[str, Any]:
    return {"type": "tool_call_response", "id": call_id, "response": response}


def reasoning_part(content: Any) -> dict[str, Any]:
    return {"type": "reasoning", "content": content}


def message(role: Any, parts: list[dict[str, Any]], *, name: Any = None, finish_reason: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = {"role": role, "parts": parts}
    if isinstance(name, str) and name:
        result["name"] = name
    if finish_reason is not None:
        result["finish_reason"] = output_finish_reason(finish_reason)
    return result


UNFINISHED = "error"
"""The output message's `finish_reason` when the model gave none: the stream was abandoned, cut or failed before
its last chunk. The output-message schema requires one; "error" is what the official instrumentations write."""


def output_message(parts: list[dict[str, Any]], finish_reason: Any) -> dict[str, Any]:
    """The model's answer as an assistant output message, always with a `finish_reason` (`UNFINISHED` when the
    model gave none)."""
    return message("assistant", parts, finish_reason=finish_reason or UNFINISHED)


def output_finish_reason(reason: Any) -> str:
    """A provider's finish reason in the output-message schema's words (stop, length, content_filter, tool_call,
    error); other values pass through."""
    name = str(reason)
    return _OUTPUT_FINISH_REASONS.get(name, name)


# --------------------------------------------------------------------------------------------------------------------
# The model call's span


_KEEP = (
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.AGENTOTEL_USAGE_COST_SOURCE,
    sc.AGENTOTEL_USAGE_COST_CURRENCY,
    sc.AGENTOTEL_USAGE_COST_AMOUNT,
    sc.GEN_AI_REQUEST_MODEL,
    sc.GEN_AI_PROVIDER_NAME,
    sc.GEN_AI_OPERATION_NAME,
    sc.AGENTOTEL_STEP_KIND,
)
"""Attributes a model call's span keeps under a tight attribute count limit, least needed first."""


class LLMCall:
    """One model call's CLIENT span, named `{operation} {model}`, child of the current span.

    Keeps the attributes it set beside the span, so its cost is computed from them (not from the span's private
    state) and set before the span ends. Attributes set after the start wait in `pending` and reach the span in
    one `set_attributes` call when it ends: the SDK takes its lock and checks its limits once per call rather than
    once per attribute (a response sets a dozen). Whether content is captured is decided once, when the call
    starts. The span ends exactly once, whichever of `end()`'s callers (return, error, stream end, close, garbage
    collection) comes first. Its methods never raise.
    """

    __slots__ = (
        "_ended",
        "_lock",
        "attributes",
        "capture_content",
        "content_on_span",
        "event_content",
        "first_chunk_ns",
        "pending",
        "session_id",
        "span",
        "start_ns",
    )

    def __init__(self, tracer: Tracer, operation: str, model: str | None, attributes: Mapping[str, Any]) -> None:
        self.start_ns = clock.now_ns()
        self.content_on_span = settings.capture_content
        self.event_content: dict[str, Any] | None = {} if settings.content_events else None
        self.capture_content = self.content_on_span or self.event_content is not None
        """Whether the call's messages are recorded at all: on its span, in its content event, or both."""
        self.attributes: dict[str, Any] = {k: v for k, v in attributes.items() if v is not None}
        self.pending: dict[str, Any] = {}
        self.first_chunk_ns: int | None = None
        self._ended = False
        self._lock = threading.Lock()
        name = f"{operation} {model}" if model else operation
        self.span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=self.attributes, start_time=self.start_ns)
        self.session_id: Any = span_attributes(self.span).get(sc.SESSION_ID)  # type: ignore[arg-type]

    @property
    def ended(self) -> bool:
        return self._ended

    def set(self, key: str, value: Any) -> None:
        """Sets one attribute (on the span when it ends); `None` and empty lists are skipped. Never raises."""
        if value is None or self._ended or (type(value) is list and not value):
            return
        self.attributes[key] = self.pending[key] = value

    def set_all(self, attributes: Mapping[str, Any]) -> None:
        """`set` for each item. Never raises."""
        for key, value in attributes.items():
            if value is None or self._ended or (type(value) is list and not value):
                continue
            self.attributes[key] = self.pending[key] = value

    def content(self, key: str, value: Any) -> None:
        """Records a content attribute (bounded JSON) when content capture was on at the call's start: on the span,
        and/or kept for the call's content event (`EVENT_ONLY`, `SPAN_AND_EVENT`)."""
        if not self.capture_content or value is None or self._ended:
            return
        if self.content_on_span:
            set_content(self.span, key, value)
        if self.event_content is not None:
            self.event_content[key] = value

    def set_error(self, error_type: str, message: str | None = None) -> None:
        """Marks the call failed when the provider reports a failure inside a successful HTTP response (a failed
        response object, an error event in a stream). Never raises."""
        if self._ended:
            return
        try:
            self.set(sc.ERROR_TYPE, error_type)
            self.span.set_status(Status(StatusCode.ERROR, message or error_type))
        except Exception:
            log.debug("Could not mark a model call failed", exc_info=True)

    def _keep_identity(self) -> None:
        """When the span's attribute count limit (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`) made the SDK drop attributes
        (it drops the oldest first: the ones set at the start), sets again, last, those that say which call this
        is, what it used and cost, and which session it belongs to, so that the SDK drops others instead."""
        if not getattr(self.span, "dropped_attributes", 0):
            return
        kept = {key: self.attributes[key] for key in _KEEP if key in self.attributes}
        if self.session_id is not None:
            kept[sc.SESSION_ID] = self.session_id
        self.span.set_attributes(kept)

    def chunk_arrived(self) -> None:
        """Notes a stream chunk; the first one sets `gen_ai.response.time_to_first_chunk`. Never raises."""
        if self.first_chunk_ns is not None:
            return
        try:
            self.first_chunk_ns = clock.now_ns()
            self.set(sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, max(0, self.first_chunk_ns - self.start_ns) / 1e9)
        except Exception:
            log.debug("Could not record the time to first chunk", exc_info=True)

    def end(self, error: BaseException | None = None) -> None:
        """Records `error` (an `Exception`; a cancellation or exit just ends the span), the cost, and ends the
        span. Only the first call does anything. Never raises."""
        with self._lock:
            if self._ended:
                return
            try:
                if isinstance(error, Exception):
                    record_error(self.span, error)
                cost = cost_of_attributes(self.attributes)
                if cost is not None:
                    self.set_all(cost_attributes(cost))
            except Exception:
                log.debug("Could not price a model call", exc_info=True)
            try:
                set_plain_attributes(self.span, self.pending)
                self._keep_identity()
            except Exception:
                log.debug("Could not finish a model call's span", exc_info=True)
            if self.event_content:
                emit_inference_event(self.span, self.attributes, self.event_content)
            self._ended = True
            try:
                self.span.end(end_time=clock.now_ns())
            except Exception:
                log.debug("Could not end a model call's span", exc_info=True)


# --------------------------------------------------------------------------------------------------------------------
# Streams


def quietly(action: Callable[..., object], *args: Any) -> None:
    """Calls one of a recorder's hooks from a proxy the user's code holds. Never raises: a fault in recording
    must never reach the code that reads the stream or the response."""
    try:
        action(*args)
    except Exception:
        log.debug("Could not record a step of a model call", exc_info=True)


class Accumulator(Protocol):
    """Gathers what a stream's chunks say, then writes it onto the call. Its methods may raise: the recorder
    catches."""

    def add(self, chunk: Any) -> None: ...

    def apply(self, call: LLMCall) -> None: ...


class StreamRecorder:
    """A streamed call: feeds chunks to an `Accumulator` and ends the call's span once. Never raises.

    `chunk` is what a stream proxy calls for every chunk: the first chunk's handler notes the time to first chunk
    and then hands `chunk` to the accumulator's `add` itself, and `finish` swaps in one that ignores chunks, so
    the per-chunk path holds no checks of its own."""

    __slots__ = ("_done", "_lock", "accumulator", "call", "chunk")

    def __init__(self, call: LLMCall, accumulator: Accumulator) -> None:
        self.call = call
        self.accumulator = accumulator
        self._done = False
        self._lock = threading.Lock()
        self.chunk: Callable[[Any], None] = self._first_chunk

    @property
    def done(self) -> bool:
        return self._done

    def _first_chunk(self, item: Any) -> None:
        if self._done:
            return
        self.chunk = self.accumulator.add
        self.call.chunk_arrived()
        self.accumulator.add(item)

    def finish(self, error: BaseException | None = None) -> None:
        """Writes what the stream said onto the span and ends it; only the first call counts."""
        with self._lock:
            if self._done:
                return
            self._done = True
            self.chunk = _ignore
        try:
            self.accumulator.apply(self.call)
        except Exception:
            log.debug("Could not record what a stream said", exc_info=True)
        self.call.end(error)

    def abandon(self) -> None:
        """Called when the stream object is garbage collected unfinished. Never raises."""
        try:
            if not self._done and not sys.is_finalizing():  # at interpreter exit the SDK has shut down
                self.finish()
        except Exception:  # a finalizer must never raise: it would print to stderr at collection time
            pass


def _ignore(item: Any) -> None:
    """A finished recorder's chunk handler."""


def block_error(exc_info: tuple[Any, ...]) -> BaseException | None:
    """The exception that is leaving a `with` / `async with` block, from its `__exit__` arguments, or `None`.

    Raised by the code that read the stream, it still ends the stream's call unfinished: the call is marked
    failed by it, as the official instrumentations do (`LLMCall.end` records an `Exception`, and only ends the span
    for a cancellation or an exit). Never raises."""
    error = exc_info[1] if len(exc_info) > 1 else None
    return error if isinstance(error, BaseException) else None


def _abandon(proxy: Any) -> None:
    """A stream proxy's `__del__`: ends its span when the app dropped the stream unfinished. Never raises.

    `__del__` rather than `weakref.finalize`: it costs nothing until the proxy dies, where a finalizer costs a
    registration per stream."""
    try:
        recorder = proxy._self_recorder
    except Exception:  # __init__ did not get that far
        return
    if isinstance(recorder, StreamRecorder):
        recorder.abandon()


class StreamProxy(ObjectProxy):
    """The SDK's sync stream, unchanged for the caller, whose span ends exactly once: when the stream is
    exhausted, raises, is closed (`close()` or leaving its `with` block) or is garbage collected. An exception
    that leaves the `with` block, or that `close()` raises, marks the call failed."""

    def __init__(self, wrapped: Any, recorder: StreamRecorder) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_iterator: Any = None

    def __iter__(self) -> StreamProxy:
        return self

    def __next__(self) -> Any:
        try:
            if self._self_iterator is None:
                self._self_iterator = iter(self.__wrapped__)
            item = next(self._self_iterator)
        except StopIteration:
            quietly(self._self_recorder.finish)
            raise
        except BaseException as error:
            quietly(self._self_recorder.finish, error)
            raise
        try:  # inline rather than through `quietly`: this runs for every chunk
            self._self_recorder.chunk(item)
        except Exception:
            log.debug("Could not record a stream chunk", exc_info=True)
        return item

    def __del__(self) -> None:
        _abandon(self)

    def __enter__(self) -> StreamProxy:
        self.__wrapped__.__enter__()
        return self  # the SDK's own __enter__ returns the bare stream, which would bypass this proxy

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            result = self.__wrapped__.__exit__(*exc_info)
        except BaseException as error:
            quietly(self._self_recorder.finish, error)
            raise
        quietly(self._self_recorder.finish, block_error(exc_info))
        return result

    def close(self) -> Any:
        try:
            result = self.__wrapped__.close()
        except BaseException as error:
            quietly(self._self_recorder.finish, error)
            raise
        quietly(self._self_recorder.finish)
        return result


class AsyncStreamProxy(ObjectProxy):
    """The SDK's async stream, unchanged for the caller; its span ends as `StreamProxy`'s does."""

    def __init__(self, wrapped: Any, recorder: StreamRecorder) -> None:
        super().__init__(wrapped)
        self._self_recorder = recorder
        self._self_iterator: Any = None

    def __aiter__(self) -> AsyncStreamProxy:
        return self

    async def __anext__(self) -> Any:
        try:
            if self._self_iterator is None:
                self._self_iterator = self.__wrapped__.__aiter__()
            item = await self._self_iterator.__anext__()
        except StopAsyncIteration:
            quietly(self._self_recorder.finish)
            raise
        except BaseException as error:
            quietly(self._self_recorder.finish, error)
            raise
        try:  # inline rather than through `quietly`: this runs for every chunk
            self._self_recorder.chunk(item)
        except Exception:
            log.debug("Could not record a stream chunk", exc_info=True)
        return item

    def __del__(self) -> None:
        _abandon(self)

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            result = await self.__wrapped__.__aexit__(*exc_info)
        except BaseException as error:
            quietly(self._self_recorder.finish, error)
            raise
        quietly(self._self_recorder.finish, block_error(exc_info))
        return result

    async def close(self) -> Any:
        try:
            result = await self.__wrapped__.close()
        except BaseException as error:
            quietly(self._self_recorder.finish, error)
            raise
        quietly(self._self_recorder.finish)
        return result


def recorder_of(stream: Any) -> StreamRecorder | None:
    """The recorder behind a stream proxy, or `None` for any other object. Never raises."""
    try:
        if isinstance(stream, (StreamProxy, AsyncStreamProxy)):
            recorder: StreamRecorder = stream._self_recorder
            return recorder
    except Exception:
        pass
    return None
