"""How other instrumentations' spans read as steps of the agent's story.

Frameworks and tracers write the same facts in different shapes: the GenAI conventions in each form they allow
(attributes; span events, both the older per-message events and the current
`gen_ai.client.inference.operation.details`; the deprecated `gen_ai.prompt` / `gen_ai.completion` families),
OpenInference (Arize Phoenix's conventions), Traceloop / OpenLLMetry, LangSmith's OpenTelemetry export, and
frameworks' own attributes (Pydantic AI, Google ADK). This module answers, for any of them:

- what a span stands for (`foreign_kind`: an LLM call, a tool call, an agent step, another step);
- which of its attributes and events hold content (`is_content_key`, `is_content_event`): agentotel's processor
  drops them with content capture off and redacts them with it on;
- where its content is: `llm_input` / `llm_output` (messages in the GenAI JSON schema: role + parts),
  `tool_arguments` / `tool_result`, `step_input` / `step_output`, and `fold_events`, which turns content events
  into those attributes on the normalised record, so that every reader downstream sees one shape.

Only reads, never writes to a span. Nothing here raises: a malformed value reads as absent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from . import semconv as sc

KIND_LLM = sc.AGENTOTEL_STEP_KIND_VALUE_LLM
KIND_TOOL = sc.AGENTOTEL_STEP_KIND_VALUE_TOOL
KIND_AGENT = sc.AGENTOTEL_STEP_KIND_VALUE_AGENT
KIND_OPERATION = sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION

# --------------------------------------------------------------------------------------------------------------------
# What a span stands for

OPERATION_KINDS: Mapping[str, str] = {
    sc.GEN_AI_OPERATION_NAME_VALUE_CHAT: KIND_LLM,
    sc.GEN_AI_OPERATION_NAME_VALUE_TEXT_COMPLETION: KIND_LLM,
    sc.GEN_AI_OPERATION_NAME_VALUE_GENERATE_CONTENT: KIND_LLM,
    sc.GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS: KIND_LLM,
    "completion": KIND_LLM,  # LangSmith's export and older instrumentations
    "embedding": KIND_LLM,
    sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL: KIND_TOOL,
    sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT: KIND_AGENT,
    sc.GEN_AI_OPERATION_NAME_VALUE_CREATE_AGENT: KIND_AGENT,
    sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_WORKFLOW: KIND_AGENT,
    sc.GEN_AI_OPERATION_NAME_VALUE_RETRIEVAL: KIND_OPERATION,
    sc.GEN_AI_OPERATION_NAME_VALUE_FETCH_RESPONSE: KIND_OPERATION,  # a stored response fetched: no inference
}
"""`gen_ai.operation.name` values and the step each stands for. Any other value names something that is not a
model call (a chain, a framework's loop): such a span is never counted as an LLM call, even with rolled-up usage."""

_OPENINFERENCE_KINDS: Mapping[str, str] = {
    sc.OPENINFERENCE_SPAN_KIND_VALUE_LLM: KIND_LLM,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_EMBEDDING: KIND_LLM,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_TOOL: KIND_TOOL,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_AGENT: KIND_AGENT,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_CHAIN: KIND_OPERATION,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_RETRIEVER: KIND_OPERATION,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_RERANKER: KIND_OPERATION,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_GUARDRAIL: KIND_OPERATION,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_EVALUATOR: KIND_OPERATION,
    sc.OPENINFERENCE_SPAN_KIND_VALUE_PROMPT: KIND_OPERATION,
}
_TRACELOOP_KINDS: Mapping[str, str] = {
    sc.TRACELOOP_SPAN_KIND_VALUE_WORKFLOW: KIND_AGENT,
    sc.TRACELOOP_SPAN_KIND_VALUE_AGENT: KIND_AGENT,
    sc.TRACELOOP_SPAN_KIND_VALUE_TASK: KIND_OPERATION,
    sc.TRACELOOP_SPAN_KIND_VALUE_TOOL: KIND_TOOL,
}
_LANGSMITH_KINDS: Mapping[str, str] = {
    sc.LANGSMITH_SPAN_KIND_VALUE_LLM: KIND_LLM,
    sc.LANGSMITH_SPAN_KIND_VALUE_EMBEDDING: KIND_LLM,
    sc.LANGSMITH_SPAN_KIND_VALUE_TOOL: KIND_TOOL,
    sc.LANGSMITH_SPAN_KIND_VALUE_CHAIN: KIND_OPERATION,
    sc.LANGSMITH_SPAN_KIND_VALUE_RETRIEVER: KIND_OPERATION,
    sc.LANGSMITH_SPAN_KIND_VALUE_PROMPT: KIND_OPERATION,
    sc.LANGSMITH_SPAN_KIND_VALUE_PARSER: KIND_OPERATION,
}
_MARKERS = (
    (sc.OPENINFERENCE_SPAN_KIND, _OPENINFERENCE_KINDS),
    (sc.LANGSMITH_SPAN_KIND, _LANGSMITH_KINDS),
    (sc.TRACELOOP_SPAN_KIND, _TRACELOOP_KINDS),
)


_USAGE_KEYS = (
    sc.GEN_AI_USAGE_INPUT_TOKENS,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS,
    sc.GEN_AI_USAGE_PROMPT_TOKENS,
    sc.LLM_TOKEN_COUNT_PROMPT,
    sc.LLM_TOKEN_COUNT_COMPLETION,
)
KIND_SPAN = "span"
"""A span that is none of the agent's steps (an HTTP call, a database query, ...)."""


def kind_of(attributes: Mapping[str, Any]) -> str:
    """What a span stands for in the agent's story: agentotel's own mark, else `gen_ai.operation.name`, else
    another tracer's mark (`foreign_kind`), else token usage (a model call that names no operation).

    A span whose operation is not a model call (`chain`, `invoke_agent`, a framework's loop) is never an LLM call,
    whatever usage it rolls up; nor is one that names a model without usage (token counting, session creation)."""
    kind = attributes.get(sc.AGENTOTEL_STEP_KIND)
    if kind:
        return str(kind)
    operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
    if operation is not None:
        found = OPERATION_KINDS.get(operation if type(operation) is str else str(operation))
        if found is not None:
            return found
        return foreign_kind(attributes) or KIND_SPAN
    found = foreign_kind(attributes)
    if found is not None:
        return found
    if any(key in attributes for key in _USAGE_KEYS):
        return KIND_LLM
    return KIND_SPAN


def foreign_kind(attributes: Mapping[str, Any]) -> str | None:
    """The step a span stands for by another tracer's own mark (OpenInference, LangSmith, Traceloop), or `None`
    when it carries none of them."""
    for key, kinds in _MARKERS:
        value = attributes.get(key)
        if value is not None:
            found = kinds.get(str(value)) or kinds.get(str(value).upper()) or kinds.get(str(value).lower())
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------------------------------------------------
# Which attributes and events hold content

CONTENT_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.tools.",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "reranker.query",
    "embedding.embeddings.",
    "message.content",
    "message.contents.",
    "pydantic_ai.",
    "gcp.vertex.agent.llm_",
    "gcp.vertex.agent.tool_",
    "langsmith.metadata.",
)
"""Families of attributes (indexed, or named per tool) that hold content, matched by prefix."""

