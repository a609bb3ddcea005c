"""Model requests in the one form a re-run compares them in: the lines a person reads.

A request made now (an HTTP body in the OpenAI chat, Responses or Anthropic messages format) and a recorded call
(its span's content attributes) are both turned into the GenAI message schema, the new one by agentotel's own
converters and through the content pipeline the recording went through (bounded JSON, redaction), then rendered
line by line: the model, the system instructions, each message's parts (text, tool calls with their arguments,
tool results), and the tools offered. Two requests match when their lines are equal, so what differs is exactly
what their diff shows. Ids (tool call ids, message names) are left out: a re-run serves the recorded ones, and a
framework may number its own.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import semconv as sc
from .._config import settings
from .._content import parse_json, to_json
from ..instrumentation import _anthropic_messages as anthropic_messages
from ..instrumentation import _openai_messages as openai_messages
from ..model import Event
from ..redaction import redaction
from ..replay.text import printable

__all__ = ["RequestView", "as_recorded", "diff_lines", "recorded_view", "request_view", "value_lines"]


@dataclass(frozen=True)
class RequestView:
    """A model request as compared and shown: its lines (`model: ...`, `system: ...`, `user: ...`, ...)."""

    model: str | None
    lines: tuple[str, ...]

    def text(self) -> str:
        return "\n".join(printable(line) for line in self.lines)


def as_recorded(key: str, value: Any) -> Any:
    """`value` as a recording holds it in content attribute `key`: bounded JSON (`AGENTOTEL_CONTENT_MAX_LENGTH`),
    redacted as capture redacts it, parsed back."""
    if value is None:
        return None
    text, _ = to_json(value, settings.content_max_length)
    if redaction.active:
        kept = redaction.apply(key, text)
        if kept is None:
            return None
        text = kept
    return parse_json(text)


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _arguments(arguments: Any) -> str:
    """A tool call's arguments as one canonical JSON text (given as a value or as JSON text)."""
    if arguments is None or arguments == "":
        return "{}"
    if isinstance(arguments, str):
        parsed = parse_json(arguments)
        return arguments if parsed is arguments else _canonical(parsed)
    return _canonical(arguments)


def _result(response: Any) -> str:
    """A tool result handed to the model, whatever form recorded it: text (JSON text read as its value), text
    blocks or parts joined, any other value as canonical JSON."""
    if (
        isinstance(response, list)
        and response
        and all(isinstance(b, Mapping) and b.get("type") == "text" for b in response)
    ):
        response = "".join(str(b.get("text", b.get("content", ""))) for b in response)
    if isinstance(response, str):
        parsed = parse_json(response)
        return _canonical(parsed) if isinstance(parsed, (dict, list)) else response
    return _canonical(response)


def _text_lines(role: str, text: str) -> list[str]:
    first, *rest = text.split("\n")
    indent = " " * (len(role) + 2)
    return [f"{role}: {first}", *(f"{indent}{line}" for line in rest)]


def _part_lines(role: str, part: Any) -> list[str]:
    if not isinstance(part, Mapping):
        return _text_lines(role, str(part))
    kind = part.get("type")
    if kind == "text":
        content = part.get("content")
        text = content if isinstance(content, str) else ("" if content is None else _canonical(content))
        return _text_lines(role, text) if text.strip() else []
    if kind == "tool_call":
        return [f"{role}: calls {part.get('name')}({_arguments(part.get('arguments'))})"]
    if kind == "tool_call_response":
        return _text_lines(role, f"result {_result(part.get('response', part.get('result')))}")
    if kind == "reasoning":
        return []  # the model's own thinking handed back, not what the agent asks
    return [f"{role}: [{kind}]"]


def _message_lines(messages: Any) -> list[str]:
    if messages is None:
        return []
    if not isinstance(messages, list):
        return _text_lines("messages", str(messages))  # content cut by the length limit: compared as text
    lines: list[str] = []
    for message in messages:
        if not isinstance(message, Mapping):
            lines += _text_lines("message", str(message))
            continue
        role = str(message.get("role") or "user")
        parts = message.get("parts")
        for part in parts if isinstance(parts, list) else [parts]:
            lines += _part_lines(role, part)
    return lines


