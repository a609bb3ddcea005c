"""What the tracing-backend sources (Jaeger, Tempo, Phoenix) share: how a session reference is resolved against a
backend that answers two questions — "the spans of trace T" and "the traces holding a span with these attribute
values, in this time window" — and how session lists are made from the answers.

Each backend module implements those two questions (`trace_records`, `find_records`); everything else, the
time window, `last`, trace ids given with or without leading zeros, prefixes, summaries, is here, once.

Options every backend location takes (`jaeger+http://host:16686?lookback=7d&limit=200`):
- `lookback`: how far back lists and searches reach when no `since` is given (`24h` by default; `90m`, `7d`,
  or seconds); a session looked up by its id is searched over at least 7 days;
- `limit`: how many traces a search for one session id (or `last`) fetches at most (100 by default);
- `page_size`: how many traces one request of a list or a `check` asks for (`DEFAULT_PAGE_SIZE`, or the
  backend's own); `max_sessions`: where such a scan stops (1,000,000 by default; "at least" is said then);
- `timeout` (seconds) and `max_bytes`: see `_http`.

Lists and `check` read every session of the window (`scan`): windows walked from the newest, each asked for up
to `page_size` traces and narrowed while it answers that many (`_scan.WindowScan`), so the figures are exact
unless one of the backend's narrowest windows holds more than a page, which the coverage then says.
"""

from __future__ import annotations

import re
import time
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from .. import semconv as sc
from ..model import KIND_SESSION, Session, build_sessions
from ..records import SpanRecord
from . import (
    SessionSummary,
    SourceError,
    SpanSource,
    checked_ref,
    find_session,
    matches,
    normalise_state,
    since_ns,
    tags_of,
)
from ._http import Location, parse_location
from ._scan import Progress, Scan, WindowPage, WindowScan

__all__ = ["DEFAULT_LOOKBACK", "ID_LOOKBACK", "RemoteSource", "dedupe", "parse_duration", "redacted", "trace_id_of"]

DEFAULT_LOOKBACK = timedelta(hours=24)
ID_LOOKBACK = timedelta(days=7)
"""The least window a session id is searched over (Tempo's default largest search window is 168 h)."""
DEFAULT_SEARCH_LIMIT = 100
_FUTURE_SLACK_NS = 60 * 1_000_000_000  # clocks of other hosts may run a little ahead of ours
_HEX = re.compile(r"[0-9a-fA-F]+")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_LOOKBACK_S = 100 * 365.25 * 86400  # a window reaching back past 1970 has nothing, and overflows dates
_MAX_SEARCH_LIMIT = 1_000_000
DEFAULT_PAGE_SIZE = 500
DEFAULT_MAX_SESSIONS = 1_000_000


def _whole_number(text: str | None, name: str, default: int, *, most: int = _MAX_SEARCH_LIMIT) -> int:
    """A location's whole-number option (1 to `most`), else `default`. Raises `SourceError`."""
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise SourceError(f"{name} must be a whole number, not {text!r}") from None
    if not 1 <= value <= most:
        raise SourceError(f"{name} must be a whole number from 1 to {most:,}, not {text!r}")
    return value


def parse_duration(text: str) -> timedelta:
    """`90m`, `24h`, `7d`, `2w`, `30s` or plain seconds. Raises `SourceError` for anything else."""
    found = _DURATION.match(text)
    if not found:
        raise SourceError(f"lookback must be a duration such as 24h, 7d or 90m, not {text!r}")
    seconds = float(found.group(1)) * _UNITS[found.group(2) or "s"]
    if seconds > _MAX_LOOKBACK_S:
        raise SourceError(f"lookback must be at most 100 years, not {text!r}")
    return timedelta(seconds=seconds)


def trace_id_of(ref: str) -> str | None:
    """`ref` as a 32-digit lowercase trace id, when it can be one: hex of at most 32 digits (backends drop leading
    zeros, and 64-bit trace ids exist). `None` otherwise."""
    text = ref.strip()
    if len(text) <= 32 and _HEX.fullmatch(text):
        return text.lower().rjust(32, "0")
    return None


