"""The HTML replay: a session as ONE self-contained page with a timeline to scrub through.

The page needs no network: its styles and script are inlined from `assets/`, and a Content-Security-Policy
forbids loading anything and runs only the page's own script (by hash). The session travels as JSON in a
`<script type="application/json">` block, escaped so that agent content can never close the tag, and the
script shows every value with `textContent`: content from the agent is data, never markup.

Python does all the formatting (labels, offsets, costs, running totals) with the text replay's helpers, so the
two replays say the same thing; the script only lays the data out.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import json
import math
import os
import re
import sys
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import semconv as sc
from .._content import parse_json, to_json
from ..model import FAIL, KIND_ACTION, KIND_LLM, KIND_SESSION, KIND_TOOL, Event
from .text import (
    PROBLEM_MARK,
    _message_text,
    _short,
    depths,
    describe_inputs,
    e2e_test_of,
    format_cost,
    format_offset,
    label,
    session_cost_text,
    shown_events,
    user_traceback,
)

if TYPE_CHECKING:
    from ..model import Session
    from ..records import ExceptionInfo

DATA_ELEMENT_ID = "agentotel-data"
"""The id of the `<script type="application/json">` element that holds the session's data."""

SUMMARY_WIDTH = 160
"""Longest one-line input summary shown on a timeline row (the detail pane shows everything)."""

IO_SUMMARY_LENGTH = 4000
"""Longest text of the header's input and output summary (the step it comes from shows all of it)."""

_CONTENT_ATTRIBUTES = frozenset(
    {
        sc.GEN_AI_INPUT_MESSAGES,
        sc.GEN_AI_OUTPUT_MESSAGES,
        sc.GEN_AI_SYSTEM_INSTRUCTIONS,
        sc.GEN_AI_TOOL_CALL_ARGUMENTS,
        sc.GEN_AI_TOOL_CALL_RESULT,
        sc.AGENTOTEL_ACTION_PARAMS,
        sc.AGENTOTEL_ACTION_RETURNS,
    }
)
"""Attributes the detail pane shows as inputs and outputs, so they are not repeated in its attribute list."""

_SHOWN_ELSEWHERE = frozenset(
    {
        sc.SESSION_ID,
        sc.AGENTOTEL_STEP_KIND,
        sc.GEN_AI_OPERATION_NAME,
        sc.GEN_AI_REQUEST_MODEL,
        sc.GEN_AI_PROVIDER_NAME,
        sc.GEN_AI_USAGE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        sc.AGENTOTEL_USAGE_COST_AMOUNT,
        sc.AGENTOTEL_USAGE_COST_CURRENCY,
        sc.GEN_AI_TOOL_NAME,
        sc.AGENTOTEL_ACTION_TYPE,
        sc.GEN_AI_AGENT_NAME,
        sc.ERROR_TYPE,
    }
)
"""Attributes the detail pane already shows as facts (model, tokens, cost, ...): left out of its attribute list,
which keeps a 10,000-step page small."""

# `<`, `>` and `&` could end the script element or start a comment inside it; U+2028/2029 end a line in older
# JavaScript. Escaped as JSON unicode escapes, the text parses to the same value.
_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


# --- assets -----------------------------------------------------------------------------------------------------


@functools.cache
def asset(name: str) -> str:
    """The text of a file in `agentotel/replay/assets/` (package data)."""
    return resources.files("agentotel.replay").joinpath("assets").joinpath(name).read_text(encoding="utf-8")


def script_hash(script: str) -> str:
    """The CSP source (`'sha256-…'`) that allows exactly this inline script."""
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy(*scripts: str) -> str:
    """A policy that loads nothing from anywhere and runs only `scripts` (inline, by hash)."""
    hashes = " ".join(script_hash(s) for s in scripts)
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'self'"
    )


def fill_template(template: str, values: dict[str, str]) -> str:
    """`template` with each `{{name}}` replaced in one pass, so a value is never itself searched for
    placeholders (a session named `{{data}}` stays that text)."""
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def json_for_script(value: Any) -> str:
    """`value` as JSON text that is safe inside a `<script>` element: it cannot contain `<`, `>`, `&`, a line
    separator or any non-ASCII character (all are unicode escapes). Never raises: what JSON cannot hold
    becomes a string."""
    try:
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str, allow_nan=False)
    except (ValueError, TypeError):
        # NaN, infinity, a cycle or an odd key somewhere: the content module's never-raising conversion makes
        # plain JSON of it (limit: none), which is then written out ASCII-only like the rest.
        text = json.dumps(json.loads(to_json(value, sys.maxsize)[0]), ensure_ascii=True, separators=(",", ":"))
    return text.translate(_SCRIPT_ESCAPES)


