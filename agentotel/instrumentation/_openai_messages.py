"""OpenAI's messages (Chat Completions and Responses) in the GenAI JSON message schema: role + parts, where a part
is `{"type": "text", "content"}`, `{"type": "tool_call", "id", "name", "arguments"}`,
`{"type": "tool_call_response", "id", "response"}`, `{"type": "reasoning", "content"}`, `{"type": "uri" | "blob",
"modality", ...}` or `{"type": <OpenAI's type>}` for what the schema has no word for.

Used only when content capture is on. The functions accept pydantic models and plain dicts alike (a conversation
often mixes the dicts the app wrote with the message objects the SDK returned). They may raise on values of an
unexpected shape: callers catch.
"""

from __future__ import annotations

from typing import Any

from ._genai import (
    field,
    items,
    message,
    reasoning_part,
    text_part,
    tool_call_part,
    tool_response_part,
)

# OpenAI's roles that the schema spells otherwise.
_ROLES = {"developer": "system", "function": "tool"}


def role_of(value: Any) -> str:
    role = str(value or "user")
    return _ROLES.get(role, role)


def _image_part(url: Any) -> dict[str, Any]:
    """An image given by URL; a `data:` URL is inline content (a blob), anything else a link."""
    if isinstance(url, str) and url.startswith("data:"):
        header, _, data = url.partition(",")
        mime_type = header[5:].split(";")[0] or None
        return {"type": "blob", "modality": "image", "mime_type": mime_type, "content": data}
    return {"type": "uri", "modality": "image", "uri": url}


