"""What a list of sessions is made of, shared by the embedded store and every source: a session's summary
(`SessionSummary`), the list filters (`since_ns`, `normalise_state`, `tags_of`), the figures `agentotel check`
judges (`SessionTally`, `Coverage`) and the error a place sessions are read from raises (`SourceError`).

Its own module so that the store (`store/`, which writes and lists sessions) and the readers (`sources/`, which
open the store among others) both import it and neither imports the other for it. `sources` and `sources._scan`
re-export these names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import semconv as sc
from .model import END_STATES, FAIL, Session, json_cost, recorded_cost
from .records import SpanRecord

__all__ = [
    "LISTED_IDS",
    "Coverage",
    "SessionSummary",
    "SessionTally",
    "SourceError",
    "normalise_state",
    "since_ns",
    "tags_of",
]


class SourceError(Exception):
    """A source cannot be read: a missing, damaged or locked file, an unknown URL scheme, a backend that does not
    answer. Its message is one line, fit to show a person as it is."""


@dataclass
class SessionSummary:
    """What a session list shows of a session: identity, time, how it ended and its totals."""

    id: str
    name: str
    trace_id: str
    span_id: str | None = None
    tags: list[str] = field(default_factory=list)
    parent_id: str | None = None
    start_ns: int = 0
    end_ns: int | None = None
    end_state: str | None = None
    end_state_reason: str | None = None
    cost: float | None = None
    """USD, nested sessions included; `None` when it is not known (`cost_known`): a model call has no price, or
    the session has not ended and its totals are not written yet."""
    input_tokens: int = 0
    output_tokens: int = 0
    llm_calls: int = 0
    tool_and_action_calls: int = 0
    """Tool calls and actions together (the root span's `agentotel.session.tool_call.count`)."""
    error_count: int = 0
    service_name: str | None = None
    """The `service.name` of the process that recorded the session's root span."""

    @classmethod
    def from_session(cls, session: Session) -> SessionSummary:
        """The summary of a session rebuilt from spans: the totals its root span carries when it ends
        (`Session.totals`), counted from its events."""
        return cls._of(session, session.totals(), cost=session.known_cost, service_name=session.service_name)

    @classmethod
    def from_root(cls, record: SpanRecord) -> SessionSummary:
        """The summary of a session read from its root span alone (a span marked `agentotel.step.kind=session`):
        the totals the root span carries when it ends, as the store reads them (`model.recorded_cost` for the
        cost). What a backend that selects the root span's attributes gives, without fetching the trace."""
        attributes = record.attributes
        session = Session.from_root(record)  # id, name, tags, parent, end state: the one reading of a root span
        llm_calls = _count(attributes.get(sc.AGENTOTEL_SESSION_LLM_CALL_COUNT))
        cost = attributes.get(sc.AGENTOTEL_SESSION_COST_AMOUNT)
        amount = float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None
        cost = recorded_cost(amount, llm_calls) if session.end_ns is not None else amount
        return cls._of(session, attributes, cost=cost, service_name=record.service_name)

    @classmethod
    def _of(
        cls, session: Session, totals: Mapping[str, Any], *, cost: float | None, service_name: str | None
    ) -> SessionSummary:
        """The summary of `session`'s identity and end state, with the totals (keyed by the root span's total
        attributes) as counts."""
        return cls(
            id=session.id,
            name=session.name,
            trace_id=session.trace_id,
            span_id=session.span_id,
            tags=list(session.tags),
            parent_id=session.parent_id,
            start_ns=session.start_ns,
            end_ns=session.end_ns,
            end_state=session.end_state,
            end_state_reason=session.end_state_reason,
            cost=cost,
            input_tokens=_count(totals.get(sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS)),
            output_tokens=_count(totals.get(sc.AGENTOTEL_SESSION_USAGE_OUTPUT_TOKENS)),
            llm_calls=_count(totals.get(sc.AGENTOTEL_SESSION_LLM_CALL_COUNT)),
            tool_and_action_calls=_count(totals.get(sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT)),
            error_count=_count(totals.get(sc.AGENTOTEL_SESSION_ERROR_COUNT)),
            service_name=service_name,
        )

    @property
    def cost_known(self) -> bool:
        """Whether `cost` is known (see `Session.cost_known`, the rule it comes from)."""
        return self.cost is not None

    @property
    def tool_calls(self) -> int:
        """`tool_and_action_calls`, by its older name (it always counted actions too)."""
        return self.tool_and_action_calls

    @property
    def start_time(self) -> datetime:
        return datetime.fromtimestamp(self.start_ns / 1e9, tz=UTC)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; `None` while the session runs."""
        return None if self.end_ns is None else max(0, self.end_ns - self.start_ns) / 1e9

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data, with the field names `Session.to_dict()` uses."""
        return {
            "id": self.id,
            "name": self.name,
            "tags": list(self.tags),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "start_time": self.start_time.isoformat(),
            "end_time": None if self.end_ns is None else datetime.fromtimestamp(self.end_ns / 1e9, tz=UTC).isoformat(),
            "duration": self.duration,
            "end_state": self.end_state,
            "end_state_reason": self.end_state_reason,
            "cost": json_cost(self.cost),
            "cost_known": self.cost_known,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "llm_calls": self.llm_calls,
            "tool_and_action_calls": self.tool_and_action_calls,
            "error_count": self.error_count,
            "service_name": self.service_name,
        }


def _count(value: Any) -> int:
    """A recorded count: an integer attribute (a backend may give it as text or a float), else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)) and math.isfinite(value):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return 0
    return 0


def since_ns(since: datetime | timedelta | int | None) -> int | None:
    """A lower bound on start time, in ns since the epoch: a moment, a span of time before now, or ns already."""
    if since is None:
        return None
    if isinstance(since, timedelta):
        since = datetime.now(UTC) - since
    if isinstance(since, datetime):
        if since.tzinfo is None:
            since = since.astimezone()  # a naive moment is local time, as a person typed it
        since = int(since.timestamp() * 1e9)
    return min(max(int(since), _INT64_MIN), _INT64_MAX)  # SQLite integers are 64-bit (ns reach the year 2262)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def normalise_state(state: str | None) -> str | None:
    """`Success` / `Fail` / `Indeterminate` whatever the case; raises `ValueError` for anything else."""
    if state is None:
        return None
    for known in END_STATES:
        if known.lower() == state.strip().lower():
            return known
    raise ValueError(f"unknown end state {state!r} (expected one of {', '.join(END_STATES)})")


def tags_of(tag: str | Sequence[str] | None) -> list[str]:
    if tag is None:
        return []
    return [tag] if isinstance(tag, str) else [str(t) for t in tag]


LISTED_IDS = 1000
"""The most session ids a tally lists per kind (failed, crashed, unknown cost): the counts are always whole."""


@dataclass
class Coverage:
    """How much of a window a source read: `examined` sessions of the `in_window` it holds (a lower bound when
    `at_least`), and what limited it (`limited_by`, e.g. "Tempo's search limit") or how it was counted."""

    examined: int = 0
    in_window: int = 0
    at_least: bool = False
    limited_by: str | None = None
    """Why not every session of the window was read, or why the count is a lower bound; `None` when complete."""
    counted_by: str = ""
    """How the figures were made ("SQL over the store", "TraceQL search, paged"): said when complete."""

    @property
    def complete(self) -> bool:
        """Whether the figures are over every session of the window (an exact count, every one examined)."""
        return not self.at_least and self.examined >= self.in_window

    def line(self) -> str:
        """The coverage line `check` prints."""
        if self.complete:
            how = f" ({self.counted_by})" if self.counted_by else ""
            return f"Coverage: examined all {self.examined:,} sessions in the window{how}"
        bound = "at least " if self.at_least else ""
        why = f" ({self.limited_by})" if self.limited_by else ""
        return f"Coverage: examined {self.examined:,} of {bound}{self.in_window:,} sessions in the window{why}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "in_window": self.in_window,
            "in_window_at_least": self.at_least,
            "complete": self.complete,
            "limited_by": self.limited_by,
            "counted_by": self.counted_by,
        }


def _outermost(batch: Sequence[SessionSummary]) -> list[SessionSummary]:
    ids = {s.id for s in batch}
    return [s for s in batch if s.parent_id not in ids]


@dataclass
class SessionTally:
    """The figures of `agentotel check`, counted over the outermost selected sessions as they come (nested ones
    are in their parent's figures). Holds counts, sums and at most `LISTED_IDS` ids of each kind, never the
    summaries (ids in the order the sessions come: newest first from every source that lists so). A session
    running past `grace_ns` crashed: judged, as failed."""

    now_ns: int
    grace_ns: float
    max_cost: float | None = None
    sessions: int = 0
    ended: int = 0
    crashed: int = 0
    running: int = 0
    """Running for less than the grace: not judged."""
    failed: int = 0
    cost_total: float = 0.0
    costs: int = 0
    """Sessions whose cost is known (ended or not)."""
    priciest: float | None = None
    priciest_id: str | None = None
    unknown_cost: int = 0
    """Judged sessions whose cost is unknown."""
    over_max_cost: int = 0
    failed_ids: list[str] = field(default_factory=list)
    crashed_ids: list[str] = field(default_factory=list)
    unknown_cost_ids: list[str] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)

    @property
    def judged(self) -> int:
        return self.ended + self.crashed

    def add_batch(self, batch: Sequence[SessionSummary]) -> None:
        """Counts the outermost sessions of a batch of whole traces."""
        for summary in _outermost(batch):
            self.add(summary)

    def add(self, summary: SessionSummary) -> None:
        """Counts one outermost session."""
        self.sessions += 1
        judged = True
        if summary.end_state is not None:
            self.ended += 1
            if summary.end_state == FAIL:
                self.failed += 1
                _listed(self.failed_ids, summary.id)
        elif self.now_ns - summary.start_ns >= self.grace_ns:
            self.crashed += 1
            self.failed += 1
            _listed(self.failed_ids, summary.id)
            _listed(self.crashed_ids, summary.id)
        else:
            self.running += 1
            judged = False
        cost = summary.cost
        if cost is None:
            if judged:
                self.unknown_cost += 1
                _listed(self.unknown_cost_ids, summary.id)
            return
        self.cost_total += cost
        self.costs += 1
        if self.priciest is None or cost > self.priciest:
            self.priciest, self.priciest_id = cost, summary.id
        if self.max_cost is not None and cost > self.max_cost:
            self.over_max_cost += 1

    @property
    def failure_rate(self) -> float:
        return self.failed / self.judged if self.judged else 0.0

    def cost_figures(self) -> dict[str, Any]:
        """Total, mean and max cost (`None` when a judged session's cost is unknown: they cannot be bounded)."""
        known = not self.unknown_cost
        return {
            "cost_known": known,
            "total_cost": json_cost(self.cost_total) if known else None,
            "mean_cost": json_cost(self.cost_total / self.costs) if known and self.costs else None,
            "max_cost": json_cost(self.priciest) if known and self.priciest is not None else None,
            "max_cost_session": self.priciest_id if known else None,
        }


def _listed(ids: list[str], session_id: str) -> None:
    if len(ids) < LISTED_IDS:
        ids.append(session_id)
