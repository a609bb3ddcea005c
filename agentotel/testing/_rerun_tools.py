"""Recorded tool results served in place of running the tools (`rerun(..., tools="recorded")`).

The n-th call of a tool is answered by the n-th recorded call of that tool (by name), when its arguments are the
recorded ones: with the recorded result (as the recording holds it: JSON values, so a dict for an object), or by
raising an exception of the recorded type with the recorded message. The tool's own code does not run, so tools
with side effects are safe. A recorded step that called a model itself (an action around an LLM call, a sub-agent
as a tool) runs instead, its model calls answered from the recording like any other. Two seams:

- `@agentotel.tool` and `@record_action` steps, through `agentotel._rerun_hook` (the step decorators' shim);
- LangChain tools (`BaseTool`, so LangGraph's too): `BaseTool.run` / `arun` are wrapped while the re-run lasts and
  run the tool as usual (callbacks, error handling, `ToolMessage`) with its `_run` / `_arun` answered from the
  recording, on a copy of the tool made for that call.
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .. import semconv as sc
from .._content import bind_arguments, parse_json
from .._rerun_hook import Served
from ..model import KIND_ACTION, KIND_LLM, KIND_TOOL, Event, Session
from ._rerun_requests import as_recorded, value_lines

__all__ = ["RerunStopped", "ToolCallCheck", "ToolReplay", "patch_langchain", "recorded_exception"]


class RerunStopped(Exception):
    """Raised in place of a tool a re-run cannot answer from the recording: a call the recording does not have,
    other arguments than the recorded ones (`strict=True`), or any call once a strict re-run has stopped."""


_synthetic: dict[str, type[Exception]] = {}
_synthetic_lock = threading.Lock()


def _exception_class(type_name: str) -> type[Exception]:
    """The exception class `type_name` names (a builtin, or `module.Qualified.Name` of a module already imported:
    nothing is imported because a file says so), else a class made with that name."""
    if "." not in type_name:
        found = getattr(builtins, type_name, None)
        if isinstance(found, type) and issubclass(found, Exception):
            return found
    parts = type_name.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is None:
            continue
        value: Any = module
        for name in parts[cut:]:
            value = getattr(value, name, None)
        if isinstance(value, type) and issubclass(value, Exception):
            return value
    with _synthetic_lock:
        made = _synthetic.get(type_name)
        if made is None:
            module_name, _, qualname = type_name.rpartition(".")
            made = type(qualname.rsplit(".", 1)[-1] or "Error", (Exception,), {"__module__": module_name or "builtins"})
            made.__qualname__ = qualname or type_name
            _synthetic[type_name] = made
        return made


def recorded_exception(event: Event) -> Exception:
    """An exception of the type a recorded step failed with (its `error.type`), with the recorded message."""
    type_name = str(event.attributes.get(sc.ERROR_TYPE) or (event.error.type if event.error else "Exception"))
    message = event.error.message if event.error is not None else ""
    cls = _exception_class(type_name)
    try:
        return cls(message)
    except Exception:  # a class whose constructor wants more: the message is all a recording has
        error = cls.__new__(cls)
        error.args = (message,)
        return error


@dataclass
class ToolCallCheck:
    """One served tool call, for the re-run's report."""

    name: str
    number: int
    """Which call of this tool it was (1 for its first)."""
    recorded: Event | None
    arguments: Any
    matched: bool


def _has_outcome(event: Event) -> bool:
    """Whether a recorded tool call holds what serving it needs: its result, or the error it raised."""
    keys = (sc.GEN_AI_TOOL_CALL_RESULT, sc.AGENTOTEL_ACTION_RETURNS)
    return event.error is not None or any(key in event.attributes for key in keys)


