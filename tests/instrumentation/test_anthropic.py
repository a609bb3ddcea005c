"""The anthropic SDK (2.x, which traces itself) inside agentotel sessions: its own spans, configured by
`AnthropicInstrumentor`, are the session's LLM calls; and agentotel's wrappers, forced onto the same real client,
behave as they do on SDKs without native tracing. Real clients against the local LLM server, no mocks."""

from __future__ import annotations

import gc
import json
import os
import time
import weakref
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import pytest
import wrapt
from anthropic.resources.messages import AsyncMessages, Messages
from genai_prices import Usage, calc_price
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

import agentotel
from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.instrumentation import _anthropic_native as native
from agentotel.instrumentation.anthropic import AnthropicInstrumentor
from agentotel.model import kind_of
from agentotel.pricing import usage_from_attributes
from agentotel.steps import error_type_name
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer, Reply, ToolCall

MODEL = "claude-sonnet-4-6"
API_KEY = "sk-ant-api03-NEVER-RECORD-ME-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
ANSWER = "It is sunny in Paris."


def _pricing_reads_cache_writes() -> bool:
    usage = usage_from_attributes({sc.GEN_AI_USAGE_INPUT_TOKENS: 10, sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 4})
    return usage is not None and usage.cache_write_tokens == 4


cache_writes_priced = pytest.mark.xfail(
    not _pricing_reads_cache_writes(),
    strict=True,
    reason="agentotel.pricing reads cache writes only from the deprecated gen_ai.usage.cache_creation.input_tokens; "
    "the anthropic SDK (and the current conventions) say gen_ai.usage.cache_write.input_tokens",
)


# --------------------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


def sync_client(server: LLMServer, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=API_KEY, max_retries=0, **options)


def async_client(server: LLMServer, **options: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key=API_KEY, max_retries=0, **options)


def llm_spans(cap: Capture) -> list[ReadableSpan]:
    return sorted((s for s in cap.spans if kind_of(s.attributes or {}) == "llm"), key=lambda s: s.start_time or 0)


def only_llm_span(cap: Capture) -> ReadableSpan:
    spans = llm_spans(cap)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def spans_after_collection(cap: Capture, expected: int, abandoned: weakref.ref[Any]) -> list[ReadableSpan]:
    """The LLM spans once the abandoned stream is garbage collected (collections repeated for up to 2 s). On a
    miss, says what still holds the stream, so the failure explains itself."""
    deadline = time.monotonic() + 2.0
    while True:
        gc.collect()
        spans = llm_spans(cap)
        if len(spans) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    alive = abandoned()
    holders = [type(r).__name__ for r in gc.get_referrers(alive)] if alive is not None else []
    assert len(spans) == expected, (f"{len(spans)} of {expected} spans; stream alive={alive is not None}", holders)
    return spans


def cached_reply() -> Reply:
    """120 prompt tokens, 50 of them read from the cache (Anthropic reports 70 + 50), 9 out."""
    return Reply(text=ANSWER, input_tokens=120, output_tokens=9, cached_tokens=50)


def genai_price(input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0) -> float:
    usage = Usage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )
    price: Decimal = calc_price(usage, model_ref=MODEL, provider_id="anthropic").total_price
    return float(price)


def call(client: anthropic.Anthropic, how: str) -> str:
    """Makes one call the way `how` says and returns the text the caller saw."""
    if how == "create":
        return client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES).content[0].text
    if how == "create_stream":
        stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        return "".join(e.delta.text for e in stream if e.type == "content_block_delta")
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as helper:
        return "".join(helper.text_stream)


async def acall(client: anthropic.AsyncAnthropic, how: str) -> str:
    if how == "create":
        return (await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)).content[0].text
    if how == "create_stream":
        stream = await client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        return "".join([e.delta.text async for e in stream if e.type == "content_block_delta"])
    async with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as helper:
        return "".join([piece async for piece in helper.text_stream])


HOWS = ["create", "create_stream", "messages_stream"]


# --------------------------------------------------------------------------------------------------------------------
# native tracing: the SDK's own spans


