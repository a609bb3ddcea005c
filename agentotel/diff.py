"""Behaviour diffs: what two sessions did differently, step by step (`Session.diff`, `agentotel diff A B`).

A session's behaviour is its sequence of model calls, tool calls and actions (each step once, as `Session` counts
them), what went into and came out of each, and its figures: end state, cost, tokens, duration. Two sequences are
aligned by their step keys (the kind, plus the tool's or action's name or the model asked for) with difflib's
`SequenceMatcher`, so a step inserted or missing shows as added or removed, not as every later step changed; the
steps aligned are compared field by field (`arguments` / `result` of tools and actions, `input` / `output` / `system`
of model calls, `error` of any) and each difference is named by its path (`arguments.customer_id`). The first step
that differs is the first divergence.

`ignore=` rules (`diff_ignore.py`) leave figures, fields, values inside them or whole steps out. The same
comparison checks a session against a stored baseline (`testing/baselines.py`), whose steps are a `Behaviour` too.
Renderings: `render_text()` (`replay/diff_text.py`), `to_dict()` and `to_html()` (`replay/diff_html.py`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import semconv as sc
from ._content import parse_json
from .diff_ignore import IgnoreRules, format_path
from .model import KIND_ACTION, KIND_LLM, KIND_TOOL, Event, Session

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions
    from rich.text import Text

__all__ = [
    "ADDED",
    "CHANGED",
    "MISSING",
    "REMOVED",
    "SAME",
    "Behaviour",
    "Change",
    "SessionDiff",
    "Step",
    "StepDiff",
    "diff",
]

SAME, CHANGED, REMOVED, ADDED = "same", "changed", "removed", "added"
"""What became of a step: the same in both, changed (same key, other fields), only in the first, only in the
second."""

STEP_KINDS = (KIND_LLM, KIND_TOOL, KIND_ACTION)
"""The kinds of event that are steps of a behaviour (agent steps and nested sessions only group them)."""

MAX_CHANGES_PER_STEP = 20
"""Differences listed for one step; more are counted (`StepDiff.more_changes`)."""

MAX_ALIGNMENT_WORK = 4_000_000
"""Past this product of the lengths of the unmatched middles, steps are paired by position: `SequenceMatcher` is
quadratic when few keys repeat many times (a 100,000-step session of three tools)."""

_MAX_DEPTH = 64
"""Nesting compared value by value; deeper values are compared whole."""


class _Missing:
    """What a field or key holds on the side that lacks it."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "(absent)"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()
"""The value of a `Change` side that has no such field or key."""


# --- what is compared ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a behaviour: its kind and name, the fields compared, and figures shown beside them."""

    number: int
    """1-based position in its session's steps."""
    kind: str
    name: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    """`arguments` / `result` (tools, actions), `input` / `output` / `system` (model calls), `error`: those present."""
    duration: float | None = None
    cost: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    span_id: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        """What alignment matches steps by."""
        return (self.kind, self.name)

    @property
    def failed(self) -> bool:
        return "error" in self.fields

    @property
    def label(self) -> str:
        """`tool search_docs`, `action classify_intent`, `llm gpt-4o`."""
        return f"{self.kind} {self.name}"

    @classmethod
    def of_event(cls, number: int, event: Event) -> Step:
        fields: dict[str, Any] = {}
        if event.kind == KIND_LLM:
            name = str(event.attributes.get(sc.GEN_AI_REQUEST_MODEL) or event.model or event.name)
            if event.params is not None:
                fields["input"] = event.params
            if event.returns is not None:
                fields["output"] = event.returns
            system = event.attributes.get(sc.GEN_AI_SYSTEM_INSTRUCTIONS)
            if system is not None:
                fields["system"] = parse_json(system)
        else:
            name = event.action_type or event.name
            if event.params is not None:
                fields["arguments"] = event.params
            if event.returns is not None:
                fields["result"] = event.returns
        if event.error is not None:
            fields["error"] = error_text(event.error.type, event.error.message)
        return cls(
            number,
            event.kind,
            name,
            fields,
            event.duration,
            event.cost,
            event.input_tokens,
            event.output_tokens,
            event.span_id,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "name": self.name,
            "fields": dict(self.fields),
            "duration": self.duration,
            "cost": self.cost,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "span_id": self.span_id,
        }


def error_text(error_type: str, message: str | None) -> str:
    """A step's error as it is compared: `ValueError: customer_id cannot be None` (the type alone without one)."""
    return f"{error_type}: {message}" if message else error_type


