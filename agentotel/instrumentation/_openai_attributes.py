"""The span attributes of an OpenAI call: what the request asked for, what the response (or a stream's chunks) said.

One small set of functions per API (Chat Completions, Responses, Embeddings). They read pydantic models and plain
dicts alike (`_genai.field`), so a raw response's JSON body is read by the same code as a parsed one. They may
raise on values of an unexpected shape: the instrumentor catches every fault and still returns the SDK's result.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .. import semconv as sc
from .._config import settings
from ._genai import MODEL_TYPES, LLMCall, as_float, as_int, field, items, reader, stop_sequences, text
from ._openai_messages import (
    call_name,
    chat_input_messages,
    chat_output_messages,
    instruction_parts,
    responses_input_messages,
    responses_output_messages,
    tool_definitions,
)

# --------------------------------------------------------------------------------------------------------------------
# Requests


def _output_type(response_format: Any) -> str | None:
    """`gen_ai.output.type` of a requested format: a pydantic class (parse helpers) or a JSON format means json."""
    if isinstance(response_format, type):
        return "json"
    kind = field(response_format, "type")
    if kind in ("json_schema", "json_object"):
        return "json"
    return "text" if kind == "text" else None


def _service_tier(kwargs: Mapping[str, Any]) -> str | None:
    tier = text(kwargs.get("service_tier"))
    return None if tier in (None, "auto") else tier  # the conventions leave the default tier out


def _sampling(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {
        sc.GEN_AI_REQUEST_TEMPERATURE: as_float(kwargs.get("temperature")),
        sc.GEN_AI_REQUEST_TOP_P: as_float(kwargs.get("top_p")),
        sc.GEN_AI_REQUEST_STREAM: kwargs.get("stream") is True,
        sc.OPENAI_REQUEST_SERVICE_TIER: _service_tier(kwargs),
    }


def _choice_count(value: Any) -> int | None:
    count = as_int(value)
    return count if count != 1 else None  # one choice is the default: left out


_CHAT_REQUEST: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "temperature": (sc.GEN_AI_REQUEST_TEMPERATURE, as_float),
    "top_p": (sc.GEN_AI_REQUEST_TOP_P, as_float),
    "max_tokens": (sc.GEN_AI_REQUEST_MAX_TOKENS, as_int),
    "frequency_penalty": (sc.GEN_AI_REQUEST_FREQUENCY_PENALTY, as_float),
    "presence_penalty": (sc.GEN_AI_REQUEST_PRESENCE_PENALTY, as_float),
    "stop": (sc.GEN_AI_REQUEST_STOP_SEQUENCES, stop_sequences),
    "seed": (sc.GEN_AI_REQUEST_SEED, as_int),
    "n": (sc.GEN_AI_REQUEST_CHOICE_COUNT, _choice_count),
    "response_format": (sc.GEN_AI_OUTPUT_TYPE, _output_type),
    "service_tier": (sc.OPENAI_REQUEST_SERVICE_TIER, lambda tier: None if tier == "auto" else text(tier)),
}
"""Chat request parameters recorded as attributes: parameter -> (attribute, converter to a value or `None`)."""


def chat_request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request attributes of `chat.completions.create` / `parse`, without `None` values.

    Walks the parameters the app passed (a handful) rather than looking up every one it could have: this runs
    for every call."""
    found: dict[str, Any] = {
        sc.OPENAI_API_TYPE: sc.OPENAI_API_TYPE_VALUE_CHAT_COMPLETIONS,
        sc.GEN_AI_REQUEST_STREAM: kwargs.get("stream") is True,
    }
    rules = _CHAT_REQUEST
    for key, value in kwargs.items():
        rule = rules.get(key)
        if rule is None or value is None:
            continue
        converted = rule[1](value)
        if converted is not None:
            found[rule[0]] = converted
    max_tokens = as_int(kwargs.get("max_completion_tokens"))
    if max_tokens is not None:  # the current name wins over the deprecated `max_tokens`
        found[sc.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    return found


def responses_request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request attributes of `responses.create` / `parse`; the conversation id when the app names one."""
    output_type = _output_type(kwargs.get("text_format")) or _output_type(field(kwargs.get("text"), "format"))
    conversation = kwargs.get("conversation")
    return {
        sc.OPENAI_API_TYPE: sc.OPENAI_API_TYPE_VALUE_RESPONSES,
        **_sampling(kwargs),
        sc.GEN_AI_REQUEST_MAX_TOKENS: as_int(kwargs.get("max_output_tokens")),
        sc.GEN_AI_OUTPUT_TYPE: output_type,
        sc.GEN_AI_CONVERSATION_ID: text(conversation) or text(field(conversation, "id")),
        sc.GEN_AI_CONVERSATION_COMPACTED: True if compacted(kwargs.get("input")) else None,
    }


def compacted(entries: Any) -> bool:
    """Whether Responses input or output items hold a compaction item (the server compacted the conversation)."""
    return any(field(item, "type") == "compaction" for item in items(entries))


def fetch_request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The request attributes of `responses.retrieve`: the fetched response's id and, for a streamed fetch that
    resumes, the cursor it resumes after."""
    cursor = kwargs.get("starting_after")
    return {
        sc.OPENAI_API_TYPE: sc.OPENAI_API_TYPE_VALUE_RESPONSES,
        sc.GEN_AI_RESPONSE_ID: text(kwargs.get("response_id")),
        sc.GEN_AI_REQUEST_STREAM: True if kwargs.get("stream") is True else None,
        sc.GEN_AI_REQUEST_STREAM_CURSOR: None if cursor is None or isinstance(cursor, bool) else str(cursor),
    }


def embeddings_request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    encoding = text(kwargs.get("encoding_format"))
    return {
        sc.GEN_AI_REQUEST_ENCODING_FORMATS: [encoding] if encoding else None,
        sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT: as_int(kwargs.get("dimensions")),
    }


def chat_request_content(call: LLMCall, kwargs: Mapping[str, Any]) -> None:
    """Input messages and tool definitions of a chat request (content capture only)."""
    call.content(sc.GEN_AI_INPUT_MESSAGES, chat_input_messages(kwargs.get("messages")))
    if kwargs.get("tools") is not None:
        call.content(sc.GEN_AI_TOOL_DEFINITIONS, tool_definitions(kwargs.get("tools")) or None)


def responses_request_content(call: LLMCall, kwargs: Mapping[str, Any]) -> None:
    """Input, instructions and tool definitions of a Responses request (content capture only)."""
    call.content(sc.GEN_AI_SYSTEM_INSTRUCTIONS, instruction_parts(kwargs.get("instructions")))
    call.content(sc.GEN_AI_INPUT_MESSAGES, responses_input_messages(kwargs.get("input")))
    if kwargs.get("tools") is not None:
        call.content(sc.GEN_AI_TOOL_DEFINITIONS, tool_definitions(kwargs.get("tools")) or None)


# --------------------------------------------------------------------------------------------------------------------
# Responses of the APIs


def _usage(input_tokens: Any, output_tokens: Any, details_in: Any, details_out: Any) -> dict[str, Any]:
    attributes = {
        sc.GEN_AI_USAGE_INPUT_TOKENS: as_int(input_tokens),  # OpenAI's count already includes cached tokens
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: as_int(output_tokens),
    }
    if details_in is not None:
        get = reader(details_in)
        attributes[sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = as_int(get("cached_tokens"))
        attributes[sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] = as_int(get("cache_write_tokens"))
    if details_out is not None:
        attributes[sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = as_int(reader(details_out)("reasoning_tokens"))
    return attributes


def chat_usage(usage: Any) -> dict[str, Any]:
    if usage is None:
        return {}
    get = reader(usage)
    return _usage(
        get("prompt_tokens"), get("completion_tokens"), get("prompt_tokens_details"), get("completion_tokens_details")
    )


def _response_common(call: LLMCall, response: Any) -> None:
    get = reader(response)
    call.set(sc.GEN_AI_RESPONSE_ID, text(get("id")))
    call.set(sc.GEN_AI_RESPONSE_MODEL, text(get("model")))
    call.set(sc.OPENAI_RESPONSE_SERVICE_TIER, text(get("service_tier")))
    call.set(sc.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, text(get("system_fingerprint")))


def _tool_calls(call: LLMCall, calls: list[tuple[Any, Any]]) -> None:
    """The tools the model asked for: names and ids are not content, their arguments are."""
    if calls:
        call.set(sc.AGENTOTEL_RESPONSE_TOOL_CALL_NAMES, [str(name or "") for name, _ in calls])
        call.set(sc.AGENTOTEL_RESPONSE_TOOL_CALL_IDS, [str(call_id or "") for _, call_id in calls])


def _chat_tool_calls(messages: list[Any]) -> list[tuple[Any, Any]]:
    found = []
    for msg in messages:
        get = reader(msg)
        tool_calls = get("tool_calls")
        if tool_calls:
            for tool_call in items(tool_calls):
                spec = field(tool_call, "function") or field(tool_call, "custom")
                found.append((field(spec, "name"), field(tool_call, "id")))
        legacy = get("function_call")
        if legacy is not None:
            found.append((field(legacy, "name"), None))
    return found


def record_chat_completion(call: LLMCall, completion: Any) -> None:
    """A chat completion's id, model, finish reasons, usage, tool calls and (content capture) output messages."""
    get = reader(completion)
    choices = get("choices")
    choices = choices if type(choices) is list else items(choices)
    _response_common(call, completion)
    reasons: list[str] = []
    messages: list[Any] = []
    for choice in choices:
        choice_get = reader(choice)
        reason = choice_get("finish_reason")
        if reason:
            reasons.append(str(reason))
        msg = choice_get("message")
        if msg is not None:
            messages.append(msg)
    call.set(sc.GEN_AI_RESPONSE_FINISH_REASONS, reasons)
    call.set_all(chat_usage(get("usage")))
    _tool_calls(call, _chat_tool_calls(messages))
    if call.capture_content:
        call.content(sc.GEN_AI_OUTPUT_MESSAGES, chat_output_messages(choices))


_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}
_CALL_ITEMS = ("function_call", "custom_tool_call", "computer_call")
"""Responses output items that ask the app to run a tool (the model's built-in tools run at OpenAI)."""


def responses_finish_reason(response: Any) -> str | None:
    """A Responses API result's finish reason in Chat Completions' words, so both APIs read the same."""
    status = field(response, "status")
    if status == "completed":
        calls = any(field(item, "type") in _CALL_ITEMS for item in items(field(response, "output")))
        return "tool_calls" if calls else "stop"
    if status == "incomplete":
        reason = field(field(response, "incomplete_details"), "reason")
        return _INCOMPLETE_REASONS.get(str(reason), str(reason or "incomplete"))
    if status == "failed":
        return "error"
    return text(status) if status == "cancelled" else None


def record_response(call: LLMCall, response: Any) -> None:
    """A Responses API result: id, model, finish reason, usage, tool calls, (content capture) output messages.
    A failed response marks the call failed with the error's code."""
    _response_common(call, response)
    if field(response, "status") == "failed":
        error = field(response, "error")
        call.set_error(str(field(error, "code", "failed")), text(field(error, "message")))
    reason = responses_finish_reason(response)
    call.set(sc.GEN_AI_RESPONSE_FINISH_REASONS, [reason] if reason else None)
    usage = field(response, "usage")
    if usage is not None:
        call.set_all(
            _usage(
                field(usage, "input_tokens"),
                field(usage, "output_tokens"),
                field(usage, "input_tokens_details"),
                field(usage, "output_tokens_details"),
            )
        )
    output = items(field(response, "output"))
    if compacted(output):
        call.set(sc.GEN_AI_CONVERSATION_COMPACTED, True)
    _tool_calls(call, [(call_name(i), field(i, "call_id")) for i in output if field(i, "type") in _CALL_ITEMS])
    if call.capture_content:
        call.content(sc.GEN_AI_OUTPUT_MESSAGES, responses_output_messages(output, reason))


def record_fetched_response(call: LLMCall, response: Any) -> None:
    """A response fetched by id (`responses.retrieve`): id, model, its status and finish reason, (content capture)
    its instructions and output. No usage: the fetch makes no inference, the tokens on the response are those of
    the generation that made it (its own span counted them). A response whose generation failed is not a failed
    fetch: its status says so, the span does not fail."""
    _response_common(call, response)
    call.set(sc.GEN_AI_RESPONSE_STATUS, text(field(response, "status")))
    reason = responses_finish_reason(response)
    call.set(sc.GEN_AI_RESPONSE_FINISH_REASONS, [reason] if reason else None)
    if call.capture_content:
        call.content(sc.GEN_AI_SYSTEM_INSTRUCTIONS, instruction_parts(field(response, "instructions")))
        call.content(sc.GEN_AI_OUTPUT_MESSAGES, responses_output_messages(items(field(response, "output")), reason))


def record_embeddings(call: LLMCall, result: Any) -> None:
    """An embeddings result: model, input tokens and the vectors' dimension count."""
    call.set(sc.GEN_AI_RESPONSE_MODEL, text(field(result, "model")))
    call.set(sc.GEN_AI_USAGE_INPUT_TOKENS, as_int(field(field(result, "usage"), "prompt_tokens")))
    if sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT not in call.attributes:
        data = items(field(result, "data"))
        call.set(sc.GEN_AI_EMBEDDINGS_DIMENSION_COUNT, _dimensions(field(data[0], "embedding") if data else None))


def _dimensions(vector: Any) -> int | None:
    """The length of an embedding: a list of floats, or (`encoding_format="base64"`) the base64 text of float32s,
    counted without decoding it (4 bytes a float)."""
    if isinstance(vector, list):
        return len(vector)
    if isinstance(vector, str) and vector and len(vector) % 4 == 0:
        size = len(vector) // 4 * 3 - (len(vector) - len(vector.rstrip("=")))
        return size // 4 if size % 4 == 0 else None
    return None


# --------------------------------------------------------------------------------------------------------------------
# Streams


class _Bounded:
    """Text gathered from deltas, kept to the content length limit so a long stream holds bounded memory."""

    __slots__ = ("length", "limit", "pieces", "truncated")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pieces: list[str] = []
        self.length = 0
        self.truncated = False

    def add(self, piece: Any) -> None:
        if not isinstance(piece, str) or not piece:
            return
        room = self.limit - self.length
        if room <= 0:
            self.truncated = True
            return
        if len(piece) > room:
            piece, self.truncated = piece[:room], True
        self.pieces.append(piece)
        self.length += len(piece)

    def value(self) -> str:
        return "".join(self.pieces)


class _ChoiceState:
    __slots__ = ("finish_reason", "refusal", "text", "tool_calls")

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.text: _Bounded | None = None
        self.refusal: _Bounded | None = None
        self.tool_calls: dict[int, dict[str, Any]] = {}


_HEAD = ("id", "model", "service_tier", "system_fingerprint")


class ChatStream:
    """Gathers a chat completion stream: id, model, finish reasons, usage (the final chunk, when the request set
    `stream_options.include_usage`), tool calls and, with content capture, the text.

    `add` runs for every chunk of every stream, so it reads each chunk once, through `reader`, and reads the head
    (id, model, ...) only until a chunk carried it."""

    def __init__(self, capture_content: bool) -> None:
        self.capture = capture_content
        self.limit = settings.content_max_length
        self.head: dict[str, Any] = {}
        self._head_open = True
        self.usage: Any = None
        self.choices: dict[int, _ChoiceState] = {}

    def add(self, chunk: Any) -> None:
        # `reader`, inlined for the SDK's models (three times a chunk: chunk, choice, delta).
        models = MODEL_TYPES  # filled by `reader` on the first chunk of each type
        get = chunk.__dict__.get if models.get(type(chunk)) else reader(chunk)
        if self._head_open:
            # Every chunk repeats the head; the first with an id carries all of it (Azure's first chunk, the
            # prompt filter results, has an empty id and model): after that one, stop looking.
            head = self.head
            for key in _HEAD:
                value = get(key)
                if value:
                    head[key] = value
            if "id" in head:
                self._head_open = False
        usage = get("usage")
        if usage is not None:
            self.usage = usage
        choices = get("choices")
        if not choices:
            return
        for choice in choices if type(choices) is list else items(choices):
            choice_get = choice.__dict__.get if models.get(type(choice)) else reader(choice)
            index = choice_get("index")
            index = (index if type(index) is int else as_int(index)) or 0
            state = self.choices.get(index)
            if state is None:
                state = self.choices[index] = _ChoiceState()
            finish_reason = choice_get("finish_reason")
            if finish_reason:
                state.finish_reason = str(finish_reason)
            delta = choice_get("delta")
            if delta is None:
                continue
            delta_get = delta.__dict__.get if models.get(type(delta)) else reader(delta)
            if self.capture:
                piece = delta_get("content")
                if piece:
                    gathered = state.text
                    if gathered is None:
                        gathered = state.text = _Bounded(self.limit)
                    # `_Bounded.add` inlined for the common case (text that fits): this runs for every chunk.
                    if type(piece) is str and gathered.length + len(piece) <= gathered.limit:
                        gathered.pieces.append(piece)
                        gathered.length += len(piece)
                    else:
                        gathered.add(piece)
                piece = delta_get("refusal")
                if piece:
                    if state.refusal is None:
                        state.refusal = _Bounded(self.limit)
                    state.refusal.add(piece)
            tool_calls = delta_get("tool_calls")
            if tool_calls:
                self._add_tool_calls(state, tool_calls)

    def _add_tool_calls(self, state: _ChoiceState, tool_calls: Any) -> None:
        for tool_call in items(tool_calls):
            entry = state.tool_calls.setdefault(
                as_int(field(tool_call, "index")) or 0, {"id": None, "name": None, "arguments": None}
            )
            function = field(tool_call, "function")
            entry["id"] = entry["id"] or field(tool_call, "id")
            entry["name"] = entry["name"] or field(function, "name")
            if self.capture:
                if entry["arguments"] is None:
                    entry["arguments"] = _Bounded(self.limit)
                entry["arguments"].add(field(function, "arguments"))

    def _completion(self) -> dict[str, Any]:
        """The stream's gathered content as a chat completion body, read by the same code as a plain call's."""
        choices = []
        for index in sorted(self.choices):
            state = self.choices[index]
            tool_calls = [
                {
                    "id": entry["id"],
                    "type": "function",
                    "function": {
                        "name": entry["name"],
                        "arguments": entry["arguments"].value() if entry["arguments"] is not None else None,
                    },
                }
                for _, entry in sorted(state.tool_calls.items())
            ]
            msg = {
                "content": state.text.value() if state.text else None,
                "refusal": state.refusal.value() if state.refusal else None,
                "tool_calls": tool_calls or None,
            }
            choices.append({"index": index, "message": msg, "finish_reason": state.finish_reason})
        return {**self.head, "choices": choices, "usage": self.usage}

    def apply(self, call: LLMCall) -> None:
        record_chat_completion(call, self._completion())
        if any(
            (s.text and s.text.truncated)
            or (s.refusal and s.refusal.truncated)
            or any(e["arguments"] is not None and e["arguments"].truncated for e in s.tool_calls.values())
            for s in self.choices.values()
        ):
            call.set(sc.AGENTOTEL_CONTENT_TRUNCATED, True)


class ResponsesStream:
    """Gathers a Responses API event stream. The final event (`response.completed`, `.incomplete`, `.failed`)
    carries the whole response; when the stream stops before it, the items finished so far (and, with content
    capture, the text of the one in progress) stand for it."""

    _FINAL = ("completed", "incomplete", "failed", "cancelled")
    record: Callable[[LLMCall, Any], None] = staticmethod(record_response)
    """Writes the final response onto the call."""

    def __init__(self, capture_content: bool) -> None:
        self.capture = capture_content
        self.response: Any = None
        self.error: Any = None
        self.output: list[Any] = []
        self.partial = _Bounded(settings.content_max_length)
        self.compacted = False

    def add(self, event: Any) -> None:
        kind = field(event, "type")
        response = field(event, "response")
        if response is not None:
            self.response = response
        elif kind == "response.output_item.done":
            item = field(event, "item")
            if field(item, "type") == "compaction":
                self.compacted = True
            if self.capture or field(item, "type") in _CALL_ITEMS:
                self.output.append(item)
                self.partial = _Bounded(self.partial.limit)
        elif kind == "response.output_text.delta" and self.capture:
            self.partial.add(field(event, "delta"))
        elif kind == "error":
            self.error = event

    def apply(self, call: LLMCall) -> None:
        if self.error is not None:
            call.set_error(str(field(self.error, "code", "error")), text(field(self.error, "message")))
        if self.compacted:  # a stream stopped early still says the conversation was compacted
            call.set(sc.GEN_AI_CONVERSATION_COMPACTED, True)
        if field(self.response, "status") in self._FINAL:
            self.record(call, self.response)
            return
        if self.response is not None:
            _response_common(call, self.response)
        output = list(self.output)
        if self.partial.pieces:
            output.append({"type": "message", "content": [{"type": "output_text", "text": self.partial.value()}]})
        _tool_calls(call, [(call_name(i), field(i, "call_id")) for i in output if field(i, "type") in _CALL_ITEMS])
        if call.capture_content and output:
            call.content(sc.GEN_AI_OUTPUT_MESSAGES, responses_output_messages(output, None))


class FetchedResponseStream(ResponsesStream):
    """Gathers the event stream of a streamed `responses.retrieve`: as `ResponsesStream`, the final response written
    as a fetched one (no usage; its generation's failure is not the fetch's)."""

    record = staticmethod(record_fetched_response)
