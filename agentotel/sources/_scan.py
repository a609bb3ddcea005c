"""Reading every session of a window, and saying how much of it was read.

`agentotel check` is a CI gate: a failure rate over a sample it does not name is worse than none. So a source
answers `check` with a `SessionTally` (the figures, counted as the summaries stream past, never all held at once)
and a `Coverage` (how many sessions were examined, of how many the window holds, exactly or "at least").

- `Coverage`: examined / in the window / exact or a lower bound, and what limited it;
- `SessionTally`: failure rate, counts and costs of the outermost sessions, fed batch by batch;
- `Scan`: the summaries a source streams for a window (batches of whole traces) and, once read, its coverage;
- `WindowScan`: paging for a backend whose search answers at most N traces for a time window and says nothing of
  what it left out (Tempo, Jaeger): windows walked newest first, narrowed until each answers fewer than N.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from ..listing import LISTED_IDS, Coverage, SessionSummary, SessionTally

__all__ = ["LISTED_IDS", "Coverage", "Scan", "SessionTally", "WindowPage", "WindowScan"]


Progress = Callable[[int], None]
"""Called with the number of sessions examined so far, as a scan goes."""


class Scan:
    """The summaries a source streams for a window, in batches, newest first where the backend allows. A batch
    holds whole traces (a nested session is in its parent's batch), so nesting is told within a batch. `coverage`
    is final once the batches are read."""

    def __init__(self, batches: Iterable[Sequence[SessionSummary]], coverage: Coverage | None = None) -> None:
        self._batches = batches
        self.coverage = coverage if coverage is not None else Coverage()

    def __iter__(self) -> Iterator[Sequence[SessionSummary]]:
        return iter(self._batches)

    @classmethod
    def whole(cls, summaries: Sequence[SessionSummary], counted_by: str = "") -> Scan:
        """A source read whole: one batch, every session examined."""
        count = len(summaries)
        return cls([summaries], Coverage(examined=count, in_window=count, counted_by=counted_by))

    def summaries(self, limit: int | None = None) -> list[SessionSummary]:
        """The first `limit` summaries (all when `None`), in the scan's order; stops reading once it has them."""
        found: list[SessionSummary] = []
        if limit is not None and limit <= 0:
            return found
        for batch in self:
            for summary in batch:
                found.append(summary)
                if limit is not None and len(found) >= limit:
                    return found
        return found


# --- paging by time windows ---------------------------------------------------------------------------------------


@dataclass
class WindowPage:
    """A backend's answer for one time window: `raw` traces answered (what its limit counts), and the
    sessions of the traces that started in the window, one batch per trace, with the trace's start."""

    raw: int
    traces: list[tuple[int, list[SessionSummary]]]
    missing: int = 0
    """Sessions the backend said matched but did not give (Tempo's spans-per-spanset cap)."""


WindowSearch = Callable[[int, int, int], WindowPage]
"""`search(start_ns, end_ns, limit)`: the backend's answer for the half-open window [start_ns, end_ns)."""


class WindowScan:
    """Every session of [start_ns, end_ns), for a backend whose search answers at most `page` traces of a window
    and does not say what it left out. Walks windows from the newest: a window answered with fewer than `page`
    traces holds no more (exact); one answered with `page` is narrowed and asked again; a window no narrower than
    `resolution_ns` that still answers `page` is read as it is, and the count becomes "at least" (`what`'s search
    limit). The next window's width follows the last one's density. Stops after `max_sessions` (a lower bound
    then too). Holds one page at a time."""

    _GROWTH = 4.0
    _FILL = 0.5
    """How full of `page` a window is aimed at."""

    def __init__(
        self,
        search: WindowSearch,
        *,
        start_ns: int,
        end_ns: int,
        page: int,
        resolution_ns: int,
        what: str,
        counted_by: str,
        max_sessions: int,
        progress: Progress | None = None,
    ) -> None:
        self.search = search
        self.start_ns, self.end_ns = start_ns, end_ns
        self.page = page
        self.resolution_ns = max(1, resolution_ns)
        self.what = what
        self.max_sessions = max_sessions
        self.progress = progress
        self.coverage = Coverage(counted_by=counted_by)
        self.requests = 0

    def scan(self) -> Scan:
        return Scan(self._batches(), self.coverage)

    def _batches(self) -> Iterator[list[SessionSummary]]:
        coverage = self.coverage
        high = self.end_ns
        width = max(self.resolution_ns, high - self.start_ns)
        floor = 0  # traces a truncated answer showed in the part of the window not read yet
        while high > self.start_ns:
            low = max(self.start_ns, high - width)
            self.requests += 1
            answer = self.search(low, high, self.page)
            if answer.raw >= self.page and high - low > self.resolution_ns:
                floor = max(floor, answer.raw)
                width = max(self.resolution_ns, (high - low) // 4)
                continue
            found = sorted(answer.traces, key=lambda item: item[0], reverse=True)
            count = sum(len(batch) for _, batch in found)
            if answer.raw >= self.page:
                coverage.at_least = True
                coverage.limited_by = (
                    f"{self.what}'s search limit: {answer.raw:,} traces or more in {_span_text(high - low)}, "
                    "its narrowest window"
                )
            elif answer.missing:
                coverage.at_least = True
                coverage.limited_by = f"{self.what} left out {answer.missing:,} sessions of traces holding many"

            remaining = self.max_sessions - coverage.examined
            coverage.in_window += count + answer.missing
            stopped = False
            for _, batch in found:
                if len(batch) > remaining:
                    stopped = True
                    break
                remaining -= len(batch)
                coverage.examined += len(batch)
                yield batch
            self._report()
            floor = max(0, floor - answer.raw)
            high = low
            if stopped or coverage.examined >= self.max_sessions:
                if high > self.start_ns or coverage.examined < coverage.in_window:
                    coverage.at_least = coverage.at_least or high > self.start_ns
                    coverage.in_window += floor
                    coverage.limited_by = f"stopped at ?max_sessions={self.max_sessions:,}"
                return
            # The next window: as wide as this one's density says fills half a page, within a factor of 4 each way.
            scale = (
                self._GROWTH if not answer.raw else min(self._GROWTH, max(0.25, self.page * self._FILL / answer.raw))
            )
            width = max(self.resolution_ns, int(width * scale))

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.coverage.examined)


def _span_text(ns: int) -> str:
    seconds = ns / 1e9
    if seconds < 1:
        return f"{math.ceil(ns / 1000):,} µs"
    return "one second" if seconds <= 1 else f"{seconds:,.0f} s"
