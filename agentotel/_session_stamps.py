"""Attributes stamped on the root span of every session that starts while they are set, beside the session's own.

The pytest plugin sets the run id for the whole run and the node id around each test (`agentotel.test.run.id`,
`agentotel.test.node_id`), so that `agentotel diff --run A --run B` can group a run's sessions by test. The stamps
are process-wide, not per context: a session an agent starts in a worker thread during a test belongs to that test
as much as one started on the test's own thread, and pytest runs one test at a time per process.

`sessions.py` reads `session_stamps()` as it builds a session's start attributes; a session's own attributes win.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType

_EMPTY: Mapping[str, str] = MappingProxyType({})
_stamps: Mapping[str, str] = _EMPTY


def session_stamps() -> Mapping[str, str]:
    """The attributes sessions starting now are stamped with (read-only; empty outside a stamped block). Lock-free:
    the mapping is replaced whole, never changed in place."""
    return _stamps


def set_session_stamps(stamps: Mapping[str, str]) -> None:
    """Stamps every session that starts from now on with `stamps` (replacing any earlier ones; empty: none)."""
    global _stamps
    _stamps = MappingProxyType({str(k): str(v) for k, v in stamps.items()}) if stamps else _EMPTY


@contextmanager
def stamped(stamps: Mapping[str, str]) -> Iterator[None]:
    """Sessions started inside the block are stamped with `stamps` added to the current ones; the earlier stamps are
    put back after it."""
    previous = _stamps
    set_session_stamps({**previous, **stamps})
    try:
        yield
    finally:
        set_session_stamps(previous)
