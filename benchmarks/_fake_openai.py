"""An `openai.OpenAI` client whose HTTP transport answers in-process, at once, with a canned chat completion (plain,
or an SSE stream of 20 chunks), so that a benchmark times the SDK and its instrumentation, not a network.

Standalone (works in every peer venv): openai 3.x speaks `httpx2`, older majors `httpx`; the transport is the
matching `MockTransport`. The response bodies are built once; each request gets a fresh response object over them.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
STREAM_CHUNKS = 20
PROMPT = "bench-prompt: what is the capital of France?"
"""The user message; a worker finds it in span attributes to check that content capture is on."""
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": PROMPT},
]
ANSWER_WORDS = [f"w{i} " for i in range(STREAM_CHUNKS - 1)]
USAGE = {"prompt_tokens": 24, "completion_tokens": STREAM_CHUNKS - 1, "total_tokens": 24 + STREAM_CHUNKS - 1}


def http_module() -> Any:
    """The HTTP package this `openai` is built on: `httpx2` (openai 3.x) or `httpx` (older)."""
    base_client = importlib.import_module("openai._base_client")
    for name in ("httpx2", "httpx"):
        module = getattr(base_client, name, None)
        if module is not None:
            return module
    return importlib.import_module("httpx")


def completion_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": RESPONSE_MODEL,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(ANSWER_WORDS)},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": USAGE,
        }
    ).encode()


def stream_body() -> bytes:
    """`STREAM_CHUNKS` SSE chunks: the answer word by word (the last content chunk with the finish reason), then
    the usage chunk (`stream_options={"include_usage": True}`), then `[DONE]`."""
    events = []
    for index, word in enumerate(ANSWER_WORDS):
        delta: dict[str, Any] = {"content": word}
        if index == 0:
            delta["role"] = "assistant"
        last = index == len(ANSWER_WORDS) - 1
        events.append(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": RESPONSE_MODEL,
                "system_fingerprint": "fp_bench",
                "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None, "logprobs": None}],
            }
        )
    events.append(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": RESPONSE_MODEL,
            "choices": [],
            "usage": USAGE,
        }
    )
    assert len(events) == STREAM_CHUNKS
    lines = [f"data: {json.dumps(event)}\n\n" for event in events]
    lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def make_client() -> Any:
    """An `openai.OpenAI` client over an in-process transport that answers every chat completion at once."""
    import openai

    http = http_module()
    plain = completion_body()
    streamed = stream_body()
    json_headers = {"content-type": "application/json"}
    sse_headers = {"content-type": "text/event-stream"}

    def handler(request: Any) -> Any:
        if b'"stream":true' in request.content.replace(b" ", b""):
            return http.Response(200, headers=sse_headers, content=streamed)
        return http.Response(200, headers=json_headers, content=plain)

    client = http.Client(transport=http.MockTransport(handler))
    return openai.OpenAI(api_key="bench-key", base_url="https://api.openai.com/v1", http_client=client, max_retries=0)


def call_plain(client: Any) -> Any:
    """One chat completion; checks the answer arrived."""
    response = client.chat.completions.create(model=MODEL, messages=MESSAGES, temperature=0.2, max_tokens=64)
    assert response.choices[0].message.content, "the fake transport gave no answer"
    return response


def call_stream(client: Any) -> int:
    """One streamed chat completion, read to the end; returns the chunks seen (must be `STREAM_CHUNKS`)."""
    stream = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        temperature=0.2,
        max_tokens=64,
        stream=True,
        stream_options={"include_usage": True},
    )
    count = 0
    for _chunk in stream:
        count += 1
    return count
