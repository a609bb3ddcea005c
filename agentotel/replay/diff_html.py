"""The HTML behaviour diff: two sessions side by side on ONE self-contained page.

Built as the replay page is (`html.py`): styles and script inlined from `assets/`, a Content-Security-Policy that
loads nothing and runs only the page's own script (by hash), the data as JSON in a `<script type="application/json">`
block escaped so that agent content can never close it (`json_for_script`), and a script that shows every value with
`textContent`: a tool name or an argument holding `<script>` is text on the page, never markup. Python formats
everything (labels, figures, values); the script only lays it out, folds runs of identical steps and moves between
changes.
"""

from __future__ import annotations

from typing import Any

from ..diff import ADDED, CHANGED, REMOVED, SAME, Behaviour, SessionDiff, Step, StepDiff
from .diff_text import DIVERGENCE_MARK, MARKS, change_pair, figure_rows
from .html import (
    DATA_ELEMENT_ID,
    _value_text,
    asset,
    content_security_policy,
    fill_template,
    format_duration,
    html_text,
    json_for_script,
)
from .text import format_cost

CHANGE_WIDTH = 400
"""Longest text a changed value's summary line holds; the whole value is in the step's content."""

_FIGURE_LABELS = {
    "end state": "End state",
    "cost": "Cost",
    "tokens": "Tokens",
    "duration": "Duration",
    "steps": "Steps",
}


def _side(title: str, behaviour: Behaviour) -> dict[str, Any]:
    facts = [
        ["Session", behaviour.id or ""],
        ["Read from", behaviour.origin or ""],
        ["Cost", format_cost(behaviour.cost)],
        ["Tokens", f"{behaviour.input_tokens or 0:,} in / {behaviour.output_tokens or 0:,} out"],
        ["Duration", format_duration(behaviour.duration)],
        ["Steps", f"{len(behaviour.steps):,}"],
    ]
    return {
        "title": title,
        "name": behaviour.name,
        "state": behaviour.end_state or "Running",
        "reason": behaviour.end_state_reason,
        "facts": [pair for pair in facts if pair[1]],
    }


def _figures(diff: SessionDiff) -> list[dict[str, Any]]:
    """The figures as the text rendering words them."""
    return [
        {"label": _FIGURE_LABELS.get(name, name), "text": text, "changed": changed}
        for name, text, changed in figure_rows(diff)
    ]


def _step(step: Step | None) -> dict[str, Any] | None:
    if step is None:
        return None
    facts = [format_duration(step.duration)]
    if step.kind == "llm" and (step.input_tokens is not None or step.output_tokens is not None):
        facts.append(f"{step.input_tokens or 0:,} in / {step.output_tokens or 0:,} out")
    if step.cost is not None:
        facts.append(format_cost(step.cost))
    return {
        "number": step.number,
        "kind": step.kind,
        "label": step.label,
        "facts": " · ".join(facts),
        "fields": [[name, _value_text(value)] for name, value in step.fields.items() if name != "error"],
        "error": step.fields.get("error"),
    }


def _row(row: StepDiff, first: bool) -> dict[str, Any]:
    changes = []
    for change in row.changes:
        before, after = change_pair(change.before, change.after, 2 * CHANGE_WIDTH + 3)
        changes.append({"path": change.path, "before": before, "after": after})
    data: dict[str, Any] = {
        "status": row.status,
        "mark": MARKS[row.status],
        "before": _step(row.before),
        "after": _step(row.after),
        "changes": changes,
    }
    if row.more_changes:
        data["more"] = row.more_changes
    if first:
        data["first"] = True
    return data


def diff_page_data(diff: SessionDiff) -> dict[str, Any]:
    """Everything the diff page shows, as JSON-ready data."""
    counts = diff.counts()
    summary = ", ".join(f"{counts[s]} {s}" for s in (SAME, CHANGED, REMOVED, ADDED) if counts[s])
    return {
        "version": 1,
        "changed": diff.changed,
        "verdict": "Behaviour changed" if diff.changed else "No behaviour change",
        "before": _side("Before", diff.before),
        "after": _side("After", diff.after),
        "figures": _figures(diff),
        "summary": summary or "no steps",
        "ignore": list(diff.ignore.rules),
        "notes": list(diff.notes),
        "first": diff.first_divergence,
        "divergence_mark": DIVERGENCE_MARK,
        "rows": [_row(row, index == diff.first_divergence) for index, row in enumerate(diff.steps)],
    }


def render_diff_html(diff: SessionDiff) -> str:
    """The diff as one self-contained HTML document: the two sessions' headers, the figures before and after,
    and the steps aligned side by side (`~` changed, `-` only before, `+` only after) with each difference by its
    path, the first divergence marked (`E` goes to it, `N` / `P` to the next / previous change). Content from the
    agent is shown as text and never runs."""
    script = asset("diff.js")
    title = f"{' '.join(diff.before.name.split())} → {' '.join(diff.after.name.split())} · agentotel diff"
    return fill_template(
        asset("diff.html"),
        {
            "csp": content_security_policy(script),
            "title": html_text(title),
            "style": asset("base.css") + asset("diff.css"),
            "data_id": DATA_ELEMENT_ID,
            "data": json_for_script(diff_page_data(diff)),
            "script": script,
        },
    )
