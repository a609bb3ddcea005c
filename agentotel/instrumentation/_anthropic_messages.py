"""Anthropic Messages API values in the GenAI JSON message schema (`{"role", "parts": [...]}`), for the
`gen_ai.system_instructions`, `gen_ai.input.messages` and `gen_ai.output.messages` content attributes.

Reads request parameters (plain dicts, or SDK models a caller passed) and response content blocks (SDK models, or
the dicts of a raw response) alike, through `_genai.field`. Nothing here raises: a block it does not know becomes a
part that names only its type, so content never carries what the schema cannot describe.
"""

from __future__ import annotations

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


def _media_part(block: Any, modality: str) -> dict[str, Any]:
    """An image or document block: inline data as a blob part, a URL as a uri part, anything else by type."""
    source = field(block, "source")
    kind = field(source, "type")
    if kind == "base64":
        return {
            "type": "blob",
            "modality": modality,
            "mime_type": field(source, "media_type"),
            "content": field(source, "data"),
        }
    if kind == "url":
        return {"type": "uri", "modality": modality, "uri": field(source, "url")}
    if kind == "file":
        return {"type": "file", "modality": modality, "file_id": field(source, "file_id")}
    return {"type": str(field(block, "type", modality))}


def _tool_result(content: Any) -> Any:
    """A tool result's content: text as it is, a list of blocks as parts."""
    if isinstance(content, str) or content is None:
        return content
    return [part(block) for block in items(content)]


def part(block: Any) -> dict[str, Any]:
    """One content block as a message part. Never raises."""
    try:
        if isinstance(block, str):
            return text_part(block)
        kind = field(block, "type")
        if kind == "text":
            return text_part(field(block, "text", ""))
        if kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            return tool_call_part(field(block, "id"), field(block, "name"), field(block, "input"))
        if kind == "tool_result":
            return tool_response_part(field(block, "tool_use_id"), _tool_result(field(block, "content")))
        if kind == "thinking":
            return reasoning_part(field(block, "thinking", ""))
        if kind == "image":
            return _media_part(block, "image")
        if kind == "document":
            return _media_part(block, "document")
        return {"type": str(kind or "unknown")}
    except Exception:
        return {"type": "unknown"}


def parts(content: Any) -> list[dict[str, Any]]:
    """A message's content (text, or a list of blocks) as parts."""
    if isinstance(content, str):
        return [text_part(content)]
    return [part(block) for block in items(content)]


def system_instructions(system: Any) -> list[dict[str, Any]] | None:
    """The `system` parameter (text or text blocks) as the system-instructions schema, or `None` when absent."""
    if isinstance(system, str):
        return [text_part(system)] if system else None
    found = parts(system)
    return found or None


def input_messages(messages: Any) -> list[dict[str, Any]]:
    """The `messages` parameter as input messages, in the order they were sent."""
    return [message(field(m, "role", "user"), parts(field(m, "content"))) for m in items(messages)]


def output_messages(content: Any, stop_reason: Any) -> list[dict[str, Any]]:
    """A response's content blocks as the one assistant output message."""
    return [output_message(parts(content), stop_reason)]
