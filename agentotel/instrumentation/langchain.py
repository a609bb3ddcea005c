"""`LangChainInstrumentor`: LangChain and LangGraph runs as the steps of agentotel sessions.

One callback handler joins every callback manager LangChain configures: it is registered with
`langchain_core.tracers.context.register_configure_hook`, the seam LangSmith's own tracer and the usage-metadata
handler use, so it is in the manager of every `invoke` / `ainvoke` / `stream` / `astream` / `batch`, of every
LangGraph graph and node, and of a tool or a model called directly; managers made from it (`get_child`) inherit
it. The hook joins when LangChain first imports its tracer context (as it configures its first manager), not
when `langchain_core` is imported: that module brings LangSmith in, most of a second. `uninstrument()` takes the
hook out again (the handler still ends the steps it opened, but opens no new one). The handler runs inline
(`run_inline`), in the caller's context, so the span it makes current is the parent of what the run does.

What becomes a span:
- a tool run: an `execute_tool {name}` step, with the model's tool call id, and the arguments and result
  (`ToolMessage` → its content) with content capture on; a tool that raised, by its exception; a tool error the
  tool turned into text for the model (`ToolMessage.status == "error"`), by its text (content capture only);
- a LangGraph graph run: an `invoke_agent {graph name}` step; each node run (`metadata["langgraph_node"]`, run by
  the graph: a `graph:step:N` tag) an operation step named after the node. A graph run inside a node (a
  subgraph) is known as one when its first node starts, and its step is opened then, from its start time;
- a model run: a `chat {model}` (or `text_completion {model}`) LLM step with its usage, cost and (content
  capture) messages, ONLY when no provider instrumentation records the call: `ChatOpenAI` / `AzureChatOpenAI`
  (the openai SDK) while agentotel's `OpenAIInstrumentor` is instrumented, and `ChatAnthropic` while the anthropic
  SDK is traced (agentotel's `AnthropicInstrumentor`, or the SDK's own tracing). Then the provider's span is the
  LLM step, and it nests under the node's step: the run's nearest step is made current while it lasts;
- anything else (sequences, prompts, parsers, lambdas, retrievers): no span; what runs inside belongs to the
  nearest ancestor run that has one.

A span's parent is the span of the nearest ancestor run (`parent_run_id`) that has one, else the current context
(also when the app made a span of its own current inside that ancestor's run: it is nearer). A step is current
while its run lasts, and not after, even where its context cannot be reset (`_StepContext`). State is kept per
run id from its start to its end, and bounded. Nothing here raises into LangChain or the app: every callback
catches its own faults and logs them at debug level.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from types import ModuleType
from typing import Any
from uuid import UUID

import wrapt
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span

from .. import _clock as clock
from .. import semconv as sc
from .._config import settings
from ..steps import tracer
from ._framework import (
    FrameworkInstrumentor,
    end_step,
    record_failure,
    set_result,
    start_agent,
    start_step,
    start_tool,
)
from ._genai import (
    LLMCall,
    as_float,
    as_int,
    message,
    stop_sequences,
    text,
    text_part,
    tool_call_part,
    tool_response_part,
)
from ._openai_messages import content_parts, tool_definitions

log = logging.getLogger("agentotel")

__all__ = ["LangChainInstrumentor"]

MAX_RUNS = 10_000
"""Runs followed at once (started, not yet ended); a run started beyond that is not recorded."""

_NODE_TAG = "graph:step:"
_HIDDEN_TAG = "langsmith:hidden"
_LANGGRAPH = "langgraph"
_CONTROL_FLOW = frozenset({"GraphBubbleUp"})
"""LangGraph's exceptions that pause or redirect a graph (interrupts, commands to a parent): not failures."""

# `_type` of the chat models whose calls go through the openai SDK (BaseChatOpenAI and its subclasses) or the
# anthropic SDK: those SDKs' instrumentations record the calls.
_OPENAI_TYPES = frozenset({"openai-chat", "azure-openai-chat", "chat-deepseek", "xai-chat"})
_ANTHROPIC_TYPES = frozenset({"anthropic-chat"})

