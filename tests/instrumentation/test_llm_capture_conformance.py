"""Issue 15, "LLM capture conformance": what the official OpenAI instrumentations record and agentotel did not.

- An exception leaving `with stream:` / `async with stream:` (raised by the code reading the stream, or by the
  SDK's own `close()`) marks the call failed: status ERROR and `error.type`, for Chat Completions and Responses,
  their stream helpers, and agentotel's Anthropic wrappers.
- A stream that stops before its last chunk (abandoned, closed early, cut) still writes an output message with a
  `finish_reason`, which the GenAI output-message schema requires: `"error"`, as the official ones write.
- Request parameters sent through `extra_body` are recorded as the named ones are (the SDK sends `extra_body`'s
  value when both are given, so that is what the span says).

The real `openai` and `anthropic` SDKs against the scripted `LLMServer` on loopback. The failing `close()` is the
HTTP response's own: a transport that hands the SDK the loopback server's real response, whose body fails to close.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from agentotel import semconv as sc
from agentotel.instrumentation.anthropic import AnthropicInstrumentor
from agentotel.steps import error_type_name
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer, Reply

API_KEY = "sk-test-conformance"
USER = [{"role": "user", "content": "What is the weather in Paris?"}]
ANTHROPIC_MODEL = "claude-sonnet-4-6"
LONG_ANSWER = "one two three four five six seven eight"


class AppFailed(Exception):
    """What the app's own code raises while it reads a stream."""


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def client(server: LLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0) as sdk_client:
        yield sdk_client


@pytest.fixture
async def aclient(server: LLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    sdk_client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0)
    yield sdk_client
    await sdk_client.close()


def llm_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) in ("chat", "embeddings")]


def one_span(cap: Capture) -> ReadableSpan:
    spans = llm_spans(cap)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def assert_failed_by(span: ReadableSpan, error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    """The span says the call failed, by that exception, and was ended once."""
    assert span.status.status_code is StatusCode.ERROR, span.status
    assert attrs(span)[sc.ERROR_TYPE] == error_type_name(error)
    assert [e.name for e in span.events] == ["exception"]
    assert not [r for r in caplog.records if "ended span" in r.getMessage()], "the span was ended twice"


def output_messages(span: ReadableSpan) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = json.loads(attrs(span)[sc.GEN_AI_OUTPUT_MESSAGES])
    return messages


# --------------------------------------------------------------------------------------------------------------------
# An exception leaving `with stream:` fails the call


STREAMS = ["chat create", "chat helper", "responses create", "responses helper"]


def open_stream(client: openai.OpenAI, how: str) -> Any:
    """A stream of `how`'s kind, as the `with` statement takes it."""
    if how == "chat create":
        return client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    if how == "chat helper":
        return client.chat.completions.stream(model="gpt-4o", messages=USER)
    if how == "responses create":
        return client.responses.create(model="gpt-4o", input="Weather?", stream=True)
    return client.responses.stream(model="gpt-4o", input="Weather?")


def open_async_stream(client: openai.AsyncOpenAI, how: str) -> Any:
    """`open_stream` for the async client (`create` is awaited by the caller; the helpers are managers)."""
    if how == "chat create":
        return client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    if how == "chat helper":
        return client.chat.completions.stream(model="gpt-4o", messages=USER)
    if how == "responses create":
        return client.responses.create(model="gpt-4o", input="Weather?", stream=True)
    return client.responses.stream(model="gpt-4o", input="Weather?")


@pytest.mark.parametrize("how", STREAMS)
def test_an_exception_inside_with_stream_fails_the_call(
    cap: Capture, server: LLMServer, client: openai.OpenAI, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8))
    with pytest.raises(AppFailed) as raised, open_stream(client, how) as stream:
        for _ in stream:
            raise AppFailed("the app failed while reading the stream")
    assert_failed_by(one_span(cap), raised.value, caplog)


@pytest.mark.parametrize("how", STREAMS)
async def test_an_exception_inside_async_with_stream_fails_the_call(
    cap: Capture, server: LLMServer, aclient: openai.AsyncOpenAI, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8))
    opened = open_async_stream(aclient, how)
    manager = await opened if how.endswith("create") else opened
    with pytest.raises(AppFailed) as raised:
        async with manager as stream:
            async for _ in stream:
                raise AppFailed("the app failed while reading the stream")
    assert_failed_by(one_span(cap), raised.value, caplog)