def test_native_tracing_is_configured_not_wrapped() -> None:
    instrumentor = AnthropicInstrumentor()
    assert instrumentor.instrumentation_dependencies() == ("anthropic >= 0.40",)
    assert native.has_native_tracing()
    assert instrumentor.is_instrumented_by_opentelemetry and instrumentor.mode == "native"
    for owner in (Messages, AsyncMessages):
        for name in ("create", "stream"):
            assert not isinstance(owner.__dict__[name], wrapt.FunctionWrapper)


@pytest.mark.parametrize("how", HOWS)
def test_sync_call_is_one_priced_llm_step_of_the_session(cap: Capture, server: LLMServer, how: str) -> None:
    server.script(cached_reply())
    with agentotel.session("native") as session:
        assert call(sync_client(server), how) == ANSWER
    span = only_llm_span(cap)
    assert_native_span(span, session.id, stream=how != "create")
    assert_session_lists_the_call(cap)


@pytest.mark.parametrize("how", HOWS)
async def test_async_call_is_one_priced_llm_step_of_the_session(cap: Capture, server: LLMServer, how: str) -> None:
    server.script(cached_reply())
    with agentotel.session("native") as session:
        assert await acall(async_client(server), how) == ANSWER
    assert_native_span(only_llm_span(cap), session.id, stream=how != "create")
    assert_session_lists_the_call(cap)


def assert_native_span(span: ReadableSpan, session_id: str, *, stream: bool) -> None:
    attrs = span.attributes or {}
    assert span.name == "anthropic.messages.create" and span.kind is SpanKind.CLIENT
    assert span.instrumentation_scope is not None and span.instrumentation_scope.name.startswith("com.anthropic")
    assert attrs[sc.SESSION_ID] == session_id
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat" and attrs[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs.get(sc.GEN_AI_REQUEST_STREAM, False) is stream
    # The SDK counts cache reads into gen_ai.usage.input_tokens, as the conventions say (Anthropic's own
    # `input_tokens` is the 70 uncached ones).
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 120
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 50
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 9
    assert attrs[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(genai_price(120, 9, cache_read=50), rel=1e-9)
    assert attrs[sc.AGENTOTEL_USAGE_COST_CURRENCY] == "USD"
    for content_key in (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS):
        assert content_key not in attrs


def assert_session_lists_the_call(cap: Capture) -> None:
    session = cap.session("native")
    assert [(e.kind, e.model, e.provider, e.input_tokens, e.output_tokens) for e in session.llm_calls] == [
        ("llm", MODEL, "anthropic", 120, 9)
    ]
    assert session.cost == pytest.approx(genai_price(120, 9, cache_read=50), rel=1e-9)
    assert f"LLM Call ({MODEL})" in session.replay()


@cache_writes_priced
def test_cache_writes_are_priced(cap: Capture, server: LLMServer) -> None:
    server.script(Reply(text=ANSWER, input_tokens=120, output_tokens=9, cached_tokens=50, cache_creation_tokens=30))
    sync_client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    attrs = only_llm_span(cap).attributes or {}
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 120
    assert attrs[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] == 30
    assert attrs[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(genai_price(120, 9, 50, 30), rel=1e-9)


def test_content_follows_capture_content(cap_content: Capture, server: LLMServer) -> None:
    server.script(Reply(text="Let me check.", tool_calls=[ToolCall("toolu_1", "get_weather", {"city": "Paris"})]))
    sync_client(server).messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=MESSAGES)
    attrs = only_llm_span(cap_content).attributes or {}
    assert json.loads(attrs[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]}
    ]
    assert json.loads(attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    parts = json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES])[0]["parts"]
    assert parts[1] == {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}}


