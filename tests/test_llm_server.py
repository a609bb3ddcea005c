"""The scripted LLM server, driven by the real openai and anthropic SDKs (sync and async)."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx2
import openai
import pytest
from pydantic import BaseModel

from agentotel.testing.llm_server import (
    LLMServer,
    RecordedRequest,
    Reply,
    ToolCall,
    default_responder,
    embedding_for,
    last_user_text,
)

USER = [{"role": "user", "content": "hello there"}]
WEATHER_TOOL_OPENAI = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_TOOL_RESPONSES = {"type": "function", "name": "get_weather", **WEATHER_TOOL_OPENAI["function"]}
WEATHER_TOOL_ANTHROPIC = {"name": "get_weather", "input_schema": WEATHER_TOOL_OPENAI["function"]["parameters"]}
PARIS = ToolCall("call_1", "get_weather", {"city": "Paris"})


class Weather(BaseModel):
    city: str
    celsius: int


@pytest.fixture
def server() -> Iterator[LLMServer]:
    with LLMServer() as srv:
        yield srv


@pytest.fixture
def oai(server: LLMServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
async def aoai(server: LLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(server: LLMServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture
async def aclaude(server: LLMServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0) as client:
        yield client


# --------------------------------------------------------------------------------------------------------------------
# Lifecycle and recording


def test_lifecycle_urls_and_idempotent_stop() -> None:
    srv = LLMServer()
    with pytest.raises(RuntimeError):
        _ = srv.url
    assert srv.start() is srv
    assert srv.start() is srv  # already running: no-op
    assert srv.url.startswith("http://127.0.0.1:")
    assert srv.openai_base_url == srv.url + "/v1"
    assert srv.anthropic_base_url == srv.url
    started = time.monotonic()
    srv.stop()
    srv.stop()
    assert time.monotonic() - started < 2
    assert not srv.running
    with srv:  # restartable
        assert srv.running
    assert not srv.running


def test_requests_are_recorded_with_headers_and_body(server: LLMServer, oai: openai.OpenAI) -> None:
    oai.chat.completions.create(model="gpt-4o-mini", messages=USER, temperature=0)
    [request] = server.requests
    assert isinstance(request, RecordedRequest)
    assert (request.method, request.path, request.endpoint) == ("POST", "/v1/chat/completions", "chat.completions")
    assert request.headers["authorization"] == "Bearer test"
    assert request.body == request.json
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["temperature"] == 0
    assert not request.stream
    assert last_user_text(request) == "hello there"


def test_unknown_path_is_404_in_openai_shape(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("kept for the next served request"))
    with pytest.raises(openai.NotFoundError) as caught:
        oai.models.list()
    assert "no route for GET /v1/models" in caught.value.message
    assert server.requests[-1].endpoint is None
    assert server.pending == 1  # a 404 does not take a scripted reply


def test_script_order_then_responder(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("first"), "second")
    answers = [oai.chat.completions.create(model="m", messages=USER).choices[0].message.content for _ in range(3)]
    assert answers == ["first", "second", "You said: hello there"]


def test_custom_responder_and_responder_error() -> None:
    def responder(request: RecordedRequest) -> Reply:
        text = last_user_text(request)
        if text == "boom":
            raise ValueError("no answer")
        return Reply(text=text.upper(), model="custom-model")

    with (
        LLMServer(responder) as srv,
        openai.OpenAI(base_url=srv.openai_base_url, api_key="k", max_retries=0) as client,
    ):
        completion = client.chat.completions.create(model="m", messages=USER)
        assert completion.choices[0].message.content == "HELLO THERE"
        assert completion.model == "custom-model"
        with pytest.raises(openai.InternalServerError, match="ValueError: no answer"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "boom"}])
        assert [type(e) for e in srv.errors] == [ValueError]


def test_concurrent_requests(server: LLMServer) -> None:
    server.script(*[Reply(f"answer {i}", delay=0.3) for i in range(8)])
    answers: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        with openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0) as client:
            text = client.chat.completions.create(model="m", messages=USER).choices[0].message.content
        with lock:
            answers.append(text or "")

    started = time.monotonic()
    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started < 2.0  # served in parallel, not 8 x 0.3 s one after another
    assert sorted(answers) == sorted(f"answer {i}" for i in range(8))


def test_keep_alive_across_plain_and_streamed_replies(server: LLMServer) -> None:
    with httpx2.Client(base_url=server.url) as http:
        plain = http.post("/v1/chat/completions", json={"model": "m", "messages": USER})
        streamed = http.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
        again = http.post("/v1/messages", json={"model": "m", "max_tokens": 5, "messages": USER})
    assert plain.headers["content-length"] == str(len(plain.content))
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.text.rstrip().endswith("data: [DONE]")
    assert again.json()["content"][0]["text"] == "You said: hello there"


def test_chunked_request_body_and_bad_json(server: LLMServer) -> None:
    body = json.dumps({"model": "m", "messages": USER}).encode()
    with httpx2.Client(base_url=server.url) as http:
        chunked = http.post("/v1/chat/completions", content=iter([body[:10], body[10:]]))
        bad = http.post("/v1/messages", content=b"{not json", headers={"content-type": "application/json"})
    assert server.requests[0].headers.get("transfer-encoding") == "chunked"
    assert chunked.json()["choices"][0]["message"]["content"] == "You said: hello there"
    assert bad.status_code == 400
    assert bad.json()["type"] == "error" and bad.json()["error"]["type"] == "invalid_request_error"
    assert server.requests[1].body is None


def test_reply_validation() -> None:
    with pytest.raises(ValueError):
        Reply(status=99)
    with pytest.raises(ValueError):
        Reply(chunks=0)
    with pytest.raises(ValueError):
        Reply(cached_tokens=-1)


# --------------------------------------------------------------------------------------------------------------------
# OpenAI chat completions


def test_chat_plain_default_reply(oai: openai.OpenAI) -> None:
    completion = oai.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == "gpt-4o-mini"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "You said: hello there"
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens, completion.usage.total_tokens) == (
        2,
        4,
        6,
    )


def test_chat_usage_with_cached_and_reasoning_tokens(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(
        Reply("ok", input_tokens=100, output_tokens=30, cached_tokens=40, reasoning_tokens=12, cache_creation_tokens=5)
    )
    usage = oai.chat.completions.create(model="o3", messages=USER).usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 30, 130)
    assert usage.prompt_tokens_details is not None and usage.completion_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 40
    assert usage.prompt_tokens_details.cache_write_tokens == 5
    assert usage.completion_tokens_details.reasoning_tokens == 12


def test_chat_tool_calls_then_tool_result(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply(tool_calls=[PARIS, ToolCall("call_2", "get_weather", {"city": "Oslo"})]))
    completion = oai.chat.completions.create(model="m", messages=USER, tools=[WEATHER_TOOL_OPENAI])
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_weather", {"city": "Oslo"}),
    ]
    follow_up = [
        *USER,
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    answer = oai.chat.completions.create(model="m", messages=follow_up)
    assert answer.choices[0].message.content == "Tool result: sunny"


def test_chat_finish_reason_length(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("cut", finish_reason="length"))
    assert oai.chat.completions.create(model="m", messages=USER).choices[0].finish_reason == "length"


def test_chat_stream_chunks_and_usage(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("Hello brave new world", cached_tokens=3, reasoning_tokens=2, output_tokens=9))
    stream = oai.chat.completions.create(
        model="m",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert contents == ["Hello", " brave", " new", " world"]
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens_details is not None and usage.completion_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (2 + 3, 9)
    assert usage.prompt_tokens_details.cached_tokens == 3
    assert usage.completion_tokens_details.reasoning_tokens == 2
    assert all(c.usage is None for c in chunks[:-1])


def test_chat_stream_without_usage_and_chunks_param(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("abcdefgh", chunks=3))
    chunks = list(oai.chat.completions.create(model="m", messages=USER, stream=True))
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["abc", "def", "gh"]
    assert all(c.usage is None for c in chunks)


def test_chat_stream_helper_with_tool_calls(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("Let me check.", tool_calls=[PARIS]))
    with oai.chat.completions.stream(model="m", messages=USER, tools=[WEATHER_TOOL_OPENAI]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "content.delta" in kinds and "content.done" in kinds
    assert "tool_calls.function.arguments.delta" in kinds and "tool_calls.function.arguments.done" in kinds
    message = final.choices[0].message
    assert message.content == "Let me check."
    assert final.choices[0].finish_reason == "tool_calls"
    [call] = message.tool_calls or []
    assert (call.id, call.function.name, json.loads(call.function.arguments)) == (
        "call_1",
        "get_weather",
        PARIS.arguments,
    )


def test_chat_parse_structured_output(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply('{"city": "Paris", "celsius": 21}'))
    parsed = oai.chat.completions.parse(model="m", messages=USER, response_format=Weather)
    assert parsed.choices[0].message.parsed == Weather(city="Paris", celsius=21)
    request = server.requests[-1].body
    assert request["response_format"]["type"] == "json_schema"
    # With no scripted reply the default responder answers with an instance of the schema.
    default = oai.chat.completions.parse(model="m", messages=USER, response_format=Weather)
    assert default.choices[0].message.parsed == Weather(city="You said: hello there", celsius=0)


def test_chat_with_raw_response(server: LLMServer, oai: openai.OpenAI) -> None:
    raw = oai.chat.completions.with_raw_response.create(model="m", messages=USER)
    assert raw.status_code == 200
    assert raw.headers["x-request-id"].startswith("req_")
    completion = raw.parse()
    assert completion.choices[0].message.content == "You said: hello there"
    assert completion._request_id == raw.headers["x-request-id"]


def test_chat_with_streaming_response(server: LLMServer, oai: openai.OpenAI) -> None:
    with oai.chat.completions.with_streaming_response.create(model="m", messages=USER) as response:
        assert response.parse().choices[0].message.content == "You said: hello there"
    server.script(Reply("a b"))
    with oai.chat.completions.with_streaming_response.create(model="m", messages=USER, stream=True) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    deltas = [json.loads(line[6:])["choices"][0]["delta"].get("content") for line in lines[:-1]]
    assert deltas[:3] == ["", "a", " b"]


async def test_async_chat_plain_stream_and_helper(server: LLMServer, aoai: openai.AsyncOpenAI) -> None:
    completion = await aoai.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "You said: hello there"
    server.script(Reply("one two"), Reply("three four", tool_calls=[PARIS]))
    stream = await aoai.chat.completions.create(model="m", messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "one two"
    async with aoai.chat.completions.stream(model="m", messages=USER, tools=[WEATHER_TOOL_OPENAI]) as helper:
        final = await helper.get_final_completion()
    assert final.choices[0].message.content == "three four"
    assert json.loads((final.choices[0].message.tool_calls or [])[0].function.arguments) == {"city": "Paris"}


# --------------------------------------------------------------------------------------------------------------------
# OpenAI Responses


def test_responses_plain_with_usage(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("Paris is sunny.", input_tokens=50, output_tokens=20, cached_tokens=10, reasoning_tokens=4))
    response = oai.responses.create(model="gpt-4.1", input="weather?", instructions="be brief")
    assert response.id.startswith("resp_")
    assert (response.object, response.status, response.model) == ("response", "completed", "gpt-4.1")
    assert response.output_text == "Paris is sunny."
    assert response.instructions == "be brief"
    usage = response.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens, usage.total_tokens) == (50, 20, 70)
    assert usage.input_tokens_details.cached_tokens == 10
    assert usage.output_tokens_details.reasoning_tokens == 4


def test_responses_default_reply_from_input_items(oai: openai.OpenAI) -> None:
    response = oai.responses.create(
        model="m",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}, {"type": "input_text", "text": "you"}]}
        ],
    )
    assert response.output_text == "You said: hi you"


def test_responses_tool_calls_then_tool_output(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply(tool_calls=[PARIS]))
    response = oai.responses.create(model="m", input="weather?", tools=[WEATHER_TOOL_RESPONSES])
    [call] = response.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_1", "get_weather", {"city": "Paris"})
    assert response.tools[0].name == "get_weather"
    follow_up = oai.responses.create(
        model="m",
        input=[
            {"role": "user", "content": "weather?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        ],
    )
    assert follow_up.output_text == "Tool result: sunny"


def test_responses_incomplete_on_length(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("cut", finish_reason="length"))
    response = oai.responses.create(model="m", input="x")
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"


def test_responses_raw_event_stream(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("Hi there", tool_calls=[PARIS]))
    events = list(oai.responses.create(model="m", input="x", stream=True))
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1].response
    assert completed.output_text == "Hi there"
    assert completed.usage is not None and completed.usage.output_tokens > 0


def test_responses_stream_helper(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("Sunny in Paris", tool_calls=[PARIS]))
    with oai.responses.stream(model="m", input="x", tools=[WEATHER_TOOL_RESPONSES]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas == ["Sunny", " in", " Paris"]
    assert final.output_text == "Sunny in Paris"
    assert [item.type for item in final.output] == ["message", "function_call"]


def test_responses_parse_structured_output(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply('{"city": "Oslo", "celsius": -3}'))
    parsed = oai.responses.parse(model="m", input="x", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Oslo", celsius=-3)


async def test_async_responses_create_and_stream(server: LLMServer, aoai: openai.AsyncOpenAI) -> None:
    response = await aoai.responses.create(model="m", input="ping")
    assert response.output_text == "You said: ping"
    stream = await aoai.responses.create(model="m", input="ping", stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    server.script(Reply("async text"))
    async with aoai.responses.stream(model="m", input="x") as helper:
        final = await helper.get_final_response()
    assert final.output_text == "async text"


# --------------------------------------------------------------------------------------------------------------------
# OpenAI embeddings


def test_embeddings_default_base64_encoding(server: LLMServer, oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model="text-embedding-3-small", input=["hello", "hello world"])
    assert server.requests[-1].body["encoding_format"] == "base64"  # what openai sends when not told
    assert [d.embedding for d in result.data] == [embedding_for("hello"), embedding_for("hello world")]
    assert [d.index for d in result.data] == [0, 1]
    assert result.model == "text-embedding-3-small"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (3, 3)
    vector = result.data[0].embedding
    assert len(vector) == 8
    assert abs(sum(v * v for v in vector) - 1) < 1e-5


def test_embeddings_float_format_and_dimensions(server: LLMServer, oai: openai.OpenAI) -> None:
    result = oai.embeddings.create(model="e", input="hello", encoding_format="float", dimensions=4)
    assert result.data[0].embedding == embedding_for("hello", 4)
    raw = oai.embeddings.with_raw_response.create(model="e", input="hello", encoding_format="base64")
    packed = base64.b64decode(json.loads(raw.text)["data"][0]["embedding"])
    assert list(struct.unpack("<8f", packed)) == embedding_for("hello")


async def test_async_embeddings(aoai: openai.AsyncOpenAI) -> None:
    result = await aoai.embeddings.create(model="e", input="same text")
    assert result.data[0].embedding == embedding_for("same text")


# --------------------------------------------------------------------------------------------------------------------
# Anthropic messages


def test_messages_plain_default_reply(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude-test-model", max_tokens=100, messages=USER)
    assert message.id.startswith("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", "claude-test-model")
    assert message.content[0].type == "text"
    assert message.content[0].text == "You said: hello there"
    assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (2, 4)


def test_messages_usage_excludes_cache_from_input_tokens(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script(
        Reply("ok", input_tokens=100, output_tokens=30, cached_tokens=60, cache_creation_tokens=15, reasoning_tokens=7)
    )
    usage = claude.messages.create(model="c", max_tokens=10, messages=USER).usage
    assert usage.input_tokens == 25
    assert usage.cache_read_input_tokens == 60
    assert usage.cache_creation_input_tokens == 15
    assert usage.output_tokens == 30
    assert usage.output_tokens_details is not None and usage.output_tokens_details.thinking_tokens == 7


def test_messages_tool_use_then_tool_result(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script(Reply("Checking.", tool_calls=[ToolCall("toolu_1", "get_weather", {"city": "Paris"})]))
    message = claude.messages.create(model="c", max_tokens=100, messages=USER, tools=[WEATHER_TOOL_ANTHROPIC])
    assert message.stop_reason == "tool_use"
    text, tool = message.content
    assert text.type == "text" and text.text == "Checking."
    assert tool.type == "tool_use"
    assert (tool.id, tool.name, tool.input) == ("toolu_1", "get_weather", {"city": "Paris"})
    follow_up = claude.messages.create(
        model="c",
        max_tokens=100,
        messages=[
            *USER,
            {"role": "assistant", "content": [block.model_dump() for block in message.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]},
        ],
    )
    assert follow_up.content[0].text == "Tool result: sunny"


def test_messages_stop_reason_mapping(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script(Reply("a", finish_reason="length"), Reply("b", finish_reason="tool_calls"))
    reasons = [claude.messages.create(model="c", max_tokens=1, messages=USER).stop_reason for _ in range(2)]
    assert reasons == ["max_tokens", "tool_use"]


def test_messages_raw_event_stream(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script(Reply("Hi there", tool_calls=[ToolCall("toolu_1", "get_weather", {"city": "Paris"})]))
    events = list(claude.messages.create(model="c", max_tokens=100, messages=USER, stream=True))
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]  # the ping is consumed by the SDK
    assert events[2].delta.type == "text_delta"
    assert events[6].delta.type == "input_json_delta"
    assert events[9].delta.stop_reason == "tool_use"
    assert events[9].usage.output_tokens > 0


def test_messages_stream_helper(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script(Reply("Sunny in Paris", cached_tokens=5, output_tokens=11))
    with claude.messages.stream(model="c", max_tokens=100, messages=USER) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert pieces == ["Sunny", " in", " Paris"]
    assert final.content[0].text == "Sunny in Paris"
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens, final.usage.output_tokens) == (2, 5, 11)
    assert final.stop_reason == "end_turn"


def test_messages_with_raw_response(server: LLMServer, claude: anthropic.Anthropic) -> None:
    raw = claude.messages.with_raw_response.create(model="c", max_tokens=10, messages=USER)
    assert raw.status_code == 200
    message = raw.parse()
    assert message.content[0].text == "You said: hello there"
    assert message._request_id == raw.headers["request-id"]
    headers = server.requests[-1].headers
    assert "test" in (headers.get("x-api-key", ""), headers.get("authorization", "").removeprefix("Bearer "))
    assert "anthropic-version" in headers


async def test_async_messages_create_stream_and_helper(server: LLMServer, aclaude: anthropic.AsyncAnthropic) -> None:
    message = await aclaude.messages.create(model="c", max_tokens=10, messages=USER)
    assert message.content[0].text == "You said: hello there"
    server.script(Reply("x y"), Reply("tool time", tool_calls=[ToolCall("toolu_9", "get_weather", {"city": "Rome"})]))
    stream = await aclaude.messages.create(model="c", max_tokens=10, messages=USER, stream=True)
    kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    async with aclaude.messages.stream(model="c", max_tokens=10, messages=USER) as helper:
        pieces = [text async for text in helper.text_stream]
        final = await helper.get_final_message()
    assert pieces == ["tool", " time"]
    assert final.stop_reason == "tool_use"
    assert final.content[1].input == {"city": "Rome"}


# --------------------------------------------------------------------------------------------------------------------
# Errors, timeouts and aborted streams


def test_error_status_raises_typed_openai_errors(server: LLMServer, oai: openai.OpenAI) -> None:
    server.script(Reply("slow down", status=429), Reply(status=400), Reply(status=503))
    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model="m", messages=USER)
    assert caught.value.status_code == 429
    assert caught.value.body == {
        "message": "slow down",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(openai.BadRequestError):
        oai.responses.create(model="m", input="x")
    with pytest.raises(openai.InternalServerError):
        list(oai.chat.completions.create(model="m", messages=USER, stream=True))


def test_error_status_raises_typed_anthropic_errors(server: LLMServer, claude: anthropic.Anthropic) -> None:
    custom = {"type": "error", "error": {"type": "rate_limit_error", "message": "custom body"}}
    server.script(Reply(status=529), Reply(status=429, error_body=custom, headers={"retry-after": "7"}))
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        claude.messages.create(model="c", max_tokens=10, messages=USER)
    assert overloaded.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Scripted error reply (HTTP 529)"},
    }
    with (
        pytest.raises(anthropic.RateLimitError) as limited,
        claude.messages.stream(model="c", max_tokens=10, messages=USER) as stream,
    ):
        list(stream.text_stream)
    assert limited.value.body == custom
    assert limited.value.response.headers["retry-after"] == "7"


async def test_async_error_status(
    server: LLMServer, aoai: openai.AsyncOpenAI, aclaude: anthropic.AsyncAnthropic
) -> None:
    server.script(Reply(status=401), Reply(status=401))
    with pytest.raises(openai.AuthenticationError):
        await aoai.chat.completions.create(model="m", messages=USER)
    with pytest.raises(anthropic.AuthenticationError):
        await aclaude.messages.create(model="c", max_tokens=10, messages=USER)


def test_timeouts_raise_sdk_timeout_errors(server: LLMServer, capfd: pytest.CaptureFixture[str]) -> None:
    server.script(Reply("late", delay=1), Reply("late", delay=1))
    started = time.monotonic()
    with (
        openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0, timeout=0.2) as oai,
        anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test", max_retries=0, timeout=0.2) as claude,
    ):
        with pytest.raises(openai.APITimeoutError):
            oai.chat.completions.create(model="m", messages=USER)
        with pytest.raises(anthropic.APITimeoutError):
            claude.messages.create(model="c", max_tokens=10, messages=USER)
    assert time.monotonic() - started < 0.9
    server.stop()  # wakes the delayed handlers; they find their clients gone
    assert time.monotonic() - started < 1.5
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "test" not in captured.err


async def test_async_timeout(server: LLMServer) -> None:
    server.script(Reply(delay=1))
    async with anthropic.AsyncAnthropic(
        base_url=server.anthropic_base_url, api_key="test", max_retries=0, timeout=0.2
    ) as claude:
        with pytest.raises(anthropic.APITimeoutError):
            await claude.messages.create(model="c", max_tokens=10, messages=USER)


def test_openai_streams_aborted_mid_stream(
    server: LLMServer, oai: openai.OpenAI, capfd: pytest.CaptureFixture[str]
) -> None:
    server.script(Reply("one two three four", abort_stream_after=2), Reply("one two three", abort_stream_after=1))
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in oai.chat.completions.create(model="m", messages=USER, stream=True):
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one two"
    deltas: list[str] = []
    with pytest.raises(openai.APIConnectionError), oai.responses.stream(model="m", input="x") as stream:
        deltas.extend(e.delta for e in stream if e.type == "response.output_text.delta")
    assert deltas == ["one"]
    # The connection pool recovers: the next request works.
    assert oai.chat.completions.create(model="m", messages=USER).choices[0].message.content
    assert "Traceback" not in capfd.readouterr().err


def test_anthropic_stream_aborted_mid_stream(server: LLMServer, claude: anthropic.Anthropic) -> None:
    server.script(Reply("one two three", abort_stream_after=2))
    pieces: list[str] = []
    # anthropic does not wrap errors raised while reading a stream body: httpx2's own error comes through.
    with (
        pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)),
        claude.messages.stream(model="c", max_tokens=10, messages=USER) as stream,
    ):
        pieces.extend(stream.text_stream)
    assert pieces == ["one", " two"]


async def test_async_stream_aborted(server: LLMServer, aoai: openai.AsyncOpenAI) -> None:
    server.script(Reply("a b c", abort_stream_after=0))
    with pytest.raises(openai.APIConnectionError):
        stream = await aoai.chat.completions.create(model="m", messages=USER, stream=True)
        async for _ in stream:
            pass


# --------------------------------------------------------------------------------------------------------------------
# The default responder


def test_default_responder_without_user_message() -> None:
    request = RecordedRequest("POST", "/v1/messages", {}, {"model": "m", "messages": []}, endpoint="messages")
    assert default_responder(request).text == "Hello from LLMServer."


def test_default_responder_json_object_mode() -> None:
    body = {"model": "m", "messages": USER, "response_format": {"type": "json_object"}}
    request = RecordedRequest("POST", "/v1/chat/completions", {}, body, endpoint="chat.completions")
    assert json.loads(default_responder(request).text) == {"reply": "You said: hello there"}
