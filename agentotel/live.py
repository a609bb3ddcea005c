"""Live sessions: the registry of sessions in this process, fed by the span processor as spans end.

Memory is bounded: ended sessions are kept in a ring of `settings.max_ended_sessions`, and each session keeps at
most `settings.max_events_per_session` events (the rest are counted as dropped).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable

from . import semconv as sc
from ._config import settings
from .model import Session
from .records import SpanRecord


class SessionRegistry:
    """Every live session of the process by id: the running ones, and a bounded ring of ended ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, Session] = {}
        self._ended: OrderedDict[str, Session] = OrderedDict()
        self.last_ended: Session | None = None
        self.started_count = 0
        self._listeners: list[Callable[[Session], None]] = []
        if hasattr(os, "register_at_fork"):
            # Another thread may hold the lock at the fork: the child's copy would stay locked forever.
            owner = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _new_lock_in(owner()))

    def add_listener(self, listener: Callable[[Session], None]) -> None:
        """Calls `listener(session)` each time a top-level session ends (the pytest summary uses this)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Session], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def register(self, session: Session) -> None:
        session.max_events = settings.max_events_per_session
        with self._lock:
            self._active[session.id] = session
            self.started_count += 1

    def get(self, session_id: str) -> Session | None:
        with self._lock:
            return self._active.get(session_id) or self._ended.get(session_id)

    def active(self) -> list[Session]:
        with self._lock:
            return list(self._active.values())

    def ended(self) -> list[Session]:
        """Ended sessions still kept, oldest first."""
        with self._lock:
            return list(self._ended.values())

    def on_record(self, record: SpanRecord) -> None:
        """Files an ended span under its session and the sessions that one is nested in. Never raises."""
        session_id = record.attributes.get(sc.SESSION_ID)
        if session_id is None:
            return
        # No lock for this lookup: each `get` is atomic, and it runs for every span of every session.
        key = session_id if type(session_id) is str else str(session_id)
        owner = self._active.get(key) or self._ended.get(key)
        if owner is None:
            return
        if record.span_id == owner.span_id:
            owner.apply_end(record)
            self._retire(owner)
            owner = self.get(owner.parent_id) if owner.parent_id else None
        elif not owner.parent_id:
            owner.add(record)  # the common case, a step of a session nested in no other: no walk up the chain
            return
        seen: set[str] = set()
        while owner is not None and owner.id not in seen:
            seen.add(owner.id)
            owner.add(record)
            owner = self.get(owner.parent_id) if owner.parent_id else None

    def _retire(self, session: Session) -> None:
        with self._lock:
            self._active.pop(session.id, None)
            self._ended[session.id] = session
            self._ended.move_to_end(session.id)
            while len(self._ended) > max(1, settings.max_ended_sessions):
                self._ended.popitem(last=False)
            self.last_ended = session
            listeners = list(self._listeners) if session.parent_id is None else []
        for listener in listeners:
            try:
                listener(session)
            except Exception:
                pass

    def clear(self) -> None:
        """Forgets every ended session (tests use it between cases)."""
        with self._lock:
            self._ended.clear()
            self.last_ended = None


def _new_lock_in(found: SessionRegistry | None) -> None:
    if found is not None:
        found._lock = threading.Lock()


registry = SessionRegistry()
"""The process-wide registry."""
