"""agentotel's own code raising at every hook never changes what the user's code gets: each call returns its normal
result, or raises its own exception (the very same object), as it does with agentotel working.

Each case makes one piece of agentotel raise (a processor hook, a helper the hooks call, the OpenAI wrapper's
helpers, an exporter), runs the same workload (sessions, decorated sync/async/generator steps, real `openai` calls
plain, streamed, async, failing) and compares what came back with an undisturbed run. Each case also checks that
its fault did fire, so a test whose fault is never reached fails instead of passing for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentotel
from agentotel import _clock, _content, live, processors, sessions, steps
from agentotel._config import settings
from agentotel._loss import CountingExporter, lost_spans
from agentotel.instrumentation import _genai, _openai_attributes, _openai_results
from agentotel.instrumentation import openai as openai_instrumentation
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer, Reply

from .support import accounted, exporting_through


class NullExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class InjectedFault(RuntimeError):
    """What the injected code raises: never the user's exception."""


class UserError(ValueError):
    """The user's own exception."""


RAISED: list[BaseException] = []


@agentotel.tool
def add(a: int, b: int) -> int:
    return a + b


@agentotel.tool
def fails(reason: str) -> None:
    error = UserError(reason)
    RAISED.append(error)
    raise error


@agentotel.tool
async def add_later(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


@agentotel.operation
def count_to(n: int) -> Iterator[int]:
    yield from range(n)


@agentotel.tool
async def count_later(n: int) -> Any:
    for i in range(n):
        await asyncio.sleep(0)
        yield i


class Odd:
    """Neither JSON nor a model: content capture falls back on its repr."""

    def __repr__(self) -> str:
        return "<odd>"


@agentotel.tool
def describe(thing: object) -> str:
    return type(thing).__name__


@agentotel.record_action("lookup")
def action(key: str) -> dict[str, str]:
    return {"key": key}


@agentotel.session("decorated")
def decorated_session(x: int) -> int:
    return add(x, x)


def workload(
    client: openai.OpenAI, aclient: openai.AsyncOpenAI, server: LLMServer, *, foreign: bool = True
) -> dict[str, Any]:
    """What a user's code sees from a small agent; exceptions are kept as (type, the object itself). `foreign`
    adds a span made by the app's own tracer with GenAI usage, as another instrumentation would."""
    seen: dict[str, Any] = {}

    def attempt(key: str, fn: Callable[[], Any]) -> None:
        try:
            seen[key] = fn()
        except Exception as error:
            seen[key] = ("raised", type(error), error)

    messages = [{"role": "user", "content": "ping"}]
    with agentotel.session("workload", tags=["fault"]) as s:
        attempt("add", lambda: add(2, 3))
        attempt("fails", lambda: fails("no"))
        attempt("async", lambda: asyncio.run(add_later(4, 5)))
        attempt("generator", lambda: list(count_to(3)))

        async def consume() -> list[int]:
            return [i async for i in count_later(3)]

        attempt("async generator", lambda: asyncio.run(consume()))
        attempt("action", lambda: action("k"))
        attempt("odd argument", lambda: describe(Odd()))
        attempt("decorated session", lambda: decorated_session(21))
        attempt(
            "chat", lambda: client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content
        )

        def streamed() -> str:
            stream = client.chat.completions.create(
                model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
            )
            with stream:
                return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

        attempt("stream", streamed)
        attempt("responses", lambda: client.responses.create(model="gpt-4o", input="pong").output_text)
        attempt("embeddings", lambda: len(client.embeddings.create(model="text-embedding-3-small", input="x").data))
        attempt(
            "raw",
            lambda: (
                client.chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
                .parse()
                .choices[0]
                .message.content
            ),
        )

        def streaming_response() -> str | None:
            with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=messages) as raw:
                return raw.parse().choices[0].message.content

        attempt("streaming response", streaming_response)

        async def async_chat() -> str | None:
            completion = await aclient.chat.completions.create(model="gpt-4o", messages=messages)
            return completion.choices[0].message.content

        attempt("async chat", lambda: asyncio.run(async_chat()))
        server.script(Reply("rate limited", status=429))
        attempt("openai error", lambda: client.chat.completions.create(model="gpt-4o", messages=messages))
        s.add_tags(["more", 7])
        if foreign:
            with trace.get_tracer("another.instrumentation").start_as_current_span(
                "chat gpt-4o",
                attributes={
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o",
                    "gen_ai.usage.input_tokens": 10,
                    "gen_ai.usage.output_tokens": 5,
                },
            ):
                seen["foreign span"] = "ended"
        seen["session object"] = type(s).__name__
    manual = agentotel.start_session(tags=["manual"])
    attempt("manual add", lambda: add(1, 1))
    agentotel.end_session("Success", session=manual)
    seen["manual"] = type(manual).__name__
    return seen


