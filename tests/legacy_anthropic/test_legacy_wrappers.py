"""agentotel's wrappers on an anthropic SDK without native tracing (run by `.ci/legacy-anthropic.sh`): a real old
client against the local LLM server, plain and streamed, sync and async."""

from __future__ import annotations

import gc
import inspect
import json
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
from agentotel.instrumentation._anthropic_native import has_native_tracing
from agentotel.instrumentation.anthropic import AnthropicInstrumentor
from agentotel.model import kind_of
from agentotel.steps import error_type_name
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer, Reply, ToolCall

MODEL = "claude-sonnet-4-6"
API_KEY = "sk-ant-legacy-SECRET-0123456789"
MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_this_sdk_has_no_native_tracing() -> None:
    assert not has_native_tracing(), f"anthropic {anthropic.__version__} traces itself: wrong SDK for these tests"
    assert AnthropicInstrumentor().mode == "wrapped"
    assert isinstance(Messages.__dict__["create"], wrapt.FunctionWrapper)


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


def client(server: LLMServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_base_url, api_key=API_KEY, max_retries=0)


def async_client(server: LLMServer) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key=API_KEY, max_retries=0)


def llm_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans if kind_of(s.attributes or {}) == "llm"]


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


def cached_reply(text: str = "It is sunny in Paris.") -> Reply:
    return Reply(text=text, input_tokens=120, output_tokens=9, cached_tokens=50)


def expected_cost(input_tokens: int, output_tokens: int, cache_read: int) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read)
    price: Decimal = calc_price(usage, model_ref=MODEL, provider_id="anthropic").total_price
    return float(price)