def test_user_choices_win_over_capture_content(
    cap_content: Capture, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.script(cached_reply(), cached_reply())
    sync_client(server, open_telemetry={"traces": {"content_mode": "metadata_only"}}).messages.create(
        model=MODEL, max_tokens=64, messages=MESSAGES
    )
    monkeypatch.setenv(native.CONTENT_MODE_ENV, "metadata_only")
    sync_client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    for span in llm_spans(cap_content):
        assert sc.GEN_AI_INPUT_MESSAGES not in (span.attributes or {})
    assert len(llm_spans(cap_content)) == 2


def test_content_mode_is_fixed_when_the_client_is_made(
    cap: Capture, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the SDK documents: a client resolves its option once. One made before capture was on stays metadata-only."""
    server.script(cached_reply(), cached_reply())
    before = sync_client(server)
    monkeypatch.setattr(settings, "capture_content", True)
    after = sync_client(server)
    assert after.open_telemetry["traces"]["content_mode"] == "content"
    assert before.open_telemetry["traces"]["content_mode"] == "metadata_only"
    before.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    after.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    first, second = llm_spans(cap)
    assert sc.GEN_AI_INPUT_MESSAGES not in (first.attributes or {})
    assert sc.GEN_AI_INPUT_MESSAGES in (second.attributes or {})


def test_with_raw_response(cap: Capture, server: LLMServer) -> None:
    server.script(cached_reply())
    with agentotel.session("native") as session:
        raw = sync_client(server).messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        assert raw.parse().content[0].text == ANSWER
    assert_native_span(only_llm_span(cap), session.id, stream=False)


def test_api_error_is_the_sessions_first_error(cap: Capture, server: LLMServer) -> None:
    server.script(Reply(status=429, text="Slow down"))
    with pytest.raises(anthropic.RateLimitError), agentotel.session("native"):
        sync_client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    span = only_llm_span(cap)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[sc.ERROR_TYPE] == "rate_limit_error"
    session = cap.session("native")
    assert session.first_error is not None and session.first_error.span_id == f"{span.context.span_id:016x}"
    assert session.llm_calls[0].cost is None


async def test_timeout_is_recorded(cap: Capture, server: LLMServer) -> None:
    server.script(Reply(text=ANSWER, delay=2.0))
    with pytest.raises(anthropic.APITimeoutError):
        await async_client(server, timeout=0.2).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    span = only_llm_span(cap)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[sc.ERROR_TYPE] == "client_timeout_error"


def test_api_key_is_never_recorded(cap_content: Capture, server: LLMServer) -> None:
    server.script(cached_reply(), cached_reply(), Reply(status=401, text="bad key"))
    client = sync_client(server)
    call(client, "create")
    call(client, "messages_stream")
    with pytest.raises(anthropic.AuthenticationError):
        call(client, "create")
    assert any(API_KEY in value for value in server.requests[0].headers.values())  # the key was sent...
    assert len(cap_content.spans) == 3
    for span in cap_content.spans:
        recorded = json.dumps(dict(span.attributes or {}), default=str)
        recorded += json.dumps([dict(e.attributes or {}) for e in span.events], default=str)
        assert API_KEY not in recorded  # ...and recorded nowhere


def test_native_content_hook_is_removed_by_uninstrument(monkeypatch: pytest.MonkeyPatch) -> None:
    import anthropic._tracing as sdk_tracing

    instrumentor = AnthropicInstrumentor()
    hooked = sdk_tracing.env_open_telemetry
    assert isinstance(hooked, wrapt.FunctionWrapper)
    instrumentor.uninstrument()
    try:
        assert sdk_tracing.env_open_telemetry is hooked.__wrapped__
        assert instrumentor.mode is None
        monkeypatch.setattr(settings, "capture_content", True)
        assert "content_mode" not in sdk_tracing.env_open_telemetry()["traces"]
    finally:
        instrumentor.instrument()
    assert instrumentor.mode == "native" and isinstance(sdk_tracing.env_open_telemetry, wrapt.FunctionWrapper)


def test_environment_fallback_sets_only_an_unset_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An SDK without the options function gets the documented variable, removed again on uninstall."""
    monkeypatch.setattr(native, "_ENV_OPTIONS_FUNCTION", "no_such_function")
    monkeypatch.setattr(settings, "capture_content", True)
    monkeypatch.delenv(native.CONTENT_MODE_ENV, raising=False)
    mode = native.NativeContentMode()
    mode.install()
    assert mode.how == "environment" and os.environ[native.CONTENT_MODE_ENV] == "content"
    mode.uninstall()
    assert native.CONTENT_MODE_ENV not in os.environ
    monkeypatch.setenv(native.CONTENT_MODE_ENV, "metadata_only")
    mode.install()
    assert mode.how is None and os.environ[native.CONTENT_MODE_ENV] == "metadata_only"
    mode.uninstall()
    assert os.environ[native.CONTENT_MODE_ENV] == "metadata_only"


# --------------------------------------------------------------------------------------------------------------------
# agentotel's wrappers (what SDKs without native tracing get), forced onto the real 2.x client


@pytest.fixture
def wrapped_mode() -> Iterator[AnthropicInstrumentor]:
    instrumentor = AnthropicInstrumentor()
    instrumentor.uninstrument()
    instrumentor.instrument(native=False)
    try:
        yield instrumentor
    finally:
        instrumentor.uninstrument()
        instrumentor.instrument()


def untraced_sync(server: LLMServer) -> anthropic.Anthropic:
    """A client whose own spans are off, so that only agentotel's wrapper records its calls."""
    return sync_client(server, open_telemetry=False)


def assert_wrapper_span(span: ReadableSpan, session_id: str, *, stream: bool) -> None:
    attrs = span.attributes or {}
    assert span.name == f"chat {MODEL}" and span.kind is SpanKind.CLIENT and span.end_time is not None
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "agentotel.instrumentation.anthropic"
    assert attrs[sc.AGENTOTEL_STEP_KIND] == "llm" and attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "anthropic" and attrs[sc.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64 and attrs.get(sc.GEN_AI_REQUEST_STREAM, False) is stream
    assert attrs[sc.SESSION_ID] == session_id
    assert attrs[sc.GEN_AI_RESPONSE_MODEL] == MODEL and str(attrs[sc.GEN_AI_RESPONSE_ID]).startswith("msg_")
    assert list(attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 120
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 50
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 9
    assert attrs[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(genai_price(120, 9, cache_read=50), rel=1e-9)
    assert sc.GEN_AI_INPUT_MESSAGES not in attrs
    assert span.status.status_code is not StatusCode.ERROR


@pytest.mark.parametrize("how", HOWS)
def test_wrapper_sync(wrapped_mode: AnthropicInstrumentor, cap: Capture, server: LLMServer, how: str) -> None:
    assert wrapped_mode.mode == "wrapped"
    server.script(cached_reply())
    with agentotel.session("wrapped") as session:
        assert call(untraced_sync(server), how) == ANSWER
    assert_wrapper_span(only_llm_span(cap), session.id, stream=how != "create")
    assert [e.name for e in cap.session("wrapped").llm_calls] == [f"chat {MODEL}"]


@pytest.mark.parametrize("how", HOWS)
async def test_wrapper_async(wrapped_mode: AnthropicInstrumentor, cap: Capture, server: LLMServer, how: str) -> None:
    server.script(cached_reply())
    with agentotel.session("wrapped") as session:
        assert await acall(async_client(server, open_telemetry=False), how) == ANSWER
    assert_wrapper_span(only_llm_span(cap), session.id, stream=how != "create")


def test_wrapper_raw_response(wrapped_mode: AnthropicInstrumentor, cap: Capture, server: LLMServer) -> None:
    server.script(cached_reply())
    with agentotel.session("wrapped") as session:
        raw = untraced_sync(server).messages.with_raw_response.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        message = raw.parse()
    assert message.content[0].text == ANSWER and raw.parse() is message
    assert_wrapper_span(only_llm_span(cap), session.id, stream=False)


def test_wrapper_content(wrapped_mode: AnthropicInstrumentor, cap_content: Capture, server: LLMServer) -> None:
    reply = Reply(text="Checking.", tool_calls=[ToolCall("toolu_9", "get_weather", {"city": "Oslo"})])
    server.script(reply, reply)
    client = untraced_sync(server)
    client.messages.create(
        model=MODEL, max_tokens=64, system=[{"type": "text", "text": "Be brief."}], messages=MESSAGES
    )
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as helper:
        helper.until_done()
    expected_output = [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Checking."},
                {"type": "tool_call", "id": "toolu_9", "name": "get_weather", "arguments": {"city": "Oslo"}},
            ],
            "finish_reason": "tool_call",
        }
    ]
    plain, streamed = llm_spans(cap_content)
    for span in (plain, streamed):
        attrs = span.attributes or {}
        assert json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES]) == expected_output
        assert json.loads(attrs[sc.GEN_AI_INPUT_MESSAGES])[0]["parts"][0]["content"] == MESSAGES[0]["content"]
    assert json.loads((plain.attributes or {})[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [
        {"type": "text", "content": "Be brief."}
    ]


def test_wrapper_errors_are_recorded_and_reraised_unchanged(
    wrapped_mode: AnthropicInstrumentor, cap: Capture, server: LLMServer
) -> None:
    server.script(Reply(status=529, text="Overloaded"), Reply(text="one two three four", abort_stream_after=1))
    client = untraced_sync(server)
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert raised.value.status_code == 529
    stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    with pytest.raises(Exception) as cut:  # the transport's own error, whatever its type
        for _ in stream:
            pass
    status_error, cut_stream = llm_spans(cap)
    assert status_error.status.status_code is StatusCode.ERROR
    assert (status_error.attributes or {})[sc.ERROR_TYPE] == error_type_name(raised.value)
    assert cut_stream.status.status_code is StatusCode.ERROR
    assert (cut_stream.attributes or {})[sc.ERROR_TYPE] == error_type_name(cut.value)
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in (cut_stream.attributes or {})


def test_wrapper_streams_end_their_span_exactly_once(
    wrapped_mode: AnthropicInstrumentor, cap: Capture, server: LLMServer
) -> None:
    server.script(cached_reply(), cached_reply(), cached_reply())
    client = untraced_sync(server)
    closed = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    next(iter(closed))
    closed.close()
    closed.close()
    with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as helper:
        next(iter(helper))  # leaves the block with the stream unread
    abandoned = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    next(iter(abandoned))
    watched = weakref.ref(abandoned)
    del abandoned
    spans = spans_after_collection(cap, 3, watched)
    assert all(s.end_time is not None for s in spans)
    assert all(s.status.status_code is not StatusCode.ERROR for s in spans)


def test_uninstrument_restores_the_sdk_exactly() -> None:
    originals = {(o, n): o.__dict__[n] for o in (Messages, AsyncMessages) for n in ("create", "stream")}
    instrumentor = AnthropicInstrumentor()
    instrumentor.uninstrument()
    instrumentor.instrument(native=False)
    try:
        for (owner, name), original in originals.items():
            assert isinstance(owner.__dict__[name], wrapt.FunctionWrapper)
            assert owner.__dict__[name].__wrapped__ is original
    finally:
        instrumentor.uninstrument()
        for (owner, name), original in originals.items():
            assert owner.__dict__[name] is original
        instrumentor.instrument()


def test_wrapper_faults_never_reach_the_caller(
    wrapped_mode: AnthropicInstrumentor, cap: Capture, server: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentotel.instrumentation import _anthropic_wrappers as wrappers

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("agentotel bug")

    server.script(cached_reply(), cached_reply(), cached_reply())
    client = untraced_sync(server)
    monkeypatch.setattr(wrappers.MessageAccumulator, "add", broken)
    monkeypatch.setattr(wrappers, "record_message", broken)
    assert call(client, "create") == ANSWER
    assert call(client, "create_stream") == ANSWER
    spans = llm_spans(cap)
    assert len(spans) == 2 and all(s.end_time is not None for s in spans)
    monkeypatch.setattr(wrappers, "request_attributes", broken)
    assert call(client, "messages_stream") == ANSWER  # untraced, but answered
    assert len(llm_spans(cap)) == 2


def test_wrapper_input_messages_follow_the_genai_schema(
    wrapped_mode: AnthropicInstrumentor, cap_content: Capture, server: LLMServer
) -> None:
    conversation: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture, and the weather?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Need the weather.", "signature": "sig"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
    ]
    server.script(cached_reply())
    untraced_sync(server).messages.create(model=MODEL, max_tokens=64, messages=conversation)
    assert json.loads((only_llm_span(cap_content).attributes or {})[sc.GEN_AI_INPUT_MESSAGES]) == [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is in this picture, and the weather?"},
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0KGgo="},
            ],
        },
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "Need the weather."},
                {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
            ],
        },
        {"role": "user", "parts": [{"type": "tool_call_response", "id": "toolu_1", "response": "sunny"}]},
    ]