def comparable(seen: dict[str, Any]) -> dict[str, Any]:
    """Results as values; exceptions by type and message (their identity is checked apart)."""
    return {
        key: (value[0], value[1], str(value[2])) if isinstance(value, tuple) and value[:1] == ("raised",) else value
        for key, value in seen.items()
    }


@pytest.fixture(scope="module")
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def clients(server: LLMServer) -> Iterator[tuple[openai.OpenAI, openai.AsyncOpenAI]]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
        yield client, openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


@pytest.fixture(scope="module")
def expected(server: LLMServer) -> dict[str, Any]:
    """What the workload gives with agentotel working (content capture on, so the content paths run too)."""
    previous = settings.capture_content
    settings.capture_content = True
    try:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client:
            aclient = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
            seen = comparable(workload(client, aclient, server))
    finally:
        settings.capture_content = previous
    assert seen["add"] == 5 and seen["chat"] == "You said: ping" and seen["openai error"][1] is openai.RateLimitError
    return seen


@dataclass(frozen=True)
class Target:
    """Where a fault is injected: an attribute of an object, replaced by a raising stand-in."""

    owner: Any
    name: str
    whole_hook: bool = False
    """A processor hook replaced whole: the SDK passes what it raises to whoever ends the span, so the workload
    leaves out the span the app makes with its own tracer (agentotel's hooks catch their own faults inside)."""

    @property
    def id(self) -> str:
        owner = getattr(self.owner, "__name__", type(self.owner).__name__)
        return f"{owner}.{self.name}"


TARGETS = [
    # helpers the processors' hooks call
    Target(processors, "record_from_span"),
    Target(processors, "session_id_in"),
    Target(processors, "cost_of_attributes"),
    Target(processors, "set_attributes_on_ending"),
    Target(live.SessionRegistry, "on_record"),
    # the processors' hooks themselves (the SDK does not catch what a processor raises)
    Target(processors.SessionSpanProcessor, "on_start", whole_hook=True),
    Target(processors.SessionSpanProcessor, "on_end", whole_hook=True),
    Target(processors.CostSpanProcessor, "on_ending", whole_hook=True),
    Target(processors.ExportPipeline, "on_start", whole_hook=True),
    Target(processors.ExportPipeline, "on_end", whole_hook=True),
    # the session API and decorators' helpers
    Target(_clock, "now_ns"),
    Target(_clock, "make_session_id"),
    Target(steps.tracer, "start_span"),
    Target(steps, "set_content"),
    Target(steps, "record_error"),
    Target(steps, "to_json"),
    Target(steps, "bind_arguments"),
    Target(_content, "_fallback"),
    Target(sessions.registry, "register"),
    Target(live.SessionRegistry, "_retire"),
    Target(agentotel.Session, "totals"),
    Target(sessions, "_tags"),
    # the OpenAI wrapper's helpers
    Target(openai_instrumentation, "provider_name"),
    Target(openai_instrumentation, "server_attributes"),
    Target(openai_instrumentation, "_enter"),
    Target(openai_instrumentation, "_leave"),
    Target(openai_instrumentation, "proxy_stream"),
    Target(openai_instrumentation, "wrap_raw_response"),
    Target(openai_instrumentation, "is_raw_response"),
    Target(openai_instrumentation.CHAT, "request"),
    Target(openai_instrumentation.CHAT, "record"),
    Target(openai_instrumentation.CHAT, "content"),
    Target(openai_instrumentation.CHAT, "stream"),
    Target(openai_instrumentation.RESPONSES, "record"),
    Target(openai_instrumentation.EMBEDDINGS, "record"),
    Target(_openai_attributes.ChatStream, "add"),
    Target(_openai_attributes.ChatStream, "apply"),
    Target(_openai_results, "read_body"),
    Target(_genai.LLMCall, "__init__"),
    Target(_genai.LLMCall, "end"),
    Target(_genai.LLMCall, "set"),
    Target(_genai.StreamRecorder, "finish"),
    Target(_genai.StreamRecorder, "_first_chunk"),
    Target(_genai, "cost_of_attributes"),
    # exporters
    Target(InMemorySpanExporter, "export"),
    Target(CountingExporter, "export"),
]