def behaviour_steps(events: Iterable[Event]) -> list[Step]:
    """The steps of a session's events: model calls, tool calls and actions in the order they started, each once."""
    chosen = [e for e in events if e.kind in STEP_KINDS and e.duplicate_of is None]
    return [Step.of_event(number, event) for number, event in enumerate(chosen, start=1)]


@dataclass(frozen=True, slots=True)
class Behaviour:
    """What a diff compares of one session (or of a stored baseline): its steps and its figures."""

    name: str
    steps: tuple[Step, ...]
    id: str | None = None
    end_state: str | None = None
    end_state_reason: str | None = None
    cost: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    duration: float | None = None
    start_ns: int | None = None
    has_content: bool = True
    """Whether the steps' inputs and outputs were recorded (content capture was on): without them only the
    sequence, errors and figures can be compared."""
    origin: str | None = None
    """Where it was read: a source's location, a baseline file."""

    @classmethod
    def of(cls, session: Session, *, origin: str | None = None) -> Behaviour:
        """The behaviour of a session."""
        steps = behaviour_steps(session.events)
        content = any(set(s.fields) - {"error"} for s in steps) or not steps
        return cls(
            name=session.name,
            steps=tuple(steps),
            id=session.id,
            end_state=session.end_state,
            end_state_reason=session.end_state_reason,
            cost=session.cost,
            input_tokens=session.input_tokens,
            output_tokens=session.output_tokens,
            duration=session.duration,
            start_ns=session.start_ns,
            has_content=content,
            origin=origin,
        )

    def to_dict(self) -> dict[str, Any]:
        """The session's identity and figures (without its steps), JSON-ready."""
        start = None
        if self.start_ns:
            try:
                start = datetime.fromtimestamp(self.start_ns / 1e9, tz=UTC).isoformat()
            except (OverflowError, OSError, ValueError):
                start = None
        return {
            "id": self.id,
            "name": self.name,
            "origin": self.origin,
            "start_time": start,
            "end_state": self.end_state,
            "end_state_reason": self.end_state_reason,
            "cost": self.cost,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "duration": self.duration,
            "steps": len(self.steps),
            "has_content": self.has_content,
        }


# --- what differs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """A value that differs: where (`arguments.customer_id`, `cost`), before and after (`MISSING` for a side that
    has none)."""

    path: str
    before: Any
    after: Any

    @property
    def delta(self) -> float | None:
        """`after - before` for two numbers, else `None`."""
        if _number(self.before) and _number(self.after):
            return float(self.after) - float(self.before)
        return None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path}
        if self.before is not MISSING:
            data["before"] = self.before
        if self.after is not MISSING:
            data["after"] = self.after
        delta = self.delta
        if delta is not None:
            data["delta"] = delta
        return data


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class StepDiff:
    """One row of the aligned sequences: a step of either session or both, what became of it, how it differs."""

    status: str
    """`same`, `changed`, `removed` (only before) or `added` (only after)."""
    before: Step | None
    after: Step | None
    changes: tuple[Change, ...] = ()
    more_changes: int = 0
    """Differences past `MAX_CHANGES_PER_STEP`, counted but not listed."""

    @property
    def step(self) -> Step:
        """The step this row stands for: the later one when both sessions have it."""
        found = self.after if self.after is not None else self.before
        assert found is not None
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "before": None if self.before is None else self.before.to_dict(),
            "after": None if self.after is None else self.after.to_dict(),
            "changes": [c.to_dict() for c in self.changes],
            "more_changes": self.more_changes,
        }


@dataclass(frozen=True)
class SessionDiff:
    """How two sessions' behaviours differ: their steps aligned (`steps`), the figures that differ, the first
    divergence. `changed` says whether the behaviour changed (steps or end state; cost, tokens and duration are
    figures, shown but not behaviour)."""

    before: Behaviour
    after: Behaviour
    steps: tuple[StepDiff, ...]
    figures: tuple[Change, ...]
    """End state, cost, input and output tokens, duration, before and after (those not ignored), equal or not."""
    first_divergence: int | None
    """Index in `steps` of the first row that is not the same; `None` when every step is."""
    ignore: IgnoreRules = field(default_factory=IgnoreRules)
    notes: tuple[str, ...] = ()
    """What the comparison could not do (no content on one side, steps paired by position)."""

    @property
    def changed(self) -> bool:
        """Whether the behaviour differs: a step added, removed or changed, or another end state."""
        if self.first_divergence is not None:
            return True
        return any(f.path == "end_state" and f.before != f.after for f in self.figures)

    def __bool__(self) -> bool:
        return self.changed

    @property
    def divergence(self) -> StepDiff | None:
        """The first row that differs."""
        return None if self.first_divergence is None else self.steps[self.first_divergence]

    def counts(self) -> dict[str, int]:
        """How many rows are the same, changed, removed and added."""
        found = {SAME: 0, CHANGED: 0, REMOVED: 0, ADDED: 0}
        for row in self.steps:
            found[row.status] += 1
        return found

    def figure(self, name: str) -> Change | None:
        return next((f for f in self.figures if f.path == name), None)

    def render_text(self, *, width: int = 100, context: int = 2) -> str:
        """The diff as text for a terminal or a test report: the two sessions, the figures before → after, the
        steps aligned (`~` changed, `-` removed, `+` added; runs of identical steps beyond `context` folded), each
        difference by its path, the first divergence marked."""
        from .replay.diff_text import render_diff_text

        return render_diff_text(self, width=width, context=context)

    def __str__(self) -> str:
        return self.render_text()

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        """The text rendering, coloured and laid out to the console's width, for `rich.print(diff)`."""
        from .replay.diff_text import rich_diff_text

        yield rich_diff_text(self, width=options.max_width)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (what `agentotel diff --json` prints): every row, every listed difference."""
        return {
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "changed": self.changed,
            "first_divergence": self.first_divergence,
            "counts": self.counts(),
            "figures": [f.to_dict() for f in self.figures],
            "steps": [row.to_dict() for row in self.steps],
            "ignore": list(self.ignore.rules),
            "notes": list(self.notes),
        }

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The diff as one self-contained HTML page, the two sessions side by side (no network needed; content is
        shown as text and never runs), also written to `path` (UTF-8) when given."""
        from .replay.diff_html import render_diff_html

        page = render_diff_html(self)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page


