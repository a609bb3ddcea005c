"""Baselines: snapshot tests of an agent's behaviour.

`assert_matches_baseline(session, "tests/baselines/refund.json")` compares the session's steps (kind, name,
arguments, a summary of each result, errors), its end state, tokens and cost with those stored in the file, and
fails with the behaviour diff (`agentotel.diff`) when they differ: cost and tokens within a relative tolerance, the
rest exactly, after the `ignore=` rules (`agentotel.diff_ignore`). `pytest --agentotel-update-baselines` (or
`AGENTOTEL_UPDATE_BASELINES=1`) writes the files instead; a missing file fails and says so.

A baseline is small, reviewable JSON written by agentotel, one step per entry:

    {"agentotel_baseline": 1, "session": "support_agent", "end_state": "Fail",
     "tokens": {"input": 8, "output": 1}, "cost": 3e-05,
     "steps": [{"kind": "action", "name": "classify_intent", "arguments": {"message": "..."}, "result": "billing"},
               {"kind": "llm", "name": "gpt-4o"},
               {"kind": "action", "name": "fetch_customer_data", "arguments": {"customer_id": null},
                "error": "ValueError: customer_id cannot be None"}]}

Model calls are kept by model only (their prompts change with every tool result: the tool steps around them say what
changed). A value longer than `SUMMARY_AFTER` characters of JSON (a whole result, or one argument or one key of a
result) is kept as a summary: `{"$summary": {"sha256": ..., "chars": ..., "start": ...}}`, compared by its hash.
What the ignore rules leave out is not written, so that a value that changes on every run does not change the file.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..diff import Behaviour, SessionDiff, Step, diff
from ..diff_ignore import IgnoreRules
from ..model import KIND_LLM, Session
from ..replay.text import format_cost
from .assertions import SessionAssertionError

__all__ = [
    "BASELINE_VERSION",
    "UPDATE_ENV",
    "BaselineError",
    "assert_matches_baseline",
    "baseline_data",
    "set_updating",
    "updating",
    "written_baselines",
]

BASELINE_VERSION = 1
UPDATE_ENV = "AGENTOTEL_UPDATE_BASELINES"
SUMMARY_AFTER = 300
"""Characters of JSON past which a value is stored as a summary."""
SUMMARY_KEY = "$summary"
_START_CHARS = 80
_MAX_REMEMBERED = 100

_update_flag: bool | None = None
_written: list[str] = []
_written_count = 0


class BaselineError(SessionAssertionError):
    """A baseline file is missing, unreadable or not one agentotel wrote; or the session cannot be compared with
    one (no content captured). The message says how to put it right."""


def set_updating(value: bool | None) -> None:
    """Makes `assert_matches_baseline` write baselines (`True`), compare (`False`), or follow `UPDATE_ENV`
    (`None`). The pytest plugin sets this from `--agentotel-update-baselines`."""
    global _update_flag
    _update_flag = value


def updating_flag() -> bool | None:
    """What `set_updating` last set (`None`: follow `UPDATE_ENV`)."""
    return _update_flag


def updating() -> bool:
    """Whether baselines are being written rather than compared."""
    if _update_flag is not None:
        return _update_flag
    return os.environ.get(UPDATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def written_baselines() -> tuple[int, list[str]]:
    """How many baseline files this process wrote, and the first of them (at most 100)."""
    return _written_count, list(_written)


def _note_written(path: Path) -> None:
    global _written_count
    _written_count += 1
    if len(_written) < _MAX_REMEMBERED:
        _written.append(str(path))


# --- the file's data ----------------------------------------------------------------------------------------------


def _canonical(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def summarised(value: Any) -> Any:
    """`value` as a baseline keeps it: itself when its JSON is short, else a summary (hash, length, first
    characters)."""
    text = _canonical(value)
    if len(text) <= SUMMARY_AFTER:
        return value
    digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
    start = text[:_START_CHARS] + "…"
    return {SUMMARY_KEY: {"sha256": digest, "chars": len(text), "start": start}}


def _kept(value: Any) -> Any:
    """A dict's values summarised one by one (so a difference names its key), any other value whole."""
    if isinstance(value, dict) and SUMMARY_KEY not in value:
        return {str(k): summarised(v) for k, v in value.items()}
    return summarised(value)


def _step_data(step: Step) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": step.kind, "name": step.name}
    if step.kind != KIND_LLM:
        for name in ("arguments", "result"):
            if name in step.fields:
                data[name] = _kept(step.fields[name])
    if "error" in step.fields:
        data["error"] = step.fields["error"]
    return data


def _rounded(cost: float) -> float:
    return float(f"{cost:.12g}")


