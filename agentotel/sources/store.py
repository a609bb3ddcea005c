"""The embedded store as a source: session lists straight from its sessions table, one session's spans by index."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from ..model import Session, build_sessions
from ..store import Store, default_store_path, store_path, store_setting
from . import SessionNotFound, SessionSummary, SourceError, SpanSource, checked_ref, find_session

if TYPE_CHECKING:
    from ._scan import Progress, SessionTally

__all__ = ["StoreSource", "open_default_store"]


def open_default_store() -> StoreSource:
    """The store `AGENTOTEL_STORE` names (the default path when unset). A store not yet written reads as empty.
    Raises `SourceError` when the store is off."""
    path = store_path()
    if path is None:
        raise SourceError(f"the session store is off (AGENTOTEL_STORE={store_setting()}); give --source PATH")
    return StoreSource(path, must_exist=False)


class StoreSource(SpanSource):
    """Sessions in a store file. With `must_exist` false, a missing file is an empty store (nothing recorded yet)."""

    def __init__(self, path: str | Path, *, must_exist: bool = True) -> None:
        self.path = Path(path).expanduser()
        self.location = str(self.path)
        self._store: Store | None = None
        if self.path.exists():
            self._store = Store(self.path)
        elif must_exist:
            raise SourceError(f"no such file: {self.path}")

    @property
    def is_default(self) -> bool:
        return self.path == default_store_path()

    @property
    def store(self) -> Store | None:
        """The open store; `None` when its file does not exist yet."""
        return self._store

    def sessions(
        self,
        *,
        since: datetime | timedelta | int | None = None,
        tag: str | Sequence[str] | None = None,
        state: str | None = None,
        limit: int | None = None,
        service: str | None = None,
    ) -> list[SessionSummary]:
        if self._store is None:
            return []
        return self._store.sessions(since=since, tag=tag, state=state, limit=limit, service=service)

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
        """`check`'s figures counted in SQL by the store (`Store.tally`): exact, no summary built."""
        if self._store is None:
            from ._scan import Coverage, SessionTally

            empty = SessionTally(now_ns=now_ns, grace_ns=grace_ns, max_cost=max_cost)
            empty.coverage = Coverage(counted_by="nothing recorded yet")
            return empty
        return self._store.tally(
            since=since, tag=tag, state=state, service=service, now_ns=now_ns, grace_ns=grace_ns, max_cost=max_cost
        )

    def session(self, ref: str) -> Session:
        store = self._store
        ref = checked_ref(ref)
        if store is None:
            raise SessionNotFound(f"no sessions recorded yet in {self.location}")
        if ref == "last":
            last = store.last_session_id()
            if last is None:
                raise SessionNotFound(f"no sessions in {self.location}")
            return self._by_session_id(store, last)
        if store.summary(ref) is not None or store.has_spans_of_session(ref):
            return self._by_session_id(store, ref)
        candidates: dict[str, tuple[str, str]] = {}  # what is shown -> ("session" | "trace", id)
        for session_id in store.session_ids_with_prefix(ref):
            candidates[session_id] = ("session", session_id)
        for trace_id in store.trace_ids_with_prefix(ref):
            owner = store.outermost_session_in_trace(trace_id)
            if owner is not None:
                candidates.setdefault(owner, ("session", owner))
            else:
                candidates[trace_id] = ("trace", trace_id)
        if not candidates:
            raise SessionNotFound(f"no session or trace with id {ref!r} in {self.location}")
        if len(candidates) > 1:
            shown = ", ".join(sorted(candidates)[:3]) + (
                f" and {len(candidates) - 3} more" if len(candidates) > 3 else ""
            )
            raise SessionNotFound(
                f"{ref!r} matches {len(candidates)} sessions (by session or trace id) in {self.location}: {shown}; "
                "give more of it"
            )
        kind, value = next(iter(candidates.values()))
        if kind == "session":
            return self._by_session_id(store, value)
        return self._by_trace_id(store, value)

    def _by_session_id(self, store: Store, session_id: str) -> Session:
        records = store.records_for(session_id)
        sessions = build_sessions(records, include_traces_without_session=True)
        for session in sessions:
            if session.id == session_id:
                return session
        if sessions:
            # The session's root span is not stored (the session is still running, or its process died): its spans
            # are shown as the trace they belong to.
            return sessions[0]
        raise SessionNotFound(f"session {session_id} has no spans in {self.location}")

    def _by_trace_id(self, store: Store, trace_id: str) -> Session:
        records = store.records_for(trace_id=trace_id)
        if not records:
            raise SessionNotFound(f"no spans of trace {trace_id} in {self.location}")
        return find_session(build_sessions(records), trace_id, location=self.location)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
