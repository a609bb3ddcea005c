"""The OpenAI instrumentor, tested with the real `openai` SDK (sync and async) against the local `LLMServer`.

Every test checks what a user of the spans relies on: one CLIENT span per call with the GenAI attributes, usage and
cost; streams whose span ends exactly once however they end; errors recorded and re-raised unchanged; content only
when asked for; no API key anywhere; the instrumentor's own faults never reaching the caller.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from genai_prices import Usage, calc_price
from openai.resources.chat.completions.completions import AsyncCompletions, Completions
from openai.resources.embeddings import AsyncEmbeddings, Embeddings
from openai.resources.responses.responses import AsyncResponses, Responses
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from pydantic import BaseModel

import agentotel
from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.instrumentation import _openai_attributes
from agentotel.instrumentation import openai as openai_instrumentation
from agentotel.instrumentation.openai import OpenAIInstrumentor
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer, Reply, ToolCall

API_KEY = "sk-test-SECRET-0123456789"
CONTENT_KEYS = (
    sc.GEN_AI_INPUT_MESSAGES,
    sc.GEN_AI_OUTPUT_MESSAGES,
    sc.GEN_AI_SYSTEM_INSTRUCTIONS,
    sc.GEN_AI_TOOL_DEFINITIONS,
)
USER = [{"role": "user", "content": "What is the weather in Paris?"}]


class Weather(BaseModel):
    city: str
    sunny: bool


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def client(server: LLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0) as sdk_client:
        yield sdk_client


@pytest.fixture
def aclient(server: LLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0)


def llm_spans(cap: Capture) -> list[ReadableSpan]:
    return [s for s in cap.spans if (s.attributes or {}).get(sc.AGENTOTEL_STEP_KIND) == "llm"]


def one_span(cap: Capture) -> ReadableSpan:
    spans = llm_spans(cap)
    assert len(spans) == 1, [s.name for s in spans]
    return spans[0]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def price(model: str, input_tokens: int, output_tokens: int, cached: int = 0) -> float:
    usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached)
    return float(calc_price(usage, model_ref=model, provider_id="openai").total_price)


def assert_common(span: ReadableSpan, server: LLMServer, operation: str = "chat", model: str = "gpt-4o") -> None:
    a = attrs(span)
    assert span.name == f"{operation} {model}"
    assert span.kind is SpanKind.CLIENT
    assert span.end_time is not None
    assert a[sc.GEN_AI_OPERATION_NAME] == operation
    assert a[sc.GEN_AI_PROVIDER_NAME] == "openai"
    assert a[sc.AGENTOTEL_STEP_KIND] == "llm"
    assert a[sc.GEN_AI_REQUEST_MODEL] == model
    assert a[sc.SERVER_ADDRESS] == "127.0.0.1"
    assert a[sc.SERVER_PORT] == int(server.url.rsplit(":", 1)[1])


def assert_no_content(span: ReadableSpan) -> None:
    for key in CONTENT_KEYS:
        assert key not in attrs(span), key


def messages(span: ReadableSpan, key: str) -> Any:
    return json.loads(attrs(span)[key])


# --------------------------------------------------------------------------------------------------------------------
# Chat Completions


def test_chat_create_records_request_response_usage_and_cost(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("It is sunny.", input_tokens=120, output_tokens=30, cached_tokens=100, reasoning_tokens=12))
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("outer") as outer:
        completion = client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            temperature=0.25,
            top_p=0.5,
            max_completion_tokens=64,
            frequency_penalty=0.5,
            presence_penalty=-0.5,
            stop=["END"],
            seed=7,
            n=2,
            service_tier="flex",
        )
    assert completion.choices[0].message.content == "It is sunny."
    span = one_span(cap)
    assert_common(span, server)
    assert span.parent is not None and span.parent.span_id == outer.get_span_context().span_id
    a = attrs(span)
    assert a[sc.GEN_AI_REQUEST_TEMPERATURE] == 0.25
    assert a[sc.GEN_AI_REQUEST_TOP_P] == 0.5
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 64
    assert a[sc.GEN_AI_REQUEST_FREQUENCY_PENALTY] == 0.5
    assert a[sc.GEN_AI_REQUEST_PRESENCE_PENALTY] == -0.5
    assert a[sc.GEN_AI_REQUEST_STOP_SEQUENCES] == ("END",)
    assert a[sc.GEN_AI_REQUEST_SEED] == 7
    assert a[sc.GEN_AI_REQUEST_CHOICE_COUNT] == 2
    assert a[sc.GEN_AI_REQUEST_STREAM] is False
    assert a[sc.OPENAI_REQUEST_SERVICE_TIER] == "flex"
    assert a[sc.GEN_AI_RESPONSE_ID] == completion.id
    assert a[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o"
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 120  # cached tokens included, as the conventions define it
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 30
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 100
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 12
    assert a[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(price("gpt-4o", 120, 30, cached=100), abs=1e-12)
    assert a[sc.AGENTOTEL_USAGE_COST_CURRENCY] == "USD"
    assert span.status.status_code is StatusCode.UNSET
    assert_no_content(span)


def test_chat_create_records_the_tool_calls_the_model_asked_for(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply(tool_calls=[ToolCall("call_1", "get_weather", {"city": "Paris"}), ToolCall("call_2", "now")]))
    client.chat.completions.create(model="gpt-4o", messages=USER)
    a = attrs(one_span(cap))
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert a[sc.AGENTOTEL_RESPONSE_TOOL_CALL_NAMES] == ("get_weather", "now")
    assert a[sc.AGENTOTEL_RESPONSE_TOOL_CALL_IDS] == ("call_1", "call_2")
    assert "Paris" not in json.dumps(a)  # arguments are content: off by default


def test_chat_stream_ends_its_span_when_exhausted_with_usage_and_time_to_first_chunk(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(
        Reply("one two three", input_tokens=50, output_tokens=9, cached_tokens=20, reasoning_tokens=4, chunks=3)
    )
    stream = client.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.Stream)
    assert llm_spans(cap) == []  # open while the stream is read
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "one two three"
    span = one_span(cap)
    assert_common(span, server)
    a = attrs(span)
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 50
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 9
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 20
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 4
    assert a[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(price("gpt-4o", 50, 9, cached=20), abs=1e-12)
    ttfc = a[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]
    assert 0 < ttfc <= (span.end_time - span.start_time) / 1e9  # type: ignore[operator]
    stream.close()  # closing after the end changes nothing
    assert len(llm_spans(cap)) == 1


def test_chat_stream_without_include_usage_has_no_tokens_and_no_cost(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("hi", tool_calls=[ToolCall("call_9", "lookup", {"q": "x"})]))
    for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
        pass
    a = attrs(one_span(cap))
    assert sc.GEN_AI_USAGE_INPUT_TOKENS not in a
    assert sc.AGENTOTEL_USAGE_COST_AMOUNT not in a
    assert a[sc.AGENTOTEL_RESPONSE_TOOL_CALL_NAMES] == ("lookup",)
    assert a[sc.AGENTOTEL_RESPONSE_TOOL_CALL_IDS] == ("call_9",)
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)


def test_chat_stream_used_as_context_manager_ends_once_on_exit(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("a b c d e f"))
    with client.chat.completions.create(model="gpt-4o", messages=USER, stream=True) as stream:
        next(iter(stream))
        assert llm_spans(cap) == []
    span = one_span(cap)
    assert span.status.status_code is StatusCode.UNSET
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs(span)


def test_chat_stream_closed_early_ends_once(
    cap: Capture, server: LLMServer, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(Reply("a b c d e f"))
    stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    next(stream)
    stream.close()
    stream.close()
    assert len(llm_spans(cap)) == 1
    del stream
    gc.collect()
    assert len(llm_spans(cap)) == 1
    assert_never_ended_twice(caplog)


def assert_never_ended_twice(caplog: pytest.LogCaptureFixture) -> None:
    # The SDK drops a second end() with a warning: there must be none.
    assert not [r for r in caplog.records if "ended span" in r.getMessage()]


def test_abandoned_stream_ends_its_span_once_when_collected(
    cap: Capture, server: LLMServer, client: openai.OpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    server.script(Reply("a b c d e f"), Reply("g h i"))
    stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    next(stream)
    unread = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    assert llm_spans(cap) == []
    del stream, unread
    gc.collect()
    spans = llm_spans(cap)
    assert len(spans) == 2
    assert all(s.end_time is not None for s in spans)
    gc.collect()
    assert len(llm_spans(cap)) == 2
    assert_never_ended_twice(caplog)


def test_stream_cut_by_the_server_records_the_error_and_reraises(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("a b c d e f", abort_stream_after=2))
    stream = client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    with pytest.raises(openai.APIError) as raised:
        for _ in stream:
            pass
    span = one_span(cap)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[sc.ERROR_TYPE] == f"openai.{type(raised.value).__name__}"
    assert [e.name for e in span.events] == ["exception"]


def test_chat_stream_helper_makes_one_span(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("x y z", input_tokens=10, output_tokens=3))
    with client.chat.completions.stream(
        model="gpt-4o", messages=USER, stream_options={"include_usage": True}
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "x y z"
    assert len(server.requests) == 1
    a = attrs(one_span(cap))
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 10
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


def test_chat_stream_helper_left_early_ends_the_span(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("a b c d e f g h"))
    with client.chat.completions.stream(model="gpt-4o", messages=USER) as stream:
        for _ in stream:
            break
        assert llm_spans(cap) == []
    # The helper's close() closes the HTTP response itself; the span must end with it, not at collection time.
    assert len(llm_spans(cap)) == 1


def test_chat_parse_records_json_output(cap_content: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply('{"city": "Paris", "sunny": true}', input_tokens=30, output_tokens=8))
    completion = client.chat.completions.parse(model="gpt-4o", messages=USER, response_format=Weather)
    assert completion.choices[0].message.parsed == Weather(city="Paris", sunny=True)
    span = one_span(cap_content)
    a = attrs(span)
    assert a[sc.GEN_AI_OUTPUT_TYPE] == "json"
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 8
    out = messages(span, sc.GEN_AI_OUTPUT_MESSAGES)
    assert out == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": '{"city": "Paris", "sunny": true}'}],
            "finish_reason": "stop",
        }
    ]


def test_chat_parse_length_error_keeps_usage_and_is_reraised(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply('{"city": "Par', finish_reason="length", input_tokens=30, output_tokens=5))
    with pytest.raises(openai.LengthFinishReasonError):
        client.chat.completions.parse(model="gpt-4o", messages=USER, response_format=Weather)
    a = attrs(one_span(cap))
    assert a[sc.ERROR_TYPE] == "openai.LengthFinishReasonError"
    assert a[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 5
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("length",)


# --------------------------------------------------------------------------------------------------------------------
# Raw responses


def test_with_raw_response_makes_exactly_one_span(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("raw", input_tokens=11, output_tokens=2))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert raw.headers.get("content-type", "").startswith("application/json")
    assert raw.parse().choices[0].message.content == "raw"
    assert len(server.requests) == 1
    a = attrs(one_span(cap))
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 11
    assert a[sc.GEN_AI_RESPONSE_ID] == raw.parse().id


def test_with_streaming_response_makes_exactly_one_span(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("streamed raw", input_tokens=12, output_tokens=3))
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=USER) as response:
        assert llm_spans(cap) == []  # the body is not read yet
        completion = response.parse()
    assert completion.choices[0].message.content == "streamed raw"
    assert len(server.requests) == 1
    a = attrs(one_span(cap))
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 12
    assert a[sc.GEN_AI_RESPONSE_ID] == completion.id


def test_with_streaming_response_read_as_json_still_records_usage(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("as json", input_tokens=13, output_tokens=2))
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=USER) as response:
        body = response.json()
    assert body["choices"][0]["message"]["content"] == "as json"  # type: ignore[index]
    assert attrs(one_span(cap))[sc.GEN_AI_USAGE_INPUT_TOKENS] == 13


def test_raw_response_of_a_stream_hands_the_span_to_the_parsed_stream(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("a b c", input_tokens=7, output_tokens=3))
    stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
    ).parse()
    gc.collect()  # the raw response is gone: the span must stay open for the stream
    assert llm_spans(cap) == []
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == "a b c"
    a = attrs(one_span(cap))
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 7
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a
    assert len(server.requests) == 1


def test_streaming_response_of_a_stream_ends_when_the_block_exits(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("a b c d e f"))
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=USER, stream=True) as resp:
        stream = resp.parse()
        next(iter(stream))
        assert llm_spans(cap) == []
    assert len(llm_spans(cap)) == 1
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs(one_span(cap))


# --------------------------------------------------------------------------------------------------------------------
# Responses and embeddings


def test_responses_create(cap_content: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("Sunny.", input_tokens=40, output_tokens=6, cached_tokens=10, reasoning_tokens=2))
    response = client.responses.create(
        model="gpt-4o",
        input="Weather in Paris?",
        instructions="Answer briefly.",
        max_output_tokens=50,
        conversation="conv_42",
    )
    assert response.output_text == "Sunny."
    span = one_span(cap_content)
    assert_common(span, server)
    a = attrs(span)
    assert a[sc.GEN_AI_REQUEST_MAX_TOKENS] == 50
    assert a[sc.GEN_AI_CONVERSATION_ID] == "conv_42"
    assert a[sc.GEN_AI_RESPONSE_ID] == response.id
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 40
    assert a[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 10
    assert a[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 2
    assert a[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(price("gpt-4o", 40, 6, cached=10), abs=1e-12)
    assert messages(span, sc.GEN_AI_SYSTEM_INSTRUCTIONS) == [{"type": "text", "content": "Answer briefly."}]
    assert messages(span, sc.GEN_AI_INPUT_MESSAGES) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]}
    ]
    assert messages(span, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Sunny."}], "finish_reason": "stop"}
    ]


def test_responses_create_stream_and_tool_calls(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply(tool_calls=[ToolCall("call_7", "get_weather", {"city": "Oslo"})], input_tokens=9))
    events = [event.type for event in client.responses.create(model="gpt-4o", input="Oslo?", stream=True)]
    assert events[-1] == "response.completed"
    a = attrs(one_span(cap))
    assert a[sc.GEN_AI_REQUEST_STREAM] is True
    assert a[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("tool_calls",)
    assert a[sc.AGENTOTEL_RESPONSE_TOOL_CALL_NAMES] == ("get_weather",)
    assert a[sc.AGENTOTEL_RESPONSE_TOOL_CALL_IDS] == ("call_7",)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 9
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in a


def test_responses_stream_helper_and_parse(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("streamed"), Reply('{"city": "Rome", "sunny": false}'))
    with client.responses.stream(model="gpt-4o", input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "streamed"
    parsed = client.responses.parse(model="gpt-4o", input="Rome?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Rome", sunny=False)
    assert len(server.requests) == 2
    spans = llm_spans(cap)
    assert len(spans) == 2
    assert attrs(spans[0])[sc.GEN_AI_REQUEST_STREAM] is True
    assert attrs(spans[1])[sc.GEN_AI_OUTPUT_TYPE] == "json"
    assert all(attrs(s)[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",) for s in spans)


def test_responses_stream_helper_left_early_ends_the_span(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("a b c d e f g h"))
    with client.responses.stream(model="gpt-4o", input="hi") as stream:
        for _ in stream:
            break
    assert len(llm_spans(cap)) == 1


def test_embeddings_create(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply(input_tokens=10))
    result = client.embeddings.create(model="text-embedding-3-small", input="hello", encoding_format="float")
    span = one_span(cap)
    assert_common(span, server, operation="embeddings", model="text-embedding-3-small")
    a = attrs(span)
    assert a[sc.GEN_AI_USAGE_INPUT_TOKENS] == 10
    assert a[sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT] == len(result.data[0].embedding)
    assert a[sc.GEN_AI_REQUEST_ENCODING_FORMATS] == ("float",)
    expected = price("text-embedding-3-small", 10, 0)
    assert a[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(expected, abs=1e-12)


# --------------------------------------------------------------------------------------------------------------------
# Errors


def test_rate_limit_is_recorded_and_reraised_unchanged(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply(status=429, text="slow down"))
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert raised.value.status_code == 429
    span = one_span(cap)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[sc.ERROR_TYPE] == "openai.RateLimitError"
    (event,) = span.events
    assert event.name == "exception"
    assert (event.attributes or {})["exception.type"] == "openai.RateLimitError"


def test_timeout_is_recorded(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("late", delay=2.0))
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o", messages=USER, timeout=0.2)
    span = one_span(cap)
    assert span.status.status_code is StatusCode.ERROR
    assert attrs(span)[sc.ERROR_TYPE] == "openai.APITimeoutError"


def test_stream_request_error_is_recorded(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply(status=500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    assert attrs(one_span(cap))[sc.ERROR_TYPE] == "openai.InternalServerError"


# --------------------------------------------------------------------------------------------------------------------
# Content and secrets


def test_content_is_recorded_in_the_genai_message_schema(
    cap_content: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("It is 21C.", tool_calls=[ToolCall("call_2", "convert", {"unit": "F"})]))
    conversation = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
    ]
    tools = [{"type": "function", "function": {"name": "convert", "parameters": {"type": "object"}}}]
    client.chat.completions.create(model="gpt-4o", messages=conversation, tools=tools)  # type: ignore[arg-type]
    span = one_span(cap_content)
    assert messages(span, sc.GEN_AI_INPUT_MESSAGES) == [
        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
        },
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "21C"}]},
    ]
    assert messages(span, sc.GEN_AI_OUTPUT_MESSAGES) == [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "It is 21C."},
                {"type": "tool_call", "id": "call_2", "name": "convert", "arguments": {"unit": "F"}},
            ],
            "finish_reason": "tool_call",
        }
    ]
    assert messages(span, sc.GEN_AI_TOOL_DEFINITIONS) == [
        {"type": "function", "name": "convert", "parameters": {"type": "object"}}
    ]


def test_streamed_content_is_gathered_and_bounded(
    cap_content: Capture, server: LLMServer, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "content_max_length", 200)
    long_text = " ".join(f"word{i}" for i in range(100))
    server.script(Reply("short answer"), Reply(long_text))
    for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
        pass
    for _ in client.chat.completions.create(model="gpt-4o", messages=USER, stream=True):
        pass
    short, long = llm_spans(cap_content)
    assert messages(short, sc.GEN_AI_OUTPUT_MESSAGES)[0]["parts"] == [{"type": "text", "content": "short answer"}]
    assert len(attrs(long)[sc.GEN_AI_OUTPUT_MESSAGES]) <= 200
    assert attrs(long)[sc.AGENTOTEL_CONTENT_TRUNCATED] is True


def test_content_is_off_by_default_and_no_secret_is_recorded(
    cap: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("a"), Reply("b c"), Reply(status=401))
    client.chat.completions.create(model="gpt-4o", messages=USER, extra_headers={"X-Api-Key": API_KEY})
    for _ in client.responses.create(model="gpt-4o", input="hi", instructions="secret plan", stream=True):
        pass
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    spans = llm_spans(cap)
    assert len(spans) == 3
    for span in spans:
        assert_no_content(span)
        assert "secret plan" not in json.dumps(attrs(span))
    assert_no_secret(cap)
    assert all(r.headers.get("authorization") == f"Bearer {API_KEY}" for r in server.requests)  # the key was sent


def test_content_capture_never_consumes_a_generator_of_messages(
    cap_content: Capture, server: LLMServer, client: openai.OpenAI
) -> None:
    server.script(Reply("ok"))
    client.chat.completions.create(model="gpt-4o", messages=(m for m in USER))
    assert server.requests[0].body["messages"] == USER
    assert len(llm_spans(cap_content)) == 1


def assert_no_secret(cap: Capture) -> None:
    for span in cap.spans:
        recorded = [attrs(span)] + [dict(e.attributes or {}) for e in span.events]
        text = json.dumps(recorded, default=str) + (span.status.description or "")
        assert API_KEY not in text
        assert "bearer" not in text.lower()
        assert "authorization" not in text.lower()


def test_content_capture_records_no_secret(cap_content: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("ok"))
    client.chat.completions.create(model="gpt-4o", messages=USER)
    assert sc.GEN_AI_INPUT_MESSAGES in attrs(one_span(cap_content))
    assert_no_secret(cap_content)


# --------------------------------------------------------------------------------------------------------------------
# Sessions


def test_calls_in_a_session_are_its_llm_calls(cap: Capture, server: LLMServer, client: openai.OpenAI) -> None:
    server.script(Reply("first", input_tokens=20, output_tokens=4), Reply("second", input_tokens=30, output_tokens=6))
    with agentotel.session("weather-agent"):
        client.chat.completions.create(model="gpt-4o", messages=USER)
        for _ in client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, stream=True, stream_options={"include_usage": True}
        ):
            pass
    session = cap.session("weather-agent")
    calls = session.llm_calls
    assert [(c.model, c.input_tokens, c.output_tokens) for c in calls] == [("gpt-4o", 20, 4), ("gpt-4o-mini", 30, 6)]
    assert calls[0].cost == pytest.approx(price("gpt-4o", 20, 4), abs=1e-12)
    assert calls[1].cost == pytest.approx(price("gpt-4o-mini", 30, 6), abs=1e-12)
    assert session.cost == pytest.approx(calls[0].cost + calls[1].cost, abs=1e-12)
    assert all(c.session_id == session.id and c.parent_span_id == session.span_id for c in calls)
    replay = session.replay()
    assert "LLM Call (gpt-4o)" in replay
    assert "LLM Call (gpt-4o-mini)" in replay
    assert "Tokens: 20 in / 4 out" in replay


# --------------------------------------------------------------------------------------------------------------------
# The instrumentor itself


WRAPPED = [
    (Completions, "create"),
    (Completions, "parse"),
    (AsyncCompletions, "create"),
    (AsyncCompletions, "parse"),
    (Responses, "create"),
    (Responses, "parse"),
    (AsyncResponses, "create"),
    (AsyncResponses, "parse"),
    (Embeddings, "create"),
    (AsyncEmbeddings, "create"),
]


def test_instrumentation_dependencies() -> None:
    assert OpenAIInstrumentor().instrumentation_dependencies() == ("openai >= 1.50",)


def test_uninstrument_restores_the_sdk_exactly(cap: Capture, server: LLMServer) -> None:
    instrumentor = OpenAIInstrumentor()
    assert instrumentor.is_instrumented_by_opentelemetry
    originals = {(owner, name): vars(owner)[name].__wrapped__ for owner, name in WRAPPED}
    helper_close = vars(openai.lib.streaming.chat.ChatCompletionStream)["close"].__wrapped__
    instrumentor.uninstrument()
    try:
        for (owner, name), original in originals.items():
            assert vars(owner)[name] is original, f"{owner.__name__}.{name}"
        assert vars(openai.lib.streaming.chat.ChatCompletionStream)["close"] is helper_close
        with openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0) as client:
            client.chat.completions.create(model="gpt-4o", messages=USER)
        assert llm_spans(cap) == []
    finally:
        instrumentor.instrument()
    with openai.OpenAI(base_url=server.openai_base_url, api_key=API_KEY, max_retries=0) as client:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert len(llm_spans(cap)) == 1


def _raise(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("instrumentation bug")


def test_a_fault_in_response_extraction_never_reaches_the_caller(
    cap: Capture, server: LLMServer, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_openai_attributes, "chat_usage", _raise)
    monkeypatch.setattr(_openai_attributes.ChatStream, "add", _raise)
    server.script(Reply("plain"), Reply("streamed reply"))
    completion = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content == "plain"
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "streamed reply"
    spans = llm_spans(cap)
    assert len(spans) == 2
    assert all(s.end_time is not None and s.status.status_code is StatusCode.UNSET for s in spans)


def test_a_fault_when_starting_the_span_never_reaches_the_caller(
    cap: Capture, server: LLMServer, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_instrumentation, "server_attributes", _raise)
    server.script(Reply("still works"), Reply("streamed too"))
    assert client.chat.completions.create(model="gpt-4o", messages=USER).choices[0].message.content == "still works"
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "streamed too"
    assert llm_spans(cap) == []


# --------------------------------------------------------------------------------------------------------------------
# Async


async def test_async_chat_create_plain_and_stream(cap: Capture, server: LLMServer, aclient: openai.AsyncOpenAI) -> None:
    server.script(Reply("async", input_tokens=15, output_tokens=2), Reply("x y", input_tokens=5, output_tokens=2))
    completion = await aclient.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content == "async"
    stream = await aclient.chat.completions.create(
        model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    assert isinstance(stream, openai.AsyncStream)
    texts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(texts) == "x y"
    plain, streamed = llm_spans(cap)
    assert_common(plain, server)
    assert attrs(plain)[sc.GEN_AI_USAGE_INPUT_TOKENS] == 15
    assert attrs(plain)[sc.AGENTOTEL_USAGE_COST_AMOUNT] == pytest.approx(price("gpt-4o", 15, 2), abs=1e-12)
    assert attrs(streamed)[sc.GEN_AI_USAGE_INPUT_TOKENS] == 5
    assert sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in attrs(streamed)
    await aclient.close()


async def test_async_parse_and_stream_helpers(cap: Capture, server: LLMServer, aclient: openai.AsyncOpenAI) -> None:
    server.script(
        Reply('{"city": "Paris", "sunny": true}'),
        Reply("helper text"),
        Reply("a b c d e f"),
        Reply('{"city": "Rome", "sunny": false}'),
        Reply("responses helper"),
        Reply("g h i j k"),
    )
    parsed = await aclient.chat.completions.parse(model="gpt-4o", messages=USER, response_format=Weather)
    assert parsed.choices[0].message.parsed == Weather(city="Paris", sunny=True)
    async with aclient.chat.completions.stream(model="gpt-4o", messages=USER) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == "helper text"
    async with aclient.chat.completions.stream(model="gpt-4o", messages=USER) as stream:
        async for _ in stream:
            break
    assert len(llm_spans(cap)) == 3  # the helper left early ended its span on close
    response = await aclient.responses.parse(model="gpt-4o", input="Rome?", text_format=Weather)
    assert response.output_parsed == Weather(city="Rome", sunny=False)
    async with aclient.responses.stream(model="gpt-4o", input="hi") as rstream:
        assert (await rstream.get_final_response()).output_text == "responses helper"
    async with aclient.responses.stream(model="gpt-4o", input="hi") as rstream:
        async for _ in rstream:
            break
    assert len(server.requests) == 6
    spans = llm_spans(cap)
    assert len(spans) == 6
    assert all(s.end_time is not None for s in spans)
    await aclient.close()


async def test_async_responses_and_embeddings(cap: Capture, server: LLMServer, aclient: openai.AsyncOpenAI) -> None:
    server.script(Reply("r1", input_tokens=4), Reply("r2 r3", input_tokens=6), Reply(input_tokens=3))
    response = await aclient.responses.create(model="gpt-4o", input="hi")
    assert response.output_text == "r1"
    events = [e.type async for e in await aclient.responses.create(model="gpt-4o", input="hi", stream=True)]
    assert events[-1] == "response.completed"
    await aclient.embeddings.create(model="text-embedding-3-small", input="hi")
    plain, streamed, embedding = llm_spans(cap)
    assert attrs(plain)[sc.GEN_AI_USAGE_INPUT_TOKENS] == 4
    assert attrs(streamed)[sc.GEN_AI_USAGE_INPUT_TOKENS] == 6
    assert embedding.name == "embeddings text-embedding-3-small"
    assert attrs(embedding)[sc.GEN_AI_USAGE_INPUT_TOKENS] == 3
    await aclient.close()


async def test_async_raw_responses_make_one_span_each(
    cap: Capture, server: LLMServer, aclient: openai.AsyncOpenAI
) -> None:
    server.script(Reply("raw", input_tokens=8), Reply("streaming raw", input_tokens=9), Reply("s t", input_tokens=2))
    raw = await aclient.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    assert raw.parse().choices[0].message.content == "raw"
    async with aclient.chat.completions.with_streaming_response.create(model="gpt-4o", messages=USER) as response:
        assert (await response.parse()).choices[0].message.content == "streaming raw"
    raw_stream = await aclient.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=USER, stream=True, stream_options={"include_usage": True}
    )
    async for _ in raw_stream.parse():
        pass
    assert len(server.requests) == 3
    spans = llm_spans(cap)
    assert [attrs(s)[sc.GEN_AI_USAGE_INPUT_TOKENS] for s in spans] == [8, 9, 2]
    await aclient.close()


async def test_async_errors_and_abandoned_stream(cap: Capture, server: LLMServer, aclient: openai.AsyncOpenAI) -> None:
    server.script(Reply(status=429), Reply("a b c d e f"))
    with pytest.raises(openai.RateLimitError):
        await aclient.chat.completions.create(model="gpt-4o", messages=USER)
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    await stream.__anext__()
    await stream.close()
    await stream.close()
    del stream
    gc.collect()
    failed, closed = llm_spans(cap)
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)[sc.ERROR_TYPE] == "openai.RateLimitError"
    assert closed.status.status_code is StatusCode.UNSET
    await aclient.close()


async def test_async_abandoned_stream_ends_once(cap: Capture, server: LLMServer, aclient: openai.AsyncOpenAI) -> None:
    server.script(Reply("a b c d e f"))
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    await stream.__anext__()
    assert llm_spans(cap) == []
    del stream
    gc.collect()
    assert len(llm_spans(cap)) == 1
    gc.collect()
    assert len(llm_spans(cap)) == 1
    await aclient.close()


def test_azure_streams_first_chunk_without_id_or_model_does_not_blank_the_response_id(cap: Capture) -> None:
    # Azure OpenAI opens a stream with a chunk of prompt filter results whose id and model are empty; the
    # response id and model come with the next chunks.
    import importlib

    base_client = importlib.import_module("openai._base_client")
    http = getattr(base_client, "httpx2", None) or getattr(base_client, "httpx")  # noqa: B009
    chunks = [
        {"id": "", "object": "", "created": 0, "model": "", "choices": [], "prompt_filter_results": []},
        {
            "id": "chatcmpl-azure",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-2024-08-06",
            "system_fingerprint": "fp_azure",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        },
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"

    def handler(request: Any) -> Any:
        return http.Response(200, headers={"content-type": "text/event-stream"}, content=body.encode())

    sdk = openai.OpenAI(
        api_key=API_KEY,
        base_url="https://example.openai.azure.com/openai/v1",
        max_retries=0,
        http_client=http.Client(transport=http.MockTransport(handler)),
    )
    assert len(list(sdk.chat.completions.create(model="gpt-4o", messages=USER, stream=True))) == 2
    found = attrs(one_span(cap))
    assert found[sc.GEN_AI_RESPONSE_ID] == "chatcmpl-azure"
    assert found[sc.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert found[sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT] == "fp_azure"
    assert found[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
