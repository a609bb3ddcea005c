"""Replays recorded VCR cassettes (the official OpenAI instrumentation's) through the real `openai` SDK on loopback.

A cassette is a list of interactions: the request the SDK sent (method, URL, JSON body) and the answer the API gave
(status, headers, body, plain JSON or server-sent events). `CassetteServer` answers on 127.0.0.1 with each recorded
answer in turn, and `replay` makes each recorded request again with the SDK: the method its URL names, its JSON
body as the method's keyword arguments (a field the method does not name goes in `extra_body`, where the SDK puts
it back into the body as it was), reading a stream to its end. So any instrumentation of the SDK sees the calls
the cassette recorded, answered as they were, with no network and no patched HTTP client.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import openai
import yaml

# Response headers not replayed: hop-by-hop ones, and those of the recorded transfer (the body is sent whole).
_DROPPED_HEADERS = {"content-length", "transfer-encoding", "content-encoding", "connection", "set-cookie"}


@dataclass(frozen=True)
class Interaction:
    """One recorded request and its answer."""

    method: str
    path: str
    """The URL's path below the API's base, e.g. `/chat/completions` or `/responses/resp_1`."""
    query: dict[str, str]
    body: Any
    """The request's JSON body, or `None`."""
    status: int
    headers: dict[str, str]
    answer: bytes

    @property
    def endpoint(self) -> str:
        """`chat`, `responses`, `embeddings` or `retrieve` (`GET /responses/{id}`); else the path."""
        if self.method == "GET" and self.path.startswith("/responses/"):
            return "retrieve"
        return {"/chat/completions": "chat", "/responses": "responses", "/embeddings": "embeddings"}.get(
            self.path, self.path
        )

    @property
    def streamed(self) -> bool:
        return bool((self.body or {}).get("stream")) or self.query.get("stream") == "true"


def _text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value or "").encode()


def _headers(recorded: dict[str, Any]) -> dict[str, str]:
    headers = {}
    for name, value in (recorded or {}).items():
        if name.lower() in _DROPPED_HEADERS:
            continue
        headers[name] = value[0] if isinstance(value, list) else str(value)
    return headers


def load(path: Path) -> list[Interaction]:
    """The interactions of a VCR cassette (YAML, version 1)."""
    cassette = yaml.safe_load(path.read_text())
    found = []
    for recorded in cassette["interactions"]:
        request, response = recorded["request"], recorded["response"]
        url = urlsplit(request["uri"])
        body = request.get("body")
        found.append(
            Interaction(
                method=request["method"],
                path=url.path.removeprefix("/v1"),
                query=dict(parse_qsl(url.query)),
                body=json.loads(body) if body else None,
                status=int(response["status"]["code"]),
                headers=_headers(response.get("headers") or {}),
                answer=_text((response.get("body") or {}).get("string")),
            )
        )
    return found


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reports what went wrong."""

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        interaction = self.server.owner.next_for(self.command, urlsplit(self.path).path.removeprefix("/v1"))
        if interaction is None:
            self.send_response(599, "no recorded answer")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        self.send_response(interaction.status)
        for name, value in interaction.headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(interaction.answer)))
        self.end_headers()
        self.wfile.write(interaction.answer)

    do_GET = do_POST = do_DELETE = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: CassetteServer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner


class CassetteServer:
    """Answers on loopback with a cassette's recorded answers, in order; `errors` says what did not match."""

    def __init__(self, interactions: list[Interaction]) -> None:
        self.interactions = interactions
        self._next = 0
        self._lock = threading.Lock()
        self.errors: list[str] = []
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def rewind(self) -> None:
        with self._lock:
            self._next = 0

    def next_for(self, method: str, path: str) -> Interaction | None:
        with self._lock:
            if self._next >= len(self.interactions):
                self.errors.append(f"{method} {path}: no recorded answer left")
                return None
            interaction = self.interactions[self._next]
            self._next += 1
        if (interaction.method, interaction.path) != (method, path):
            self.errors.append(f"{method} {path}: the cassette has {interaction.method} {interaction.path} next")
        return interaction

    def __enter__(self) -> CassetteServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------------------------------------------------
# Making the recorded requests again


def _method(client: Any, endpoint: str) -> Callable[..., Any]:
    if endpoint == "chat":
        return client.chat.completions.create  # type: ignore[no-any-return]
    if endpoint == "responses":
        return client.responses.create  # type: ignore[no-any-return]
    if endpoint == "embeddings":
        return client.embeddings.create  # type: ignore[no-any-return]
    return client.responses.retrieve  # type: ignore[no-any-return]