CONTENT_EVENTS = frozenset(
    {
        "gen_ai.client.inference.operation.details",
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.assistant.message",
        "gen_ai.tool.message",
        "gen_ai.choice",
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
    }
)
"""Span events whose attributes hold content (the GenAI conventions' message events, current and older)."""


def is_content_key(key: str) -> bool:
    """Whether an attribute of that name holds content, whoever wrote it."""
    return key in sc.CONTENT_ATTRIBUTES or key.startswith(CONTENT_PREFIXES)


def is_content_event(name: str) -> bool:
    """Whether a span event of that name holds content."""
    return name in CONTENT_EVENTS


# --------------------------------------------------------------------------------------------------------------------
# Values


def _json(value: Any) -> Any:
    """The value JSON text holds (the text itself when it is not JSON); other values as they are."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[", '"'):
            try:
                return json.loads(text)
            except ValueError:
                return value
    return value


def _text_part(text: Any) -> dict[str, Any]:
    return {"type": "text", "content": text if isinstance(text, str) else json.dumps(text, default=str)}


def parts_of(content: Any) -> list[dict[str, Any]]:
    """A message content in any provider's or framework's shape as GenAI message parts (`text`, `tool_call`,
    `tool_call_response`): OpenAI's, Anthropic's, Gemini's and Bedrock/Strands' content blocks, or plain text."""
    content = _json(content)
    if content is None:
        return []
    if isinstance(content, str):
        return [_text_part(content)]
    if isinstance(content, list):
        return [part for item in content for part in parts_of_block(item)]
    if isinstance(content, dict):
        return parts_of_block(content)
    return [_text_part(str(content))]


_GENAI_PARTS = frozenset(("text", "tool_call", "tool_call_response", "server_tool_call", "reasoning", "uri", "blob"))
_GENAI_PARTS |= {"file", "server_tool_call_response"}
"""The GenAI message schema's part types, read as they are."""


