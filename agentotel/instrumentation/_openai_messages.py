"""OpenAI's messages (Chat Completions and Responses) in the GenAI JSON message schema: role + parts, where a part
is `{"type": "text", "content"}`, `{"type": "tool_call", "id", "name", "arguments"}`,
`{"type": "tool_call_response", "id", "response"}`, `{"type": "reasoning", "content"}`, `{"type": "uri" | "blob",
"modality", ...}` or `{"type": <OpenAI's type>}` for what the schema has no word for.

Used only when content capture is on. The functions accept pydantic models and plain dicts alike (a conversation
often mixes the dicts the app wrote with the message objects the SDK returned). They may raise on values of an
unexpected shape: callers catch.
"""

from __future__ import annotations

import mimetypes
from typing import Any

from ._genai import (
    field,
    items,
    message,
    output_message,
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


_AUDIO_MIME_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}
"""OpenAI's `input_audio` formats as media types (an "mp3" payload is MPEG audio: `audio/mpeg`)."""


def _audio_part(audio: Any) -> dict[str, Any]:
    return {
        "type": "blob",
        "modality": "audio",
        "mime_type": _AUDIO_MIME_TYPES.get(str(field(audio, "format"))),
        "content": field(audio, "data"),
    }


def _document_part(file: Any) -> dict[str, Any]:
    """A document: a reference to a file OpenAI holds (`file_id`), inline data (`file_data`, plain base64 or a
    `data:` URL) or a link (`file_url`). Its media type comes from a `data:` URL, else from the file's name."""
    name = field(file, "filename")
    guessed = mimetypes.guess_type(name)[0] if isinstance(name, str) and name else None
    file_id = field(file, "file_id")
    if file_id:
        return {"type": "file", "modality": "document", "mime_type": guessed, "file_id": file_id}
    data = field(file, "file_data")
    if isinstance(data, str) and data.startswith("data:"):
        header, _, data = data.partition(",")
        guessed = header[5:].split(";")[0] or guessed
    if data:
        return {"type": "blob", "modality": "document", "mime_type": guessed, "content": data}
    url = field(file, "file_url")
    if url:
        return {"type": "uri", "modality": "document", "mime_type": guessed, "uri": url}
    return {"type": "file", "modality": "document", "mime_type": guessed}


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
                _image_part(url) if url else {"type": "file", "modality": "image", "file_id": field(part, "file_id")}
            )
        elif kind == "input_audio":
            parts.append(_audio_part(field(part, "input_audio", part)))
        elif kind in ("file", "input_file"):
            # Chat Completions nests the file under "file"; the Responses API puts its fields on the part itself.
            parts.append(_document_part(field(part, "file", part)))
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
        result.append(output_message(parts, field(choice, "finish_reason")))
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
        definition.setdefault("name", kind)  # a built-in tool (web_search, computer, ...) is known by its type
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


SERVER_TOOLS = {
    "code_interpreter_call": "code_interpreter",
    "file_search_call": "file_search",
    "image_generation_call": "image_generation",
    "mcp_call": "mcp",
    "mcp_list_tools": "mcp_list_tools",
    "web_search_call": "web_search",
}
"""Output items of the tools OpenAI runs itself (the model's built-in tools) -> the tool's name. The schema's
`server_tool_call` part records them; the app runs none of them."""


def call_name(item: Any) -> Any:
    """The name of the tool a Responses tool-call item asks the app to run (a computer-use call names none)."""
    return "computer" if field(item, "type") == "computer_call" else field(item, "name")


def _item_fields(item: Any) -> dict[str, Any]:
    """An output item's fields (a pydantic model's declared ones, or a dict's), without the empty ones."""
    found = item if isinstance(item, dict) else getattr(item, "__dict__", {})
    return {key: value for key, value in found.items() if value is not None}


def _server_tool_call_part(item: Any, name: str) -> dict[str, Any]:
    """A built-in tool's call: `{"type": "server_tool_call", "id", "name", "server_tool_call": {"type", ...}}`, its
    payload the item's own fields (the action taken, its status, its results)."""
    payload = _item_fields(item)
    item_id, call_id = payload.pop("id", None), payload.pop("call_id", None)
    payload.pop("type", None)
    own_name = payload.pop("name", None)
    return {
        "type": "server_tool_call",
        "id": call_id or item_id,
        "name": own_name if isinstance(own_name, str) else name,
        "server_tool_call": {**payload, "type": name},
    }


def _computer_call_part(item: Any) -> dict[str, Any]:
    """A computer-use call: a tool call the app runs (it answers with a `computer_call_output`), its arguments the
    action(s) asked for."""
    arguments = {key: field(item, key) for key in ("action", "actions") if field(item, key) is not None}
    return {
        "type": "tool_call",
        "id": field(item, "call_id") or field(item, "id"),
        "name": "computer",
        **({"arguments": arguments} if arguments else {}),
    }


def _output_item_part(item: Any) -> dict[str, Any] | None:
    """The part for one non-message output item (a tool call, reasoning, a built-in tool's call)."""
    kind = str(field(item, "type", ""))
    if kind == "function_call":
        return tool_call_part(field(item, "call_id"), field(item, "name"), field(item, "arguments"))
    if kind == "custom_tool_call":
        return tool_call_part(field(item, "call_id"), field(item, "name"), field(item, "input"))
    if kind == "computer_call":
        return _computer_call_part(item)
    if kind == "reasoning":
        summary = " ".join(str(field(s, "text", "")) for s in items(field(item, "summary")))
        return reasoning_part(summary) if summary else None
    if kind == "item_reference":
        return None
    server_tool = SERVER_TOOLS.get(kind)
    if server_tool is not None:
        return _server_tool_call_part(item, server_tool)
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
    return [output_message(parts, finish_reason)]


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