# LangChain's `ls_provider` names -> `gen_ai.provider.name`; other names pass through.
_PROVIDERS = {
    "openai": sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI,
    "azure": sc.GEN_AI_PROVIDER_NAME_VALUE_AZURE_AI_OPENAI,
    "anthropic": sc.GEN_AI_PROVIDER_NAME_VALUE_ANTHROPIC,
    "google_genai": sc.GEN_AI_PROVIDER_NAME_VALUE_GCP_GEMINI,
    "google_vertexai": sc.GEN_AI_PROVIDER_NAME_VALUE_GCP_VERTEX_AI,
    "amazon_bedrock": sc.GEN_AI_PROVIDER_NAME_VALUE_AWS_BEDROCK,
    "bedrock": sc.GEN_AI_PROVIDER_NAME_VALUE_AWS_BEDROCK,
    "bedrock_converse": sc.GEN_AI_PROVIDER_NAME_VALUE_AWS_BEDROCK,
    "mistral": sc.GEN_AI_PROVIDER_NAME_VALUE_MISTRAL_AI,
    "mistralai": sc.GEN_AI_PROVIDER_NAME_VALUE_MISTRAL_AI,
    "groq": sc.GEN_AI_PROVIDER_NAME_VALUE_GROQ,
    "deepseek": sc.GEN_AI_PROVIDER_NAME_VALUE_DEEPSEEK,
    "xai": sc.GEN_AI_PROVIDER_NAME_VALUE_X_AI,
    "cohere": sc.GEN_AI_PROVIDER_NAME_VALUE_COHERE,
}

# LangChain's message types -> the GenAI schema's roles.
_ROLES = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "developer": "system",
    "tool": "tool",
    "function": "tool",
}

# Run kinds
_PLAIN = 0  # no span of its own
_GRAPH = 1
_NODE = 2
_TOOL = 3
_LLM = 4  # an LLM step of ours
_PROVIDER_LLM = 5  # a model call a provider instrumentation records: no span, its nearest step made current


class _Run:
    """What the handler keeps of one run between its start and its end."""

    __slots__ = ("attached", "call", "context", "kind", "name", "span", "start_ns", "token")

    def __init__(self, kind: int, name: str, context: Context, span: Span | None = None) -> None:
        self.kind = kind
        self.name = name
        self.span = span
        self.context = context
        """What the run's children are parented to: its span's context, else what it was parented to."""
        self.start_ns = clock.now_ns()
        self.call: LLMCall | None = None
        self.attached: Context | None = None
        self.token: object | None = None


# --------------------------------------------------------------------------------------------------------------------
# Reading LangChain's values


def _name(serialized: Any, kwargs: Mapping[str, Any], default: str) -> str:
    """A run's name: the `name` LangChain passes, else the serialized object's name or class."""
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, Mapping):
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ids = serialized.get("id")
        if isinstance(ids, list) and ids:
            return str(ids[-1])
    return default


def _is_node(name: str, tags: Sequence[str] | None, metadata: Mapping[str, Any]) -> bool:
    """Whether a chain run is a LangGraph node run: named as the node its metadata names, and run by the graph
    (whose tasks carry a `graph:step:N` tag: the node's own runnables do not), and not one LangGraph hides."""
    if not tags or metadata.get("langgraph_node") != name:
        return False
    return _HIDDEN_TAG not in tags and any(isinstance(t, str) and t.startswith(_NODE_TAG) for t in tags)


def _is_graph(metadata: Mapping[str, Any]) -> bool:
    """Whether a chain run is a top-level LangGraph graph run (one outside any graph's node)."""
    return metadata.get("ls_integration") == _LANGGRAPH and "langgraph_node" not in metadata


def _is_control_flow(error: BaseException) -> bool:
    return any(kind.__name__ in _CONTROL_FLOW for kind in type(error).__mro__)


def _sdk_records(params: Mapping[str, Any]) -> bool:
    """Whether a provider instrumentation records the model call these invocation params describe. Never raises."""
    model_type = params.get("_type")
    if model_type in _OPENAI_TYPES:
        return _instrumented("agentotel.instrumentation.openai", "OpenAIInstrumentor")
    if model_type in _ANTHROPIC_TYPES:
        return _instrumented("agentotel.instrumentation.anthropic", "AnthropicInstrumentor") or _anthropic_traces()
    return False


