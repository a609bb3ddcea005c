"""The text replay: a session as a timeline a person reads in the terminal or in a test failure message."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import semconv as sc
from ..model import FAIL, KIND_ACTION, KIND_AGENT, KIND_LLM, KIND_OPERATION, KIND_SESSION, KIND_TOOL, Event

if TYPE_CHECKING:
    from ..model import Session

PROBLEM_MARK = "← PROBLEM"
_INDENT = "           "

TRACEBACK_LINES = 40
"""Most lines of a traceback the text replay prints under the failing step (the innermost ones are kept)."""

# What a terminal acts on rather than shows: C0 controls (ESC starts window-title, clipboard (OSC 52) and erase
# sequences; CR and BS overwrite what came before), DEL, C1 controls (U+009B is a one-character CSI), the line and
# paragraph separators (`str.splitlines` breaks lines there), and the bidi controls that make text read backwards.
_OTHER_CONTROLS = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[\x00-\x1f{_OTHER_CONTROLS}]")
_UNPRINTABLE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHER_CONTROLS}]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """`text` safe to write to a terminal: every control character shown as its escape (`\\x1b`, `\\r`,
    `\\u202e`) rather than acted on, so that a name, tag, tool name, error or backend message can neither move the
    cursor, erase or overwrite a line, set the window title, write the clipboard nor reorder what is read. A line
    break stays one only with `keep_newlines`. Never raises for a `str`."""
    pattern = _UNPRINTABLE_BUT_NEWLINE if keep_newlines else _UNPRINTABLE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# --- tracebacks: the user's frames ------------------------------------------------------------------------------

# A frame's first line in Python's format, also inside an exception group's `|` margin.
_FRAME_LINE = re.compile(r'^(?P<lead>[ |]*)File "(?P<file>[^"]*)", line \d+')
_CARETS = re.compile(r"^[\s^~]+$")
# The package's folder as imported (tracebacks name files so) and resolved (a symlinked environment).
_PACKAGE_DIRS = tuple(
    {
        folder.as_posix().rstrip("/") + "/"
        for folder in (Path(__file__).parent.parent, Path(__file__).resolve().parent.parent)
    }
)
# agentotel installed elsewhere: a session recorded on another machine or in another environment.
_INSTALLED_ELSEWHERE = re.compile(r"/(?:site|dist)-packages/agentotel/")
# The demo's agent stands for the user's: its frames are the ones the demo shows.
_DEMO = re.compile(r"/agentotel/demo/")
_TRACEBACK_HEADER = re.compile(r"^[ |+]*(?:Exception Group )?Traceback \(most recent call last\):$")


def is_agentotel_file(path: str) -> bool:
    """Whether a traceback's file is agentotel's own: inside this installed package, or inside an `agentotel`
    package in some environment's `site-packages` (a session recorded elsewhere). The demo's agent
    (`agentotel/demo/`) is not: it plays the user's code."""
    posix = path.replace("\\", "/")
    own = posix.startswith(_PACKAGE_DIRS) or _INSTALLED_ELSEWHERE.search(posix) is not None
    return own and _DEMO.search(posix) is None


@dataclass(frozen=True)
class UserTraceback:
    """A recorded traceback without agentotel's frames: `text` holds the rest (header, the user's frames with their
    source lines, chained exceptions, the exception line), `hidden` how many frames were left out."""

    text: str
    hidden: int

    @property
    def note(self) -> str | None:
        """`2 agentotel frames hidden`, or `None` when none were."""
        if not self.hidden:
            return None
        return f"{self.hidden} agentotel frame{'s' if self.hidden != 1 else ''} hidden"


def user_traceback(stacktrace: str) -> UserTraceback:
    """`stacktrace` (Python's formatted traceback, as `exception.stacktrace` holds it) without the frames whose file
    is agentotel's own (`is_agentotel_file`: the step wrappers, the re-run shim, instrumentation): each frame's
    `File ...` line and the source and caret lines under it. Every other line stays as recorded. A stack in any
    other format has no frame to hide and comes back whole. Never raises."""
    kept: list[str] = []
    hidden = 0
    hiding: str | None = None  # the margin of the hidden frame whose source lines follow
    # Split at line feeds only, as Python writes tracebacks: a carriage return or a separator inside a message is
    # text of that line (shown escaped), never a line of its own.
    for line in stacktrace.rstrip("\n").split("\n"):
        frame = _FRAME_LINE.match(line)
        if hiding is not None and frame is None and line.startswith(hiding + "  "):
            continue
        hiding = None
        if frame is not None and is_agentotel_file(frame["file"]):
            hidden += 1
            hiding = frame["lead"]
            continue
        kept.append(line)
    if not hidden:
        return UserTraceback(stacktrace.rstrip("\n"), 0)
    # A header with none of the user's frames left under it (an exception raised inside agentotel, such as a
    # re-run raising a recorded one) says nothing: the exception line stands alone.
    shown = [
        line
        for at, line in enumerate(kept)
        if not (_TRACEBACK_HEADER.match(line) and (at + 1 == len(kept) or not _FRAME_LINE.match(kept[at + 1])))
    ]
    return UserTraceback("\n".join(shown), hidden)


