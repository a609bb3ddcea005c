"""A small weather agent for the behaviour diff and baseline tests: the real `openai` SDK against a scripted
`LLMServer` on loopback, `@agentotel.tool` functions, one session per run. Its options change one thing each (the
city asked about, an extra tool call, the tool's units, a failing tool) so that tests can diff two runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import openai

import agentotel
from agentotel.model import Session
from agentotel.testing import capture
from agentotel.testing.llm_server import LLMServer, RecordedRequest, Reply, ToolCall, last_user_text

MODEL = "gpt-4o-mini"
SESSION = "weather-agent"
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


class UnknownCity(LookupError):
    pass


@agentotel.tool
def get_weather(city: str, units: str = "metric") -> dict[str, Any]:
    if city == "Atlantis":
        raise UnknownCity(f"no weather for {city}")
    return {"city": city, "temp": 21 if units == "metric" else 70, "units": units, "sky": "sunny"}


@agentotel.tool
def audit_log(event: str) -> str:
    return "logged"


def weather_model(request: RecordedRequest) -> Reply:
    """Asks for `get_weather` for the city the user names, then answers with the tool's temperature."""
    messages = request.body["messages"]
    if messages[-1]["role"] == "tool":
        result = json.loads(messages[-1]["content"])
        return Reply(f"It is {result['temp']} degrees and {result['sky']} in {result['city']}.")
    city = last_user_text(request).rsplit(" ", 1)[-1].rstrip("?")
    return Reply(tool_calls=[ToolCall("call_1", "get_weather", {"city": city})])


def run_weather_agent(
    client: openai.OpenAI, question: str, *, audit: bool = False, units: str = "metric", name: str = SESSION
) -> None:
    """One run: the model picks the tool, the tool runs, the model answers. A failing tool fails the session."""
    with agentotel.session(name):
        messages: list[Any] = [{"role": "user", "content": question}]
        first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
        calls = first.choices[0].message.tool_calls or []
        call = calls[0]
        arguments = json.loads(call.function.arguments)  # type: ignore[union-attr]
        result = get_weather(arguments["city"], units=units)
        if audit:
            audit_log("weather looked up")
        messages.append(
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps(arguments)},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
        client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)


Recorder = Callable[..., Session]


@contextmanager
def weather_recorder(*, content: bool = True) -> Iterator[Recorder]:
    """`record(question, **options)`: runs the agent once and returns its session, rebuilt from the exported spans
    (content capture on unless `content=False`). A run whose tool fails returns its failed session."""
    with LLMServer(weather_model) as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
        try:

            def record(question: str, *, content_capture: bool = content, **options: Any) -> Session:
                with capture(capture_content=content_capture) as cap:
                    try:
                        run_weather_agent(client, question, **options)
                    except UnknownCity:
                        pass
                return cap.session(options.get("name", SESSION))

            yield record
        finally:
            client.close()
