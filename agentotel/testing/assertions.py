"""Readable assertions on a session's behaviour. Each failure message says what was expected, what happened,
and includes the session's text replay so the failing run can be read in the test report."""

from __future__ import annotations

from ..model import Event, Session


class SessionAssertionError(AssertionError):
    """An assertion on a session failed; the message holds the session's replay."""


def _fail(session: Session, message: str) -> None:
    raise SessionAssertionError(f"{message}\n\n{session.replay()}")


def _names(session: Session) -> list[str]:
    return [e.action_type or e.name for e in session.action_events]


def _calls(session: Session, name: str) -> list[Event]:
    return [e for e in session.action_events if (e.action_type or e.name) == name]


def assert_tool_called(session: Session, name: str, *, times: int | None = None) -> list[Event]:
    """The session called the tool or action `name` (exactly `times` times, when given). Returns those calls."""
    calls = _calls(session, name)
    if not calls:
        _fail(session, f"expected a call of {name!r}; the session called {_names(session) or 'nothing'}")
    if times is not None and len(calls) != times:
        _fail(session, f"expected {name!r} to be called {times} time(s); it was called {len(calls)} time(s)")
    return calls


def assert_tool_not_called(session: Session, name: str) -> None:
    """The session never called the tool or action `name`."""
    calls = _calls(session, name)
    if calls:
        _fail(session, f"expected no call of {name!r}; it was called {len(calls)} time(s)")


def assert_called_before(session: Session, first: str, then: str) -> None:
    """The first call of `first` started before the first call of `then`."""
    firsts, thens = _calls(session, first), _calls(session, then)
    if not firsts or not thens:
        missing = [n for n, calls in ((first, firsts), (then, thens)) if not calls]
        _fail(session, f"expected {first!r} before {then!r}, but {missing} never ran; calls: {_names(session)}")
    if firsts[0].start_ns >= thens[0].start_ns:
        _fail(session, f"expected {first!r} before {then!r}; the order was {_names(session)}")


def assert_call_order(session: Session, names: list[str]) -> None:
    """The tools/actions in `names` ran in this order (other calls may come between them)."""
    sequence = _names(session)
    position = 0
    for name in sequence:
        if position < len(names) and name == names[position]:
            position += 1
    if position < len(names):
        _fail(session, f"expected the calls {names} in this order; the session made {sequence}")


def assert_no_errors(session: Session) -> None:
    """No step of the session failed."""
    first = session.first_error
    if first is not None:
        _fail(session, f"expected no errors; {first.action_type or first.name!r} failed first with {first.error}")


def assert_cost_below(session: Session, limit: float) -> None:
    """The session cost less than `limit` USD. Model calls with no known price make this fail, since their cost
    cannot be bounded."""
    if session.cost >= limit:
        _fail(session, f"expected a cost below ${limit:.4f}; the session cost ${session.cost:.6f}")
    unpriced = session.unpriced_llm_calls
    if unpriced:
        models = sorted({e.model or "?" for e in unpriced})
        _fail(session, f"{len(unpriced)} model call(s) have no known price ({', '.join(models)}): cost is unbounded")


def assert_tokens_below(
    session: Session, *, input: int | None = None, output: int | None = None, total: int | None = None
) -> None:
    """The session stayed within a token budget (input, output and/or total tokens, each a strict upper bound)."""
    checks = (
        ("input", session.input_tokens, input),
        ("output", session.output_tokens, output),
        ("total", session.input_tokens + session.output_tokens, total),
    )
    for label, used, limit in checks:
        if limit is not None and used >= limit:
            _fail(session, f"expected fewer than {limit} {label} tokens; the session used {used}")


def assert_llm_calls_at_most(session: Session, limit: int) -> None:
    """The session made at most `limit` model calls."""
    count = len(session.llm_calls)
    if count > limit:
        _fail(session, f"expected at most {limit} model call(s); the session made {count}")
