"""The text rendering of two test runs compared (`RunDiff`): which tests changed behaviour, each one's cost."""

from __future__ import annotations

from datetime import datetime

from ..diff import SessionDiff
from ..runs import ADDED, CHANGED, REMOVED, SAME, RunDiff, TestChange, TestRun
from .diff_text import STYLES, Line
from .text import format_cost

MARKS = {SAME: " ", CHANGED: "~", REMOVED: "-", ADDED: "+"}
_ORDER = (CHANGED, ADDED, REMOVED, SAME)


def _signed(delta: float) -> str:
    return ("+" if delta >= 0 else "-") + format_cost(abs(delta))


def _when(start_ns: int) -> str:
    try:
        return datetime.fromtimestamp(start_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "?"


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _run_line(title: str, run: TestRun) -> str:
    tests = len(run.by_test())
    return (
        f"  {title:<7} {run.id}  started {_when(run.start_ns)}  {_many(tests, 'test')}, "
        f"{_many(len(run.sessions), 'session')}, {format_cost(run.cost)}"
    )


def _cost_cells(test: TestChange) -> str:
    before = format_cost(test.cost_before) if test.before else "—"
    after = format_cost(test.cost_after) if test.after else "—"
    return f"{before} → {after}  {_signed(test.cost_delta)}"


def _how(one: SessionDiff) -> str:
    """`support_agent 5ebec3d8 → 35d790cf: end state Success → Fail; 3 changed, 2 removed; first divergence at
    step 1 (action classify_intent)`."""
    parts = []
    end = one.figure("end_state")
    if end is not None and end.before != end.after:
        parts.append(f"end state {end.before or 'Running'} → {end.after or 'Running'}")
    counts = one.counts()
    moved = [f"{counts[s]} {s}" for s in (CHANGED, REMOVED, ADDED) if counts[s]]
    if moved:
        parts.append(", ".join(moved))
    row = one.divergence
    if row is not None:
        number = row.before.number if row.before is not None else row.step.number
        parts.append(f"first divergence at step {number} ({row.step.label})")
    before_id, after_id = (one.before.id or "?")[:8], (one.after.id or "?")[:8]
    return f"{one.after.name} {before_id} → {after_id}: " + ("; ".join(parts) or "the same")


def run_diff_lines(diff: RunDiff, *, width: int = 100, source_hint: str = "") -> list[Line]:
    """The comparison as styled lines. `source_hint` (` --source X`) is added to the `agentotel diff` commands
    suggested for the sessions that changed."""
    lines: list[Line] = [("Test runs compared", "bold")]
    lines.append((_run_line("before", diff.before), None))
    lines.append((_run_line("after", diff.after), None))
    total = diff.after.cost - diff.before.cost
    percent = f", {total / diff.before.cost:+.1%}" if diff.before.cost else ""
    lines.append(
        (
            f"  {'cost':<7} {format_cost(diff.before.cost)} → {format_cost(diff.after.cost)}  "
            f"({_signed(total)}{percent})",
            "yellow" if total else None,
        )
    )
    counts = {status: sum(1 for t in diff.tests if t.status == status) for status in _ORDER}
    summary = ", ".join(f"{counts[s]} {s}" for s in _ORDER if counts[s]) or "none"
    lines.append((f"  {'tests':<7} {summary}", "yellow" if diff.changed else None))
    lines.append(("", None))
    if not diff.tests:
        lines.append(("Neither run recorded a session.", None))
        return lines
    if not diff.changed:
        lines.append(("No test changed behaviour.", "green"))
    name_width = min(max(len(t.test) for t in diff.tests), max(20, width - 40))
    for status in _ORDER:
        for test in (t for t in diff.tests if t.status == status):
            name = test.test if len(test.test) <= name_width else test.test[: name_width - 1] + "…"
            lines.append((f"{MARKS[status]} {name:<{name_width}}  {_cost_cells(test)}", STYLES[status]))
            if status == CHANGED:
                if len(test.before) != len(test.after):
                    lines.append(
                        (f"    {_many(len(test.before), 'session')} → {_many(len(test.after), 'session')}", None)
                    )
                for one in test.diffs:
                    if one.changed:
                        lines.append((f"    {_how(one)}", None))
                        command = f"agentotel diff {(one.before.id or '')[:8]} {(one.after.id or '')[:8]}"
                        lines.append((f"      see: {command}{source_hint}", "dim"))
    return lines