# --- the comparison -----------------------------------------------------------------------------------------------


def diff(
    before: Session | Behaviour,
    after: Session | Behaviour,
    *,
    ignore: str | Iterable[str] | IgnoreRules | None = None,
) -> SessionDiff:
    """How `after` behaves differently from `before` (see the module's docstring). Raises `ValueError` for an
    ignore rule that is not in the syntax (`diff_ignore.SYNTAX`)."""
    rules = IgnoreRules.parse(ignore)
    first = before if isinstance(before, Behaviour) else Behaviour.of(before)
    second = after if isinstance(after, Behaviour) else Behaviour.of(after)
    steps_a = _kept(first.steps, rules)
    steps_b = _kept(second.steps, rules)
    with_content = first.has_content and second.has_content
    pairs, positional = _align(steps_a, steps_b)
    rows = [_row(a, b, with_content) for a, b in pairs]
    first_divergence = next((i for i, row in enumerate(rows) if row.status != SAME), None)
    notes: list[str] = []
    for side, behaviour in (("first", first), ("second", second)):
        if not behaviour.has_content:
            notes.append(
                f"the {side} session holds no content (content capture was off): only the steps, their errors and "
                "the figures are compared"
            )
    if positional:
        notes.append("too many steps to align: they are compared by position")
    return SessionDiff(
        before=first,
        after=second,
        steps=tuple(rows),
        figures=tuple(_figures(first, second, rules)),
        first_divergence=first_divergence,
        ignore=rules,
        notes=tuple(notes),
    )


def _kept(steps: Sequence[Step], rules: IgnoreRules) -> list[Step]:
    """The steps the rules keep, with the fields and values they leave out removed."""
    if not rules:
        return list(steps)
    kept = []
    for step in steps:
        if rules.leaves_out(step.name):
            continue
        fields = rules.apply(step.name, dict(step.fields))
        kept.append(
            Step(
                step.number,
                step.kind,
                step.name,
                fields,
                step.duration,
                step.cost,
                step.input_tokens,
                step.output_tokens,
                step.span_id,
            )
        )
    return kept


