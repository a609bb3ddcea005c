"""The text rendering of a behaviour diff: for a terminal (coloured through `rich`) or a test failure message.

Each line has a style (`diff_lines`): a terminal colours it, a report prints it plain. Every line goes through
`printable`, as in the text replay: a tool name or an argument from the agent can neither move the cursor nor
break a line.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..diff import ADDED, CHANGED, MISSING, REMOVED, SAME, Behaviour, Change, SessionDiff, Step, StepDiff
from .text import format_cost, printable

if TYPE_CHECKING:
    from rich.text import Text

DIVERGENCE_MARK = "← FIRST DIVERGENCE"

MARKS = {SAME: " ", CHANGED: "~", REMOVED: "-", ADDED: "+"}
STYLES = {SAME: None, CHANGED: "yellow", REMOVED: "red", ADDED: "green"}

Line = tuple[str, str | None]
"""A line of text and the `rich` style it is shown in (`None`: plain)."""


def value_text(value: Any) -> str:
    """A value on one line: text in quotes, anything else as compact JSON, `(absent)` for a side without it."""
    if value is MISSING:
        return "(absent)"
    try:
        return json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    except (ValueError, TypeError, RecursionError):
        return repr(value)


def _cut(text: str, start: int, width: int) -> str:
    """`width` characters of `text` from `start`, with `…` where text was cut off."""
    if len(text) <= width:
        return text
    start = max(0, min(start, len(text) - width))
    piece = text[start : start + width]
    if start > 0:
        piece = "…" + piece[1:]
    if start + width < len(text):
        piece = piece[:-1] + "…"
    return piece


def change_pair(before: Any, after: Any, width: int) -> tuple[str, str]:
    """The two values as text that fits `width` together: long ones cut around where they first differ, so the
    difference shows (`…charged twice for my…` / `…billed twice this…`)."""
    left, right = value_text(before), value_text(after)
    each = max(12, (width - 3) // 2)
    if len(left) <= each and len(right) <= each:
        return left, right
    at = 0
    while at < len(left) and at < len(right) and left[at] == right[at]:
        at += 1
    lead = each // 3
    return _cut(left, at - lead, each), _cut(right, at - lead, each)


def change_lines(change: Change, width: int) -> list[str]:
    """`path: before → after` on one line when it fits `width`, else the path, then `- before` and `+ after` on
    lines of their own, each cut around where the two first differ."""
    left, right = value_text(change.before), value_text(change.after)
    line = f"{change.path}: {left} → {right}"
    if len(line) <= width:
        return [line]
    room = max(24, width - 4)
    left, right = change_pair(change.before, change.after, 2 * room + 3)
    return [f"{change.path}:", f"  - {left}", f"  + {right}"]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _signed_cost(delta: float) -> str:
    sign = "+" if delta >= 0 else "-"
    return sign + format_cost(abs(delta))


def _percent(before: float, after: float) -> str:
    if before == 0:
        return ""
    return f", {(after - before) / before:+.1%}"


def _seconds(value: float | None) -> str:
    return "running" if value is None else f"{value:.3f}s"


Figure = tuple[str, str, bool]
"""A figure as the renderings show it: its name, its text (`Success → Fail`), whether it changed."""


def figure_rows(diff: SessionDiff) -> list[Figure]:
    """`end state`: `Success → Fail: reason`, `cost`: `$0.000365 → $0.000030  (-$0.000335, -91.8%)`, `tokens`,
    `duration`, `steps` (the figures the rules do not ignore)."""
    lines: list[Figure] = []
    before, after = diff.before, diff.after
    end = diff.figure("end_state")
    if end is not None:
        if end.before == end.after:
            text = f"{end.before or 'Running'} (same)"
        else:
            reason = f": {after.end_state_reason}" if after.end_state_reason else ""
            text = f"{end.before or 'Running'} → {end.after or 'Running'}{reason}"
        lines.append(_figure("end state", text, end.before != end.after))
    cost = diff.figure("cost")
    if cost is not None and _number(cost.before) and _number(cost.after):
        delta = cost.after - cost.before
        if delta:
            text = f"{format_cost(cost.before)} → {format_cost(cost.after)}"
            text += f"  ({_signed_cost(delta)}{_percent(cost.before, cost.after)})"
        else:
            text = f"{format_cost(cost.before)} (same)"
        lines.append(_figure("cost", text, bool(delta)))
    tokens_in, tokens_out = diff.figure("input_tokens"), diff.figure("output_tokens")
    if tokens_in is not None and tokens_out is not None:
        total_before = (before.input_tokens or 0) + (before.output_tokens or 0)
        total_after = (after.input_tokens or 0) + (after.output_tokens or 0)
        text = f"{before.input_tokens or 0} in / {before.output_tokens or 0} out"
        moved = tokens_in.before != tokens_in.after or tokens_out.before != tokens_out.after
        if moved:
            text += f" → {after.input_tokens or 0} in / {after.output_tokens or 0} out"
            text += f"  ({total_after - total_before:+d})"
        else:
            text += " (same)"
        lines.append(_figure("tokens", text, moved))
    duration = diff.figure("duration")
    if duration is not None and (duration.before is not None or duration.after is not None):  # a baseline has none
        text = f"{_seconds(duration.before)} → {_seconds(duration.after)}"
        lines.append(_figure("duration", text, False))  # a duration always moves: shown, never flagged
    counts = diff.counts()
    parts = ", ".join(f"{counts[status]} {status}" for status in (SAME, CHANGED, REMOVED, ADDED) if counts[status])
    moved_steps = any(counts[s] for s in (CHANGED, REMOVED, ADDED))
    counted = (
        f"{len(before.steps)} → {len(after.steps)}" if len(before.steps) != len(after.steps) else str(len(after.steps))
    )
    lines.append(_figure("steps", f"{counted}{': ' + parts if parts else ''}", moved_steps))
    return lines


def _figure(name: str, text: str, changed: bool) -> Figure:
    return (name, text, changed)


def figure_lines(diff: SessionDiff) -> list[Line]:
    """The figures as lines, those that changed in yellow."""
    return [(f"  {name:<10} {text}", "yellow" if changed else None) for name, text, changed in figure_rows(diff)]


def _when(start_ns: int | None) -> str:
    if not start_ns:
        return ""
    try:
        return datetime.fromtimestamp(start_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return ""


def session_line(title: str, behaviour: Behaviour) -> str:
    """`  before  support_agent 5ebec3d8  Success  2026-11-03 09:30:12  (tests/baselines/x.json)`."""
    parts = [behaviour.name]
    if behaviour.id:
        parts.append(behaviour.id[:8])
    parts.append(behaviour.end_state or "Running")
    when = _when(behaviour.start_ns)
    if when:
        parts.append(when)
    if behaviour.origin:
        parts.append(f"({behaviour.origin})")
    return f"  {title:<7} " + "  ".join(parts)


def _numbers(row: StepDiff) -> str:
    left = "" if row.before is None else str(row.before.number)
    right = "" if row.after is None else str(row.after.number)
    return f"{left:>4} {right:>4}"


def _step_lines(row: StepDiff, first: bool, width: int) -> list[Line]:
    step: Step = row.step
    status = "" if row.status == SAME else row.status
    mark = f"   {DIVERGENCE_MARK}" if first else ""
    head = f"{MARKS[row.status]} {_numbers(row)}  {step.label}"
    if status:
        head = f"{head}  {status}"
    style = STYLES[row.status]
    lines: list[Line] = [(head + mark, "bold " + style if first and style else style)]
    indent = " " * 13
    for change in row.changes:
        lines.extend((indent + text, None) for text in change_lines(change, width - len(indent)))
    if row.more_changes:
        lines.append((f"{indent}… and {row.more_changes} more difference(s)", "dim"))
    if row.status in (REMOVED, ADDED) and step.failed:
        lines.append((f"{indent}error: {value_text(step.fields['error'])}", None))
    return lines


def diff_lines(diff: SessionDiff, *, width: int = 100, context: int = 2) -> list[Line]:
    """The diff as styled lines (see `SessionDiff.render_text`)."""
    lines: list[Line] = [("Behaviour diff", "bold")]
    lines.append((session_line("before", diff.before), None))
    lines.append((session_line("after", diff.after), None))
    lines.extend(figure_lines(diff))
    if diff.ignore:
        lines.append((f"  ignored    {', '.join(diff.ignore.rules)}", "dim"))
    for note in diff.notes:
        lines.append((f"  note: {note}", "yellow"))
    lines.append(("", None))
    if not diff.steps:
        lines.append(("No steps in either session.", None))
        return lines
    if not diff.changed:
        lines.append(("No behaviour change: the same steps, with the same inputs and outputs.", "green"))
    elif diff.first_divergence is None:
        lines.append(("The same steps; the end state differs.", "yellow"))
    lines.append(("Steps (before, after):", "bold"))
    shown = _shown_rows(diff.steps, context)
    hidden = 0
    for index, row in enumerate(diff.steps):
        if index not in shown:
            hidden += 1
            continue
        if hidden:
            lines.append((f"  {'':>9}  … {hidden} same step(s) …", "dim"))
            hidden = 0
        lines.extend(_step_lines(row, index == diff.first_divergence, width))
    if hidden:
        lines.append((f"  {'':>9}  … {hidden} same step(s) …", "dim"))
    return lines


def _shown_rows(rows: tuple[StepDiff, ...], context: int) -> set[int]:
    """The rows shown: every row that differs and `context` rows either side of one; all rows when none
    differs and there are few."""
    differing = [i for i, row in enumerate(rows) if row.status != SAME]
    if not differing:
        return set(range(len(rows))) if len(rows) <= 2 * context + 1 else set(range(context))
    shown: set[int] = set()
    for i in differing:
        shown.update(range(max(0, i - context), min(len(rows), i + context + 1)))
    return shown


def render_diff_text(diff: SessionDiff, *, width: int = 100, context: int = 2) -> str:
    return "\n".join(printable(text) for text, _ in diff_lines(diff, width=width, context=context))


def rich_diff_text(diff: SessionDiff, *, width: int = 100) -> Text:
    """The text rendering as one `rich` `Text`, each line in its style."""
    from rich.text import Text

    text = Text()
    for number, (line, style) in enumerate(diff_lines(diff, width=width)):
        if number:
            text.append("\n")
        text.append(printable(line), style=style or "")
    return text