def arguments(method: Callable[..., Any], interaction: Interaction) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The SDK call that sends `interaction`'s request: its body (or query) as keyword arguments, fields the method
    does not name in `extra_body` (or `extra_query`)."""
    named = set(inspect.signature(method).parameters)
    if interaction.endpoint == "retrieve":
        response_id = interaction.path.rsplit("/", 1)[1]
        query = dict(interaction.query)
        kwargs: dict[str, Any] = {}
        if query.pop("stream", None) == "true":
            kwargs["stream"] = True
        if "starting_after" in query:
            kwargs["starting_after"] = int(query.pop("starting_after"))
        if query:
            kwargs["extra_query"] = query
        return (response_id,), kwargs
    body = dict(interaction.body or {})
    if "stream" not in named:  # a stream helper: streams without being asked
        body.pop("stream", None)
    kwargs = {key: body.pop(key) for key in list(body) if key in named}
    if body:
        kwargs["extra_body"] = body
    return (), kwargs


class UserError(ValueError):
    """What the app raises inside `with stream:` when the plan says so."""


@dataclass(frozen=True)
class Plan:
    """How the app makes a cassette's calls and reads what they return, as the official test that recorded the
    cassette did (`plan_for`)."""

    stream_helper: bool = False
    """`responses.stream(...)` rather than `responses.create(stream=True)`."""
    raw: bool = False
    """`with_raw_response.X(...)`, then `parse()`."""
    read: str = "all"
    """`all` (to the end), `abandon` (two chunks, then `close()`) or `raise` (an exception inside `with stream:`)."""


def plan_for(name: str) -> Plan:
    """The plan of the official test named by the cassette's file name."""
    read = "abandon" if "streaming_not_complete" in name else "raise" if "user_exception" in name else "all"
    helper = "responses_stream_" in name and "responses_create" not in name
    return Plan(stream_helper=helper, raw="raw_response" in name and "retrieve" not in name, read=read)


@dataclass
class Outcome:
    """What the app saw of one call: the error the SDK (or the app's own code) raised, if any."""

    endpoint: str
    error: BaseException | None = None


def _callable(client: Any, interaction: Interaction, plan: Plan) -> tuple[Callable[..., Any], bool]:
    """The SDK method to call, and whether it is a stream helper (a manager used in `with`)."""
    if plan.stream_helper and interaction.endpoint == "responses":
        return client.responses.stream, True
    method = _method(client, interaction.endpoint)
    if plan.raw and interaction.endpoint != "retrieve":
        resource = {"chat": client.chat.completions, "responses": client.responses}.get(interaction.endpoint)
        resource = resource or client.embeddings
        method = resource.with_raw_response.create
    return method, False


def _read(result: Any, interaction: Interaction, plan: Plan) -> None:
    if plan.raw:
        result = result.parse()
    if not interaction.streamed:
        return
    if plan.read == "raise":
        with result as stream:
            for _ in stream:
                raise UserError("User raised exception")
    if plan.read == "abandon":
        for index, _ in enumerate(result):
            if index == 1:
                break
        result.close()
        return
    for _ in result:
        pass


async def _aread(result: Any, interaction: Interaction, plan: Plan) -> None:
    if plan.raw:
        result = result.parse()  # the raw response's `parse()` may be sync even on the async client
        if inspect.isawaitable(result):
            result = await result
    if not interaction.streamed:
        return
    if plan.read == "raise":
        async with result as stream:
            async for _ in stream:
                raise UserError("User raised exception")
    if plan.read == "abandon":
        index = 0
        async for _ in result:
            if index == 1:
                break
            index += 1
        await result.close()
        return
    async for _ in result:
        pass


def _sync_call(client: openai.OpenAI, interaction: Interaction, plan: Plan) -> Outcome:
    method, helper = _callable(client, interaction, plan)
    args, kwargs = arguments(method, interaction)
    outcome = Outcome(interaction.endpoint)
    try:
        if helper:
            with method(*args, **kwargs) as stream:
                for _ in stream:
                    if plan.read == "raise":
                        raise UserError("User raised exception")
        else:
            _read(method(*args, **kwargs), interaction, plan)
    except (openai.APIError, UserError) as error:
        outcome.error = error
    return outcome


async def _async_call(client: openai.AsyncOpenAI, interaction: Interaction, plan: Plan) -> Outcome:
    method, helper = _callable(client, interaction, plan)
    args, kwargs = arguments(method, interaction)
    outcome = Outcome(interaction.endpoint)
    try:
        if helper:
            async with method(*args, **kwargs) as stream:
                async for _ in stream:
                    if plan.read == "raise":
                        raise UserError("User raised exception")
        else:
            await _aread(await method(*args, **kwargs), interaction, plan)
    except (openai.APIError, UserError) as error:
        outcome.error = error
    return outcome


def replay(server: CassetteServer, plan: Plan, *, is_async: bool) -> list[Outcome]:
    """Makes every request of the cassette again, in order, with a fresh client of the real SDK, reading what each
    returns as `plan` says."""
    server.rewind()
    options: dict[str, Any] = {"base_url": server.base_url, "api_key": "test_openai_api_key", "max_retries": 0}
    if not is_async:
        with openai.OpenAI(**options) as client:
            return [_sync_call(client, i, plan) for i in server.interactions]

    import asyncio

    async def run() -> list[Outcome]:
        async with openai.AsyncOpenAI(**options) as client:
            return [await _async_call(client, i, plan) for i in server.interactions]

    return asyncio.run(run())


def cassettes(folder: Path) -> Iterator[Path]:
    yield from sorted(folder.glob("*.yaml"))