def traceback_lines(stacktrace: str, *, limit: int = TRACEBACK_LINES) -> list[str]:
    """The lines the text replay prints for a recorded traceback: the user's frames (caret lines left out: a
    replay's lines are cut to its width, which would misplace them), at most `limit` of the innermost lines, and
    how many agentotel frames were hidden."""
    shown = user_traceback(stacktrace)
    lines = [line for line in shown.text.split("\n") if line.strip() and not _CARETS.match(line)]
    if len(lines) > limit:
        lines = [f"({len(lines) - limit + 1} earlier lines left out)", *lines[-(limit - 1) :]]
    if shown.note:
        lines.append(f"({shown.note})")
    return lines


def format_offset(seconds: float) -> str:
    """`MM:SS.mmm` for an offset from the session's start."""
    seconds = max(0.0, seconds)
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes):02d}:{rest:06.3f}"


UNKNOWN_COST = "unknown"
"""How a cost that is not known is shown (a model call with no price: `Session.cost_known`)."""


def format_cost(cost: float | None) -> str:
    """`$0.003500` under a cent, `$0.2500` above; `unknown` for `None`."""
    if cost is None:
        return UNKNOWN_COST
    return f"${cost:.6f}" if cost < 0.01 else f"${cost:.4f}"


def session_cost_text(session: Session) -> str:
    """A session's cost as its replay's header shows it: the amount, or `unknown (2 unpriced model calls)`."""
    cost = session.known_cost
    if cost is not None:
        return format_cost(cost)
    unpriced = len(session.unpriced_llm_calls)
    return f"{UNKNOWN_COST} ({unpriced} unpriced model call{'s' if unpriced != 1 else ''})"


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def _cut(text: str, width: int) -> str:
    """`text` cut to `width` characters, its spacing kept (a traceback's indentation means something)."""
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def _value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except Exception:
        return repr(value)


def _quoted(text: str) -> str:
    """A message's text in quotes, as the seed's replay shows it: not escaped (quotes inside stay readable)."""
    return f'"{text}"'