class ToolReplay:
    """The recorded tool calls of a session, served in order per tool. Thread-safe.

    `on_call(check)` is told of each call (and returns whether the re-run stops there); `stopped()` says whether
    the re-run has stopped, when every further call raises `RerunStopped`."""

    def __init__(
        self,
        recording: Session,
        *,
        strict: bool,
        on_call: Callable[[ToolCallCheck], None],
        stopped: Callable[[], bool],
    ) -> None:
        self._recorded: dict[str, list[Event]] = {}
        for event in recording.action_events:
            if event.kind in (KIND_TOOL, KIND_ACTION) and event.action_type:
                self._recorded.setdefault(event.action_type, []).append(event)
        self._calls_models = _steps_around_model_calls(recording)
        self._used: dict[str, int] = {}
        self._strict = strict
        self._on_call = on_call
        self._stopped = stopped
        self._lock = threading.Lock()

    def recorded_calls(self, name: str) -> int:
        return len(self._recorded.get(name, ()))

    def serve(self, name: str, arguments: Any, *, key: str) -> tuple[Event | None, Served | None]:
        """The stand-in for the next call of tool `name` with `arguments` (as the recording holds them, under the
        content attribute `key`; `None`: the step runs, as one that called a model does), and the recorded call it
        answers from (`None` when it has none)."""
        now = as_recorded(key, arguments)
        with self._lock:
            number = self._used.get(name, 0) + 1
            self._used[name] = number
            calls = self._recorded.get(name, [])
            recorded = calls[number - 1] if number <= len(calls) else None
        if recorded is not None and recorded.span_id in self._calls_models:
            return recorded, None
        stopped_before = self._stopped()
        matched = recorded is not None and _has_outcome(recorded) and value_lines(recorded.params) == value_lines(now)
        self._on_call(ToolCallCheck(name, number, recorded, now, matched))
        if stopped_before or self._stopped() or recorded is None or not _has_outcome(recorded):
            return recorded, _raiser(_stop_message(name, number, recorded, stopped_before))
        if not matched and self._strict:
            return recorded, _raiser(_stop_message(name, number, recorded, True))
        return recorded, _outcome(recorded)

    def hook(
        self, kind: str, name: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Served | None:
        """The `agentotel._rerun_hook` server: every `@tool` / `@record_action` step is answered."""
        key = sc.GEN_AI_TOOL_CALL_ARGUMENTS if kind == KIND_TOOL else sc.AGENTOTEL_ACTION_PARAMS
        return self.serve(name, bind_arguments(func, args, kwargs), key=key)[1]


def _steps_around_model_calls(recording: Session) -> set[str]:
    """The span ids of the recorded steps that have a model call inside them."""
    events = recording.events
    parents = {e.span_id: e.parent_span_id for e in events}
    found: set[str] = set()
    for event in events:
        if event.kind != KIND_LLM:
            continue
        parent, hops = event.parent_span_id, 0
        while parent is not None and hops < 64:
            found.add(parent)
            parent, hops = parents.get(parent), hops + 1
    return found


def _stop_message(name: str, number: int, recorded: Event | None, stopped: bool) -> str:
    if stopped:
        why = "the re-run stopped at a divergence from the recording (strict=True)"
    elif recorded is None:
        why = "the recording has no such call"
    else:
        why = "the recording holds neither its result nor its error"
    return f"agentotel re-run: tool {name} (call {number}) was not run: {why}"


def _raiser(message: str) -> Served:
    def served() -> Any:
        raise RerunStopped(message)

    return served


def _outcome(recorded: Event) -> Served:
    def served() -> Any:
        if recorded.error is not None:
            raise recorded_exception(recorded)
        return recorded.returns

    return served


# --- LangChain ---------------------------------------------------------------------------------------------------


def _langchain_arguments(tool: Any, tool_input: Any) -> Any:
    """A LangChain tool's input as agentotel's LangChain handler records it: the arguments without injected ones,
    or the input text (read as JSON when it is)."""
    if isinstance(tool_input, Mapping):
        try:
            return tool._filter_injected_args(dict(tool_input))
        except Exception:
            return dict(tool_input)
    if isinstance(tool_input, str):
        parsed = parse_json(tool_input)
        return parsed if isinstance(parsed, (dict, list)) else tool_input
    return tool_input


def _langchain_outcome(recorded: Event | None, served: Served) -> Callable[..., Any]:
    """The tool's `_run` for one served call. A `ToolException` the tool raised (which LangChain turned into the
    tool's message, `handle_tool_error`) is raised again as one, so LangChain handles it the same way."""

    def run(*args: Any, **kwargs: Any) -> Any:
        if recorded is not None and recorded.error is not None and recorded.error.type.endswith("ToolException"):
            from langchain_core.tools import ToolException

            message = recorded.returns if isinstance(recorded.returns, str) else recorded.error.message
            raise ToolException(message)
        return served()

    return run


def _serving_copy(tool: Any, run: Callable[..., Any]) -> Any:
    """A copy of `tool` whose `_run` and `_arun` are `run`: one call's stand-in, the tool itself untouched."""

    async def arun(*args: Any, **kwargs: Any) -> Any:
        return run(*args, **kwargs)

    copy = tool.model_copy()
    object.__setattr__(copy, "_run", run)
    object.__setattr__(copy, "_arun", arun)
    return copy


def patch_langchain(replay: ToolReplay) -> Callable[[], None] | None:
    """Wraps `BaseTool.run` and `BaseTool.arun` so that `replay` answers every LangChain tool; returns what undoes
    it, or `None` when LangChain is not installed."""
    try:
        from langchain_core.tools import BaseTool
    except ImportError:
        return None
    original_run, original_arun = BaseTool.run, BaseTool.arun
    key = sc.GEN_AI_TOOL_CALL_ARGUMENTS

    def stand_in(tool: Any, tool_input: Any) -> Any:
        recorded, served = replay.serve(str(tool.name), _langchain_arguments(tool, tool_input), key=key)
        if served is None:
            return tool
        try:
            return _serving_copy(tool, _langchain_outcome(recorded, served))
        except Exception as error:  # a tool that cannot be copied is not run for real either: its effects stay undone
            raise RerunStopped(
                f"agentotel re-run: tool {tool.name} could not be answered from the recording: {error}"
            ) from None

    def run(self: Any, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        return original_run(stand_in(self, tool_input), tool_input, *args, **kwargs)

    async def arun(self: Any, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
        return await original_arun(stand_in(self, tool_input), tool_input, *args, **kwargs)

    BaseTool.run = run  # type: ignore[method-assign]
    BaseTool.arun = arun  # type: ignore[method-assign]

    def undo() -> None:
        BaseTool.run = original_run  # type: ignore[method-assign]
        BaseTool.arun = original_arun  # type: ignore[method-assign]

    return undo
