"""Deterministic clock and ids, so a session's replay or dict can be compared with a stored snapshot."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.trace.id_generator import IdGenerator

from .. import _clock as clock


class CountingIdGenerator(IdGenerator):
    """Trace and span ids 1, 2, 3, ... (thread-safe)."""

    def __init__(self) -> None:
        self._spans = itertools.count(1)
        self._traces = itertools.count(1)
        self._lock = threading.Lock()

    def generate_span_id(self) -> int:
        with self._lock:
            return next(self._spans)

    def generate_trace_id(self) -> int:
        with self._lock:
            return next(self._traces)


class SteppingClock:
    """A clock that starts at `start_ns` and moves `step_ns` forward at each reading (thread-safe)."""

    def __init__(self, start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1_000_000) -> None:
        self._now = start_ns
        self._step = step_ns
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            self._now += self._step
            return self._now


@contextmanager
def deterministic(*, start_ns: int = 1_700_000_000_000_000_000, step_ns: int = 1_000_000) -> Iterator[None]:
    """Within the block, agentotel's spans get times from a stepping clock, sessions get ids `session-0001`, ...,
    and (on tracer providers agentotel created) trace and span ids count up from 1. Restores everything after.

    Spans that other instrumentations time themselves keep the real clock.
    """
    counter = itertools.count(1)
    saved = (clock.now_ns, clock.new_session_id, clock.id_generator.delegate)
    clock.now_ns = SteppingClock(start_ns, step_ns)
    clock.new_session_id = lambda: f"session-{next(counter):04d}"
    clock.id_generator.delegate = CountingIdGenerator()
    try:
        yield
    finally:
        clock.now_ns, clock.new_session_id, clock.id_generator.delegate = saved