def content_parts(content: Any) -> list[dict[str, Any]]:
    """The parts of one message's content: text, or a list of Chat Completions / Responses content parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for part in items(content):
        if isinstance(part, str):
            parts.append(text_part(part))
            continue
        kind = field(part, "type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(text_part(field(part, "text", "")))
        elif kind == "refusal":
            parts.append({"type": "refusal", "content": field(part, "refusal", "")})
        elif kind == "image_url":
            parts.append(_image_part(field(field(part, "image_url"), "url")))
        elif kind == "input_image":
            url = field(part, "image_url")
            parts.append(
                _image_part(url) if url else {"type": "file", "modality": "image", "id": field(part, "file_id")}
            )
        elif kind == "input_audio":
            audio = field(part, "input_audio", part)
            parts.append({"type": "blob", "modality": "audio", "content": field(audio, "data")})
        elif kind in ("file", "input_file"):
            file = field(part, "file", part)
            parts.append({"type": "file", "id": field(file, "file_id"), "name": field(file, "filename")})
        else:
            parts.append({"type": str(kind or "unknown")})
    return parts


def _response_value(content: Any) -> Any:
    """A tool result as the model was given it: text as is, a list of text parts joined."""
    if isinstance(content, str) or content is None:
        return content
    texts = [field(p, "text") for p in items(content)]
    if texts and all(isinstance(t, str) for t in texts):
        return "".join(texts)
    return content


# --------------------------------------------------------------------------------------------------------------------
# Chat Completions


def chat_input_messages(messages: Any) -> list[dict[str, Any]]:
    """The `messages` of a chat request. System messages stay in the history, as the conventions ask when the API
    sends instructions as part of the chat history."""
    result: list[dict[str, Any]] = []
    for msg in items(messages):
        role = field(msg, "role")
        if role == "tool":
            parts = [tool_response_part(field(msg, "tool_call_id"), _response_value(field(msg, "content")))]
        elif role == "function":
            parts = [tool_response_part(field(msg, "name"), _response_value(field(msg, "content")))]
        else:
            parts = content_parts(field(msg, "content"))
            if field(msg, "refusal"):
                parts.append({"type": "refusal", "content": field(msg, "refusal")})
            parts.extend(_chat_tool_calls(msg))
        result.append(message(role_of(role), parts, name=field(msg, "name") if role != "function" else None))
    return result


def _chat_tool_calls(msg: Any) -> list[dict[str, Any]]:
    parts = []
    for call in items(field(msg, "tool_calls")):
        if field(call, "type", "function") == "custom":
            custom = field(call, "custom")
            parts.append(tool_call_part(field(call, "id"), field(custom, "name"), field(custom, "input")))
        else:
            function = field(call, "function")
            parts.append(tool_call_part(field(call, "id"), field(function, "name"), field(function, "arguments")))
    legacy = field(msg, "function_call")
    if legacy is not None:
        parts.append(tool_call_part(None, field(legacy, "name"), field(legacy, "arguments")))
    return parts


def chat_output_messages(choices: Any) -> list[dict[str, Any]]:
    """One assistant message per choice of a chat completion."""
    result = []
    for choice in items(choices):
        msg = field(choice, "message")
        parts = content_parts(field(msg, "content"))
        if field(msg, "refusal"):
            parts.append({"type": "refusal", "content": field(msg, "refusal")})
        parts.extend(_chat_tool_calls(msg))
        result.append(message("assistant", parts, finish_reason=field(choice, "finish_reason")))
    return result


def tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """The tools offered to the model, flattened to {type, name, description, parameters}."""
    result = []
    for tool in items(tools):
        kind = field(tool, "type", "function")
        spec = field(tool, "function") or field(tool, "custom") or tool
        definition: dict[str, Any] = {"type": kind}
        for key in ("name", "description", "parameters"):
            value = field(spec, key)
            if value is not None:
                definition[key] = value
        result.append(definition)
    return result


# --------------------------------------------------------------------------------------------------------------------
# Responses


def _is_call(kind: str) -> bool:
    return kind.endswith("_call") and not kind.endswith("_output")


def responses_input_messages(value: Any) -> list[dict[str, Any]]:
    """The `input` of a Responses request (text or a list of input items) as messages. Consecutive tool calls and
    reasoning items the app sends back are one assistant message, as the model produced them."""
    if isinstance(value, str):
        return [message("user", [text_part(value)])]
    result: list[dict[str, Any]] = []
    for item in items(value):
        kind = str(field(item, "type", "message"))
        if kind == "message":
            result.append(message(role_of(field(item, "role")), content_parts(field(item, "content"))))
            continue
        if kind.endswith("_call_output"):
            output = _response_value(field(item, "output"))
            result.append(message("tool", [tool_response_part(field(item, "call_id"), output)]))
            continue
        part = _output_item_part(item)
        if part is None:
            continue
        if result and result[-1]["role"] == "assistant":
            result[-1]["parts"].append(part)
        else:
            result.append(message("assistant", [part]))
    return result


def _output_item_part(item: Any) -> dict[str, Any] | None:
    """The part for one non-message output item (a tool call, reasoning, a built-in tool's call)."""
    kind = str(field(item, "type", ""))
    if kind == "function_call":
        return tool_call_part(field(item, "call_id"), field(item, "name"), field(item, "arguments"))
    if kind == "custom_tool_call":
        return tool_call_part(field(item, "call_id"), field(item, "name"), field(item, "input"))
    if kind == "reasoning":
        summary = " ".join(str(field(s, "text", "")) for s in items(field(item, "summary")))
        return reasoning_part(summary) if summary else None
    if kind == "item_reference":
        return None
    if _is_call(kind):
        return {"type": kind, "id": field(item, "id")}
    return {"type": kind or "unknown"}


def responses_output_messages(output: Any, finish_reason: str | None) -> list[dict[str, Any]]:
    """A response's output items as one assistant message."""
    parts: list[dict[str, Any]] = []
    for item in items(output):
        if field(item, "type") == "message":
            parts.extend(content_parts(field(item, "content")))
        else:
            part = _output_item_part(item)
            if part is not None:
                parts.append(part)
    return [message("assistant", parts, finish_reason=finish_reason)]


def instruction_parts(instructions: Any) -> list[dict[str, Any]] | None:
    """A Responses request's `instructions` (text or input items) as the parts of `gen_ai.system_instructions`."""
    if instructions is None:
        return None
    if isinstance(instructions, str):
        return [text_part(instructions)]
    parts: list[dict[str, Any]] = []
    for msg in responses_input_messages(instructions):
        parts.extend(msg["parts"])
    return parts or None
