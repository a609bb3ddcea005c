"""Model requests answered in-process: while an `Interception` is installed, a POST to a model API's path (chat
completions, Responses, Anthropic messages, embeddings) made through an `httpx2` or `httpx` client's default
transport is answered by the interception's `answer` function instead of leaving the process; every other request
goes out as usual.

The transport classes' `handle_request` / `handle_async_request` are replaced for the interception's life, so the
clients an app made before it started are caught too (the openai SDK 3.x and anthropic 2.x speak `httpx2`; older
ones `httpx`). A client given a transport of its own (a mock, an ASGI app) is left alone.
"""

from __future__ import annotations

import importlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from .llm_server import WireReply

log = logging.getLogger("agentotel")

__all__ = ["Intercepted", "Interception", "endpoint_of"]

_SUFFIXES = (
    ("/chat/completions", "chat.completions"),
    ("/responses", "responses"),
    ("/messages", "messages"),
    ("/embeddings", "embeddings"),
)


def endpoint_of(method: str, path: str) -> str | None:
    """The model API a request calls (`chat.completions`, `responses`, `messages`, `embeddings`), or `None`."""
    if method.upper() != "POST":
        return None
    path = path.rstrip("/")
    for suffix, endpoint in _SUFFIXES:
        if path.endswith(suffix):
            return endpoint
    return None


@dataclass(frozen=True)
class Intercepted:
    """A model request caught on its way out."""

    endpoint: str
    url: str
    headers: dict[str, str]
    content: bytes

    @property
    def retry(self) -> bool:
        """Whether the SDK sends it again after a failed try (`x-stainless-retry-count` above 0)."""
        return self.headers.get("x-stainless-retry-count", "0") not in ("", "0")


Answer = Callable[[Intercepted], "WireReply | BaseException"]
"""Answers a caught request: a reply to send, or a transport error to raise (a recorded timeout)."""


def _headers(request: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in request.headers.items()}


def _response(module: ModuleType, request: Any, reply: WireReply, number: int) -> Any:
    headers = {"content-type": reply.content_type, "x-request-id": f"req_rerun{number:06d}", **reply.headers}
    headers.setdefault("request-id", headers["x-request-id"])
    return module.Response(reply.status, headers=list(headers.items()), content=reply.body(), request=request)


class Interception:
    """Installs and removes the transport patches. `install()` and `uninstall()` never raise."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self._patched: list[tuple[type, str, Any]] = []
        self._numbers = itertools.count(1)

    def _caught(self, request: Any, content: bytes) -> Intercepted:
        return Intercepted(
            endpoint=str(endpoint_of(request.method, request.url.path)),
            url=str(request.url),
            headers=_headers(request),
            content=content,
        )

    def _reply(self, module: ModuleType, request: Any, caught: Intercepted) -> Any:
        answered = self.answer(caught)
        if isinstance(answered, BaseException):
            raise answered
        return _response(module, request, answered, next(self._numbers))

    def _sync(self, module: ModuleType, original: Any) -> Any:
        interception = self

        def handle_request(transport: Any, request: Any) -> Any:
            if endpoint_of(request.method, request.url.path) is None:
                return original(transport, request)
            return interception._reply(module, request, interception._caught(request, request.read()))

        return handle_request

    def _async(self, module: ModuleType, original: Any) -> Any:
        interception = self

        async def handle_async_request(transport: Any, request: Any) -> Any:
            if endpoint_of(request.method, request.url.path) is None:
                return await original(transport, request)
            return interception._reply(module, request, interception._caught(request, await request.aread()))

        return handle_async_request

    def transport_error(self, kind: str, message: str, url: str) -> BaseException:
        """The exception a client's transport raises for a request that timed out or lost its connection."""
        for name in ("httpx2", "httpx"):
            module = self._modules().get(name)
            if module is not None:
                cls = module.ReadTimeout if kind == "timeout" else module.ConnectError
                return cls(message, request=module.Request("POST", url))  # type: ignore[no-any-return]
        return TimeoutError(message) if kind == "timeout" else ConnectionError(message)

    @staticmethod
    def _modules() -> dict[str, ModuleType]:
        found = {}
        for name in ("httpx2", "httpx"):
            try:
                found[name] = importlib.import_module(name)
            except ImportError:
                continue
        return found

    def install(self) -> None:
        for module in self._modules().values():
            for cls_name, method, make in (
                ("HTTPTransport", "handle_request", self._sync),
                ("AsyncHTTPTransport", "handle_async_request", self._async),
            ):
                cls = getattr(module, cls_name, None)
                original = getattr(cls, method, None) if cls is not None else None
                if cls is None or original is None:
                    continue
                try:
                    setattr(cls, method, make(module, original))
                    self._patched.append((cls, method, original))
                except Exception:
                    log.debug("Could not intercept %s.%s", cls_name, method, exc_info=True)

    def uninstall(self) -> None:
        patched, self._patched = self._patched, []
        for cls, method, original in reversed(patched):
            try:
                setattr(cls, method, original)
            except Exception:
                log.debug("Could not restore %s.%s", cls.__name__, method, exc_info=True)