def html_text(text: str) -> str:
    """`text` escaped for HTML, with unpaired surrogates (which UTF-8 cannot encode) replaced."""
    return html.escape(text.encode("utf-8", "replace").decode("utf-8"))


# --- formatting ---------------------------------------------------------------------------------------------------


def format_duration(seconds: float | None) -> str:
    """`812 ms`, `4.210 s`, `2 min 03.4 s`; `running` for a step that has not ended."""
    if seconds is None:
        return "running"
    if seconds < 0.001:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.3f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:04.1f} s"


def format_tokens(input_tokens: int, output_tokens: int) -> str:
    return f"{input_tokens + output_tokens:,} ({input_tokens:,} in / {output_tokens:,} out)"


_CLOCK_STEPS = (15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
"""Round steps, in seconds, for an axis of minutes or hours."""


def axis_ticks(total_seconds: float, count: int = 5) -> list[tuple[float, str]]:
    """Tick marks for a time axis of `total_seconds`: (fraction of the axis, label) at round steps."""
    if total_seconds <= 0:
        return [(0.0, "0")]
    raw = total_seconds / count
    if total_seconds < 120:
        magnitude = 10 ** math.floor(math.log10(raw))
        step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    else:
        step = next((s for s in _CLOCK_STEPS if s >= raw), 86400 * math.ceil(raw / 86400))
    ticks = []
    index = 0
    while index * step <= total_seconds * 1.0001:
        value = index * step
        ticks.append((min(1.0, value / total_seconds), _tick_label(value, total_seconds)))
        index += 1
    return ticks


def _tick_label(seconds: float, total_seconds: float) -> str:
    if seconds == 0:
        return "0"
    if total_seconds < 2:
        return f"{round(seconds * 1000, 3):g}ms"
    if total_seconds < 120:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m" if minutes else f"{hours}h"
    if not minutes:
        return f"{rest}s"
    return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"


# --- content as the detail pane shows it ---------------------------------------------------------------------


def _value_text(value: Any) -> str:
    """A value as the detail pane prints it: strings as they are, anything else as indented JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, indent=2, default=str)
    except Exception:
        return repr(value)


def _messages(value: Any) -> list[dict[str, str]] | None:
    """GenAI messages (`[{role, parts|content}]`) as role and readable text; `None` when `value` is not a list of
    messages."""
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) for m in value):
        return None
    return [{"role": str(m.get("role", "")), "text": _message_text(m)} for m in value]


def content_view(event: Event, value: Any, *, system: Any = None) -> dict[str, Any] | None:
    """What the detail pane shows for a step's inputs or outputs: `{"messages": [...]}` for model messages,
    `{"fields": [[name, text], ...]}` for named arguments, `{"text": ...}` otherwise; `None` when not captured."""
    if value is None and system is None:
        return None
    if event.kind == KIND_LLM:
        messages = _messages(value) if value is not None else []
        if messages is not None:
            if system is not None:
                parts = system if isinstance(system, list) else [{"type": "text", "content": _value_text(system)}]
                messages.insert(0, {"role": "system", "text": _message_text({"parts": parts})})
            return {"messages": messages}
    if isinstance(value, dict) and value:
        return {"fields": [[str(k), _value_text(v)] for k, v in value.items()]}
    return {"text": _value_text(value)}


def _attributes(event: Event) -> list[list[str]]:
    shown = _CONTENT_ATTRIBUTES | _SHOWN_ELSEWHERE
    return [
        [str(key), _value_text(list(value) if isinstance(value, tuple) else value)]
        for key, value in event.attributes.items()
        if key not in shown
    ]


# --- the page's data ----------------------------------------------------------------------------------------------


def page_data(session: Session, *, back_url: str | None = None) -> dict[str, Any]:
    """Everything the replay page shows, as JSON-ready data: the session's header with what it was asked and
    answered (`io_summary`), one entry per event (in the order they started) with its running totals, the index
    of the first failing step, and the step the page opens on (`opening_step`)."""
    events, twins = shown_events(session)
    first_error = session.first_error
    level = depths(session, events)
    start_ns = session.start_ns
    ends = [e.end_ns for e in events if e.end_ns is not None]
    end_ns = session.end_ns if session.end_ns is not None else max([start_ns, *ends, *(e.start_ns for e in events)])
    total = max(0, end_ns - start_ns) / 1e9
    totals = session.totals()

    rows: list[dict[str, Any]] = []
    cost_so_far: float | None = 0.0  # unknown (`None`) from the first counted model call with no price on
    input_so_far = output_so_far = 0
    first_error_index: int | None = None
    for index, event in enumerate(events):
        if cost_so_far is not None and event.kind == KIND_LLM and event.duplicate_of is None:
            cost_so_far = None if event.cost is None else cost_so_far + event.cost
        input_so_far += event.input_tokens or 0
        output_so_far += event.output_tokens or 0
        problem = first_error is not None and event.span_id == first_error.span_id
        if problem:
            first_error_index = index
        row = _event_data(event, start_ns, level.get(event.span_id, 0), problem, twins.get(event.span_id, 0))
        row["cost_so_far"] = cost_so_far
        row["cost_so_far_text"] = format_cost(cost_so_far)
        row["tokens_so_far"] = input_so_far + output_so_far
        row["tokens_so_far_text"] = format_tokens(input_so_far, output_so_far)
        if row.get("session_id") == session.id:
            del row["session_id"]  # the page's own session, as most events are: the script falls back to it
        rows.append(row)

    state = session.end_state or "Running"
    llm_calls = int(totals.get(sc.AGENTOTEL_SESSION_LLM_CALL_COUNT, 0))
    tool_calls = int(totals.get(sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT, 0))
    error_count = int(totals.get(sc.AGENTOTEL_SESSION_ERROR_COUNT, 0))
    stats = [
        ["Duration", format_duration(session.duration)],
        ["Cost", session_cost_text(session)],
        ["Tokens", format_tokens(session.input_tokens, session.output_tokens)],
        ["LLM calls", f"{llm_calls:,}"],
        ["Tools + actions", f"{tool_calls:,}"],
        ["Errors", f"{error_count:,}"],
        ["Steps", f"{len(events):,}"],
        ["Started", session.start_time.strftime("%Y-%m-%d %H:%M:%S UTC")],
    ]
    if session.dropped_events:
        stats.append(["Dropped", f"{session.dropped_events:,} events over the limit"])
    caused = e2e_test_of(session)
    if caused:
        stats.append(["E2E test", caused])
    return {
        "version": 1,
        "session": {
            "id": session.id,
            "name": session.name,
            "tags": list(session.tags),
            "state": state,
            "reason": session.end_state_reason,
            "trace_id": session.trace_id,
            "parent_id": session.parent_id,
            "cost": session.known_cost,
            "cost_text": format_cost(session.known_cost),
            "duration_text": format_duration(session.duration),
            "stats": stats,
        },
        "total_ms": total * 1000,
        "axis": [[fraction, text] for fraction, text in axis_ticks(total)],
        "first_error": first_error_index,
        "open": opening_step(session, len(events), first_error_index),
        "io": io_summary(events, level),
        "problem_mark": PROBLEM_MARK,
        "back_url": back_url if back_url and back_url.startswith("/") and not back_url.startswith("//") else None,
        "events": rows,
    }


def opening_step(session: Session, count: int, first_error_index: int | None) -> int:
    """The step the page opens on when its URL names none (`#step=N`, `#problem`): the first failing step, or for
    a session that failed with no failing step, the last one (where it stopped); else the first."""
    if first_error_index is not None:
        return first_error_index
    return count - 1 if session.end_state == FAIL and count else 0


def io_summary(events: list[Event], level: dict[str, int]) -> dict[str, dict[str, Any]]:
    """What the agent was asked and what it answered, for the page's header (as Phoenix and Langfuse show it):
    the first user message of the first LLM call and the output of the last one; in a session with no LLM call,
    the input of its first step and the output of the step that ended last (the outermost one on a tie: the
    agent's answer, not its last tool's). Only steps whose content was captured count. Each side found is
    `{"text": ..., "step": index}`; a side with nothing captured is left out. Text only: the page shows it with
    `textContent`."""
    indexed = [(i, e) for i, e in enumerate(events) if e.kind != KIND_SESSION]
    llm = [(i, e) for i, e in indexed if e.kind == KIND_LLM]
    if llm:
        asked = next(((i, _asked(e.params)) for i, e in llm if e.params is not None), None)
        answered = next(((i, _answered(e.returns)) for i, e in reversed(llm) if e.returns is not None), None)
    else:
        inputs = [(i, e) for i, e in indexed if e.params is not None]
        outputs = [(i, e) for i, e in indexed if e.returns is not None and e.end_ns is not None]
        first = min(inputs, key=lambda p: (p[1].start_ns, level.get(p[1].span_id, 0)), default=None)
        last = max(outputs, key=lambda p: (p[1].end_ns or 0, -level.get(p[1].span_id, 0)), default=None)
        asked = None if first is None else (first[0], _step_value_text(first[1].params))
        answered = None if last is None else (last[0], _value_text(last[1].returns))
    summary: dict[str, dict[str, Any]] = {}
    for side, found in (("input", asked), ("output", answered)):
        if found is not None and found[1].strip():
            summary[side] = {"text": _clip(found[1], IO_SUMMARY_LENGTH), "step": found[0]}
    return summary


def _asked(params: Any) -> str:
    """An LLM call's first user message (its first message when none is the user's), as text."""
    if isinstance(params, list) and params:
        users = [m for m in params if isinstance(m, dict) and m.get("role") == "user"]
        return _message_text(users[0] if users else params[0])
    return _value_text(params)


def _answered(returns: Any) -> str:
    """An LLM call's output messages as text, one per line."""
    if isinstance(returns, list) and returns:
        return "\n".join(_message_text(m) for m in returns)
    return _value_text(returns)