def test_a_stream_read_to_its_end_inside_with_is_not_failed_by_a_later_exception(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    """The call was over when the app failed: the span ended as a success with the stream's last chunk."""
    server.script(Reply("done"))
    with pytest.raises(AppFailed), client.chat.completions.create(model="gpt-4o", messages=USER, stream=True) as s:
        for _ in s:
            pass
        raise AppFailed("after the call")
    span = one_span(cap)
    assert span.status.status_code is StatusCode.UNSET
    assert sc.ERROR_TYPE not in attrs(span)
    assert attrs(span)[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


class CloseFailed(OSError):
    """The connection failed as the SDK closed the response."""


class _BodyFailingToClose(httpx2.SyncByteStream):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __iter__(self) -> Iterator[bytes]:
        yield from self.inner

    def close(self) -> None:
        self.inner.close()
        raise CloseFailed("connection reset while closing the response")


class _AsyncBodyFailingToClose(httpx2.AsyncByteStream):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for piece in self.inner:
            yield piece

    async def aclose(self) -> None:
        await self.inner.aclose()
        raise CloseFailed("connection reset while closing the response")


class CloseFailsTransport(httpx2.HTTPTransport):
    """The real HTTP transport to the loopback server; the response body it hands back fails to close."""

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = super().handle_request(request)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_BodyFailingToClose(response.stream),
            extensions=response.extensions,
        )


class AsyncCloseFailsTransport(httpx2.AsyncHTTPTransport):
    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await super().handle_async_request(request)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_AsyncBodyFailingToClose(response.stream),
            extensions=response.extensions,
        )


@pytest.mark.parametrize("how", ["close", "with", "chat helper", "responses helper"])
def test_a_failure_of_the_sdks_close_fails_the_call(
    cap: Capture, server: LLMServer, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8))
    http_client = openai.DefaultHttpxClient(transport=CloseFailsTransport())
    client = openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0, http_client=http_client)
    with pytest.raises(CloseFailed) as raised:
        if how == "close":
            stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
            next(stream)
            stream.close()
        else:
            with open_stream(client, "chat create" if how == "with" else how) as stream:
                next(iter(stream))
    assert_failed_by(one_span(cap), raised.value, caplog)


async def test_a_failure_of_the_async_sdks_close_fails_the_call(
    cap: Capture, server: LLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8), Reply(LONG_ANSWER, chunks=8))
    http_client = openai.DefaultAsyncHttpxClient(transport=AsyncCloseFailsTransport())
    client = openai.AsyncOpenAI(
        base_url=server.openai_base_url, api_key=API_KEY, max_retries=0, http_client=http_client
    )
    with pytest.raises(CloseFailed) as raised:
        stream = await client.responses.create(model="gpt-4o", input="Weather?", stream=True)
        await stream.__anext__()
        await stream.close()
    assert_failed_by(one_span(cap), raised.value, caplog)


# --------------------------------------------------------------------------------------------------------------------
# A stream that stops early still says why it finished


def test_a_chat_stream_closed_half_way_writes_finish_reason_error(
    cap_content: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8))
    stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    read = ""
    while not read:
        read = next(stream).choices[0].delta.content or ""
    stream.close()
    span = one_span(cap_content)
    [message] = output_messages(span)
    assert message["role"] == "assistant" and message["finish_reason"] == "error"
    assert message["parts"] == [{"type": "text", "content": read}]
    # No finish reason came: the response's own list stays empty, as the official instrumentations leave it.
    assert sc.GEN_AI_RESPONSE_FINISH_REASONS not in attrs(span)


def test_a_chat_stream_cut_by_the_server_writes_finish_reason_error(
    cap_content: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8, abort_stream_after=3))
    with pytest.raises(openai.APIError):
        for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
            pass
    [message] = output_messages(one_span(cap_content))
    assert message["finish_reason"] == "error"


def test_a_responses_stream_closed_half_way_writes_finish_reason_error(
    cap_content: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8))
    stream = client.responses.create(model="gpt-4o", input="Weather?", stream=True)
    for event in stream:
        if event.type == "response.output_text.delta":
            break
    stream.close()
    [message] = output_messages(one_span(cap_content))
    assert message["role"] == "assistant" and message["finish_reason"] == "error"
    assert [p["type"] for p in message["parts"]] == ["text"]


def test_a_finished_stream_keeps_its_own_finish_reason(
    cap_content: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("done"), Reply("done"))
    for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
        pass
    for _ in client.responses.create(model="gpt-4o", input="Weather?", stream=True):
        pass
    assert [output_messages(s)[0]["finish_reason"] for s in llm_spans(cap_content)] == ["stop", "stop"]


# --------------------------------------------------------------------------------------------------------------------
# Parameters sent through `extra_body`