def baseline_data(session: Session, *, ignore: str | Iterable[str] | IgnoreRules | None = None) -> dict[str, Any]:
    """What a baseline of `session` holds (see the module's docstring), without what `ignore` leaves out."""
    rules = IgnoreRules.parse(ignore)
    behaviour = Behaviour.of(session)
    steps = []
    for step in behaviour.steps:
        if rules.leaves_out(step.name):
            continue
        fields = rules.apply(step.name, dict(step.fields))
        steps.append(_step_data(Step(step.number, step.kind, step.name, fields)))
    data: dict[str, Any] = {"agentotel_baseline": BASELINE_VERSION, "session": session.name}
    if not rules.ignores_figure("end_state"):
        data["end_state"] = session.end_state
    if not rules.ignores_figure("tokens"):
        data["tokens"] = {"input": session.input_tokens, "output": session.output_tokens}
    if not rules.ignores_figure("cost"):
        data["cost"] = _rounded(session.cost)
    data["steps"] = steps
    return data


def _text(data: Mapping[str, Any]) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


class _Bad(ValueError):
    """What is wrong with a baseline file's content."""


def _as_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(f"{what} is not a whole number")
    return value


def _behaviour(data: Any, origin: str) -> Behaviour:
    """The behaviour a baseline's data describes. Raises `_Bad` naming what is not as agentotel writes it."""
    if not isinstance(data, dict):
        raise _Bad("it holds no JSON object")
    version = data.get("agentotel_baseline")
    if version is None:
        raise _Bad('it has no "agentotel_baseline" version')
    if not isinstance(version, int) or isinstance(version, bool) or version > BASELINE_VERSION or version < 1:
        raise _Bad(f"its version {version!r} is not one this agentotel reads (it reads {BASELINE_VERSION})")
    steps_data = data.get("steps")
    if not isinstance(steps_data, list):
        raise _Bad('"steps" is not a list')
    steps = []
    for number, item in enumerate(steps_data, start=1):
        if not isinstance(item, dict) or not isinstance(item.get("kind"), str) or not isinstance(item.get("name"), str):
            raise _Bad(f"step {number} is not an object with a text kind and name")
        fields = {k: item[k] for k in ("arguments", "result", "error") if k in item}
        steps.append(Step(number, item["kind"], item["name"], fields))
    tokens = data.get("tokens", {})
    if not isinstance(tokens, dict):
        raise _Bad('"tokens" is not an object')
    cost = data.get("cost")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float)) or not math.isfinite(cost)):
        raise _Bad('"cost" is not a number')
    state = data.get("end_state")
    if state is not None and not isinstance(state, str):
        raise _Bad('"end_state" is not text')
    name = data.get("session")
    return Behaviour(
        name=str(name) if name else "baseline",
        steps=tuple(steps),
        end_state=state,
        cost=None if cost is None else float(cost),
        input_tokens=_as_int(tokens.get("input"), '"tokens.input"'),
        output_tokens=_as_int(tokens.get("output"), '"tokens.output"'),
        origin=origin,
    )


# --- the assertion ------------------------------------------------------------------------------------------------

_HOW_TO_UPDATE = "pytest --agentotel-update-baselines (or AGENTOTEL_UPDATE_BASELINES=1)"


def _needs_content(session: Session, rules: IgnoreRules) -> None:
    if Behaviour.of(session).has_content:
        return
    if rules.ignores_field_everywhere("arguments") and rules.ignores_field_everywhere("result"):
        return
    raise BaselineError(
        f"session {session.name!r} ({session.id}) holds no arguments or results: a baseline compares them, so "
        "record the session with content capture on (agentotel.init(capture_content=True), or "
        'agentotel.testing.capture(capture_content=True)), or ignore=["arguments", "result"]'
    )


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text, encoding="utf-8")
        temporary.replace(path)  # never a half-written baseline
    except OSError as error:
        raise BaselineError(f"cannot write the baseline {path}: {error.strerror or error}") from None
    _note_written(path)


