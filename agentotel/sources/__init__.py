"""Where sessions are read from: the embedded store, OTLP JSON files, and (by URL scheme) tracing backends.

Every source turns what it reads into `SpanRecord`s and builds sessions with `build_sessions`, the one
reconstruction path. A source answers two questions: which sessions are there (`sessions()`, summaries), and
what happened in one of them (`session(ref)`, a full `Session`).

`open_source(location)` picks the source:
- `None`: the embedded store (`AGENTOTEL_STORE`, else the default path in the user's data folder);
- a path: an agentotel store (SQLite) or an OTLP JSON / JSON Lines file, told apart by their content;
- `scheme+http://host:port` (`jaeger+http://localhost:16686`, ...): the module registered for the scheme's
  first part in `SCHEMES` (or by `register_source`), whose `open_source(location) -> SpanSource` opens it.
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..listing import SessionSummary, SourceError, normalise_state, since_ns, tags_of
from ..model import Session, build_sessions
from ..records import SpanRecord

if TYPE_CHECKING:
    from ._scan import Progress, Scan, SessionTally

__all__ = [
    "SCHEMES",
    "RecordsSource",
    "SessionNotFound",
    "SessionSummary",
    "SourceError",
    "SpanSource",
    "checked_ref",
    "find_session",
    "last_of",
    "matches",
    "normalise_state",
    "open_source",
    "register_source",
    "since_ns",
    "tags_of",
]


class SessionNotFound(SourceError, LookupError):
    """No session (or more than one) matches the id, trace id or prefix asked for."""


def matches(
    summary: SessionSummary, since: int | None, tags: Sequence[str], state: str | None, service: str | None = None
) -> bool:
    """Whether a session passes the list filters: started at or after `since`, has every tag, ended in `state`,
    recorded by `service` (its `service.name`)."""
    if since is not None and summary.start_ns < since:
        return False
    if state is not None and summary.end_state != state:
        return False
    if service is not None and summary.service_name != service:
        return False
    return all(t in summary.tags for t in tags)


def last_of(summaries: Iterable[SessionSummary]) -> SessionSummary | None:
    """The session `last` names among `summaries`: the one that ended last (the outermost one, when nested
    sessions end together), else the one that started last when none has ended."""
    found = list(summaries)
    ended = [s for s in found if s.end_ns is not None]
    if ended:
        return max(ended, key=lambda s: (s.end_ns or 0, -s.start_ns))
    return max(found, key=lambda s: s.start_ns, default=None)


class SpanSource(ABC):
    """A place sessions are read from. Methods raise `SourceError` (one-line message) for anything unreadable."""

    location: str
    """How the user named the source (a path or a URL), for messages."""

    @abstractmethod
    def sessions(
        self,
        *,
        since: datetime | timedelta | int | None = None,
        tag: str | Sequence[str] | None = None,
        state: str | None = None,
        limit: int | None = None,
        service: str | None = None,
    ) -> list[SessionSummary]:
        """Summaries of the sessions that match, newest first (at most `limit`); `service` keeps the sessions
        whose root span a process of that `service.name` recorded."""

    @abstractmethod
    def session(self, ref: str) -> Session:
        """The session a reference names: `last` (the session that ended last), a session id, a trace id, or a
        unique prefix of either. Raises `SessionNotFound` when none or several match."""

    def scan(
        self,
        *,
        since: datetime | timedelta | int | None = None,
        tag: str | Sequence[str] | None = None,
        state: str | None = None,
        service: str | None = None,
        progress: Progress | None = None,
    ) -> Scan:
        """Every session of the window that matches, streamed in batches of whole traces, newest first where the
        backend allows, with its `Scan.coverage` once read. This default reads `sessions()` whole: exact for a
        source that holds everything it lists (a file); backends page instead."""
        from ._scan import Scan

        filters: dict[str, Any] = {"since": since, "tag": tag, "state": state}
        if service is not None:
            filters["service"] = service
        return Scan.whole(self.sessions(**filters), counted_by=f"read whole from {self.location}")

    def tally(
        self,
        *,
        since: datetime | timedelta | int | None = None,
        tag: str | Sequence[str] | None = None,
        state: str | None = None,
        service: str | None = None,
        now_ns: int,
        grace_ns: float,
        max_cost: float | None = None,
        progress: Progress | None = None,
    ) -> SessionTally:
        """The figures `agentotel check` judges, over the outermost matching sessions of the window, with how much
        of the window they cover. This default counts `scan()` as it streams (bounded memory); the store counts
        in SQL."""
        from ._scan import SessionTally

        tally = SessionTally(now_ns=now_ns, grace_ns=grace_ns, max_cost=max_cost)
        found = self.scan(since=since, tag=tag, state=state, service=service, progress=progress)
        for batch in found:
            tally.add_batch(batch)
        tally.coverage = found.coverage
        return tally

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Releases what the source holds open."""

    def __enter__(self) -> SpanSource:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _outermost(sessions: Iterable[Session]) -> list[Session]:
    """The sessions not nested in another of `sessions`, in the order they started."""
    found = list(sessions)
    ids = {s.id for s in found}
    return [s for s in found if s.parent_id not in ids]


def _describe(sessions: Sequence[Session]) -> str:
    shown = ", ".join(f"{s.id} ({s.name})" for s in sessions[:3])
    more = f" and {len(sessions) - 3} more" if len(sessions) > 3 else ""
    return shown + more