def _instrumented(module_name: str, class_name: str) -> bool:
    """Whether agentotel's instrumentor of that module is instrumented now, without importing it."""
    module = sys.modules.get(module_name)
    instance = getattr(getattr(module, class_name, None), "_instance", None)
    return bool(getattr(instance, "is_instrumented_by_opentelemetry", False))


def _anthropic_traces() -> bool:
    """Whether the anthropic SDK traces its own calls (releases from 1.14 do, unless the environment says no)."""
    if "anthropic" not in sys.modules or os.environ.get("ANTHROPIC_OPEN_TELEMETRY", "").lower() == "false":
        return False
    from ._anthropic_native import has_native_tracing

    return has_native_tracing()


def _provider(params: Mapping[str, Any], metadata: Mapping[str, Any]) -> str | None:
    name = metadata.get("ls_provider")
    if not isinstance(name, str) or not name:
        model_type = params.get("_type")
        if model_type in _OPENAI_TYPES:
            return sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI
        if model_type in _ANTHROPIC_TYPES:
            return sc.GEN_AI_PROVIDER_NAME_VALUE_ANTHROPIC
        return None
    return _PROVIDERS.get(name, name)


def _model(params: Mapping[str, Any], metadata: Mapping[str, Any]) -> str | None:
    for value in (params.get("model"), params.get("model_name"), params.get("model_id"), metadata.get("ls_model_name")):
        if isinstance(value, str) and value:
            return value
    return None