def parts_of_block(block: Any) -> list[dict[str, Any]]:
    """One content block as GenAI message parts."""
    if isinstance(block, str):
        return [_text_part(block)]
    if not isinstance(block, dict):
        return [] if block is None else [_text_part(str(block))]
    kind = block.get("type")
    if kind in _GENAI_PARTS and (kind != "text" or "content" in block):
        return [block]  # already a GenAI part
    if kind in ("text", "input_text", "output_text") or (kind is None and isinstance(block.get("text"), str)):
        return [_text_part(block.get("text", ""))]
    if kind == "tool_use" or "toolUse" in block or "function_call" in block or "functionCall" in block:
        call = block.get("toolUse") or block.get("function_call") or block.get("functionCall") or block
        return [
            {
                "type": "tool_call",
                "id": call.get("id") or call.get("toolUseId"),
                "name": call.get("name"),
                "arguments": _json(call.get("input", call.get("args", call.get("arguments")))),
            }
        ]
    if kind == "tool_result" or "toolResult" in block or "function_response" in block or "functionResponse" in block:
        result = block.get("toolResult") or block.get("function_response") or block.get("functionResponse") or block
        response = result.get("content", result.get("response", result.get("output")))
        return [
            {
                "type": "tool_call_response",
                "id": result.get("tool_use_id") or result.get("toolUseId") or result.get("id"),
                "response": _plain_result(response),
            }
        ]
    if kind == "function" and isinstance(block.get("function"), dict):  # an OpenAI tool call
        function = block["function"]
        return [
            {
                "type": "tool_call",
                "id": block.get("id"),
                "name": function.get("name"),
                "arguments": _json(function.get("arguments")),
            }
        ]
    if "content" in block and "role" not in block:
        return parts_of(block["content"])
    return [_text_part(block)]


def _plain_result(response: Any) -> Any:
    """A tool result as the model got it: text blocks joined, JSON parsed."""
    response = _json(response)
    if isinstance(response, list) and all(isinstance(b, dict) and isinstance(b.get("text"), str) for b in response):
        return _json("".join(b["text"] for b in response))
    return response


_ROLES = {"model": "assistant", "ai": "assistant", "human": "user", "function": "tool"}


def message(role: Any, content: Any = None, *, tool_calls: Any = None, tool_call_id: Any = None) -> dict[str, Any]:
    """A message in the GenAI JSON schema (role + parts)."""
    role_text = str(role or "user").lower()
    role_text = _ROLES.get(role_text, role_text)
    parts = parts_of(content)
    if tool_call_id is not None and role_text == "tool":
        response = _plain_result(content)
        parts = [{"type": "tool_call_response", "id": str(tool_call_id), "response": response}]
    for call in _json(tool_calls) or []:
        parts += parts_of_block({"type": "function", **call} if isinstance(call, dict) and "function" in call else call)
    return {"role": role_text, "parts": parts}


def _messages(value: Any) -> list[dict[str, Any]] | None:
    """A list of messages in any common shape (GenAI, OpenAI, Anthropic, LangChain, Gemini contents) as GenAI
    messages; `None` when `value` is not one."""
    value = _json(value)
    if isinstance(value, dict):
        for key in ("messages", "contents", "input", "prompt", "prompts"):
            if key in value:
                return _messages(value[key])
        if "role" in value:
            value = [value]
        else:
            return None
    if not isinstance(value, list) or not value:
        return None
    if len(value) == 1 and isinstance(value[0], list):  # LangChain's batches: one list per prompt
        value = value[0]
    found: list[dict[str, Any]] = []
    for item in value:
        if isinstance(item, str):
            found.append(message("user", item))
            continue
        if not isinstance(item, dict):
            return None
        if "parts" in item and isinstance(item["parts"], list) and "role" in item:
            parts = [p for block in item["parts"] for p in parts_of_block(block)]
            converted = {
                **item,
                "role": _ROLES.get(str(item["role"]).lower(), str(item["role"]).lower()),
                "parts": parts,
            }
            found.append(converted)
            continue
        role = item.get("role") or item.get("type")  # LangChain's serialised messages carry their type
        kwargs = item.get("kwargs") if isinstance(item.get("kwargs"), dict) else None
        if kwargs is not None:  # LangChain's `dumpd` form
            role = {"HumanMessage": "user", "AIMessage": "assistant", "SystemMessage": "system"}.get(
                str((item.get("id") or [""])[-1]), role
            )
            item = kwargs
        found.append(
            message(role, item.get("content"), tool_calls=item.get("tool_calls"), tool_call_id=item.get("tool_call_id"))
        )
    return found