def checked_ref(ref: str) -> str:
    """`ref` without the space around it. Raises `SessionNotFound` for an empty one: it is a prefix of every id,
    which would name any session of a source that holds one."""
    ref = ref.strip()
    if not ref:
        raise SessionNotFound(
            "an empty session id names no session: give a session id, a trace id, a unique prefix of either, or 'last'"
        )
    return ref


def find_session(sessions: Sequence[Session], ref: str, *, location: str = "the source") -> Session:
    """The session `ref` names among `sessions` (see `SpanSource.session`). Raises `SessionNotFound`."""
    ref = checked_ref(ref)
    if not sessions:
        raise SessionNotFound(f"no sessions in {location}")
    if ref == "last":
        ended = [s for s in sessions if s.end_ns is not None]
        return max(ended or sessions, key=lambda s: (s.end_ns or 0, s.start_ns))
    for session in sessions:
        if session.id == ref:
            return session
    lowered = ref.lower()
    in_trace = _outermost(s for s in sessions if s.trace_id == lowered)
    if in_trace:
        return in_trace[0]
    candidates = {s.id: s for s in sessions if s.id.startswith(ref)}
    for session in _outermost(s for s in sessions if s.trace_id.startswith(lowered)):
        candidates.setdefault(session.id, session)
    if len(candidates) == 1:
        return next(iter(candidates.values()))
    if not candidates:
        raise SessionNotFound(f"no session or trace with id {ref!r} in {location}")
    found = sorted(candidates.values(), key=lambda s: s.start_ns)
    raise SessionNotFound(
        f"{ref!r} matches {len(found)} sessions (by session or trace id) in {location}: {_describe(found)}; "
        "give more of it"
    )


class RecordsSource(SpanSource):
    """A source read whole into memory (a file, a backend's answer): its records, sessions built once."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._sessions: list[Session] | None = None

    @abstractmethod
    def records(self) -> list[SpanRecord]:
        """Every span record of the source. Raises `SourceError`."""

    def all_sessions(self) -> list[Session]:
        """Every session, nested ones included; traces with no agentotel session are one session each."""
        if self._sessions is None:
            self._sessions = build_sessions(self.records(), include_traces_without_session=True)
        return self._sessions

    def sessions(
        self,
        *,
        since: datetime | timedelta | int | None = None,
        tag: str | Sequence[str] | None = None,
        state: str | None = None,
        limit: int | None = None,
        service: str | None = None,
    ) -> list[SessionSummary]:
        bound, tags, wanted = since_ns(since), tags_of(tag), normalise_state(state)
        found = [SessionSummary.from_session(s) for s in self.all_sessions()]
        found = [s for s in found if matches(s, bound, tags, wanted, service)]
        found.sort(key=lambda s: s.start_ns, reverse=True)
        return found if limit is None else found[: max(0, limit)]

    def session(self, ref: str) -> Session:
        return find_session(self.all_sessions(), ref, location=self.location)


SourceOpener = Callable[[str], SpanSource]

SCHEMES: dict[str, str | SourceOpener] = {
    "jaeger": "agentotel.sources.jaeger",
    "tempo": "agentotel.sources.tempo",
    "phoenix": "agentotel.sources.phoenix",
}
"""URL scheme (the part before `+`, e.g. `jaeger` for `jaeger+http://...`) -> the module whose
`open_source(location: str) -> SpanSource` opens such a location, or that function itself."""


def register_source(scheme: str, opener: str | SourceOpener) -> None:
    """Makes `scheme+...://` locations open with `opener` (a function, or a module path with `open_source`)."""
    SCHEMES[scheme.lower()] = opener


def _scheme_of(location: str) -> str | None:
    head, sep, _ = location.partition("://")
    if not sep or not head or os.sep in head or (os.altsep and os.altsep in head):
        return None
    return head.lower()


def open_source(location: str | None = None) -> SpanSource:
    """The source `location` names (see the module's docstring). Raises `SourceError` with a one-line message."""
    if location is None:
        from .store import open_default_store

        return open_default_store()
    scheme = _scheme_of(location)
    if scheme is None:
        return _open_path(Path(location).expanduser())
    if scheme == "file":
        return _open_path(Path(location.partition("://")[2]))
    base = scheme.split("+", 1)[0]
    opener = SCHEMES.get(base)
    if opener is None:
        known = ", ".join(f"{name}+http://..." for name in SCHEMES)
        raise SourceError(f"unknown source {location!r}: give a file path or one of {known}")
    if isinstance(opener, str):
        try:
            module = importlib.import_module(opener)
        except ImportError as error:
            raise SourceError(f"the {base} source is not available in this agentotel ({error})") from None
        opener_fn: SourceOpener = module.open_source
    else:
        opener_fn = opener
    return opener_fn(location)


_SQLITE_HEADER = b"SQLite format 3\x00"
_STORE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def _open_path(path: Path) -> SpanSource:
    """A store or an OTLP JSON file, told apart by the first bytes (an empty `.db` file is an empty store)."""
    if not path.exists():
        raise SourceError(f"no such file: {path}")
    if path.is_dir():
        raise SourceError(f"{path} is a folder; give a store file or an OTLP JSON file")
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError as error:
        raise SourceError(f"cannot read {path}: {error.strerror or error}") from None
    if head.startswith(_SQLITE_HEADER) or path.suffix.lower() in _STORE_SUFFIXES:
        from .store import StoreSource

        return StoreSource(path, must_exist=True)
    if head.removeprefix(b"\xef\xbb\xbf").lstrip()[:1] in (b"{", b"["):
        from .otlp_json import OtlpJsonSource

        return OtlpJsonSource(path)
    raise SourceError(f"{path} is neither an agentotel store (SQLite) nor an OTLP JSON file")