def _request_attributes(params: Mapping[str, Any], metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The request's parameters, from the invocation params, else LangChain's `ls_*` metadata."""
    max_tokens = params.get("max_tokens")
    if max_tokens is None:
        max_tokens = params.get("max_completion_tokens", metadata.get("ls_max_tokens"))
    temperature = params.get("temperature")
    stop = params.get("stop")
    return {
        sc.GEN_AI_REQUEST_TEMPERATURE: as_float(metadata.get("ls_temperature") if temperature is None else temperature),
        sc.GEN_AI_REQUEST_MAX_TOKENS: as_int(max_tokens),
        sc.GEN_AI_REQUEST_TOP_P: as_float(params.get("top_p")),
        sc.GEN_AI_REQUEST_STOP_SEQUENCES: stop_sequences(metadata.get("ls_stop") if stop is None else stop),
        sc.GEN_AI_REQUEST_STREAM: params.get("stream") if isinstance(params.get("stream"), bool) else None,
    }


def _role(msg: Any) -> str:
    kind = str(getattr(msg, "type", "") or "")
    if kind == "chat":
        return str(getattr(msg, "role", "") or "user")
    if kind.endswith("MessageChunk"):  # a chunk's type is its class name
        kind = kind[: -len("MessageChunk")].lower()
    return _ROLES.get(kind, kind or "user")


def _parts(content: Any) -> list[dict[str, Any]]:
    """A message's content parts, without the empty text LangChain gives a message that only calls tools."""
    return [p for p in content_parts(content) if p.get("type") != "text" or p.get("content") not in ("", None)]


def _tool_calls(msg: Any) -> list[dict[str, Any]]:
    return [
        tool_call_part(call.get("id"), call.get("name"), call.get("args"))
        for call in getattr(msg, "tool_calls", None) or ()
        if isinstance(call, Mapping)
    ]


def _input_message(msg: Any) -> dict[str, Any]:
    """One LangChain message in the GenAI JSON message schema."""
    role = _role(msg)
    content = getattr(msg, "content", None)
    if role == "tool":
        return message(role, [tool_response_part(getattr(msg, "tool_call_id", None), content)])
    parts = _parts(content)
    parts.extend(_tool_calls(msg))
    return message(role, parts, name=getattr(msg, "name", None))


def _finish_reason(generation: Any) -> Any:
    info = getattr(generation, "generation_info", None) or {}
    reason = info.get("finish_reason") if isinstance(info, Mapping) else None
    if reason is None:
        metadata = getattr(getattr(generation, "message", None), "response_metadata", None) or {}
        if isinstance(metadata, Mapping):
            reason = metadata.get("finish_reason") or metadata.get("stop_reason")
    return reason


def _output_message(generation: Any) -> dict[str, Any]:
    msg = getattr(generation, "message", None)
    if msg is None:  # a completion model's generation: text only
        parts = [text_part(getattr(generation, "text", ""))]
    else:
        parts = _parts(getattr(msg, "content", None))
        parts.extend(_tool_calls(msg))
    return message("assistant", parts, finish_reason=_finish_reason(generation))


def _usage_metadata_attributes(usage: Mapping[str, Any]) -> dict[str, Any]:
    """LangChain's `UsageMetadata` (its `input_tokens` count cached tokens, as the conventions' do)."""
    details_in = usage.get("input_token_details") or {}
    details_out = usage.get("output_token_details") or {}
    return {
        sc.GEN_AI_USAGE_INPUT_TOKENS: as_int(usage.get("input_tokens")),
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: as_int(usage.get("output_tokens")),
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: as_int(details_in.get("cache_read")),
        sc.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: as_int(details_in.get("cache_creation")),
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: as_int(details_out.get("reasoning")),
    }


def _llm_output_usage(llm_output: Mapping[str, Any]) -> dict[str, Any]:
    """The provider's usage a model put in `llm_output` (OpenAI's prompt/completion words, or input/output)."""
    usage = llm_output.get("token_usage") or llm_output.get("usage") or {}
    if not isinstance(usage, Mapping):
        return {}
    input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
    output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
    return {sc.GEN_AI_USAGE_INPUT_TOKENS: as_int(input_tokens), sc.GEN_AI_USAGE_OUTPUT_TOKENS: as_int(output_tokens)}


def _record_result(call: LLMCall, response: Any) -> None:
    """A model run's `LLMResult` onto its call: model, id, finish reasons, usage, tool calls, messages. May raise:
    the caller catches."""
    generations = [g for batch in getattr(response, "generations", None) or () for g in batch or ()]
    llm_output = getattr(response, "llm_output", None) or {}
    if not isinstance(llm_output, Mapping):
        llm_output = {}
    usage: dict[str, Any] = {}
    model: Any = None
    response_id: Any = None
    tool_calls: list[dict[str, Any]] = []
    for generation in generations:
        msg = getattr(generation, "message", None)
        metadata = getattr(msg, "response_metadata", None) or {}
        if isinstance(metadata, Mapping):
            model = model or metadata.get("model_name") or metadata.get("model")
            response_id = response_id or metadata.get("id")
        found = getattr(msg, "usage_metadata", None)
        if not usage and isinstance(found, Mapping):  # each choice may carry the whole call's usage: counted once
            usage = _usage_metadata_attributes(found)
        tool_calls.extend(_tool_calls(msg))
    call.set(sc.GEN_AI_RESPONSE_MODEL, text(model or llm_output.get("model_name")))
    call.set(sc.GEN_AI_RESPONSE_ID, text(response_id))
    reasons = [str(r) for r in (_finish_reason(g) for g in generations) if r is not None]
    call.set(sc.GEN_AI_RESPONSE_FINISH_REASONS, reasons)
    call.set_all(usage or _llm_output_usage(llm_output))
    if tool_calls:
        call.set(sc.AGENTOTEL_RESPONSE_TOOL_CALL_NAMES, [str(c.get("name") or "") for c in tool_calls])
        call.set(sc.AGENTOTEL_RESPONSE_TOOL_CALL_IDS, [str(c.get("id") or "") for c in tool_calls])
    if call.capture_content:
        call.content(sc.GEN_AI_OUTPUT_MESSAGES, [_output_message(g) for g in generations])


def _record_tool_output(span: Span, output: Any) -> None:
    """What a tool returned, as the model gets it (a `ToolMessage`'s content: content capture only), and an error
    the tool reported as text rather than raised (`status="error"`: its text only with content capture, since a
    validation error's text quotes the arguments). May raise: the caller catches."""
    result, failed = output, False
    if getattr(output, "type", None) == "tool" and hasattr(output, "content"):
        result, failed = output.content, getattr(output, "status", None) == "error"
        call_id = getattr(output, "tool_call_id", None)
        if call_id:  # older LangChain (0.3.0 for one) passes no call id to `on_tool_start`: its message has it
            span.set_attribute(sc.GEN_AI_TOOL_CALL_ID, str(call_id))
    set_result(span, result)
    if failed:
        message_text = str(result)[:1024] if settings.capture_content else None
        record_failure(span, type_name="ToolException", message=message_text)


# --------------------------------------------------------------------------------------------------------------------
# Making a run's step current, and no longer


class _StepContext(Context):
    """The context a run's step is current in. Once the run has ended it reads as the context the step was started
    in (the step no longer current), wherever it is still held: LangChain's async callback managers run every end
    callback in a task of its own, on a copy of the caller's context, where the caller's own context cannot be
    reset; a generator abandoned mid-stream ends its runs wherever it is collected; runs may end out of order.
    OpenTelemetry reads a context only through `get` and derives new ones through `copy`: both are answered."""

    def __init__(self, span: Span, base: Context) -> None:
        super().__init__(trace.set_span_in_context(span, base))
        self.base = base
        self.ended = False

    def get(self, key: str, default: object = None) -> object:
        return self.base.get(key, default) if self.ended else dict.get(self, key, default)

    def copy(self) -> dict[str, object]:
        return self.base.copy() if self.ended else dict.copy(self)


def _reset(token: object) -> None:
    """Resets a token of the OpenTelemetry context. One made in another context (an async end callback) is left as
    it is: the step's context reads as its base once the step has ended. Never raises."""
    try:
        if isinstance(token, contextvars.Token):
            token.var.reset(token)
        else:
            context.detach(token)  # type: ignore[arg-type]
    except (ValueError, RuntimeError):
        pass
    except Exception:
        log.debug("Could not restore the context after a LangChain step", exc_info=True)


# --------------------------------------------------------------------------------------------------------------------
# The handler


class _Recorder:
    """The callback handler's behaviour (the handler class mixes it into LangChain's `BaseCallbackHandler` when
    LangChain is imported). Every callback never raises."""

    run_inline = True
    raise_error = False
    ignore_retry = True  # (`ignore_agent` would silence the tool events too: LangChain gates both by it)
    ignore_custom_event = True

    def __init__(self) -> None:
        self.enabled = True
        self._runs: dict[UUID, _Run] = {}
        self._spans: set[int] = set()
        """`id()` of the open spans of the runs followed (their runs hold them: an id is not reused meanwhile)."""
        self._full_logged = False

    def __copy__(self) -> _Recorder:
        return self  # one handler: a copy would not know the runs this one opened

    def __deepcopy__(self, memo: dict[int, Any]) -> _Recorder:
        return self

    # --- runs -----------------------------------------------------------------------------------------------------

    def _parent(self, parent_run_id: UUID | None) -> Context:
        """The context a new run's span is parented to: its nearest ancestor's step, else the current context.

        A span the app (or another library) opened inside the ancestor's run and made current, such as an
        `@agentotel.operation` a node calls the model from, is nearer still: the current context wins when its
        span is open and is none of the handler's own (those the run tree places better)."""
        current = context.get_current()
        parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        if parent is None:
            return current
        span = trace.get_current_span(current)
        if id(span) not in self._spans and span.is_recording():
            return current
        return parent.context

    def _room(self) -> bool:
        if len(self._runs) < MAX_RUNS:
            return True
        if not self._full_logged:
            self._full_logged = True
            log.debug("agentotel follows %d LangChain runs already: later runs are not recorded", MAX_RUNS)
        return False

    def _track(self, run_id: UUID, parent_run_id: UUID | None, name: str, kind: int = _PLAIN) -> _Run | None:
        """Follows a run that has no span of its own (its children's parent is its own parent)."""
        if not self._room():
            return None
        parent_context = self._parent(parent_run_id)
        run = self._runs[run_id] = _Run(kind, name, parent_context)
        return run

    def _open(self, run_id: UUID, kind: int, name: str, span: Span, parent_context: Context) -> _Run:
        """Follows a run with a span, made current in this context while the run lasts."""
        run = _Run(kind, name, _StepContext(span, parent_context), span)
        self._runs[run_id] = run
        self._spans.add(id(span))
        self._attach(run, run.context)
        return run

    def _attach(self, run: _Run, ctx: Context) -> None:
        try:
            run.token = context.attach(ctx)
            run.attached = ctx
        except Exception:
            log.debug("Could not make a LangChain step current", exc_info=True)

    def _detach(self, run: _Run) -> None:
        """Ends the run's step being current: its context reads as its base from now on, and is taken back off
        this context when it is still the current one here (not when runs it started are: they end later)."""
        if run.span is not None and isinstance(run.context, _StepContext):  # (a run with no span holds its parent's)
            run.context.ended = True
        token, ctx = run.token, run.attached
        run.token = run.attached = None
        if token is not None and context.get_current() is ctx:
            _reset(token)

    def _finish(self, run_id: UUID, error: BaseException | None = None) -> _Run | None:
        """Ends a run: its failure (an `Exception` that is no LangGraph control flow) and its span. Returns it."""
        run = self._runs.pop(run_id, None)
        if run is None:
            return None
        self._detach(run)
        if run.span is not None:
            self._spans.discard(id(run.span))
            if run.call is not None:
                run.call.end(error)  # its cost, then its span
            else:
                if isinstance(error, Exception) and not _is_control_flow(error):
                    record_failure(run.span, error)
                end_step(run.span)
        return run

    # --- chains: graphs and nodes ---------------------------------------------------------------------------------

    def _chain_started(
        self,
        serialized: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: Sequence[str] | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
    ) -> None:
        name = _name(serialized, kwargs, "chain")
        meta = metadata or {}
        if _is_node(name, tags, meta):
            if not self._room():
                return
            owner = self._runs.get(parent_run_id) if parent_run_id is not None else None
            if owner is not None and owner.kind == _PLAIN:
                self._promote(owner)  # a node's parent is a graph: a subgraph, known as one only now
            parent_context = self._parent(parent_run_id)
            span = start_step(sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION, name, parent=parent_context)
            self._open(run_id, _NODE, name, span, parent_context)
        elif _is_graph(meta):
            if not self._room():
                return
            parent_context = self._parent(parent_run_id)
            thread = meta.get("thread_id")
            attributes = {sc.GEN_AI_CONVERSATION_ID: str(thread)} if thread is not None else None
            span = start_agent(name, attributes=attributes, parent=parent_context)
            self._open(run_id, _GRAPH, name, span, parent_context)
        else:
            self._track(run_id, parent_run_id, name)

    def _promote(self, run: _Run) -> None:
        """Gives a followed run without a span an agent step from its start (not made current: its start is past).
        Its children that started before keep their parents."""
        span = start_agent(run.name, parent=run.context, start_ns=run.start_ns)
        run.kind, run.span = _GRAPH, span
        self._spans.add(id(span))
        run.context = _StepContext(span, run.context)

    # --- tools ----------------------------------------------------------------------------------------------------

    def _tool_started(
        self,
        serialized: Any,
        input_str: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        inputs: Any,
        kwargs: Mapping[str, Any],
    ) -> None:
        if not self._room():
            return
        # The tool's own name first: `name` in kwargs is the run's, which a config's `run_name` may change.
        name = _name(serialized if isinstance(serialized, Mapping) else None, {}, "") or _name(None, kwargs, "tool")
        description = serialized.get("description") if isinstance(serialized, Mapping) else None
        call_id = kwargs.get("tool_call_id")
        parent_context = self._parent(parent_run_id)
        span = start_tool(
            name,
            call_id=str(call_id) if call_id else None,
            description=description if isinstance(description, str) else None,
            arguments=(inputs if inputs is not None else input_str) if settings.capture_content else None,
            parent=parent_context,
        )
        self._open(run_id, _TOOL, name, span, parent_context)

    def _tool_ended(self, output: Any, run_id: UUID) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.span is not None:
            try:
                _record_tool_output(run.span, output)
            except Exception:
                log.debug("Could not record a LangChain tool's result", exc_info=True)
        self._finish(run_id)

    # --- models ---------------------------------------------------------------------------------------------------

    def _model_started(
        self,
        serialized: Any,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        kwargs: Mapping[str, Any],
        operation: str,
        content: Any,
    ) -> None:
        if not self._room():
            return
        params = kwargs.get("invocation_params") or {}
        meta = metadata or {}
        name = _name(serialized, kwargs, "model")
        if _sdk_records(params):
            self._provider_started(run_id, parent_run_id, name)
            return
        parent_context = self._parent(parent_run_id)
        model = _model(params, meta)
        attributes = {
            sc.GEN_AI_OPERATION_NAME: operation,
            sc.GEN_AI_PROVIDER_NAME: _provider(params, meta),
            sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_LLM,
            sc.GEN_AI_REQUEST_MODEL: model,
            **_request_attributes(params, meta),
        }
        token = context.attach(parent_context) if parent_context is not context.get_current() else None
        try:
            call = LLMCall(tracer, operation, model, attributes)
        finally:
            if token is not None:
                _reset(token)
        run = self._open(run_id, _LLM, name, call.span, parent_context)
        run.call = call
        if call.capture_content:
            call.content(sc.GEN_AI_INPUT_MESSAGES, content() if callable(content) else content)
            tools = params.get("tools")
            if tools:
                call.content(sc.GEN_AI_TOOL_DEFINITIONS, tool_definitions(tools) or None)

    def _provider_started(self, run_id: UUID, parent_run_id: UUID | None, name: str) -> None:
        """A model call the provider's instrumentation records: its span nests under the nearest step, made
        current for the run when the context does not hold it already (a callback in another thread)."""
        run = self._track(run_id, parent_run_id, name, _PROVIDER_LLM)
        if run is None:
            return
        step = trace.get_current_span(run.context)
        if step.get_span_context().is_valid and step is not trace.get_current_span():
            self._attach(run, run.context)

    def _model_ended(self, response: Any, run_id: UUID) -> None:
        run = self._runs.get(run_id)
        if run is not None and run.call is not None:
            try:
                _record_result(run.call, response)
            except Exception:
                log.debug("Could not record a LangChain model's result", exc_info=True)
        self._finish(run_id)

    # --- LangChain's callbacks ------------------------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        try:
            self._chain_started(serialized, run_id, parent_run_id, tags, metadata, kwargs)
        except Exception:
            log.debug("Could not record the start of a LangChain run", exc_info=True)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._finish(run_id)
        except Exception:
            log.debug("Could not record the end of a LangChain run", exc_info=True)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._finish(run_id, error)
        except Exception:
            log.debug("Could not record the failure of a LangChain run", exc_info=True)

    def on_tool_start(
        self,
        serialized: Any,
        input_str: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        inputs: Any = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        try:
            self._tool_started(serialized, input_str, run_id, parent_run_id, inputs, kwargs)
        except Exception:
            log.debug("Could not record the start of a LangChain tool", exc_info=True)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._tool_ended(output, run_id)
        except Exception:
            log.debug("Could not record the end of a LangChain tool", exc_info=True)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._finish(run_id, error)
        except Exception:
            log.debug("Could not record the failure of a LangChain tool", exc_info=True)

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        try:

            def content() -> list[dict[str, Any]]:
                return [_input_message(m) for batch in messages or () for m in batch or ()]

            chat = sc.GEN_AI_OPERATION_NAME_VALUE_CHAT
            self._model_started(serialized, run_id, parent_run_id, metadata, kwargs, chat, content)
        except Exception:
            log.debug("Could not record the start of a LangChain chat model", exc_info=True)

    def on_llm_start(
        self,
        serialized: Any,
        prompts: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not self.enabled:
            return
        try:

            def content() -> list[dict[str, Any]]:
                return [message("user", [text_part(p)]) for p in prompts or ()]

            completion = sc.GEN_AI_OPERATION_NAME_VALUE_TEXT_COMPLETION
            self._model_started(serialized, run_id, parent_run_id, metadata, kwargs, completion, content)
        except Exception:
            log.debug("Could not record the start of a LangChain model", exc_info=True)

    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            run = self._runs.get(run_id)
            if run is not None and run.call is not None and run.call.first_chunk_ns is None:
                run.call.chunk_arrived()
        except Exception:
            log.debug("Could not record a LangChain model's first token", exc_info=True)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._model_ended(response, run_id)
        except Exception:
            log.debug("Could not record the end of a LangChain model", exc_info=True)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._finish(run_id, error)
        except Exception:
            log.debug("Could not record the failure of a LangChain model", exc_info=True)

    def on_retriever_start(
        self, serialized: Any, query: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if not self.enabled:
            return
        try:
            self._track(run_id, parent_run_id, _name(serialized, kwargs, "retriever"))
        except Exception:
            log.debug("Could not record the start of a LangChain retriever", exc_info=True)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.on_chain_end(documents, run_id=run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.on_chain_error(error, run_id=run_id)

    def on_interrupt(self, event: Any) -> None:
        """LangGraph's graph lifecycle event, sent to every handler by some releases: nothing to record."""

    def on_resume(self, event: Any) -> None:
        """See `on_interrupt`."""

    @property
    def open_runs(self) -> int:
        """Runs started and not yet ended (for tests and diagnostics)."""
        return len(self._runs)


# --------------------------------------------------------------------------------------------------------------------
# The instrumentor


_HANDLER: _Recorder | None = None
_HANDLER_VAR: ContextVar[Any] | None = None
_TRACER_CONTEXT = "langchain_core.tracers.context"
_waiting_for_tracer_context = False


def handler() -> _Recorder | None:
    """The callback handler, once LangChain has been instrumented (else `None`)."""
    return _HANDLER


def _make_handler() -> tuple[_Recorder, ContextVar[Any]]:
    """The handler (a `BaseCallbackHandler`) and the context variable whose default it is: LangChain's configure
    hook adds the value of that variable to every manager it configures, in every context and thread."""
    global _HANDLER, _HANDLER_VAR
    if _HANDLER is None or _HANDLER_VAR is None:
        from langchain_core.callbacks import BaseCallbackHandler

        handler_class = type("AgentotelCallbackHandler", (_Recorder, BaseCallbackHandler), {})
        _HANDLER = handler_class()
        _HANDLER_VAR = ContextVar("agentotel_langchain_handler", default=_HANDLER)
    return _HANDLER, _HANDLER_VAR


def _register(tracer_context: ModuleType) -> None:
    """Adds the handler's configure hook, once. May raise: the callers catch."""
    variable = _HANDLER_VAR
    if variable is None or _HANDLER is None or not _HANDLER.enabled:
        return
    hooks: list[Any] = getattr(tracer_context, "_configure_hooks", [])
    if not any(hook[0] is variable for hook in hooks):
        tracer_context.register_configure_hook(variable, True)


def _on_tracer_context(module: ModuleType) -> None:
    try:
        _register(module)
    except Exception:
        log.debug("Could not hook LangChain's callback managers", exc_info=True)


class LangChainInstrumentor(FrameworkInstrumentor):
    """Records LangChain and LangGraph runs (see the module docstring). `instrument()` hooks LangChain when it is
    imported; `uninstrument()` unhooks it."""

    module_name = "langchain_core"
    requirements = ("langchain-core >= 0.3.0",)

    def apply(self, module: ModuleType) -> None:
        global _waiting_for_tracer_context
        recorder, _ = _make_handler()
        recorder.enabled = True
        tracer_context = sys.modules.get(_TRACER_CONTEXT)
        if tracer_context is not None:
            _register(tracer_context)
        elif not _waiting_for_tracer_context:
            # LangChain imports its tracer context (and LangSmith with it: most of a second) when it configures its
            # first callback manager, not when it is imported: the hook joins then, not sooner.
            _waiting_for_tracer_context = True
            wrapt.register_post_import_hook(_on_tracer_context, _TRACER_CONTEXT)

    def remove(self) -> None:
        recorder, variable = _HANDLER, _HANDLER_VAR
        if recorder is None or variable is None:
            return
        recorder.enabled = False  # managers configured before keep it: it ends what it opened, opens nothing
        tracer_context = sys.modules.get(_TRACER_CONTEXT)
        hooks: list[Any] = getattr(tracer_context, "_configure_hooks", [])
        hooks[:] = [hook for hook in hooks if hook[0] is not variable]