def _read(path: Path) -> Behaviour:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(
            f"no baseline at {path}: write it with {_HOW_TO_UPDATE}, then review and commit it"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise BaselineError(f"cannot read the baseline {path}: {reason}") from None
    try:
        return _behaviour(json.loads(text), str(path))
    except json.JSONDecodeError as error:
        problem = f"it is not JSON (line {error.lineno}, column {error.colno}: {error.msg})"
    except _Bad as error:
        problem = str(error)
    raise BaselineError(f"{path} is not a baseline agentotel can read: {problem}; write it again with {_HOW_TO_UPDATE}")


def _within(
    name: str, before: float | None, after: float | None, tolerance: float, show: Callable[[float], str] = str
) -> str | None:
    """Why `after` is out of `tolerance` (relative) of `before`, or `None` when it is within it."""
    if before is None or after is None:
        return None if before == after else f"{name}: {before} in the baseline, {after} now"
    if abs(after - before) <= tolerance * abs(before) + 1e-12:
        return None
    change = f"{(after - before) / before:+.1%} off" if before else "up from 0 in"
    return f"{name} {show(after)} is {change} the baseline's {show(before)} (tolerance {tolerance:.0%})"


def assert_matches_baseline(
    session: Session,
    path: str | os.PathLike[str],
    *,
    ignore: str | Iterable[str] | IgnoreRules | None = None,
    cost_tolerance: float = 0.1,
    tokens_tolerance: float = 0.1,
) -> SessionDiff | None:
    """The session behaves as the baseline at `path` says (a path relative to the current directory): the same
    steps with the same arguments, result summaries and errors, the same end state, and cost and tokens within
    `cost_tolerance` / `tokens_tolerance` (relative: 0.1 is ±10%) of the baseline's. `ignore` rules leave things
    out (`agentotel.diff_ignore`: `["arguments.request_id", "cost", "@current_time"]`).

    While baselines are being updated (`pytest --agentotel-update-baselines`), writes the baseline instead (when
    it differs from the file) and returns `None`; else returns the diff. Raises `BaselineError` for a missing or
    unreadable baseline or a session recorded without content, `SessionAssertionError` (with the behaviour diff
    and the session's replay) when the session does not match, `ValueError` for an ignore rule not in the syntax.
    """
    rules = IgnoreRules.parse(ignore)
    if not (math.isfinite(cost_tolerance) and cost_tolerance >= 0):
        raise ValueError(f"cost_tolerance must be a finite number >= 0, not {cost_tolerance!r}")
    if not (math.isfinite(tokens_tolerance) and tokens_tolerance >= 0):
        raise ValueError(f"tokens_tolerance must be a finite number >= 0, not {tokens_tolerance!r}")
    target = Path(path)
    _needs_content(session, rules)
    data = baseline_data(session, ignore=rules)
    now = Behaviour(
        name=session.name,
        steps=_behaviour(data, "this run").steps,  # reduced as the file keeps them: summaries, no prompts
        id=session.id,
        end_state=session.end_state,
        end_state_reason=session.end_state_reason,
        cost=session.cost,
        input_tokens=session.input_tokens,
        output_tokens=session.output_tokens,
        start_ns=session.start_ns,
        origin="this run",
    )
    if updating():
        # A baseline the session still matches is left as it is: cost moving within its tolerance is no reason
        # to change a reviewed file.
        try:
            stored: Behaviour | None = _read(target)
        except BaselineError:
            stored = None
        if stored is None or _problems(
            diff(stored, now, ignore=rules), stored, now, rules, cost_tolerance, tokens_tolerance
        ):
            _write(target, _text(data))
        return None
    stored = _read(target)
    found = diff(stored, now, ignore=rules)
    problems = _problems(found, stored, now, rules, cost_tolerance, tokens_tolerance)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise SessionAssertionError(
            f"session {session.name!r} does not match its baseline {target}:\n{listed}\n"
            f"If the change is intended, update the baseline: {_HOW_TO_UPDATE}\n\n"
            f"{found.render_text()}\n\n{session.replay()}"
        )
    return found


def _problems(
    found: SessionDiff,
    stored: Behaviour,
    now: Behaviour,
    rules: IgnoreRules,
    cost_tolerance: float,
    tokens_tolerance: float,
) -> list[str]:
    problems: list[str] = []
    row = found.divergence
    if row is not None:
        counts = found.counts()
        moved = ", ".join(f"{counts[s]} {s}" for s in ("changed", "removed", "added") if counts[s])
        where = row.before.number if row.before is not None else row.step.number
        problems.append(f"the steps differ ({moved}); first at step {where}: {row.step.label} {row.status}")
    if not rules.ignores_figure("end_state") and stored.end_state != now.end_state:
        problems.append(f"end state {now.end_state} (the baseline's: {stored.end_state})")
    if not rules.ignores_figure("cost"):
        problem = _within("cost", stored.cost, now.cost, cost_tolerance, format_cost)
        if problem:
            problems.append(problem)
    if not rules.ignores_figure("tokens"):
        for name, before, after in (
            ("input tokens", stored.input_tokens, now.input_tokens),
            ("output tokens", stored.output_tokens, now.output_tokens),
        ):
            problem = _within(name, before, after, tokens_tolerance)
            if problem:
                problems.append(problem)
    return problems