def _step_value_text(params: Any) -> str:
    """A step's arguments as the summary shows them: a single argument by its value, several as `name=value`."""
    if isinstance(params, dict) and len(params) == 1:
        return _value_text(next(iter(params.values())))
    if isinstance(params, dict) and params:
        return ", ".join(f"{key}={_value_text(value)}" for key, value in params.items())
    return _value_text(params)


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def _event_data(event: Event, session_start_ns: int, depth: int, problem: bool, twins: int = 0) -> dict[str, Any]:
    attrs = event.attributes
    system = parse_json(attrs.get(sc.GEN_AI_SYSTEM_INSTRUCTIONS)) if event.kind == KIND_LLM else None
    summary = describe_inputs(event)
    offset = (event.start_ns - session_start_ns) / 1e9
    error = event.error
    captures_content = event.kind in (KIND_LLM, KIND_TOOL, KIND_ACTION)
    data = {
        "kind": event.kind,
        "label": label(event, twins),
        "depth": depth,
        "t": offset * 1000,
        "d": None if event.duration is None else event.duration * 1000,
        "offset": format_offset(offset),
        "duration_text": format_duration(event.duration),
        "start_time": event.start_time.strftime("%H:%M:%S.%f")[:-3],
        "summary": None if summary is None else _short(summary, SUMMARY_WIDTH),
        "model": event.model,
        "provider": event.provider,
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "cache_read_tokens": event.cache_read_tokens,
        "cost": event.cost,
        "cost_text": None if event.cost is None and event.kind != KIND_LLM else format_cost(event.cost),
        "inputs": content_view(event, event.params, system=system),
        "outputs": content_view(event, event.returns),
        "content_missing": captures_content and event.params is None and event.returns is None,
        "truncated": bool(attrs.get(sc.AGENTOTEL_CONTENT_TRUNCATED)),
        "error": None if error is None else _error_data(error, ended=event.kind == KIND_SESSION),
        "problem": problem,
        "span_id": event.span_id,
        "parent_span_id": event.parent_span_id,
        "session_id": event.session_id,
        "attributes": _attributes(event),
    }
    # Absent means null, false or empty: most steps have no error, no tokens and no extra attributes, and on a
    # 10,000-step page every key spelled out costs hundreds of kilobytes.
    return {key: value for key, value in data.items() if value is not None and value is not False and value != []}