def redacted(location: str) -> str:
    """The location with the password of `user:password@host` masked: locations appear in messages and output."""
    head, sep, rest = location.partition("://")
    authority, slash, tail = rest.partition("/")
    credentials, at, host = authority.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return location
    user = credentials.split(":", 1)[0]
    return f"{head}{sep}{user}:***@{host}{slash}{tail}"


def dedupe(records: Iterable[SpanRecord]) -> list[SpanRecord]:
    """Records without repeats (a trace found through two services, a span on two pages)."""
    seen: dict[tuple[str, str], SpanRecord] = {}
    for record in records:
        seen.setdefault((record.trace_id, record.span_id), record)
    return list(seen.values())


class RemoteSource(SpanSource):
    """A tracing backend read over HTTP. Subclasses answer `trace_records` and `find_records`."""

    what: ClassVar[str] = "backend"
    """The backend's name, for messages."""
    scheme: ClassVar[str] = ""
    page_size_default: ClassVar[int] = DEFAULT_PAGE_SIZE
    resolution_ns: ClassVar[int] = 1000
    """The narrowest time window the backend's search tells apart (µs, Tempo's a second)."""
    counted_by: ClassVar[str] = "every trace of the window fetched, paged by time"

    def __init__(self, location: str) -> None:
        self.where: Location = parse_location(location, self.scheme)
        self.location = redacted(location)
        lookback = self.where.option("lookback")
        self.lookback = parse_duration(lookback) if lookback else DEFAULT_LOOKBACK
        limit = self.where.option("limit")
        try:
            self.search_limit = int(limit) if limit else DEFAULT_SEARCH_LIMIT
        except ValueError:
            raise SourceError(f"limit must be a whole number, not {limit!r}") from None
        if not 1 <= self.search_limit <= _MAX_SEARCH_LIMIT:
            raise SourceError(f"limit must be a whole number from 1 to {_MAX_SEARCH_LIMIT:,}, not {limit!r}")
        self.page_size = _whole_number(self.where.option("page_size"), "page_size", self.page_size_default)
        self.max_sessions = _whole_number(
            self.where.option("max_sessions"), "max_sessions", DEFAULT_MAX_SESSIONS, most=2**62
        )

    # what a backend answers ----------------------------------------------------------------------------------

    @abstractmethod
    def trace_records(self, trace_id: str) -> list[SpanRecord] | None:
        """Every span of the trace (a 32-digit lowercase hex id); `None` when the backend has no such trace."""

    @abstractmethod
    def find_records(
        self, attributes: Mapping[str, str], *, start_ns: int, end_ns: int, limit: int
    ) -> list[SpanRecord]:
        """Every span of the traces (at most `limit`, newest first where the backend can) that hold a span
        whose attributes have all these values and which started in [start_ns, end_ns]."""

    # SpanSource ----------------------------------------------------------------------------------------------

    def window_page(
        self,
        query: Mapping[str, str],
        *,
        start_ns: int,
        end_ns: int,
        limit: int,
        tags: Sequence[str] = (),
        service: str | None = None,
    ) -> WindowPage:
        """The backend's answer for the traces that hold a span with these attribute values and started in
        [start_ns, end_ns): how many traces it answered (`raw`, what its limit counts) and each trace's sessions.
        `tags` and `service` may be pushed down to the backend (they are checked again here). This default
        searches with `find_records` and rebuilds each trace (`build_sessions`); a backend that can give the
        root spans' totals without the traces overrides it. Raises `SourceError`."""
        records = dedupe(self.find_records(query, start_ns=start_ns, end_ns=max(start_ns, end_ns - 1), limit=limit))
        by_trace: dict[str, list[SpanRecord]] = {}
        for record in records:
            by_trace.setdefault(record.trace_id, []).append(record)
        traces: list[tuple[int, list[SessionSummary]]] = []
        for spans in by_trace.values():
            sessions = build_sessions(spans, include_traces_without_session=False)
            if sessions:
                traces.append((min(s.start_ns for s in sessions), [SessionSummary.from_session(s) for s in sessions]))
        return WindowPage(raw=self._answered(len(by_trace)), traces=traces)

    def _answered(self, traces: int) -> int:
        """How many traces the last search answered, as its limit counts them (per request; Jaeger's per
        service)."""
        return traces

    def scan(
        self,
        *,
        since: datetime | timedelta | int | None = None,
        tag: str | Sequence[str] | None = None,
        state: str | None = None,
        service: str | None = None,
        progress: Progress | None = None,
    ) -> Scan:
        """Every session of the window, newest first: the window paged by time (`WindowScan`), each trace's
        sessions kept when they pass the filters and the trace started in the page's window."""
        bound, tags, wanted = since_ns(since), tags_of(tag), normalise_state(state)
        start, end = self._window(bound)
        query = {sc.AGENTOTEL_STEP_KIND: KIND_SESSION}
        if wanted is not None:
            query[sc.AGENTOTEL_SESSION_END_STATE] = wanted

        def search(low: int, high: int, limit: int) -> WindowPage:
            page = self.window_page(query, start_ns=low, end_ns=high, limit=limit, tags=tags, service=service)
            kept: list[tuple[int, list[SessionSummary]]] = []
            for first, summaries in page.traces:
                if not low <= first < high:
                    continue  # a trace that started in another page's window is counted there
                chosen = [s for s in summaries if matches(s, bound, tags, wanted, service)]
                if chosen:
                    kept.append((first, chosen))
            return WindowPage(raw=page.raw, traces=kept, missing=page.missing)

        return WindowScan(
            search,
            start_ns=start,
            end_ns=end,
            page=self.page_size,
            resolution_ns=self.resolution_ns,
            what=self.what,
            counted_by=self.counted_by,
            max_sessions=self.max_sessions,
            progress=progress,
        ).scan()

    def sessions(
        self,
        *,
        since: datetime | timedelta | int | None = None,
        tag: str | Sequence[str] | None = None,
        state: str | None = None,
        limit: int | None = None,
        service: str | None = None,
    ) -> list[SessionSummary]:
        """Newest first, read a page at a time until `limit` are found (`scan`): a short list asks for the newest
        window only."""
        found = self.scan(since=since, tag=tag, state=state, service=service)
        return found.summaries(None if limit is None else max(0, limit))

    def session(self, ref: str) -> Session:
        ref = checked_ref(ref)
        if ref == "last":
            return find_session(self._recent_sessions(None, None), ref, location=self.location)
        trace_id = trace_id_of(ref)
        if trace_id is not None and len(ref) >= 16:
            found = self._trace_session(trace_id)
            if found is not None:
                return found
        end = time.time_ns() + _FUTURE_SLACK_NS
        start = end - int(max(self.lookback, ID_LOOKBACK).total_seconds() * 1e9)
        records = self.find_records({sc.SESSION_ID: ref}, start_ns=start, end_ns=end, limit=self.search_limit)
        if records:
            for session in build_sessions(dedupe(records)):
                if session.id == ref:
                    return session
        if trace_id is not None and len(ref) < 16:
            # A trace id as Tempo and Jaeger print it, leading zeros dropped (or a hex prefix of a session id).
            found = self._trace_session(trace_id)
            if found is not None:
                return found
        # A prefix, or an id the backend's search cannot match exactly: among the recent sessions.
        return find_session(self._recent_sessions(None, None), ref, location=self.location)

    def _trace_session(self, trace_id: str) -> Session | None:
        """The outermost session of the trace, or the trace as a session when it holds none."""
        records = self.trace_records(trace_id)
        if not records:
            return None
        return find_session(build_sessions(dedupe(records)), trace_id, location=self.location)

    # internals ---------------------------------------------------------------------------------------------------

    def _window(self, since: int | None) -> tuple[int, int]:
        end = time.time_ns() + _FUTURE_SLACK_NS
        start = since if since is not None else end - int(self.lookback.total_seconds() * 1e9)
        return start, end

    def _recent_sessions(self, since: int | None, state: str | None) -> list[Session]:
        """The sessions of the traces that hold a session root span in the window (with that end state)."""
        start, end = self._window(since)
        query = {sc.AGENTOTEL_STEP_KIND: KIND_SESSION}
        if state is not None:
            query[sc.AGENTOTEL_SESSION_END_STATE] = state
        records = dedupe(self.find_records(query, start_ns=start, end_ns=end, limit=self.search_limit))
        return build_sessions(records, include_traces_without_session=False)
