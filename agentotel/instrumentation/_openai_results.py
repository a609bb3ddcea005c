"""What an OpenAI call returns, watched until its span can end: SDK streams and raw responses.

A raw response comes from `with_raw_response.X(...)` (`LegacyAPIResponse`, body already read unless streamed) or
`with_streaming_response.X(...)` (`APIResponse` / `AsyncAPIResponse`, body not read yet). Its span ends
- at once, when the body is already in memory;
- when `parse()` returns the result (or, for a stream, when the stream it returns ends: the span passes to it);
- when the response is closed (leaving `with_streaming_response`'s block), with whatever body was read;
- when the response object is garbage collected.
"""

from __future__ import annotations

import json
import logging
import weakref
from collections.abc import Callable
from typing import Any

from ._genai import (
    Accumulator,
    AsyncStreamProxy,
    LLMCall,
    ObjectProxy,
    StreamProxy,
    StreamRecorder,
    quietly,
    recorder_of,
)

log = logging.getLogger("agentotel")

Record = Callable[[LLMCall, Any], None]
MakeAccumulator = Callable[[bool], Accumulator]


_SDK_TYPES: dict[str, tuple[type, ...]] = {}
"""The SDK's stream and raw-response classes, imported once (an import statement per call costs a lookup in
`sys.modules` and more)."""


def _sdk_types(kind: str) -> tuple[type, ...]:
    """`streams` (sync, async) or `raw` response classes of the installed SDK; `()` when it has none."""
    found = _SDK_TYPES.get(kind)
    if found is None:
        try:
            if kind == "streams":
                from openai import AsyncStream, Stream

                found = (Stream, AsyncStream)
            else:
                from openai._legacy_response import LegacyAPIResponse
                from openai._response import BaseAPIResponse

                found = (LegacyAPIResponse, BaseAPIResponse)
        except ImportError:
            found = ()
        _SDK_TYPES[kind] = found
    return found


def proxy_stream(result: Any, call: LLMCall, make: MakeAccumulator | None) -> Any:
    """A proxy that ends the call's span with the stream, or `None` when `result` is no SDK stream."""
    streams = _sdk_types("streams")
    if make is None or not streams or not isinstance(result, streams):
        return None
    recorder = StreamRecorder(call, make(call.capture_content))
    return StreamProxy(result, recorder) if isinstance(result, streams[0]) else AsyncStreamProxy(result, recorder)


def is_raw_response(result: Any) -> bool:
    raw = _sdk_types("raw")
    return bool(raw) and isinstance(result, raw)


def _is_stream(raw: Any) -> bool:
    # LegacyAPIResponse calls it `_stream`, APIResponse `_is_sse_stream`.
    return bool(getattr(raw, "_stream", False) or getattr(raw, "_is_sse_stream", False))


def read_body(raw: Any) -> Any:
    """The JSON body of a raw response when it has been read already, else `None`. Never reads it; never raises."""
    try:
        content = raw.http_response.content  # raises when the body has not been read
        return json.loads(content) if content else None
    except Exception:
        return None


class RawCall:
    """A call whose result is a raw response: ends the call's span once, from the parsed result, the stream
    `parse()` gave, or the body read so far. Its methods never raise."""

    def __init__(self, record: Record, call: LLMCall, make_stream: MakeAccumulator | None, raw: Any) -> None:
        self.record = record
        self.call = call
        self.make_stream = make_stream
        self.raw = raw
        self._stream: Any = None
        self._stream_proxy: Any = None
        self._finalizer: weakref.finalize | None = None  # type: ignore[type-arg]

    def watch(self, proxy: object) -> None:
        try:
            self._finalizer = weakref.finalize(proxy, self.abandon)
            self._finalizer.atexit = False
        except Exception:
            log.debug("Could not watch a raw response for garbage collection", exc_info=True)

    def parsed(self, result: Any) -> Any:
        """What `parse()` hands the caller: a stream proxy that carries the span on, or the result itself."""
        try:
            if self._stream_proxy is not None:
                return self._stream_proxy if result is self._stream else result
            if self.call.ended:
                return result
            proxy = proxy_stream(result, self.call, self.make_stream)
            if proxy is not None:
                self._stream, self._stream_proxy = result, proxy
                if self._finalizer is not None:
                    self._finalizer.detach()  # the stream may outlive the response object: it owns the span now
                return proxy
            self.record(self.call, result)
        except Exception:
            log.debug("Could not record a parsed raw response", exc_info=True)
        quietly(self.call.end)
        return result

    def finish(self, error: BaseException | None = None) -> None:
        """Ends the span: through the stream's recorder when `parse()` gave a stream, else from the body read."""
        try:
            recorder = recorder_of(self._stream_proxy)
            if recorder is not None:
                recorder.finish(error)
                return
            if not self.call.ended:
                body = read_body(self.raw)
                if body is not None:
                    self.record(self.call, body)
        except Exception:
            log.debug("Could not record a raw response", exc_info=True)
        quietly(self.call.end, error)

    def abandon(self) -> None:
        try:
            self.finish()
        except Exception:  # a finalizer must never raise
            pass


class RawResponseProxy(ObjectProxy):
    """A sync raw response (or a `LegacyAPIResponse` of either client), unchanged for the caller."""

    def __init__(self, wrapped: Any, raw_call: RawCall) -> None:
        super().__init__(wrapped)
        self._self_raw_call = raw_call

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.__wrapped__.parse(*args, **kwargs)
        except BaseException as error:
            quietly(self._self_raw_call.finish, error)
            raise
        return self._self_raw_call.parsed(result)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            quietly(self._self_raw_call.finish)


class AsyncRawResponseProxy(ObjectProxy):
    """An `AsyncAPIResponse` (`with_streaming_response` of the async client), unchanged for the caller."""

    def __init__(self, wrapped: Any, raw_call: RawCall) -> None:
        super().__init__(wrapped)
        self._self_raw_call = raw_call

    async def parse(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = await self.__wrapped__.parse(*args, **kwargs)
        except BaseException as error:
            quietly(self._self_raw_call.finish, error)
            raise
        return self._self_raw_call.parsed(result)

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            quietly(self._self_raw_call.finish)


def wrap_raw_response(raw: Any, record: Record, call: LLMCall, make_stream: MakeAccumulator | None) -> Any:
    """The raw response the caller gets: itself when its body is read already (the span ends now), else a proxy
    that ends the span later. Raises only on its own fault, before handing anything out."""
    body = None if _is_stream(raw) else read_body(raw)
    if body is not None:
        record(call, body)
        call.end()
        return raw
    raw_call = RawCall(record, call, make_stream, raw)
    from openai._response import AsyncAPIResponse

    proxy_class = AsyncRawResponseProxy if isinstance(raw, AsyncAPIResponse) else RawResponseProxy
    proxy = proxy_class(raw, raw_call)
    raw_call.watch(proxy)
    return proxy