def _error_data(error: ExceptionInfo, *, ended: bool) -> dict[str, Any]:
    """An error as the detail pane shows it: the traceback with the user's frames only (`user_traceback`), and
    the whole recorded one beside it when agentotel frames were hidden."""
    data: dict[str, Any] = {"type": error.type, "message": error.message, "ended": ended}
    if error.stacktrace:
        shown = user_traceback(error.stacktrace)
        data["stack"] = shown.text
        if shown.hidden:
            data["stack_note"] = shown.note
            data["stack_full"] = error.stacktrace
    return data


# --- the page ---------------------------------------------------------------------------------------------------


def render_html(session: Session, *, back_url: str | None = None) -> str:
    """The session as one self-contained HTML document (no network needed): header with what the agent was asked
    and answered, a timeline to scale with a scrubber (slider; ←/→, Home/End, `E` for the first failing step),
    running cost and tokens, and a detail pane. It opens on the first failing step (`opening_step`); a URL ending
    in `#step=N` opens step N (from 1), `#problem` the first failure.

    `back_url` (a same-site path such as `/`) adds a link back to a sessions list. Content from the agent is
    shown as text and never runs.
    """
    script = asset("replay.js")
    name = " ".join((session.name or session.id).split())  # the script sets the exact name once it runs
    return fill_template(
        asset("replay.html"),
        {
            "csp": content_security_policy(script),
            "title": html_text(f"{name} · agentotel replay"),
            "style": asset("base.css") + asset("replay.css"),
            "data_id": DATA_ELEMENT_ID,
            "data": json_for_script(page_data(session, back_url=back_url)),
            "script": script,
        },
    )


def write_html(session: Session, path: str | os.PathLike[str]) -> Path:
    """Writes the session's replay page to `path` (UTF-8) and returns the path."""
    target = Path(path)
    target.write_text(render_html(session), encoding="utf-8")
    return target