def _tool_lines(tools: Any) -> list[str]:
    lines: list[str] = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping):
            continue
        parameters = tool.get("parameters", tool.get("input_schema"))
        description = tool.get("description")
        about = f" - {' '.join(str(description).split())}" if description else ""
        lines.append(f"tool offered: {tool.get('name')}{about} - parameters {_canonical(parameters)}")
    return lines


def _view(model: Any, system: Any, messages: Any, tools: Any, with_tools: bool) -> RequestView:
    lines = [f"model: {model}"]
    if isinstance(system, list):
        for part in system:
            lines += _part_lines("system", part)
    elif system is not None:
        lines += _text_lines("system", str(system))
    lines += _message_lines(messages)
    if with_tools:
        lines += _tool_lines(tools)
    return RequestView(None if model is None else str(model), tuple(lines))


def tools_compared(event: Event) -> bool:
    """Whether a recorded call states the tools it was offered: when it holds them, or when agentotel's OpenAI
    instrumentation recorded it (which records them whenever there are some). Other recordings (Anthropic's own
    spans) never do, and their tools cannot be compared."""
    attributes = event.attributes
    if sc.GEN_AI_TOOL_DEFINITIONS in attributes:
        return True
    return sc.AGENTOTEL_STEP_KIND in attributes and event.provider == sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI


def recorded_view(event: Event, *, with_tools: bool) -> RequestView:
    """The request a recorded model call made, from its span's content attributes."""
    attributes = event.attributes
    model = attributes.get(sc.GEN_AI_REQUEST_MODEL) or event.model
    system = parse_json(attributes.get(sc.GEN_AI_SYSTEM_INSTRUCTIONS))
    tools = parse_json(attributes.get(sc.GEN_AI_TOOL_DEFINITIONS))
    return _view(model, system, event.params, tools, with_tools)


def request_view(endpoint: str, body: Mapping[str, Any], *, with_tools: bool) -> RequestView:
    """The request an HTTP body makes, through the converters agentotel's instrumentation records it with."""
    system: Any = None
    tools: Any = None
    if endpoint == "responses":
        system = openai_messages.instruction_parts(body.get("instructions"))
        messages: Any = openai_messages.responses_input_messages(body.get("input"))
        tools = openai_messages.tool_definitions(body.get("tools"))
    elif endpoint == "messages":
        system = anthropic_messages.system_instructions(body.get("system"))
        messages = anthropic_messages.input_messages(body.get("messages"))
        tools = [
            {
                "type": "function",
                "name": t.get("name"),
                "description": t.get("description"),
                "parameters": t.get("input_schema"),
            }
            for t in body.get("tools") or []
            if isinstance(t, Mapping)
        ]
    else:
        messages = openai_messages.chat_input_messages(body.get("messages"))
        tools = openai_messages.tool_definitions(body.get("tools"))
    return _view(
        body.get("model"),
        as_recorded(sc.GEN_AI_SYSTEM_INSTRUCTIONS, system),
        as_recorded(sc.GEN_AI_INPUT_MESSAGES, messages),
        as_recorded(sc.GEN_AI_TOOL_DEFINITIONS, tools or None),
        with_tools,
    )


def value_lines(value: Any) -> list[str]:
    """A tool's arguments (or any value) as lines to compare and diff: canonical JSON, one key a line."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2, default=str).split("\n")


def diff_lines(recorded: Iterable[str], now: Iterable[str]) -> str:
    """The unified diff of two renderings, `-` for the recording and `+` for this run, control characters escaped."""
    lines = difflib.unified_diff(list(recorded), list(now), "recorded", "now", n=3, lineterm="")
    return "\n".join(printable(line) for line in lines)
