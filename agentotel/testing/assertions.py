"""Readable assertions on a session's behaviour. Each failure message says what was expected, what happened,
and includes the session's text replay so the failing run can be read in the test report.

Failures point at the test's own line: the assertions' frames are hidden from pytest's traceback
(`__tracebackhide__`), and the error prints under its short name (`SessionAssertionError: expected ...`), so
pytest's one-line summary shows the message."""

from __future__ import annotations

import importlib
import math
from decimal import Decimal
from numbers import Real
from typing import Any, NoReturn

from ..model import KIND_ACTION, KIND_TOOL, Event, Session

CONTENT_HINT = (
    "Arguments were not recorded (content capture is off): "
    "record them with capture(capture_content=True) or agentotel.init(capture_content=True)."
)
"""The line a failure message adds when a failed tool or action step shows no arguments for that reason."""


class SessionAssertionError(AssertionError):
    """An assertion on a session failed; the message holds the session's replay.

    It and its subclasses print under their short name: `traceback` (and so pytest's summary line) leaves the
    module out only for `builtins`, so that is what `__module__` says; the module it is defined in is kept in
    `defined_in`, and pickling finds the class there."""

    defined_in: str = __name__

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.defined_in = cls.__module__
        cls.__module__ = "builtins"

    def __reduce__(self) -> tuple[Any, ...]:
        cls = type(self)
        return _rebuild, (cls.defined_in, cls.__qualname__, self.args), self.__dict__ or None


SessionAssertionError.__module__ = "builtins"


def _rebuild(module: str, qualname: str, args: tuple[Any, ...]) -> BaseException:
    """A `SessionAssertionError` (or subclass) unpickled: its class looked up where it is defined."""
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found(*args)  # type: ignore[no-any-return]


def content_hint(session: Session) -> str | None:
    """`CONTENT_HINT` when a failed tool or action step of `session` shows no arguments because the session was
    recorded without content (none of its steps holds any), else `None`."""
    failed = [e for e in session.errors if e.kind in (KIND_TOOL, KIND_ACTION) and e.params is None]
    if not failed or any(e.params is not None or e.returns is not None for e in session.events):
        return None
    return CONTENT_HINT


def _fail(session: Session, message: str) -> NoReturn:
    __tracebackhide__ = True
    hint = content_hint(session)
    raise SessionAssertionError(
        f"{message}\n{hint}\n\n{session.replay()}" if hint else f"{message}\n\n{session.replay()}"
    )


def _names(session: Session) -> list[str]:
    return [e.action_type or e.name for e in session.action_events]


def _calls(session: Session, name: str) -> list[Event]:
    return [e for e in session.action_events if (e.action_type or e.name) == name]


def assert_tool_called(session: Session, name: str, *, times: int | None = None) -> list[Event]:
    """The session called the tool or action `name` (exactly `times` times, when given). Returns those calls."""
    __tracebackhide__ = True
    calls = _calls(session, name)
    if not calls:
        _fail(session, f"expected a call of {name!r}; the session called {_names(session) or 'nothing'}")
    if times is not None and len(calls) != times:
        _fail(session, f"expected {name!r} to be called {times} time(s); it was called {len(calls)} time(s)")
    return calls


def assert_tool_not_called(session: Session, name: str) -> None:
    """The session never called the tool or action `name`."""
    __tracebackhide__ = True
    calls = _calls(session, name)
    if calls:
        _fail(session, f"expected no call of {name!r}; it was called {len(calls)} time(s)")


def assert_called_before(session: Session, first: str, then: str) -> None:
    """The first call of `first` started before the first call of `then`."""
    __tracebackhide__ = True
    firsts, thens = _calls(session, first), _calls(session, then)
    if not firsts or not thens:
        missing = [n for n, calls in ((first, firsts), (then, thens)) if not calls]
        _fail(session, f"expected {first!r} before {then!r}, but {missing} never ran; calls: {_names(session)}")
    if firsts[0].start_ns >= thens[0].start_ns:
        _fail(session, f"expected {first!r} before {then!r}; the order was {_names(session)}")


def assert_call_order(session: Session, names: list[str]) -> None:
    """The tools/actions in `names` ran in this order (other calls may come between them)."""
    __tracebackhide__ = True
    sequence = _names(session)
    position = 0
    for name in sequence:
        if position < len(names) and name == names[position]:
            position += 1
    if position < len(names):
        _fail(session, f"expected the calls {names} in this order; the session made {sequence}")


def assert_no_errors(session: Session) -> None:
    """No step of the session failed."""
    __tracebackhide__ = True
    first = session.first_error
    if first is not None:
        _fail(session, f"expected no errors; {first.action_type or first.name!r} failed first with {first.error}")


def assert_cost_below(session: Session, limit: float) -> None:
    """The session cost less than `limit` USD (a finite number, at least 0: anything else raises `TypeError` or
    `ValueError`). A session with unknown cost, a model call with no known price, fails: its cost cannot be
    bounded. The message prints the limit as it was given."""
    __tracebackhide__ = True
    given = _limit_as_given(limit)
    cost = session.cost
    unpriced = session.unpriced_llm_calls
    if unpriced:
        models = ", ".join(sorted({e.model or "?" for e in unpriced}))
        _fail(
            session,
            f"expected a cost below ${given}; unknown cost: {len(unpriced)} model call(s) have no known price "
            f"({models}), the priced ones cost ${_usd(cost, given)}",
        )
    if cost >= limit:
        _fail(session, f"expected a cost below ${given}; the session cost ${_usd(cost, given)}")


def _limit_as_given(limit: object) -> str:
    """`limit` checked (a real number, finite, at least 0) and written as the caller wrote it: `0.00025`, not
    `0.0003`; in positional notation (`0.00001`, not `1e-05`)."""
    if isinstance(limit, bool) or not isinstance(limit, Real):
        raise TypeError(f"assert_cost_below() needs a limit in USD (a number), not {limit!r}")
    if not math.isfinite(limit) or limit < 0:
        raise ValueError(f"assert_cost_below() needs a finite limit of at least 0 USD, not {limit!r}")
    if isinstance(limit, int):
        return str(int(limit))
    text = repr(float(limit))  # the shortest text that reads back as the same float: what the caller typed
    return format(Decimal(text), "f") if "e" in text else text


def _usd(cost: float, limit: str) -> str:
    """`cost` to 6 decimal places, or as many as the limit has when it has more (so the two can be compared)."""
    places = max(6, len(limit.partition(".")[2]))
    return f"{cost:.{places}f}"


def assert_tokens_below(
    session: Session, *, input: int | None = None, output: int | None = None, total: int | None = None
) -> None:
    """The session stayed within a token budget (input, output and/or total tokens, each a strict upper bound).
    At least one limit is required: with none, `TypeError` (a budget of nothing would pass every session)."""
    __tracebackhide__ = True
    if input is None and output is None and total is None:
        raise TypeError("assert_tokens_below() needs a limit: input=, output= and/or total=")
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
    __tracebackhide__ = True
    count = len(session.llm_calls)
    if count > limit:
        _fail(session, f"expected at most {limit} model call(s); the session made {count}")
