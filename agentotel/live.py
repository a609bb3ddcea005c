"""Live sessions: the registry of sessions in this process, fed by the span processor as spans end.

Each ended span is filed once, under the session whose `session.id` it carries (a nested session's own root span
under the session it is nested in); a session sees the steps of the sessions nested in it through its links to
them (`sessions.LiveSession`), so filing a span costs the same however deep sessions nest.

Memory is bounded, by count and by bytes:
- running sessions: at most `max_running` at once (`AGENTOTEL_MAX_RUNNING_SESSIONS`, 10,000). Past it the oldest
  running session is ended `Indeterminate`, its reason saying why, with one warning: code that never ends its
  sessions (AgentOps' `start_session()` without `end_session()`) cannot grow the process without end;
- ended sessions: a ring of `settings.max_ended_sessions`, and no more than `max_memory` bytes
  (`AGENTOTEL_MAX_SESSION_MEMORY`, 256 MiB) for the spans every live session holds, running or ended (an estimate:
  `estimate()`, content strings counted by length). The oldest ended sessions are forgotten first;
- each session keeps at most `settings.max_events_per_session` events, and none while the sessions still running
  alone hold `max_memory`: those are counted as dropped (`Session.dropped_events`), with one warning. Export is not
  affected by any of these: every span still goes to the store and the exporters.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from sys import getsizeof
from typing import Any

from . import semconv as sc
from ._config import _int_from_env, settings
from .model import Session
from .records import SpanRecord

log = logging.getLogger("agentotel")

MAX_RUNNING_ENV = "AGENTOTEL_MAX_RUNNING_SESSIONS"
MAX_MEMORY_ENV = "AGENTOTEL_MAX_SESSION_MEMORY"
DEFAULT_MAX_RUNNING = 10_000
DEFAULT_MAX_MEMORY = 256 << 20

RECORD_BYTES = 600
"""What a kept span costs besides its strings: the record, its attribute dict, ids (measured on CPython 3.11)."""
REPORT_EVERY = 64 << 10
"""A session reports the bytes it keeps to the registry each time they grow by this much (and when it ends): one
lock per that many bytes rather than per span."""

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9}
_UNITS.update({"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30})
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*")


def memory_from_env(environ: Mapping[str, str] | None = None) -> int:
    """`AGENTOTEL_MAX_SESSION_MEMORY` in bytes: a number of bytes or with a unit (`512MiB`, `1GiB`, `200M`, `64kb`);
    `0` for no bound. Never raises: a value that is no size means the default, with a warning."""
    raw = (environ if environ is not None else os.environ).get(MAX_MEMORY_ENV, "")
    if not raw.strip():
        return DEFAULT_MAX_MEMORY
    found = _SIZE.fullmatch(raw.lower())
    if found is None or found.group(2) not in _UNITS:
        log.warning("%s=%r is not a size (e.g. 256MiB); using %d MiB", MAX_MEMORY_ENV, raw, DEFAULT_MAX_MEMORY >> 20)
        return DEFAULT_MAX_MEMORY
    return int(float(found.group(1)) * _UNITS[found.group(2)])


def estimate(record: SpanRecord) -> int:
    """About how many bytes keeping `record` costs: a fixed part, its exceptions, and with content capture on its
    text attributes (content is nearly all of it then; with capture off no attribute holds content, and a pass over
    them would cost a tenth of what filing the span does). Runs for every span a session keeps."""
    size = RECORD_BYTES
    if settings.capture_content:
        for value in record.attributes.values():
            if type(value) is str:
                length = len(value)
                size += length if length < 256 else getsizeof(value)  # 1, 2 or 4 bytes a character
    for error in record.exceptions:
        size += len(error.message) + len(error.stacktrace or "")
    return size


class SessionRegistry:
    """Every live session of the process by id: the running ones, and a bounded ring of ended ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes_lock = threading.Lock()
        """Guards `_bytes` alone, and is taken with no other lock held: a leaf, so it never orders with others."""
        self._active: dict[str, Session] = {}
        self._ended: OrderedDict[str, Session] = OrderedDict()
        self._bytes = 0
        self.full = False
        """Whether the running sessions alone hold `max_memory`: sessions keep no more spans until room is made."""
        self.last_ended: Session | None = None
        self.started_count = 0
        self.max_running = _int_from_env(MAX_RUNNING_ENV, DEFAULT_MAX_RUNNING)
        """Sessions running at once; past it the oldest is ended (`AGENTOTEL_MAX_RUNNING_SESSIONS`)."""
        self.max_memory = memory_from_env()
        """Bytes (estimated) the live sessions' spans may take; `0` for no bound (`AGENTOTEL_MAX_SESSION_MEMORY`)."""
        self._warned_memory = False
        self._listeners: list[Callable[[Session], None]] = []
        if hasattr(os, "register_at_fork"):
            # Another thread may hold a lock at the fork: the child's copy would stay locked forever.
            owner = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: _new_locks_in(owner()))

    def add_listener(self, listener: Callable[[Session], None]) -> None:
        """Calls `listener(session)` each time a top-level session ends (the pytest summary uses this)."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Session], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def register(self, session: Session) -> list[Session]:
        """Files a session that starts; returns the oldest running sessions past `max_running`, which the caller
        ends (they stay running here until they do)."""
        session.max_events = settings.max_events_per_session
        with self._lock:
            self._active[session.id] = session
            self.started_count += 1
            excess = len(self._active) - max(1, self.max_running)
            if excess <= 0:
                return []
            return [s for s in itertools.islice(self._active.values(), excess) if s is not session]

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

    def memory(self) -> int:
        """Bytes (estimated) that the spans of every live session take: running ones and the ended ones kept."""
        return self._bytes

    def on_record(self, record: SpanRecord) -> None:
        """Files an ended span under its session (a session's own root span under the session it is nested in),
        when it is in that session's trace. Never raises."""
        session_id = record.attributes.get(sc.SESSION_ID)
        if session_id is None:
            return
        # No lock for this lookup: each `get` is atomic, and it runs for every span of every session.
        key = session_id if type(session_id) is str else str(session_id)
        owner = self._active.get(key) or self._ended.get(key)
        if owner is None or record.trace_id != owner.trace_id:
            return  # a `session.id` joins its session only inside its trace, as when sessions are rebuilt (model.py)
        if record.span_id == owner.span_id:
            owner.apply_end(record)
            self._retire(owner)
            owner = self.get(owner.parent_id) if owner.parent_id else None
            if owner is None:
                return
        owner.add(record)

    # --- bytes ----------------------------------------------------------------------------------------------------

    def report(self, size: int) -> None:
        """Counts `size` more bytes kept by a session (each reports once per `REPORT_EVERY`, not per span), and
        forgets the oldest ended sessions while the total is over `max_memory`."""
        with self._bytes_lock:
            self._bytes += size
        limit = self.max_memory
        if limit > 0 and self._bytes > limit:
            with self._lock:
                self._fit(limit)
                self._check_full(limit)

    def make_room(self, size: int) -> bool:
        """While the running sessions fill `max_memory` (`full`): whether `size` more bytes fit now, after forgetting
        the oldest ended sessions."""
        limit = self.max_memory
        with self._lock:
            self._fit(limit - size)
            self._check_full(limit - size)
        return not self.full

    def _check_full(self, limit: int) -> None:
        """Sets `full` for the byte count against `limit` (call holding `_lock`); warns the first time it is."""
        self.full = limit > 0 and self._bytes > limit and self.max_memory > 0
        if self.full and not self._warned_memory:
            self._warned_memory = True
            log.warning(
                "agentotel's running sessions hold %d MiB of spans (%s): their further events are not kept in "
                "memory (counted as dropped events); every span is still exported",
                self.max_memory >> 20,
                MAX_MEMORY_ENV,
            )

    def _count(self, size: int) -> None:
        with self._bytes_lock:
            self._bytes += size

    def _fit(self, limit: int) -> None:
        """Forgets the oldest ended sessions (keeping the newest) until the spans held take at most `limit` bytes
        (call holding `_lock`)."""
        while self._bytes > limit and len(self._ended) > 1:
            self._forget(self._ended.popitem(last=False)[1])

    def _forget(self, session: Session) -> None:
        """A session the ring lets go of (call holding `_lock`): a live session it is nested in takes its spans over
        (it still shows them), else its bytes are no longer held."""
        holder = _holder_of(session)
        if holder is not None and (holder.id in self._active or holder.id in self._ended):
            absorb = getattr(holder, "absorb", None)
            if absorb is not None:
                absorb(session)
                return
        reported = getattr(session, "reported_bytes", None)
        if reported is not None:
            self._count(-int(reported()))

    # --- ending ---------------------------------------------------------------------------------------------------

    def _retire(self, session: Session) -> None:
        with self._lock:
            self._active.pop(session.id, None)
            self._ended[session.id] = session
            self._ended.move_to_end(session.id)
            while len(self._ended) > max(1, settings.max_ended_sessions):
                self._forget(self._ended.popitem(last=False)[1])
            if self.max_memory > 0:
                self._fit(self.max_memory)
                self._check_full(self.max_memory)
            self.last_ended = session
            listeners = list(self._listeners) if session.parent_id is None else []
        release = getattr(session, "release_views", None)
        if release is not None:
            release()
        for listener in listeners:
            try:
                listener(session)
            except Exception:
                pass

    def clear(self) -> None:
        """Forgets every ended session (tests use it between cases)."""
        with self._lock:
            while self._ended:
                self._forget(self._ended.popitem(last=False)[1])
            self._check_full(self.max_memory)
            self.last_ended = None


def _holder_of(session: Session) -> Session | None:
    """The live session whose view holds `session` (the one it is nested in), if any."""
    holder: Any = getattr(session, "_holder", None)
    found = holder() if holder is not None else None
    return found if isinstance(found, Session) else None


def _new_locks_in(found: SessionRegistry | None) -> None:
    """In a forked child: fresh locks for the registry and the sessions it holds (a thread of the parent may have
    held any of them at the fork)."""
    if found is None:
        return
    found._lock = threading.Lock()
    found._bytes_lock = threading.Lock()
    for session in itertools.chain(list(found._active.values()), list(found._ended.values())):
        session._lock = threading.Lock()


registry = SessionRegistry()
"""The process-wide registry."""