def assert_call_span(span: ReadableSpan, *, stream: bool, session_id: str) -> None:
    attrs = span.attributes or {}
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    assert span.end_time is not None
    assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[sc.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[sc.AGENTOTEL_STEP_KIND] == "llm"
    assert attrs[sc.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert attrs.get(sc.GEN_AI_REQUEST_STREAM, False) is stream
    assert attrs[sc.SESSION_ID] == session_id
    assert attrs[sc.GEN_AI_RESPONSE_MODEL] == MODEL
    assert str(attrs[sc.GEN_AI_RESPONSE_ID]).startswith("msg_llmserver")
    assert list(attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["end_turn"]
    # Anthropic reports 70 uncached + 50 read from the cache; the conventions count both as input.
    assert attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] == 120
    assert attrs[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 50
    assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 9
    assert attrs[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(expected_cost(120, 9, 50), rel=1e-9)
    assert sc.GEN_AI_INPUT_MESSAGES not in attrs and sc.GEN_AI_OUTPUT_MESSAGES not in attrs
    assert span.status.status_code is not StatusCode.ERROR


def test_create(cap: Capture, server: LLMServer) -> None:
    server.script(cached_reply())
    with agentotel.session("legacy") as session:
        message = client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert message.content[0].text == "It is sunny in Paris."
    assert_call_span(only_llm_span(cap), stream=False, session_id=session.id)
    rebuilt = cap.session("legacy")
    assert [(e.model, e.input_tokens, e.output_tokens) for e in rebuilt.llm_calls] == [(MODEL, 120, 9)]
    assert f"LLM Call ({MODEL})" in rebuilt.replay()


def test_request_parameters(cap: Capture, server: LLMServer) -> None:
    server.script(cached_reply())
    extra: dict[str, Any] = {"stop_sequences": ["END"]}
    if "temperature" in inspect.signature(Messages.create).parameters:
        extra.update(temperature=0.25, top_k=5, top_p=0.9)
    client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, **extra)
    attrs = only_llm_span(cap).attributes or {}
    assert list(attrs[sc.GEN_AI_REQUEST_STOP_SEQUENCES]) == ["END"]
    assert server.requests[-1].body["stop_sequences"] == ["END"]
    if "temperature" in extra:
        assert attrs[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.25
        assert attrs[sc.GEN_AI_REQUEST_TOP_K] == 5.0
        assert attrs[sc.GEN_AI_REQUEST_TOP_P] == 0.9


def test_create_stream(cap: Capture, server: LLMServer) -> None:
    server.script(cached_reply())
    with agentotel.session("legacy") as session:
        stream = client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        kinds = [event.type for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    span = only_llm_span(cap)
    assert_call_span(span, stream=True, session_id=session.id)
    assert (span.attributes or {})[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0


def test_messages_stream_helper(cap: Capture, server: LLMServer) -> None:
    server.script(cached_reply())
    c = client(server)
    with agentotel.session("legacy") as session, c.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "It is sunny in Paris." and final.stop_reason == "end_turn"
    assert_call_span(only_llm_span(cap), stream=True, session_id=session.id)


async def test_async_create_and_streams(cap: Capture, server: LLMServer) -> None:
    server.script(cached_reply(), cached_reply(), cached_reply())
    aclient = async_client(server)
    with agentotel.session("legacy") as session:
        message = await aclient.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        stream = await aclient.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
        kinds = [event.type async for event in stream]
        async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as helper:
            text = "".join([piece async for piece in helper.text_stream])
    assert message.content[0].text == text == "It is sunny in Paris." and kinds[-1] == "message_stop"
    spans = sorted(llm_spans(cap), key=lambda s: s.start_time or 0)
    assert len(spans) == 3
    for span, stream_flag in zip(spans, (False, True, True), strict=True):
        assert_call_span(span, stream=stream_flag, session_id=session.id)


def test_content_when_captured(cap_content: Capture, server: LLMServer) -> None:
    server.script(Reply(text="Let me check.", tool_calls=[ToolCall("toolu_1", "get_weather", {"city": "Paris"})]))
    client(server).messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=MESSAGES)
    attrs = only_llm_span(cap_content).attributes or {}
    assert json.loads(attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS]) == [{"type": "text", "content": "Be brief."}]
    assert json.loads(attrs[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather in Paris?"}]}
    ]
    output = json.loads(attrs[sc.GEN_AI_OUTPUT_MESSAGES])
    assert output == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "Let me check."},
                {"type": "tool_call", "id": "toolu_1", "name": "get_weather", "arguments": {"city": "Paris"}},
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert list(attrs[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ["tool_use"]


def test_streamed_content_when_captured(cap_content: Capture, server: LLMServer) -> None:
    server.script(Reply(text="Checking now.", tool_calls=[ToolCall("toolu_2", "get_weather", {"city": "Oslo"})]))
    stream = client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    for _ in stream:
        pass
    output = json.loads((only_llm_span(cap_content).attributes or {})[sc.GEN_AI_OUTPUT_MESSAGES])
    assert output[0]["parts"] == [
        {"type": "text", "content": "Checking now."},
        {"type": "tool_call", "id": "toolu_2", "name": "get_weather", "arguments": {"city": "Oslo"}},
    ]


def test_error_is_recorded_and_reraised(cap: Capture, server: LLMServer) -> None:
    server.script(Reply(status=529, text="Overloaded"))
    with pytest.raises(anthropic.APIStatusError) as raised:
        client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    assert raised.value.status_code == 529
    span = only_llm_span(cap)
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[sc.ERROR_TYPE] == error_type_name(raised.value)
    assert [e.name for e in span.events] == ["exception"]


def test_stream_cut_mid_way_records_the_error_once(cap: Capture, server: LLMServer) -> None:
    server.script(Reply(text="one two three four", abort_stream_after=1))
    stream = client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    with pytest.raises(Exception):  # noqa: B017 - each SDK release raises its own transport error here
        for _ in stream:
            pass
    stream.close()
    span = only_llm_span(cap)
    assert span.status.status_code is StatusCode.ERROR
    assert sc.GEN_AI_USAGE_OUTPUT_TOKENS not in (span.attributes or {})


def test_abandoned_and_closed_streams_end_their_span_once(cap: Capture, server: LLMServer) -> None:
    server.script(cached_reply(), cached_reply())
    c = client(server)
    stream = c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    next(iter(stream))
    stream.close()
    stream.close()
    abandoned = c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)
    next(iter(abandoned))
    watched = weakref.ref(abandoned)
    del abandoned
    spans = spans_after_collection(cap, 2, watched)
    assert all(s.end_time is not None for s in spans)


def test_uninstrument_restores_the_sdk_exactly(cap: Capture, server: LLMServer) -> None:
    instrumentor = AnthropicInstrumentor()
    places = [(owner, name) for owner in (Messages, AsyncMessages) for name in ("create", "stream")]
    wrappers = {place: place[0].__dict__[place[1]] for place in places}
    assert all(isinstance(w, wrapt.FunctionWrapper) for w in wrappers.values())
    instrumentor.uninstrument()
    try:
        for (owner, name), wrapper in wrappers.items():
            assert owner.__dict__[name] is wrapper.__wrapped__
        server.script(cached_reply())
        client(server).messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        assert llm_spans(cap) == []
    finally:
        instrumentor.instrument()
    assert AnthropicInstrumentor().mode == "wrapped"


def test_api_key_is_never_recorded(cap_content: Capture, server: LLMServer) -> None:
    server.script(cached_reply(), cached_reply())
    c = client(server)
    c.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
    with c.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES) as stream:
        stream.until_done()
    assert any(API_KEY in value for value in server.requests[0].headers.values())  # the key was sent...
    for span in cap_content.spans:  # ...and recorded nowhere
        assert API_KEY not in json.dumps(dict(span.attributes or {}), default=str)


def test_beta_messages_are_traced_like_messages(cap: Capture, server: LLMServer) -> None:
    beta = pytest.importorskip("anthropic.resources.beta.messages.messages")
    if not callable(beta.Messages.__dict__.get("create")):
        pytest.skip(f"anthropic {anthropic.__version__} has no beta messages")
    assert isinstance(beta.Messages.__dict__["create"], wrapt.FunctionWrapper)
    server.script(cached_reply(), cached_reply())
    c = client(server)
    with agentotel.session("legacy-beta") as session:
        message = c.beta.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES)
        kinds = [e.type for e in c.beta.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES, stream=True)]
    assert message.content[0].text == "It is sunny in Paris."
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    plain, streamed = sorted(llm_spans(cap), key=lambda s: s.start_time or 0)
    assert_call_span(plain, stream=False, session_id=session.id)
    assert_call_span(streamed, stream=True, session_id=session.id)
    assert len(cap.session("legacy-beta").llm_calls) == 2
