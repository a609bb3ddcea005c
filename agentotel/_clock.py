"""Where agentotel reads the time and makes session ids, so that tests can make both deterministic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

now_ns: Callable[[], int] = time.time_ns
"""The clock agentotel stamps its spans with. `agentotel.testing.deterministic()` swaps it."""

new_session_id: Callable[[], str] = lambda: str(uuid.uuid4())  # noqa: E731
"""Makes the id of a new session. `agentotel.testing.deterministic()` swaps it."""


def current_time_ns() -> int:
    """The time by the current clock (reads the module attribute, so a swapped clock is seen)."""
    return now_ns()


def make_session_id() -> str:
    """A new session id from the current generator."""
    return new_session_id()
