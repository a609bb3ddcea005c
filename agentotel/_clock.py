"""Where agentotel reads the time and makes session ids, so that tests can make both deterministic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator

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


class SwitchableIdGenerator(IdGenerator):
    """The id generator of providers agentotel creates: random ids, unless a test swaps in its own."""

    def __init__(self) -> None:
        self.delegate: IdGenerator = RandomIdGenerator()

    def generate_span_id(self) -> int:
        return self.delegate.generate_span_id()

    def generate_trace_id(self) -> int:
        return self.delegate.generate_trace_id()


id_generator = SwitchableIdGenerator()
"""Shared by every tracer provider agentotel creates."""