def call_text(name: Any, arguments: Any) -> str:
    """A tool call as it reads in a replay: `name(arg=value, ...)`, arguments given as a mapping or JSON text."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    if isinstance(arguments, dict):
        inside = ", ".join(f"{key}={value!r}" for key, value in arguments.items())
    elif arguments in (None, ""):
        inside = ""
    else:
        inside = _value(arguments)
    return f"{name or 'tool'}({inside})"


def part_text(part: Any) -> str:
    """The readable text of one part of a GenAI message: its text, a tool call as `name(arg=value)`, a tool's
    result handed back to the model as `tool result: <result>`."""
    if not isinstance(part, dict):
        return str(part)
    kind = part.get("type")
    if kind == "text":
        return str(part.get("content", ""))
    if kind == "tool_call":
        return call_text(part.get("name"), part.get("arguments"))
    if kind == "tool_call_response":
        response = part.get("response", part.get("result", part.get("content")))
        return f"tool result: {response if isinstance(response, str) else _value(response)}"
    content = part.get("content")
    return str(content) if content is not None else str(kind or "")


def _message_text(message: Any) -> str:
    """The readable text of a GenAI message (conventions' JSON schema: role + parts) or a plain one."""
    if not isinstance(message, dict):
        return str(message)
    parts = message.get("parts")
    if isinstance(parts, list):
        return " ".join(part_text(part) for part in parts)
    content = message.get("content")
    return content if isinstance(content, str) else _value(content)


def describe_inputs(event: Event) -> str | None:
    """One line for what went into a step, or `None` when nothing was captured."""
    params = event.params
    if params is None:
        return None
    if event.kind == KIND_LLM and isinstance(params, list) and params:
        return _quoted(_message_text(params[-1]))
    if isinstance(params, dict):
        return ", ".join(f"{key}={value!r}" for key, value in params.items())
    return _value(params)


def describe_outputs(event: Event) -> str | None:
    returns = event.returns
    if returns is None:
        return None
    if event.kind == KIND_LLM and isinstance(returns, list) and returns:
        return _quoted(" ".join(_message_text(m) for m in returns))
    return _value(returns)


def shown_events(session: Session) -> tuple[list[Event], dict[str, int]]:
    """The events a replay shows: each step once (a span that is the second recording of a call another span
    counts, `Event.duplicate_of`, is left out), and for each shown step how many other recordings it stands for."""
    events = session.events
    twins: dict[str, int] = {}
    for event in events:
        if event.duplicate_of is not None:
            twins[event.duplicate_of] = twins.get(event.duplicate_of, 0) + 1
    if not twins:
        return events, twins
    return [e for e in events if e.duplicate_of is None], twins


def label(event: Event, twins: int = 0) -> str:
    """How a step is headed in a replay; `twins`: how many other instrumentations recorded it too."""
    if twins:
        others = "another instrumentation" if twins == 1 else f"{twins} other instrumentations"
        twice = f" (also traced by {others}; counted once)"
    else:
        twice = ""
    if event.kind == KIND_LLM:
        return f"LLM Call ({event.model or event.name}){twice}"
    titles = {
        KIND_TOOL: "Tool",
        KIND_ACTION: "Action",
        KIND_AGENT: "Agent",
        KIND_SESSION: "Session",
        KIND_OPERATION: "Step",
    }
    title = titles.get(event.kind, "Span")
    return f"{title}: {event.action_type or event.name}{twice}"


def depths(session: Session, events: list[Event]) -> dict[str, int]:
    """How deep each event sits under the session's root span (0 for its direct children), counting only the
    ancestors among `events` (a step's hidden second recording does not indent it)."""
    shown = {e.span_id for e in events}
    parents = {e.span_id: e.parent_span_id for e in session.events}
    result: dict[str, int] = {}
    for event in events:
        depth, parent, hops = 0, event.parent_span_id, 0
        while parent is not None and parent in parents and parent != session.span_id and hops < 64:
            if parent in shown:
                depth += 1
            parent = parents[parent]
            hops += 1
        result[event.span_id] = depth
    return result


def _llm_figures(event: Event) -> str:
    """An LLM call's tokens and cost: every call has a line, for a call without a cost makes its session's unknown."""
    if event.input_tokens is None and event.output_tokens is None and event.cost is None:
        return f"Tokens: not reported | Cost: {UNKNOWN_COST}"
    return f"Tokens: {event.input_tokens or 0} in / {event.output_tokens or 0} out | Cost: {format_cost(event.cost)}"


def e2e_test_of(session: Session) -> str | None:
    """The end-to-end test that caused the session, as its replays' header shows it (`NAME failed: why ·
    screenshot PATH`; `agentotel.e2e.test.*` root attributes), or `None`."""
    from ..testing.e2e import caused_by

    return caused_by(session.root_attributes or {})


def render_text(session: Session, *, width: int = 100) -> str:
    """The session as a text timeline: header, one entry per step (inputs, outputs, tokens, cost, error), the
    first failing step marked `← PROBLEM` with its traceback (the user's frames: agentotel's are hidden and
    counted), and how the session ended."""
    events, twins = shown_events(session)
    first_error = session.first_error
    duration = f"{session.duration:.3f}s" if session.duration is not None else "running"
    header = (
        f"Session: {session.id} | {session.name} | Duration: {duration} | Cost: {session_cost_text(session)} | "
        f"Tokens: {session.input_tokens} in / {session.output_tokens} out | Status: {session.end_state or 'Running'}"
    )
    lines = [header]
    if session.end_state_reason:
        lines.append(f"Reason: {session.end_state_reason}")
    if session.tags:
        lines.append(f"Tags: {', '.join(session.tags)}")
    caused = e2e_test_of(session)
    if caused:
        lines.append(f"E2E test: {printable(caused)}")
    if session.dropped_events:
        lines.append(f"Dropped events: {session.dropped_events} (over the per-session limit)")
    lines.append("")
    level = depths(session, events)
    text_width = max(20, width - len(_INDENT))
    for event in events:
        pad = "  " * level.get(event.span_id, 0)
        offset = format_offset((event.start_ns - session.start_ns) / 1e9)
        mark = f"   {PROBLEM_MARK}" if first_error is not None and event.span_id == first_error.span_id else ""
        lines.append(f"{offset}  {pad}{label(event, twins.get(event.span_id, 0))}{mark}")
        inputs = describe_inputs(event)
        if inputs is not None:
            lines.append(f"{_INDENT}{pad}Input: {_short(inputs, text_width)}")
        outputs = describe_outputs(event)
        if outputs is not None:
            lines.append(f"{_INDENT}{pad}Output: {_short(outputs, text_width)}")
        if event.kind == KIND_LLM:
            lines.append(f"{_INDENT}{pad}{_llm_figures(event)}")
        if event.kind == KIND_SESSION and event.error is not None:
            lines.append(f"{_INDENT}{pad}Ended: {_short(str(event.error), text_width)}")
        elif event.error is not None:
            lines.append(f"{_INDENT}{pad}Error: {_short(str(event.error), text_width)}")
        elif event.attributes.get(sc.AGENTOTEL_STEP_CANCELLED) is True:
            lines.append(f"{_INDENT}{pad}Cancelled: it did not complete")
        if mark and event.error is not None and event.error.stacktrace:
            # Only the failing step's: the steps the error went through would repeat it.
            lines.extend(f"{_INDENT}{pad}{_cut(line, text_width)}" for line in traceback_lines(event.error.stacktrace))
    if session.ended:
        end_offset = format_offset(((session.end_ns or session.start_ns) - session.start_ns) / 1e9)
        if session.end_state == FAIL and first_error is not None and first_error.error is not None:
            lines.append(f"{end_offset}  Exception: {first_error.error.type}")
            lines.append(f"{_INDENT}Session ended: {session.end_state}")
        else:
            reason = f" ({session.end_state_reason})" if session.end_state_reason else ""
            lines.append(f"{end_offset}  Session ended: {session.end_state}{reason}")
    # Each entry is one line: a field's own line breaks and controls are shown escaped, never acted on.
    return "\n".join(printable(line) for line in lines)