@pytest.fixture
def inject(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Target], list[int]]]:
    """Replaces a target by a stand-in that raises `InjectedFault`; returns the list its calls are counted in.
    Afterwards, forgets the sessions a fault kept from retiring (a broken registry cannot retire them)."""
    undo: list[Callable[[], None]] = []
    active_before = {s.id for s in live.registry.active()}

    def injector(target: Target) -> list[int]:
        calls: list[int] = []

        def broken(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            raise InjectedFault(f"injected into {target.id}")

        try:
            monkeypatch.setattr(target.owner, target.name, broken)
        except (AttributeError, TypeError):  # a frozen dataclass: set it past its __setattr__
            previous = getattr(target.owner, target.name)
            object.__setattr__(target.owner, target.name, broken)
            undo.append(lambda: object.__setattr__(target.owner, target.name, previous))
        return calls

    yield injector
    for step in reversed(undo):
        step()
    for session in live.registry.active():
        if session.id not in active_before:
            live.registry._active.pop(session.id, None)


@pytest.mark.parametrize("target", TARGETS, ids=[t.id for t in TARGETS])
def test_a_fault_inside_agentotel_never_reaches_the_users_code(
    target: Target,
    inject: Callable[[Target], list[int]],
    clients: tuple[openai.OpenAI, openai.AsyncOpenAI],
    server: LLMServer,
    expected: dict[str, Any],
    cap_content: Capture,
) -> None:
    exporter = accounted(NullExporter())
    with exporting_through(exporter):
        calls = inject(target)
        RAISED.clear()
        seen = workload(*clients, server, foreign=not target.whole_hook)
        exporter.force_flush(5_000)
    assert calls, f"the fault injected into {target.id} never fired: the test proves nothing"
    # The user's context is left as it was: no session or span of the workload is still current.
    assert sessions.current_session() is None
    assert not trace.get_current_span().get_span_context().is_valid
    wanted = dict(expected)
    if target.whole_hook:
        del wanted["foreign span"]
    assert comparable(seen) == wanted
    # The user's exception reaches the user as the very object raised, not a copy or a wrapper.
    assert RAISED and seen["fails"][2] is RAISED[-1]
    assert not isinstance(seen["openai error"][2], InjectedFault)


def test_an_exporter_that_raises_on_every_call_loses_only_its_own_spans(cap: Capture) -> None:
    """A broken exporter behind agentotel's batch processor: the app goes on, the other exporters get every span,
    and its spans are counted lost."""

    class Broken(SpanExporter):
        def export(self, spans: Any) -> Any:
            raise InjectedFault("export")

        def shutdown(self) -> None:
            raise InjectedFault("shutdown")

        def force_flush(self, timeout_millis: int = 30_000) -> bool:
            raise InjectedFault("flush")

    processor = accounted(Broken())
    with exporting_through(processor):
        with agentotel.session("broken-exporter") as s:
            assert add(1, 2) == 3
        assert processor.force_flush(5_000)
    assert s.end_state == "Success" and len(s.tool_calls) == 1
    assert len(cap.spans) == 2
    assert lost_spans() == 2