def _align(a: list[Step], b: list[Step]) -> tuple[list[tuple[Step | None, Step | None]], bool]:
    """The two sequences side by side: pairs of steps with the same key, and steps of one side alone. Whether the
    middle was too big to align and was paired by position instead."""
    keys_a, keys_b = [s.key for s in a], [s.key for s in b]
    start = 0
    while start < len(a) and start < len(b) and keys_a[start] == keys_b[start]:
        start += 1
    end = 0
    while end < len(a) - start and end < len(b) - start and keys_a[-1 - end] == keys_b[-1 - end]:
        end += 1
    pairs: list[tuple[Step | None, Step | None]] = [(a[i], b[i]) for i in range(start)]
    middle_a, middle_b = a[start : len(a) - end], b[start : len(b) - end]
    positional = len(middle_a) * len(middle_b) > MAX_ALIGNMENT_WORK
    if positional:
        for i in range(max(len(middle_a), len(middle_b))):
            left = middle_a[i] if i < len(middle_a) else None
            right = middle_b[i] if i < len(middle_b) else None
            if left is not None and right is not None and left.key == right.key:
                pairs.append((left, right))
                continue
            if left is not None:
                pairs.append((left, None))
            if right is not None:
                pairs.append((None, right))
    else:
        matcher = SequenceMatcher(None, keys_a[start : len(a) - end], keys_b[start : len(b) - end], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                pairs.extend(zip(middle_a[i1:i2], middle_b[j1:j2], strict=True))
                continue
            pairs.extend((step, None) for step in middle_a[i1:i2])
            pairs.extend((None, step) for step in middle_b[j1:j2])
    pairs.extend((a[len(a) - end + i], b[len(b) - end + i]) for i in range(end))
    return pairs, positional


def _row(before: Step | None, after: Step | None, with_content: bool) -> StepDiff:
    if before is None:
        return StepDiff(ADDED, None, after)
    if after is None:
        return StepDiff(REMOVED, before, None)
    fields_a, fields_b = before.fields, after.fields
    if not with_content:
        fields_a = {k: v for k, v in fields_a.items() if k == "error"}
        fields_b = {k: v for k, v in fields_b.items() if k == "error"}
    found: list[Change] = []
    count = 0
    for name in _keys(fields_a, fields_b):
        count += _changes((name,), fields_a.get(name, MISSING), fields_b.get(name, MISSING), found, 0)
    if count == 0:
        return StepDiff(SAME, before, after)
    return StepDiff(CHANGED, before, after, tuple(found), count - len(found))


def _keys(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> list[Any]:
    """The keys of both, in the order the first has them, then the second's new ones."""
    return [*a, *(k for k in b if k not in a)]


def _changes(path: tuple[Any, ...], a: Any, b: Any, found: list[Change], depth: int) -> int:
    """Appends the differences between `a` and `b` under `path` (up to `MAX_CHANGES_PER_STEP` in all) and returns
    how many there are: one per key or position whose values differ, found by walking dicts and lists."""
    if same(a, b):
        return 0
    if isinstance(a, str) and isinstance(b, str):
        # JSON text inside a value (a tool result handed to the model as text): its keys are named like any other.
        a, b = json_container(a), json_container(b)
    if depth < _MAX_DEPTH and isinstance(a, dict) and isinstance(b, dict):
        return sum(_changes((*path, k), a.get(k, MISSING), b.get(k, MISSING), found, depth + 1) for k in _keys(a, b))
    if depth < _MAX_DEPTH and isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        total = 0
        for i in range(max(len(a), len(b))):
            left = a[i] if i < len(a) else MISSING
            right = b[i] if i < len(b) else MISSING
            total += _changes((*path, i), left, right, found, depth + 1)
        return total
    if len(found) < MAX_CHANGES_PER_STEP:
        found.append(Change(format_path(path), a, b))
    return 1


def json_container(text: str) -> Any:
    """The object or list JSON `text` holds; `text` itself when it holds none (most text: checked by its first
    character before any parsing)."""
    head = text.lstrip()[:1]
    if head not in ("{", "["):
        return text
    value = parse_json(text)
    return value if isinstance(value, (dict, list)) else text


def same(a: Any, b: Any, depth: int = 0) -> bool:
    """Whether two JSON-like values are equal as JSON sees them: `1 == 1.0`, a tuple equals a list, but `True` is
    not `1` (Python's `==` says it is)."""
    if a is b:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _number(a) and _number(b):
        return bool(a == b)
    if depth >= _MAX_DEPTH:
        try:
            return bool(a == b)
        except RecursionError:
            return False
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], depth + 1) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _figures(a: Behaviour, b: Behaviour, rules: IgnoreRules) -> list[Change]:
    figures: list[Change] = []
    if not rules.ignores_figure("end_state"):
        figures.append(Change("end_state", a.end_state, b.end_state))
    if not rules.ignores_figure("cost"):
        figures.append(Change("cost", a.cost, b.cost))
    if not rules.ignores_figure("tokens"):
        figures.append(Change("input_tokens", a.input_tokens, b.input_tokens))
        figures.append(Change("output_tokens", a.output_tokens, b.output_tokens))
    if not rules.ignores_figure("duration"):
        figures.append(Change("duration", a.duration, b.duration))
    return figures