def _indexed(attributes: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """Attributes `{prefix}{i}.{rest}` grouped by index: `{i: {rest: value}}`."""
    groups: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if key.startswith(prefix):
            head, _, rest = key[len(prefix) :].partition(".")
            if head.isdigit():
                groups.setdefault(int(head), {})[rest] = value
    return groups


def _nested_calls(fields: Mapping[str, Any], prefix: str, name_key: str, args_key: str, id_key: str) -> list[Any]:
    calls = []
    for _, call in sorted(_indexed(fields, prefix).items()):
        calls.append(
            {
                "type": "tool_call",
                "id": call.get(id_key),
                "name": call.get(name_key),
                "arguments": _json(call.get(args_key)),
            }
        )
    return calls


def _openinference_messages(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    groups = _indexed(attributes, prefix)
    if not groups:
        return None
    found = []
    for _, fields in sorted(groups.items()):
        content: Any = fields.get("message.content")
        if content is None:
            texts = [v for k, v in sorted(fields.items()) if k.startswith("message.contents.") and k.endswith(".text")]
            content = " ".join(str(t) for t in texts) if texts else None
        msg = message(fields.get("message.role"), content, tool_call_id=fields.get("message.tool_call_id"))
        msg["parts"] += _nested_calls(
            fields, "message.tool_calls.", "tool_call.function.name", sc.TOOL_CALL_FUNCTION_ARGUMENTS, sc.TOOL_CALL_ID
        )
        found.append(msg)
    return found


def _traceloop_messages(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    groups = _indexed(attributes, prefix)
    if not groups:
        return None
    found = []
    for _, fields in sorted(groups.items()):
        msg = message(fields.get("role"), fields.get("content"), tool_call_id=fields.get("tool_call_id"))
        msg["parts"] += _nested_calls(fields, "tool_calls.", "name", "arguments", "id")
        if fields.get("finish_reason"):
            msg["finish_reason"] = fields["finish_reason"]
        found.append(msg)
    return found


def _adk_messages(value: Any, *, response: bool) -> list[dict[str, Any]] | None:
    """Google ADK's `llm_request` (`{contents: [...], config: {system_instruction}}`) or `llm_response`
    (`{content: {role, parts}}`) as GenAI messages."""
    value = _json(value)
    if not isinstance(value, dict):
        return None
    if response:
        content = value.get("content")
        if not isinstance(content, dict):
            return None
        msg = message(content.get("role") or "assistant", content.get("parts"))
        if value.get("finish_reason"):
            msg["finish_reason"] = str(value["finish_reason"]).lower()
        return [msg]
    contents = value.get("contents")
    if not isinstance(contents, list):
        return None
    return [message(c.get("role"), c.get("parts")) for c in contents if isinstance(c, dict)]


def _has_prefix(attributes: Mapping[str, Any], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in attributes)


@dataclass(frozen=True)
class _MessageForms:
    """Where one side (input or output) of a model call's messages may be, in the order they are tried."""

    current: str  # the GenAI attribute
    openinference: str  # OpenInference's indexed prefix
    traceloop: str  # the older conventions' indexed prefix
    whole: tuple[str, ...]  # one attribute holding all of them (LangSmith's `gen_ai.prompt`, `input.value`)
    role: str  # the role of a plain text found there
    adk: str  # Google ADK's request / response attribute


_INPUT_FORMS = _MessageForms(
    sc.GEN_AI_INPUT_MESSAGES,
    "llm.input_messages.",
    "gen_ai.prompt.",
    (sc.GEN_AI_PROMPT, sc.INPUT_VALUE),
    "user",
    sc.GCP_VERTEX_AGENT_LLM_REQUEST,
)
_OUTPUT_FORMS = _MessageForms(
    sc.GEN_AI_OUTPUT_MESSAGES,
    "llm.output_messages.",
    "gen_ai.completion.",
    (sc.GEN_AI_COMPLETION, sc.OUTPUT_VALUE),
    "assistant",
    sc.GCP_VERTEX_AGENT_LLM_RESPONSE,
)


def _generations(value: Any) -> Any:
    """LangChain's `LLMResult` (`{"generations": [[...]]}`) as the messages it holds; anything else as it is."""
    if isinstance(value, dict) and isinstance(value.get("generations"), list):
        return [
            g.get("message", g)
            for batch in value["generations"]
            for g in (batch if isinstance(batch, list) else [batch])
            if isinstance(g, dict)
        ]
    return value


def _llm_messages(attributes: Mapping[str, Any], forms: _MessageForms) -> list[dict[str, Any]] | None:
    found = _json(attributes.get(forms.current))
    if isinstance(found, list):
        return found
    if _has_prefix(attributes, forms.openinference):
        return _openinference_messages(attributes, forms.openinference)
    if _has_prefix(attributes, forms.traceloop):
        return _traceloop_messages(attributes, forms.traceloop)
    for key in forms.whole:
        if key in attributes:
            messages = _messages(_generations(_json(attributes[key])))
            return messages if messages is not None else [message(forms.role, attributes[key])]
    if forms.adk in attributes:
        return _adk_messages(attributes[forms.adk], response=forms is _OUTPUT_FORMS)
    return None


def llm_input(attributes: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A model call's input messages from any instrumentation's attributes (the current GenAI attribute first)."""
    return _llm_messages(attributes, _INPUT_FORMS)


def llm_output(attributes: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A model call's output messages from any instrumentation's attributes."""
    return _llm_messages(attributes, _OUTPUT_FORMS)


_TOOL_ARGUMENT_KEYS = (
    sc.GEN_AI_TOOL_CALL_ARGUMENTS,
    sc.TOOL_ARGUMENTS,
    sc.GCP_VERTEX_AGENT_TOOL_CALL_ARGS,
    sc.TOOL_CALL_FUNCTION_ARGUMENTS,
    sc.INPUT_VALUE,
    sc.TRACELOOP_ENTITY_INPUT,
    sc.GEN_AI_PROMPT,
)
_TOOL_RESULT_KEYS = (
    sc.GEN_AI_TOOL_CALL_RESULT,
    sc.TOOL_RESPONSE,
    sc.GCP_VERTEX_AGENT_TOOL_RESPONSE,
    sc.ANTHROPIC_TOOL_RESULT_CONTENT,
    sc.OUTPUT_VALUE,
    sc.TRACELOOP_ENTITY_OUTPUT,
    sc.GEN_AI_COMPLETION,
)


def _first(attributes: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return _json(value)
    return None


def _unwrap_call(value: Any) -> Any:
    """Traceloop's `{"args": [...], "kwargs": {...}}` and LangChain's `{"input": ...}` as the arguments they hold."""
    if isinstance(value, dict):
        keys = set(value)
        if keys and keys <= {"args", "kwargs"}:
            kwargs = value.get("kwargs") or {}
            args = value.get("args") or []
            return kwargs if not args else ({**kwargs, "args": args} if kwargs else args)
        if keys == {"input"}:
            return _json(value["input"])
    return value


def tool_arguments(attributes: Mapping[str, Any]) -> Any:
    """A tool call's arguments from any instrumentation's attributes (parsed JSON), or `None`."""
    return _unwrap_call(_first(attributes, _TOOL_ARGUMENT_KEYS))


def tool_result(attributes: Mapping[str, Any]) -> Any:
    """A tool call's result from any instrumentation's attributes (parsed JSON), or `None`."""
    value = _plain_result(_first(attributes, _TOOL_RESULT_KEYS))  # Strands: `[{"text": "<the tool's JSON>"}]`
    if isinstance(value, dict) and set(value) <= {"output", "content", "type", "name", "tool_call_id", "id", "status"}:
        inner = value.get("output", value.get("content"))  # a framework's tool message around the result
        if inner is not None:
            return _plain_result(inner)
    return value


_TOOL_NAME_KEYS = (sc.GEN_AI_TOOL_NAME, sc.TOOL_NAME, sc.TRACELOOP_ENTITY_NAME)
_AGENT_NAME_KEYS = (sc.GEN_AI_AGENT_NAME, sc.AGENT_NAME, sc.TRACELOOP_ENTITY_NAME)
_SPAN_NAME_PREFIX = re.compile(r"^(?:execute_tool|invoke_agent|invoke_workflow|running tool:?|tool)\s+")


def _name(attributes: Mapping[str, Any], keys: tuple[str, ...], span_name: str) -> str:
    for key in keys:
        value = attributes.get(key)
        if value:
            return str(value)
    return _SPAN_NAME_PREFIX.sub("", span_name) or span_name


def tool_name(attributes: Mapping[str, Any], span_name: str) -> str:
    """A tool call's tool name: the GenAI attribute, another tracer's, else the span's name without its verb."""
    return _name(attributes, _TOOL_NAME_KEYS, span_name)


def agent_name(attributes: Mapping[str, Any], span_name: str) -> str:
    """An agent step's agent name, by the same rule."""
    return _name(attributes, _AGENT_NAME_KEYS, span_name)


def tool_call_id(attributes: Mapping[str, Any]) -> str | None:
    value = attributes.get(sc.GEN_AI_TOOL_CALL_ID) or attributes.get(sc.TOOL_CALL_ID)
    return None if value is None else str(value)


def step_input(attributes: Mapping[str, Any]) -> Any:
    """What went into another tracer's agent or chain step (OpenInference, Traceloop), or `None`."""
    return _unwrap_call(_first(attributes, (sc.INPUT_VALUE, sc.TRACELOOP_ENTITY_INPUT)))


def step_output(attributes: Mapping[str, Any]) -> Any:
    """What came out of another tracer's agent or chain step, or `None`."""
    return _first(attributes, (sc.OUTPUT_VALUE, sc.TRACELOOP_ENTITY_OUTPUT, sc.FINAL_RESULT))


# --------------------------------------------------------------------------------------------------------------------
# Content events, folded into attributes


def _event_message(name: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    role = attributes.get("role") or name.removeprefix("gen_ai.").removesuffix(".message")
    return message(
        role,
        attributes.get("content"),
        tool_calls=attributes.get("tool_calls"),
        tool_call_id=attributes.get("id") if role == "tool" else None,
    )


def _choice(attributes: Mapping[str, Any]) -> dict[str, Any]:
    body = _json(attributes.get("message"))
    if isinstance(body, dict) and ("content" in body or "tool_calls" in body or "role" in body):
        msg = message(body.get("role") or "assistant", body.get("content"), tool_calls=body.get("tool_calls"))
    else:
        msg = message("assistant", body)
    if attributes.get("finish_reason"):
        msg["finish_reason"] = str(attributes["finish_reason"])
    return msg


def fold_events(
    attributes: Mapping[str, Any], events: Iterable[tuple[str, Mapping[str, Any]]], kind: str | None
) -> Mapping[str, Any]:
    """`attributes` with what a span's content events say added under the attributes every reader knows
    (`gen_ai.input.messages`, `gen_ai.output.messages`, `gen_ai.system_instructions`, a tool's
    `gen_ai.tool.call.arguments` / `.result`), as JSON text. Attributes the span has win. A new mapping when
    anything was added, else `attributes` itself. `kind` is the span's step kind (a tool span's message events are
    its arguments and result)."""
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    added: dict[str, Any] = {}
    for name, event_attributes in events:
        if name == "gen_ai.client.inference.operation.details":
            for key in (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS):
                value = event_attributes.get(key)
                if value is not None:
                    added.setdefault(key, value if isinstance(value, str) else json.dumps(value, default=str))
        elif name == "gen_ai.choice":
            outputs.append(_choice(event_attributes))
        elif name in ("gen_ai.content.prompt", "gen_ai.content.completion"):
            key = sc.GEN_AI_PROMPT if name.endswith("prompt") else sc.GEN_AI_COMPLETION
            if event_attributes.get(key) is not None:
                added.setdefault(key, event_attributes[key])
        elif name.startswith("gen_ai.") and name.endswith(".message"):
            inputs.append(_event_message(name, event_attributes))
    if kind == KIND_TOOL:
        if inputs:
            first = inputs[0]["parts"]
            arguments = first[0].get("response", first[0].get("content")) if first else None
            added.setdefault(sc.GEN_AI_TOOL_CALL_ARGUMENTS, _dump(_json(arguments)))
        if outputs:
            parts = outputs[0]["parts"]
            result = parts[0].get("content") if len(parts) == 1 else [p.get("content") for p in parts]
            added.setdefault(sc.GEN_AI_TOOL_CALL_RESULT, _dump(_plain_result(result)))
    else:
        if inputs:
            added.setdefault(sc.GEN_AI_INPUT_MESSAGES, _dump(inputs))
        if outputs:
            added.setdefault(sc.GEN_AI_OUTPUT_MESSAGES, _dump(outputs))
    added = {key: value for key, value in added.items() if key not in attributes and value is not None}
    if not added:
        return attributes
    return {**attributes, **added}


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return None
