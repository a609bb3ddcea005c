"""Variation testing as one call: run an agent over many phrasings of one intent, each in its own session."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..model import Event, Session
from ..sessions import session as session_scope
from .assertions import content_hint

Check = Callable[[Any, Session], "bool | str | None"]
"""Judges one run: gets the agent's output and its session. Returns True or None to pass; a string to fail with
that string as the reason (`lambda out, s: None if "refund" in out else f"no refund offered: {out!r}"`); False to
fail with the reason `check returned False`; or raises AssertionError, whose message is the reason."""

CHECK_RETURNED_FALSE = "check returned False"


@dataclass
class VariationResult:
    """How the agent did on one input."""

    input: str
    passed: bool
    output: Any = None
    error: str | None = None
    """Why the variant failed: the exception the agent raised, or what the check said."""
    failing_step: Event | None = None
    session_id: str | None = None
    session_url: str | None = None
    cost: float = 0.0
    session: Session | None = field(default=None, repr=False)


@dataclass
class VariationReport:
    """The results of a variation run, one per input, in input order."""

    results: list[VariationResult]

    @property
    def failures(self) -> list[VariationResult]:
        return [r for r in self.results if not r.passed]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.results)

    def failure_message(self) -> str:
        """The seed guide's message: how many variants failed, and each one with its reason, the step that failed
        first and its session; then, when a failed step shows no arguments because content was not recorded, the
        one-line hint that says how to record them."""
        failures = self.failures
        lines = [f"Agent failed on {len(failures)}/{len(self.results)} variants:"]
        for failure in failures:
            step = ""
            if failure.failing_step is not None:
                step = f" at {failure.failing_step.action_type or failure.failing_step.name!r}"
            lines.append(f"  - {failure.input}: {failure.error or 'failed'}{step} [{failure.session_url}]")
        hint = next((h for f in failures if f.session is not None and (h := content_hint(f.session))), None)
        if hint:
            lines.append(hint)
        return "\n".join(lines)

    def assert_all_passed(self) -> None:
        """Raises AssertionError with `failure_message()` unless every variant passed (pointing at the caller's
        line: this frame is hidden from pytest's traceback)."""
        __tracebackhide__ = True
        if not self.passed:
            raise AssertionError(self.failure_message())

    def __str__(self) -> str:
        if self.passed:
            return f"All {len(self.results)} variants passed (cost ${self.cost:.6f})"
        return self.failure_message()


def _judge(check: Check | None, output: Any, session: Session) -> str | None:
    """None when the run passes, else why it failed."""
    if check is None:
        return None
    try:
        verdict = check(output, session)
    except AssertionError as failure:
        return str(failure) or "check failed"
    if verdict is None or verdict is True:
        return None
    if verdict is False:
        return CHECK_RETURNED_FALSE
    return str(verdict)


def run_variations(
    agent: Callable[[str], Any],
    inputs: Iterable[str],
    *,
    check: Check | None = None,
    name: str = "variation",
    tags: Sequence[str] = ("robustness-test",),
    progress: bool | None = None,
) -> VariationReport:
    """Runs `agent(input)` for each input in its own session (tagged `tags`), judging each run with `check`.

    A run fails when the agent raises or the check fails; the agent's exception never escapes. A progress bar is
    shown on a terminal (`progress=None`), or always/never with True/False.
    """
    items = list(inputs)
    show = sys.stderr.isatty() if progress is None else progress
    results: list[VariationResult] = []

    def run_one(text: str) -> None:
        output: Any = None
        error: str | None = None
        with session_scope(name, tags=[*tags, "variation"]) as run:
            try:
                output = agent(text)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                run.end("Fail", error)
            else:
                error = _judge(check, output, run)
                run.end("Fail" if error else "Success", error)
        results.append(
            VariationResult(
                input=text,
                passed=error is None,
                output=output,
                error=error,
                failing_step=run.first_error,
                session_id=run.id,
                session_url=run.url,
                cost=run.cost,
                session=run,
            )
        )

    if show:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"{name}: {len(items)} variants", total=len(items))
            for text in items:
                run_one(text)
                bar.advance(task)
    else:
        for text in items:
            run_one(text)
    return VariationReport(results)
