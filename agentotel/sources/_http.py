"""The small HTTP client the backend sources share: stdlib `urllib`, a timeout on every request, a cap on the
size of an answer, and every network fault turned into a one-line `SourceError`.

The timeout bounds a whole request: connecting, the TLS handshake, the headers, the body and any redirect, however
slowly the server trickles them (when it runs out, the request's sockets are shut down, which ends a read blocked
on them). Redirects are followed within the origin (scheme, host, port) the source location names only: the
location's credentials (Basic auth, a bearer token, a tenant header) are for that server, so a redirect to another
origin is refused with one line naming it, rather than followed with them, or without them to a misleading 401.

Faults and their messages (`what` is the backend's name, `where` the server without credentials):
- refused / unknown host / no route: "cannot reach Jaeger at http://host:16686: connection refused";
- timeout: "Jaeger at http://host:16686 did not answer within 10 s (GET /api/v3/traces/...)";
- a redirect to another origin: "Jaeger at http://host:16686 redirected GET /api/... to http://other:80, another
  server: ...";
- 5xx: "Jaeger at http://host:16686 failed: HTTP 503 Service Unavailable for GET /api/... (<its message>)";
- other 4xx (but 404, which callers may expect): the same shape, "refused the request";
- an answer that is not JSON: "... answered GET /api/... with malformed JSON (...)"; an HTML page is named as such
  (a UI answering an API path means the URL is not the backend's API);
- an answer larger than the cap: "... answer to GET /api/... is larger than 64 MiB; narrow the query or raise
  AGENTOTEL_SOURCE_MAX_BYTES".
"""

from __future__ import annotations

import base64
import contextvars
import http.client
import json
import math
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException, HTTPMessage, HTTPResponse
from typing import IO, Any

from . import SourceError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "HttpClient",
    "Location",
    "Reply",
    "parse_location",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds a request may take, all of it (connect, headers, body, redirects); `AGENTOTEL_SOURCE_TIMEOUT` or
`?timeout=` change it."""

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
"""The largest answer read; `AGENTOTEL_SOURCE_MAX_BYTES` or `?max_bytes=` change it."""

_CHUNK = 1024 * 1024
_MAX_TIMEOUT = 86400.0
"""A day: a longer socket timeout overflows some platforms' time types."""
_BODY_EXCERPT = 160

Params = Mapping[str, "str | int | float | Sequence[str] | None"]


@dataclass(frozen=True)
class Location:
    """A `scheme+http://user:pass@host:port/base?option=value` source location taken apart."""

    base_url: str
    """`http(s)://host:port/base`, without credentials, query or trailing slash."""
    options: dict[str, str] = field(default_factory=dict)
    """The query options (`?tenant=acme&service=agent`), last value wins."""
    username: str | None = None
    password: str | None = None

    def option(self, name: str, env: str | None = None, default: str | None = None) -> str | None:
        """The option `name` from the URL, else the environment variable `env`, else `default`."""
        value = self.options.get(name)
        if value:
            return value
        if env:
            value = os.environ.get(env)
            if value:
                return value
        return default


def parse_location(location: str, scheme: str) -> Location:
    """Takes `scheme+http://...` (or `scheme+https://...`) apart. Raises `SourceError` for anything else."""
    head, sep, rest = location.strip().partition("://")
    parts = head.lower().split("+", 1)
    if not sep or parts[0] != scheme or (len(parts) == 2 and parts[1] not in ("http", "https")):
        raise SourceError(f"not a {scheme} location: {location!r} (expected {scheme}+http://host:port)")
    transport = parts[1] if len(parts) == 2 else "http"
    split = urllib.parse.urlsplit(f"{transport}://{rest}")
    if not split.hostname:
        raise SourceError(f"no host in {location!r} (expected {scheme}+http://host:port)")
    host = split.hostname if ":" not in split.hostname else f"[{split.hostname}]"
    try:
        port = split.port
    except ValueError:
        raise SourceError(f"bad port in {location!r}") from None
    netloc = host if port is None else f"{host}:{port}"
    base = urllib.parse.urlunsplit((transport, netloc, split.path.rstrip("/"), "", ""))
    options = dict(urllib.parse.parse_qsl(split.query))
    username = urllib.parse.unquote(split.username) if split.username else None
    password = urllib.parse.unquote(split.password) if split.password else None
    return Location(base_url=base, options=options, username=username, password=password)