def test_chat_parameters_in_extra_body_are_recorded_as_sent(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    extra = {
        "service_tier": "flex",
        "temperature": 0.2,  # wins over the named temperature below: the SDK sends this one
        "top_p": 0.5,
        "max_completion_tokens": 12,
        "seed": 3,
        "stop": "END",
        "frequency_penalty": 0.1,
        "presence_penalty": 0.2,
        "n": 2,
    }
    client.chat.completions.create(model="gpt-4o", messages=USER, temperature=0.9, extra_body=extra)
    sent = server.requests[0].body
    assert {key: sent[key] for key in extra} == extra
    a = attrs(one_span(cap))
    assert a[sc.OPENAI_REQUEST_SERVICE_TIER] == "flex"
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.2
    assert a[sc.GEN_AI_REQUEST_TOP_P] == 0.5
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 12
    assert a[sc.GEN_AI_REQUEST_SEED] == 3
    assert a[sc.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert a[sc.GEN_AI_REQUEST_FREQUENCY_PENALTY] == 0.1
    assert a[sc.GEN_AI_REQUEST_PRESENCE_PENALTY] == 0.2
    assert a[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert a[sc.GEN_AI_REQUEST_STREAM] is False


def test_responses_and_embeddings_parameters_in_extra_body_are_recorded(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    client.responses.create(
        model="gpt-4o",
        input="Weather?",
        extra_body={"service_tier": "priority", "max_output_tokens": 20, "temperature": 0.4, "conversation": "conv_7"},
    )
    client.embeddings.create(
        model="text-embedding-3-small", input="Paris", extra_body={"dimensions": 8, "encoding_format": "float"}
    )
    responses, embeddings = llm_spans(cap)
    a = attrs(responses)
    assert a[sc.OPENAI_REQUEST_SERVICE_TIER] == "priority"
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 20
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.4
    assert a[sc.GEN_AI_CONVERSATION_ID] == "conv_7"
    e = attrs(embeddings)
    assert e[sc.GEN_AI_REQUEST_ENCODING_FORMATS] == ("float",)
    assert e[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == 8


def test_the_default_service_tier_in_extra_body_is_left_out(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    client.chat.completions.create(
        model="gpt-4o", messages=USER, service_tier="flex", extra_body={"service_tier": "auto"}
    )
    assert server.requests[0].body["service_tier"] == "auto"
    assert sc.OPENAI_REQUEST_SERVICE_TIER not in attrs(one_span(cap))  # "auto" is the default: not recorded


# --------------------------------------------------------------------------------------------------------------------
# agentotel's Anthropic wrappers (SDKs without native tracing), forced onto the real 2.x client


@pytest.fixture
def anthropic_wrapped() -> Iterator[None]:
    instrumentor = AnthropicInstrumentor()
    instrumentor.uninstrument()
    instrumentor.instrument(native=False)
    try:
        yield
    finally:
        instrumentor.uninstrument()
        instrumentor.instrument()


@pytest.fixture
def claude(server: LLMServer) -> Iterator[anthropic.Anthropic]:
    # The SDK's own spans off: only agentotel's wrapper records the calls.
    with anthropic.Anthropic(
        base_url=server.anthropic_base_url, api_key=API_KEY, max_retries=0, open_telemetry=False
    ) as sdk_client:
        yield sdk_client


@pytest.mark.usefixtures("anthropic_wrapped")
@pytest.mark.parametrize("how", ["create", "stream helper"])
def test_anthropic_wrapped_stream_failed_inside_with_is_an_error(
    cap: Capture, server: LLMServer, claude: anthropic.Anthropic, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8))
    request: dict[str, Any] = {"model": ANTHROPIC_MODEL, "max_tokens": 64, "messages": USER}
    opened = claude.messages.create(**request, stream=True) if how == "create" else claude.messages.stream(**request)
    with pytest.raises(AppFailed) as raised, opened as stream:
        for _ in stream:
            raise AppFailed("the app failed while reading the stream")
    assert_failed_by(one_span(cap), raised.value, caplog)


@pytest.mark.usefixtures("anthropic_wrapped")
def test_anthropic_wrapped_stream_closed_half_way_writes_finish_reason_error(
    cap_content: Capture, server: LLMServer, claude: anthropic.Anthropic
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8))
    stream = claude.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=USER, stream=True)
    for event in stream:
        if event.type == "content_block_delta":
            break
    stream.close()
    [message] = output_messages(one_span(cap_content))
    assert message["role"] == "assistant" and message["finish_reason"] == "error"


@pytest.mark.usefixtures("anthropic_wrapped")
def test_anthropic_wrapped_parameters_in_extra_body_are_recorded(
    cap: Capture, server: LLMServer, claude: anthropic.Anthropic
) -> None:
    extra = {"top_k": 5, "temperature": 0.3, "stop_sequences": ["END"], "max_tokens": 32}
    claude.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=USER, extra_body=extra)
    assert {key: server.requests[0].body[key] for key in extra} == extra
    a = attrs(one_span(cap))
    assert a[sc.GEN_AI_REQUEST_TOP_K] == 5
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.3
    assert a[sc.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 32


@pytest.mark.usefixtures("anthropic_wrapped")
@pytest.mark.parametrize("how", ["create", "stream helper"])
async def test_anthropic_wrapped_async_stream_failed_inside_async_with_is_an_error(
    cap: Capture, server: LLMServer, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    server.script(Reply(LONG_ANSWER, chunks=8))
    claude = anthropic.AsyncAnthropic(
        base_url=server.anthropic_base_url, api_key=API_KEY, max_retries=0, open_telemetry=False
    )
    request: dict[str, Any] = {"model": ANTHROPIC_MODEL, "max_tokens": 64, "messages": USER}
    opened = (
        await claude.messages.create(**request, stream=True) if how == "create" else claude.messages.stream(**request)
    )
    with pytest.raises(AppFailed) as raised:
        async with opened as stream:
            async for _ in stream:
                raise AppFailed("the app failed while reading the stream")
    await claude.close()
    assert_failed_by(one_span(cap), raised.value, caplog)