@dataclass
class Reply:
    """An HTTP answer that was read whole: status, headers (names lowercased) and body."""

    status: int
    body: bytes
    headers: dict[str, str]
    request: str
    """`GET /path`, for messages."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def excerpt(self) -> str:
        """The start of the body on one line: what a backend said about an error."""
        text = self.body[: _BODY_EXCERPT * 4].decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, Mapping):
            # Jaeger: {"error": {"httpCode":..., "message":...}} or {"errors": [{"msg":...}]}; Phoenix: {"detail":..}
            error = parsed.get("error")
            errors = parsed.get("errors")
            if isinstance(error, Mapping) and error.get("message"):
                text = str(error["message"])
            elif isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
                text = str(errors[0].get("msg") or errors[0])
            elif parsed.get("detail"):
                text = str(parsed["detail"])
            elif parsed.get("message"):
                text = str(parsed["message"])
        text = " ".join(text.split())
        return text if len(text) <= _BODY_EXCERPT else text[: _BODY_EXCERPT - 1] + "…"

    def is_html(self) -> bool:
        content_type = self.headers.get("content-type", "")
        return "html" in content_type or self.body.lstrip()[:1] == b"<"


# --- a deadline for the whole request ------------------------------------------------------------------------------


class _Deadline:
    """The time one request has left, and the sockets it opened: when it runs out (a timer thread), they are shut
    down, which ends a read blocked on them however slowly a server trickles bytes. Never raises."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._at = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    @property
    def over(self) -> bool:
        """The time is up (the sockets are shut down, or about to be)."""
        return self._expired or time.monotonic() >= self._at

    @property
    def expired(self) -> bool:
        """The sockets were shut down: an answer read since may be cut short, whatever it looks like."""
        return self._expired

    def left(self) -> float:
        """Seconds left (a little above 0 once over: a socket timeout of 0 would mean non-blocking)."""
        return max(0.001, self._at - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down when the time runs out. A duplicate is kept, not `sock` itself: shutting the connection
        down through it works whatever `sock` became (TLS wraps a socket by taking its descriptor over)."""
        try:
            duplicate = sock.dup()
        except OSError:
            return
        with self._lock:
            self._sockets.append(duplicate)
            expired = self._expired
        if expired:
            _shutdown(duplicate)

    def close(self) -> None:
        """The request is over: stop the timer and let go of the duplicates."""
        self._timer.cancel()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.close()
            except OSError:
                pass

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


_DEADLINE: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("agentotel_http_deadline", default=None)
"""The deadline of the request the current thread is making (`urllib` makes it in the caller's thread)."""


def _create_connection(address: tuple[str, int], timeout: Any, source_address: Any = None) -> socket.socket:
    """`socket.create_connection`, given only the time the request has left, its socket watched by the deadline."""
    deadline = _DEADLINE.get()
    if deadline is not None:
        timeout = deadline.left()
    sock = socket.create_connection(address, timeout, source_address)
    if deadline is not None:
        deadline.watch(sock)
    return sock


class _HTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _create_connection


class _HTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = _create_connection


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class: Any, req: urllib.request.Request, **kwargs: Any) -> http.client.HTTPResponse:
        return super().do_open(
            _HTTPSConnection if http_class is http.client.HTTPSConnection else http_class, req, **kwargs
        )


# --- redirects within the origin ---------------------------------------------------------------------------------


class _Redirected(Exception):
    """A redirect to another origin, not followed."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.target = target


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a URL, the port given even when the URL leaves it out. Never raises."""
    split = urllib.parse.urlsplit(url)
    scheme = split.scheme.lower()
    try:
        port = split.port
    except ValueError:
        port = None
    return scheme, (split.hostname or "").lower(), port or {"http": 80, "https": 443}.get(scheme)


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect (with the request's headers, credentials included) only to the origin of the source's
    location; any other raises `_Redirected`."""

    def __init__(self, base_url: str) -> None:
        self.origin = origin_of(base_url)

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        if origin_of(newurl) != self.origin:
            fp.close()
            raise _Redirected(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# --- the client ------------------------------------------------------------------------------------------------------


class HttpClient:
    """GETs JSON from one backend. Every method raises `SourceError` (one line) for a fault; none retries."""

    def __init__(
        self,
        location: Location,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.location = location
        self.what = what
        self.timeout = timeout if timeout is not None else _number(location, "timeout", "AGENTOTEL_SOURCE_TIMEOUT")
        self.max_bytes = int(
            max_bytes if max_bytes is not None else _number(location, "max_bytes", "AGENTOTEL_SOURCE_MAX_BYTES")
        )
        self._headers = {"Accept": "application/json", "User-Agent": "agentotel"}
        if location.username is not None:
            token = f"{location.username}:{location.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        self._headers.update(headers or {})
        # Never through a proxy for a loopback backend: a proxy set for the internet must not swallow localhost.
        host = urllib.parse.urlsplit(location.base_url).hostname or ""
        handlers: list[urllib.request.BaseHandler] = [
            _HTTPHandler(),
            _HTTPSHandler(),
            _SameOriginRedirects(location.base_url),
        ]
        if host in ("localhost", "127.0.0.1", "::1"):
            handlers.append(urllib.request.ProxyHandler({}))
        self._opener = urllib.request.build_opener(*handlers)

    @property
    def where(self) -> str:
        return f"{self.what} at {self.location.base_url}"

    def url(self, path: str, params: Params | None = None) -> str:
        query = urllib.parse.urlencode(list(_pairs(params or {})), quote_via=urllib.parse.quote)
        return self.location.base_url + path + (f"?{query}" if query else "")

    def get(self, path: str, params: Params | None = None, *, accept: str | None = None) -> Reply:
        """The answer to `GET path`, whatever its status, except 5xx, which raise. Raises `SourceError` for a
        fault of the network, a server error, or an answer over the size cap."""
        url = self.url(path, params)
        request_name = f"GET {path}"
        headers = dict(self._headers)
        if accept:
            headers["Accept"] = accept
        request = urllib.request.Request(url, headers=headers, method="GET")
        deadline = _Deadline(self.timeout)
        token = _DEADLINE.set(deadline)
        try:
            return self._exchange(request, request_name, deadline)
        finally:
            _DEADLINE.reset(token)
            deadline.close()

    def _exchange(self, request: urllib.request.Request, request_name: str, deadline: _Deadline) -> Reply:
        """Sends the request and reads the answer whole, within the deadline. Raises `SourceError`."""
        try:
            response = self._opener.open(request, timeout=self.timeout)
        except urllib.error.HTTPError as error:
            reply = self._read(error, request_name, deadline)
            if reply.status >= 500:
                raise SourceError(
                    f"{self.where} failed: HTTP {reply.status} {error.reason} for {request_name}"
                    + (f" ({reply.excerpt()})" if reply.body else "")
                ) from None
            return reply
        except _Redirected as redirect:
            raise SourceError(self._redirect_message(redirect.target, request_name)) from None
        except urllib.error.URLError as error:
            raise SourceError(self._network_message(error.reason, request_name, deadline)) from None
        except (OSError, HTTPException) as error:
            raise SourceError(self._network_message(error, request_name, deadline)) from None
        with response:
            return self._read(response, request_name, deadline)

    def get_json(self, path: str, params: Params | None = None, *, missing_ok: bool = False) -> Any:
        """The JSON answer to `GET path`. A 404 gives `None` when `missing_ok`; any other status that is not
        2xx raises `SourceError`, as does an answer that is not JSON."""
        reply = self.get(path, params)
        if reply.status == 404 and missing_ok:
            return None
        self.check(reply)
        return self.parse(reply)

    def check(self, reply: Reply) -> None:
        """Raises `SourceError` unless the reply is 2xx."""
        if reply.ok:
            return
        detail = f" ({reply.excerpt()})" if reply.body and not reply.is_html() else ""
        hint = ""
        if reply.status in (401, 403):
            hint = "; check the credentials (user:password@ in the URL, or the backend's API key variable)"
        raise SourceError(f"{self.where} refused the request: HTTP {reply.status} for {reply.request}{detail}{hint}")

    def parse(self, reply: Reply, *, json_lines: bool = False) -> Any:
        """The reply's body as JSON (with `json_lines`, a body of one JSON document per line gives a list).
        Raises `SourceError` for anything else."""
        text = reply.body.decode("utf-8", "replace")
        try:
            return json.loads(text)
        except ValueError as error:
            if json_lines:
                documents = _json_lines(text)
                if documents is not None:
                    return documents
            if reply.is_html():
                raise SourceError(
                    f"{self.where} answered {reply.request} with an HTML page, not JSON; is this the {self.what} "
                    "API's address?"
                ) from None
            message = f"{error.msg} at character {error.pos}" if isinstance(error, json.JSONDecodeError) else str(error)
            raise SourceError(f"{self.where} answered {reply.request} with malformed JSON ({message})") from None

    # internals ---------------------------------------------------------------------------------------------------

    def _read(self, response: HTTPResponse | urllib.error.HTTPError, request_name: str, deadline: _Deadline) -> Reply:
        headers = {name.lower(): value for name, value in response.headers.items()}
        status = int(getattr(response, "status", None) or getattr(response, "code", None) or 0)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise SourceError(self._too_large(request_name))
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                chunk = response.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_bytes:
                    raise SourceError(self._too_large(request_name))
                chunks.append(chunk)
        except (OSError, HTTPException) as error:
            raise SourceError(self._network_message(error, request_name, deadline)) from None
        if deadline.expired:  # a body read until the connection closes looks whole when cut short
            raise SourceError(self._timeout_message(request_name))
        return Reply(status=status, body=b"".join(chunks), headers=headers, request=request_name)

    def _too_large(self, request_name: str) -> str:
        return (
            f"{self.where}: the answer to {request_name} is larger than {_size(self.max_bytes)}; narrow the query "
            "or raise AGENTOTEL_SOURCE_MAX_BYTES"
        )

    def _timeout_message(self, request_name: str) -> str:
        return f"{self.where} did not answer within {self.timeout:g} s ({request_name})"

    def _redirect_message(self, target: str, request_name: str) -> str:
        scheme, host, port = origin_of(target)
        shown = f"[{host}]" if ":" in host else host
        return (
            f"{self.where} redirected {request_name} to {scheme}://{shown}:{port}, another server: not followed, as "
            "the source's credentials are for the server it names; if the backend is there, name that server in "
            "the source location"
        )

    def _network_message(self, reason: object, request_name: str, deadline: _Deadline | None = None) -> str:
        timed_out = isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in str(reason)
        if timed_out or (deadline is not None and deadline.over):
            return self._timeout_message(request_name)
        if isinstance(reason, ConnectionRefusedError):
            return f"cannot reach {self.where}: connection refused (is it running?)"
        if isinstance(reason, socket.gaierror):
            return f"cannot reach {self.where}: unknown host"
        if isinstance(reason, ssl.SSLError):
            return f"cannot reach {self.where}: TLS error ({reason.reason or reason})"
        if isinstance(reason, (ConnectionResetError, HTTPException)):
            return f"{self.where} dropped the connection during {request_name}"
        text = getattr(reason, "strerror", None) or str(reason) or type(reason).__name__
        return f"cannot reach {self.where}: {' '.join(str(text).split())}"


def _number(location: Location, option: str, env: str) -> float:
    defaults = {"timeout": DEFAULT_TIMEOUT, "max_bytes": float(DEFAULT_MAX_BYTES)}
    raw = location.option(option, env)
    if raw is None:
        return defaults[option]
    try:
        value = float(raw)
    except ValueError:
        raise SourceError(f"{option} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SourceError(f"{option} must be a number above 0, not {raw!r}")
    if option == "timeout" and value > _MAX_TIMEOUT:
        raise SourceError(f"timeout must be at most {_MAX_TIMEOUT:g} s, not {raw!r}")
    return value


def _pairs(params: Params) -> Iterator[tuple[str, str]]:
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            for item in value:
                yield key, str(item)
        else:
            yield key, str(value)


def _json_lines(text: str) -> list[Any] | None:
    """One JSON document per non-empty line (a gRPC-gateway stream), or `None` when the text is not that."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    try:
        return [json.loads(line) for line in lines]
    except ValueError:
        return None


def _size(count: float) -> str:
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):g} MiB"
    if count >= 1024:
        return f"{count / 1024:g} KiB"
    return f"{count:g} bytes"
