"""The embedded session store: spans kept in a local SQLite file, so sessions can be listed and replayed with no
server.

Where: `AGENTOTEL_STORE=<path>`, else `$XDG_DATA_HOME/agentotel/sessions.db` (`~/.local/share/...` without
`XDG_DATA_HOME`); `AGENTOTEL_STORE=off` turns the store off. The file is created readable by its owner only,
since it may hold prompts and completions.

Several processes may write at once: the file is in WAL mode (readers never wait for writers), each batch is one
`BEGIN IMMEDIATE` transaction, and a writer waits up to `WRITE_TIMEOUT_S` for another's lock. Spans are written
with `INSERT OR REPLACE` on (trace id, span id), so a batch retried or exported twice is stored once.

Two tables: `spans` (every span, normalised like a `SpanRecord`) and `sessions` (one row per session, filled when
the session's root span arrives, with the totals it carries), so that listing sessions never reads spans.

Retention: the store keeps the newest `AGENTOTEL_STORE_MAX_SESSIONS` outermost sessions (default 10,000; `0` keeps
every one). When an app's writes take it past that by a tenth, its exporter removes the oldest sessions, the
sessions nested in them and their spans, on the batch processor's thread: after each batch it has written, for at
most `PRUNE_BUDGET_S`, and never while the app exits. `agentotel prune` does the same by hand, by count or by age.
Either way removal goes in short transactions (about `PRUNE_TRANSACTION_S` each) with pauses between them, so
another process waiting to write waits for one of them, never for a whole prune of a store far over its limit. A
session still `Running` is removed by age from its start, and by count once it started `STALE_RUNNING_S` ago: a
process that dies mid-session leaves its session `Running` for good.

A store file deleted, moved away or replaced while an app writes to it is noticed at the app's next batch (a `stat`
before and after each): the exporter opens the file now at the path, making a new store when there is none, and
writes the batch there; the old file's -wal and -shm are taken off the path first, so that SQLite never pairs them
with the new file.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import semconv as sc
from ._gc import paused_gc
from ._loss import UNCOUNTED, AccountedBatchProcessor
from .model import FAIL, KIND_SESSION, Session, recorded_cost
from .records import ExceptionInfo, SpanRecord, record_from_span, span_attributes
from .sources import SessionSummary, SourceError, normalise_state, since_ns, tags_of

if TYPE_CHECKING:
    from .sources._scan import SessionTally

log = logging.getLogger("agentotel")

T = TypeVar("T")

STORE_ENV = "AGENTOTEL_STORE"
OFF_VALUES = frozenset({"off", "none", "false", "0", "no"})
SCHEMA_VERSION = 1
WRITE_TIMEOUT_S = 10.0
"""How long a writer waits for another process's write lock before the batch is given up."""
FORK_WAIT_S = 1.0
"""Longest a `fork()` waits for the exporter to finish what it is doing with the store."""
FORK_TRANSACTION_WAIT_S = 10.0
"""Longest a `fork()` then goes on waiting while the exporter's write transaction is still open: a child forked in
the middle of one can never write the store (it inherits SQLite's record of the parent's write lock)."""
_INHERITED: list[Store] = []
"""Connections a forked child inherited: kept, never closed nor used (closing one rolls back, in the memory the
child shares with its parent, the parent's transaction in progress: the parent's store is left malformed)."""
READ_TIMEOUT_S = 5.0
"""How long a reader waits for a lock (only a writer in exclusive locking mode blocks readers in WAL mode)."""
MAX_SESSIONS_ENV = "AGENTOTEL_STORE_MAX_SESSIONS"
DEFAULT_MAX_SESSIONS = 10_000
PRUNE_TRANSACTION_S = 0.02
"""About how long one pruning transaction holds the store's write lock: how many sessions each removes adapts to it
(and a pause as long follows it, in which other writers get the lock)."""
PRUNE_BUDGET_S = 0.05
"""Longest an app's exporter goes on pruning after a batch it wrote; the rest is left to its next batches."""
STALE_RUNNING_S = 86_400.0
"""A session `Running` that started this long ago is taken for one whose process died: pruning by count ranks it with
the ended ones (a session that runs is never removed by count before that)."""
_FIRST_PRUNE_BATCH = 100
_MIN_PRUNE_BATCH = 50
_MAX_PRUNE_BATCH = 5_000
"""Outermost sessions the first pruning transaction removes, the fewest and the most any removes (with those nested
in them). Fewer than the minimum would not make a transaction shorter: its commit's `fsync` alone takes milliseconds."""
_MAX_PRUNE_ROWS = 2_000
"""Spans of no session one pruning transaction removes at most."""
_LEFT_BY_A_DELETED_STORE = ("-wal", "-shm", "-journal")

__all__ = [
    "MAX_SESSIONS_ENV",
    "PRUNE_BUDGET_S",
    "PRUNE_TRANSACTION_S",
    "STALE_RUNNING_S",
    "STORE_ENV",
    "Store",
    "StoreBatchProcessor",
    "StoreError",
    "StoreSpanExporter",
    "default_store_path",
    "store_exporters",
    "store_max_sessions",
    "store_path",
]


class StoreError(SourceError):
    """The store cannot be read or written: damaged, locked, read-only, or from a newer agentotel. One-line
    message."""


# --- where the store is -----------------------------------------------------------------------------------------------


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/agentotel/sessions.db`, or `~/.local/share/agentotel/sessions.db`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME", "").strip()
    root = Path(base).expanduser() if base and Path(base).expanduser().is_absolute() else None
    if root is None:
        root = Path.home() / ".local" / "share"
    return root / "agentotel" / "sessions.db"


def store_setting(environ: Mapping[str, str] | None = None) -> str | None:
    """`AGENTOTEL_STORE` as set (stripped), or `None` when unset or empty."""
    env = os.environ if environ is None else environ
    value = env.get(STORE_ENV, "").strip()
    return value or None


def store_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The store's path per `AGENTOTEL_STORE` (the default path when unset); `None` when the store is off."""
    value = store_setting(environ)
    if value is None:
        return default_store_path(environ)
    if value.lower() in OFF_VALUES:
        return None
    return Path(value).expanduser()


def store_max_sessions(environ: Mapping[str, str] | None = None) -> int | None:
    """How many outermost sessions the store keeps (`AGENTOTEL_STORE_MAX_SESSIONS`; default 10,000); `None` keeps
    every one (`0`, `off`). A value that is no whole number is reported once and the default applies. Never raises."""
    env = os.environ if environ is None else environ
    value = env.get(MAX_SESSIONS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_SESSIONS
    if value.lower() in OFF_VALUES:
        return None
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        log.warning(
            "%s=%r is not a whole number; the store keeps %d sessions", MAX_SESSIONS_ENV, value, DEFAULT_MAX_SESSIONS
        )
        return DEFAULT_MAX_SESSIONS
    return count or None


def store_exporters(*, other_export: bool, environ: Mapping[str, str] | None = None) -> list[SpanExporter]:
    """The store's exporter, when the store should run: always when `AGENTOTEL_STORE` names a path; when it is
    unset, only if nothing else exports (`other_export` false). Never raises."""
    try:
        setting = store_setting(environ)
        if setting is None and other_export:
            return []
        path = store_path(environ)
        return [] if path is None else [StoreSpanExporter(path)]
    except Exception:
        log.debug("Could not set up the session store", exc_info=True)
        return []


# --- rows -------------------------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    status_code TEXT NOT NULL,
    status_message TEXT,
    attributes TEXT NOT NULL,
    exceptions TEXT NOT NULL,
    service_name TEXT,
    session_id TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_session_id ON spans (session_id);
CREATE INDEX IF NOT EXISTS spans_start_ns ON spans (start_ns);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT,
    name TEXT NOT NULL,
    tags TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    end_state TEXT,
    end_state_reason TEXT,
    cost REAL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    llm_calls INTEGER NOT NULL DEFAULT 0,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    error_count INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT,
    service_name TEXT
);
CREATE INDEX IF NOT EXISTS sessions_trace_id ON sessions (trace_id);
CREATE INDEX IF NOT EXISTS sessions_start_ns ON sessions (start_ns);
CREATE INDEX IF NOT EXISTS sessions_end_ns ON sessions (end_ns);
CREATE INDEX IF NOT EXISTS sessions_end_state ON sessions (end_state);
CREATE INDEX IF NOT EXISTS sessions_parent_id ON sessions (parent_id);
"""

_OUTERMOST = "(parent_id IS NULL OR parent_id NOT IN (SELECT session_id FROM sessions))"
"""SQL: a session row nested in no stored session."""
_BY_COUNT = "(end_ns IS NOT NULL OR start_ns < ?)"
"""SQL: a session row pruning by count may remove: ended, or running since before the parameter (`_stale_before`)."""
_DOOMED_BY_COUNT = (
    f"INSERT INTO doomed SELECT session_id FROM sessions WHERE {_OUTERMOST} AND {_BY_COUNT} AND start_ns <= ? "
    "AND (start_ns, rowid) <= (?, ?) ORDER BY start_ns, rowid LIMIT ?"
)
"""SQL: the oldest outermost sessions up to the boundary (`Store._keep_boundary`) that pruning by count removes, in
the order of the start index (start, then rowid: no sort)."""
_DOOMED_BY_AGE = (
    f"INSERT INTO doomed SELECT session_id FROM sessions WHERE {_OUTERMOST} "
    "AND (end_ns < ? OR (end_ns IS NULL AND start_ns < ?)) LIMIT ?"
)
"""SQL: outermost sessions that ended before the parameter, or still running that started before it."""
_NO_SESSION = "session_id IS NULL AND end_ns < ?"
_NO_SESSION_ROW = "end_ns < ? AND session_id IS NOT NULL AND session_id NOT IN (SELECT session_id FROM sessions)"
_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, status_message, attributes, "
    "exceptions, service_name, session_id"
)
_SESSION_COLUMNS = (
    "session_id, trace_id, span_id, name, tags, start_ns, end_ns, end_state, end_state_reason, cost, input_tokens, "
    "output_tokens, llm_calls, tool_calls, error_count, parent_id, service_name"
)


def _json_default(value: object) -> object:
    return list(value) if isinstance(value, (tuple, set, frozenset)) else str(value)


def _span_row(record: SpanRecord) -> tuple[Any, ...]:
    session_id = record.attributes.get(sc.SESSION_ID)
    exceptions = [{"type": e.type, "message": e.message, "stacktrace": e.stacktrace} for e in record.exceptions]
    return (
        record.trace_id,
        record.span_id,
        record.parent_span_id,
        record.name,
        record.kind,
        int(record.start_ns),
        None if record.end_ns is None else int(record.end_ns),
        record.status_code,
        record.status_message,
        json.dumps(dict(record.attributes), default=_json_default, ensure_ascii=False),
        json.dumps(exceptions, ensure_ascii=False),
        record.service_name,
        None if session_id is None else str(session_id),
    )


def _int_attr(attributes: Mapping[str, Any], key: str) -> int:
    value = attributes.get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _session_row(record: SpanRecord) -> tuple[Any, ...] | None:
    """The `sessions` row of a session root span (`None` for any other span): a running session's (its root not
    ended: no end, no state, no totals yet) is replaced by the ended one's when that arrives."""
    attributes = record.attributes
    if attributes.get(sc.AGENTOTEL_STEP_KIND) != KIND_SESSION:
        return None
    session = Session.from_root(record)  # the same reading of the root span as everywhere else
    cost = attributes.get(sc.AGENTOTEL_SESSION_COST_AMOUNT)
    return (
        session.id,
        session.trace_id,
        session.span_id,
        session.name,
        json.dumps(session.tags, ensure_ascii=False),
        session.start_ns,
        session.end_ns,
        session.end_state,
        session.end_state_reason,
        float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
        _int_attr(attributes, sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS),
        _int_attr(attributes, sc.AGENTOTEL_SESSION_USAGE_OUTPUT_TOKENS),
        _int_attr(attributes, sc.AGENTOTEL_SESSION_LLM_CALL_COUNT),
        _int_attr(attributes, sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT),
        _int_attr(attributes, sc.AGENTOTEL_SESSION_ERROR_COUNT),
        session.parent_id,
        record.service_name,
    )


class _DamagedRow(ValueError):
    """A row whose values are not what agentotel writes (the file was changed by something else)."""


def _text(value: Any, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, str):
        return value
    raise _DamagedRow(f"{what} is not text")


def _integer(value: Any, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    raise _DamagedRow(f"{what} is not a whole number")


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _DamagedRow(f"{what} is not a number")


def _json(value: Any, what: str, default: str) -> Any:
    try:
        return json.loads(_text(value, what, optional=True) or default)
    except (ValueError, RecursionError):
        raise _DamagedRow(f"{what} is not JSON") from None


_loads = json.loads


def _start_of(record: SpanRecord) -> int:
    return record.start_ns


def _records(rows: list[tuple[Any, ...]]) -> list[SpanRecord]:
    """The span records of `spans` rows, in the order they started. Raises `_DamagedRow` for values agentotel
    never writes.

    Runs for every span a session is rebuilt from (100,000 for a big one). A row as agentotel writes it (every value
    of its column's type, no exception recorded) is read by type checks alone, and the attributes of all such rows
    are parsed by ONE `json.loads` of their texts joined into an array: a call per row made parsing a third of the
    read. Any other row goes through the checks that name what is wrong with it (`_checked_record`). The rows come
    unsorted and are sorted here: SQLite's `ORDER BY` copied every row through a temporary B-tree (a third of the
    query), while rows stored in insertion order are nearly sorted already, which Python's sort takes in one pass.
    """
    records: list[SpanRecord] = []
    fast: list[SpanRecord] = []
    texts: list[str] = []
    for row in rows:
        trace_id, span_id, parent, name, kind, start, end, status, message, attributes, exceptions, service = row[:12]
        if (
            exceptions == "[]"
            and type(attributes) is str
            and type(trace_id) is str
            and type(span_id) is str
            and type(name) is str
            and type(kind) is str
            and type(status) is str
            and type(start) is int  # SQLite holds 64-bit integers: no range to check
            and (parent is None or type(parent) is str)
            and (end is None or type(end) is int)
            and (message is None or type(message) is str)
            and (service is None or type(service) is str)
        ):
            record = SpanRecord(trace_id, span_id, parent, name, kind, start, end, {}, status, message, (), service)
            fast.append(record)
            texts.append(attributes or "{}")
        else:
            record = _checked_record(row)
        records.append(record)
    if texts:
        values = None
        try:
            values = _loads("[" + ",".join(texts) + "]")
        except (ValueError, RecursionError):
            pass
        if type(values) is not list or len(values) != len(texts):
            values = [_json(text, "attributes", "{}") for text in texts]  # names the damaged row
        for record, value in zip(fast, values, strict=True):
            record.attributes = value if type(value) is dict else {}
    records.sort(key=_start_of)
    return records


def _checked_record(row: sqlite3.Row | tuple[Any, ...]) -> SpanRecord:
    """The record of any `spans` row, each value checked."""
    exceptions = tuple(
        ExceptionInfo(
            type=str(e.get("type", "Exception")),
            message=str(e.get("message", "")),
            stacktrace=None if e.get("stacktrace") is None else str(e.get("stacktrace")),
        )
        for e in _list_of(_json(row[10], "exceptions", "[]"))
        if isinstance(e, dict)
    )
    attributes = _json(row[9], "attributes", "{}")
    return SpanRecord(
        trace_id=_text(row[0], "trace_id"),
        span_id=_text(row[1], "span_id"),
        parent_span_id=_text(row[2], "parent_span_id", optional=True),
        name=_text(row[3], "name"),
        kind=_text(row[4], "kind"),
        start_ns=_integer(row[5], "start_ns"),
        end_ns=_integer(row[6], "end_ns", optional=True),
        attributes=attributes if isinstance(attributes, dict) else {},
        status_code=_text(row[7], "status_code"),
        status_message=_text(row[8], "status_message", optional=True),
        exceptions=exceptions,
        service_name=_text(row[11], "service_name", optional=True),
    )


def _selection(
    since: datetime | timedelta | int | None,
    tag: str | Sequence[str] | None,
    state: str | None,
    service: str | None,
) -> tuple[str, list[Any]]:
    """The SQL condition on `sessions` rows (and its parameters) that the list filters make."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    bound = since_ns(since)
    if bound is not None:
        where.append("start_ns >= ?")
        params.append(bound)
    wanted = normalise_state(state)
    if wanted is not None:
        where.append("end_state = ?")
        params.append(wanted)
    for one in tags_of(tag):
        where.append("EXISTS (SELECT 1 FROM json_each(sessions.tags) WHERE json_each.value = ?)")
        params.append(one)
    if service is not None:
        where.append("service_name = ?")
        params.append(service)
    return " AND ".join(where), params


def _list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _summary(row: sqlite3.Row | tuple[Any, ...]) -> SessionSummary:
    """The summary of a `sessions` row. Raises `_DamagedRow` for values agentotel never writes.

    The row's cost is the root span's `agentotel.session.cost.amount`, read by `model.recorded_cost`: known only
    when every model call has a price. A running session's totals are not written yet: its cost is unknown."""
    summary = SessionSummary(
        id=_text(row[0], "session_id"),
        trace_id=_text(row[1], "trace_id"),
        span_id=_text(row[2], "span_id", optional=True),
        name=_text(row[3], "name"),
        tags=[str(t) for t in _list_of(_json(row[4], "tags", "[]"))],
        start_ns=_integer(row[5], "start_ns"),
        end_ns=_integer(row[6], "end_ns", optional=True),
        end_state=_text(row[7], "end_state", optional=True),
        end_state_reason=_text(row[8], "end_state_reason", optional=True),
        cost=_number(row[9], "cost"),
        input_tokens=_integer(row[10], "input_tokens"),
        output_tokens=_integer(row[11], "output_tokens"),
        llm_calls=_integer(row[12], "llm_calls"),
        tool_and_action_calls=_integer(row[13], "tool_calls"),
        error_count=_integer(row[14], "error_count"),
        parent_id=_text(row[15], "parent_id", optional=True),
        service_name=_text(row[16], "service_name", optional=True),
    )
    if summary.end_ns is not None:
        summary.cost = recorded_cost(summary.cost, summary.llm_calls)
    return summary


# --- the store --------------------------------------------------------------------------------------------------------


def _store_error(path: Path, error: BaseException, timeout: float) -> StoreError:
    """A one-line `StoreError` that says what is wrong with the store at `path`."""
    name = getattr(error, "sqlite_errorname", "") or ""
    text = " ".join(str(error).split()) or type(error).__name__
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or name.startswith("SQLITE_CORRUPT") or "not a database" in text:
        return StoreError(f"{path} is damaged or is not an agentotel store ({text})")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return StoreError(f"the store {path} is locked by another process (waited {timeout:g}s); try again")
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return StoreError(f"the store {path} is read-only ({text})")
    if isinstance(error, OSError):
        return StoreError(f"cannot open the store {path}: {error.strerror or text}")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return StoreError(f"cannot open the store {path} ({text})")
    return StoreError(f"the store {path} cannot be used: {text}")


def _identity(path: Path, *, missing: tuple[int, int] | None = (0, 0)) -> tuple[int, int] | None:
    """(device, inode) of the file at `path`; `missing` when there is none. Raises `OSError` for a path that cannot
    be looked at."""
    try:
        found = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return missing
    return (found.st_dev, found.st_ino)


def _sidecar_identity(path: Path, suffix: str) -> tuple[int, int] | None:
    """`_identity` of the store's -wal or -shm file; `None` when there is none or it cannot be looked at."""
    try:
        return _identity(Path(f"{path}{suffix}"), missing=None)
    except OSError:
        return None


@contextmanager
def _folder_locked(folder: Path, timeout: float) -> Iterator[bool]:
    """Holds an exclusive `flock` of `folder` (processes making a store in it take turns); yields whether it got it
    within `timeout` (never where `flock` is missing, as on Windows). Never raises for the lock itself."""
    try:
        import fcntl
    except ImportError:
        yield False
        return
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        yield False
        return
    try:
        locked = False
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.005)  # held for a few system calls at most
            except OSError:
                break
        yield locked
    finally:
        os.close(descriptor)  # closing it lets go of the lock


class Store:
    """A connection to a store file. Thread-safe (one connection, one lock). Raises `StoreError` only.

    `create=True` makes the file (and its folder) when missing and the schema when empty; otherwise a missing
    file is a `StoreError` and nothing is ever written by reading.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = False, timeout: float | None = None) -> None:
        self.path = Path(path).expanduser()
        self.timeout = (WRITE_TIMEOUT_S if create else READ_TIMEOUT_S) if timeout is None else timeout
        self._lock = threading.RLock()
        self._has_schema = False
        self._writing = 0
        """Write transactions open (from before `BEGIN IMMEDIATE` to after its `COMMIT` or `ROLLBACK` returned):
        what a `fork()` waits for (`StoreSpanExporter._before_fork`)."""
        try:
            if create:
                self._create_file()
            elif not self.path.exists():
                raise StoreError(f"no store at {self.path}")
            mode = "rwc" if create else "rw"
            self._db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode={mode}",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,  # transactions are explicit: BEGIN IMMEDIATE ... COMMIT
                check_same_thread=False,
            )
        except StoreError:
            raise
        except (sqlite3.Error, OSError) as error:
            raise _store_error(self.path, error, self.timeout) from None
        try:
            with self._guard():
                self._db.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                self._check_version(create)
        except StoreError:
            self._db.close()
            raise
        # The files the connection has open, read by now: what `replaced` and `close_moved` compare with.
        self._identity = _identity(self.path)
        self._sidecars = {suffix: _sidecar_identity(self.path, suffix) for suffix in ("-wal", "-shm")}

    def _create_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.path.parent == default_store_path().parent:  # agentotel's own folder: owner-only, even made before
            try:
                self.path.parent.chmod(0o700)
            except OSError:
                pass  # not the owner's: the file itself is still created owner-only
        if self.path.exists():
            return
        with _folder_locked(self.path.parent, self.timeout) as locked:
            if self.path.exists():  # made by another process while this one waited for the lock
                return
            if locked:
                # The -wal and -shm of a store deleted while a process still has it open stay until that process
                # lets go; SQLite would take them for the new file's (a disk I/O error on every write, or the old
                # journal played into the new file). The process that has them open goes on with its own copies.
                # Only under the lock: another process making the store at the same time may have made its own.
                for suffix in _LEFT_BY_A_DELETED_STORE:
                    try:
                        os.unlink(f"{self.path}{suffix}")
                    except FileNotFoundError:
                        pass
            try:
                # Created owner-only before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
            except FileExistsError:
                pass

    def close_moved(self) -> None:
        """Closes a store whose file was deleted or replaced (`replaced`), first removing from the path the -wal
        and -shm files this connection has open, when they are still there: SQLite would take them for those of
        the file now at the path, or of the next one made there (its pages overlaid by the old file's, or a disk
        I/O error). Another process that has them open goes on with its copies. Never raises."""
        with self._lock:
            for suffix, identity in self._sidecars.items():
                try:
                    # Compared while the connection holds them open, so that their inodes cannot be reused.
                    if identity is not None and _sidecar_identity(self.path, suffix) == identity:
                        os.unlink(f"{self.path}{suffix}")
                except OSError:
                    pass
            self.close()

    def replaced(self) -> bool:
        """Whether the file at the store's path is no longer the one this connection has open: deleted, moved away
        or replaced by another (one `stat`). Never raises: a path that cannot be looked at counts as unchanged."""
        try:
            return _identity(self.path, missing=None) != self._identity
        except OSError:
            return False

    def _check_version(self, create: bool) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} was written by a newer agentotel (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade agentotel or set AGENTOTEL_STORE to another path"
            )
        if version == SCHEMA_VERSION:
            self._has_schema = True
            return
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "spans" not in tables:
            raise StoreError(f"{self.path} is a SQLite file but not an agentotel store")
        if create:
            self._create_schema()

    def _create_schema(self) -> None:
        # WAL lets readers (the CLI) read while apps write; it is a property of the file, set once.
        mode = self._when_not_busy(lambda: self._db.execute("PRAGMA journal_mode = WAL").fetchone())
        if mode is None or str(mode[0]).lower() != "wal":
            log.debug("The session store %s is not in WAL mode (%s)", self.path, mode)
        self._when_not_busy(self._create_tables)
        self._has_schema = True

    def _create_tables(self) -> None:
        with self._transaction():
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version < SCHEMA_VERSION:  # another process may have made it while this one waited for the lock
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _when_not_busy(self, action: Callable[[], T]) -> T:
        """Runs `action`, again while another process holds the file's lock, for up to `self.timeout` seconds.

        SQLite answers SQLITE_BUSY at once, without its busy handler, when a connection changes the journal mode
        (or upgrades its lock) while another process makes the same new file: two apps starting together on a
        fresh store would otherwise drop their first batch."""
        deadline = time.monotonic() + self.timeout
        pause = 0.005
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                text = str(error).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 0.1)

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Holds the lock and turns any SQLite or file error into a `StoreError`."""
        with self._lock:
            try:
                yield
            except StoreError:
                raise
            except (sqlite3.Error, OSError) as error:
                raise _store_error(self.path, error, self.timeout) from None

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._writing += 1  # SQLite's own flag (`in_transaction`) clears before its commit is done
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            self._db.execute("COMMIT")
        finally:
            self._writing -= 1

    # --- writing ----------------------------------------------------------------------------------------------------

    def write(self, records: Sequence[SpanRecord]) -> int:
        """Stores span records (and a session row for each session root among them) in one transaction; returns
        how many session rows it wrote."""
        if not records:
            return 0
        spans = [_span_row(r) for r in records]
        sessions = [row for row in (_session_row(r) for r in records) if row is not None]
        with self._guard():
            if not self._has_schema:
                self._create_schema()
            with self._transaction():
                self._db.executemany(f"INSERT OR REPLACE INTO spans ({_SPAN_COLUMNS}) VALUES ({_marks(13)})", spans)
                if sessions:
                    self._db.executemany(
                        f"INSERT OR REPLACE INTO sessions ({_SESSION_COLUMNS}) VALUES ({_marks(17)})", sessions
                    )
        return len(sessions)

    # --- retention --------------------------------------------------------------------------------------------------

    def holds_more_sessions_than(self, count: int) -> bool:
        """Whether more than `count` outermost sessions that pruning by count may remove are stored (ended ones, and
        those `Running` since over `STALE_RUNNING_S`): an index walk of `count` entries, no count of the table."""
        rows = self._query(
            f"SELECT 1 FROM sessions WHERE {_OUTERMOST} AND {_BY_COUNT} ORDER BY start_ns DESC LIMIT 1 OFFSET ?",
            (_stale_before(), max(0, count)),
        )
        return bool(rows)

    def prune(
        self, *, keep: int | None = None, ended_before: datetime | timedelta | int | None = None
    ) -> tuple[int, int]:
        """Removes the outermost sessions older than the newest `keep` and those that ended before `ended_before`
        (a moment, a span of time before now, or ns since the epoch), with the sessions nested in them and every
        span of those; returns (sessions removed, spans removed).

        A session still `Running` (its root not ended) goes by age when it started before `ended_before`; by count
        only once it started `STALE_RUNNING_S` ago (a crash left it so), else it is neither removed nor counted
        among the `keep`. Spans of no session go when they ended before the oldest session kept started (or before
        `ended_before`); spans of a session with no row (its root never stored) by age only.

        Removal goes in transactions of about `PRUNE_TRANSACTION_S`, with a pause as long after each: a reader sees
        each session whole or gone, and another process's writer waits for one transaction at most."""
        if keep is None and ended_before is None:
            raise ValueError("prune() needs keep= or ended_before=")
        pruning = self.pruning(keep=keep, ended_before=ended_before)
        pruning.run()
        return (pruning.sessions, pruning.spans)

    def pruning(self, *, keep: int | None = None, ended_before: datetime | timedelta | int | None = None) -> Pruning:
        """`prune`, to be run in steps (`Pruning.run`), as the exporter does after each batch it writes."""
        return Pruning(self, keep, since_ns(ended_before))

    def _keep_boundary(self, keep: int, stale_before: int) -> tuple[int, int] | None:
        """(start, rowid) of the newest outermost session beyond the newest `keep` that pruning by count may remove:
        it and every older one go. `None` when there are no more than `keep`. An index walk of `keep` entries."""
        rows = self._query(
            f"SELECT start_ns, rowid FROM sessions WHERE {_OUTERMOST} AND {_BY_COUNT} "
            "ORDER BY start_ns DESC, rowid DESC LIMIT 1 OFFSET ?",
            (stale_before, max(0, int(keep))),
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    def _remove_sessions(self, doomed_sql: str, params: Sequence[Any]) -> tuple[int, int, int]:
        """One transaction: the outermost sessions `doomed_sql` selects into `doomed` (its last parameter, a limit),
        the sessions nested in them, and their spans, removed; returns (outermost sessions, sessions, spans)."""
        with self._guard(), self._transaction():
            db = self._db
            db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
            db.execute("DELETE FROM doomed")
            outermost = db.execute(doomed_sql, tuple(params)).rowcount
            if outermost <= 0:
                return (0, 0, 0)
            db.execute(
                "INSERT OR IGNORE INTO doomed WITH RECURSIVE tree(id) AS (SELECT id FROM doomed UNION "
                "SELECT s.session_id FROM sessions s JOIN tree ON s.parent_id = tree.id) SELECT id FROM tree"
            )
            spans = db.execute("DELETE FROM spans WHERE session_id IN (SELECT id FROM doomed)").rowcount
            sessions = db.execute("DELETE FROM sessions WHERE session_id IN (SELECT id FROM doomed)").rowcount
            db.execute("DELETE FROM doomed")
        return (outermost, sessions, spans)

    def _oldest_kept_start(self) -> int | None:
        rows = self._query(f"SELECT MIN(start_ns) FROM sessions WHERE {_OUTERMOST}")
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def _remove_span_rows(self, where: str, before_ns: int, after: int) -> tuple[int, int]:
        """The first `_MAX_PRUNE_ROWS` spans past rowid `after` matching `where` (its one parameter `before_ns`)
        removed; returns (the last rowid removed, or -1 when none was found; how many went). They are looked up by
        a read outside the write transaction (it may scan the table), and checked again as they are removed."""
        rows = self._query(
            f"SELECT rowid FROM spans WHERE rowid > ? AND {where} ORDER BY rowid LIMIT ?",
            (after, before_ns, _MAX_PRUNE_ROWS),
        )
        if not rows:
            return (-1, 0)
        ids = [(int(row[0]), before_ns) for row in rows]
        with self._guard(), self._transaction():
            removed = self._db.executemany(f"DELETE FROM spans WHERE rowid = ? AND {where}", ids).rowcount
        return (ids[-1][0], max(0, removed))

    def vacuum(self) -> None:
        """Gives the space of removed rows back to the file system (rewrites the file; waits for other writers)."""
        with self._guard():
            if self._has_schema:
                self._db.execute("VACUUM")

    # --- reading ----------------------------------------------------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._guard():
            if not self._has_schema:
                return []
            return list(self._db.execute(sql, tuple(params)).fetchall())

    def _read(self, convert: Callable[[tuple[Any, ...]], T], rows: list[tuple[Any, ...]]) -> list[T]:
        """Rows converted; a row agentotel never wrote is a `StoreError` naming what is wrong with it."""
        try:
            with paused_gc() if len(rows) > 1_000 else nullcontext():  # many small acyclic objects (`_gc.py`)
                return [convert(row) for row in rows]
        except _DamagedRow as error:
            raise StoreError(f"{self.path} holds a damaged row ({error}); it was changed by another program") from None

    def _read_records(self, sql: str, params: Sequence[Any]) -> list[SpanRecord]:
        """The span records the query's rows hold, in the order they started (`_records`); fetched and built with
        the cyclic collector paused (100,000 rows are a million new objects, `_gc.py`)."""
        with paused_gc():
            rows = self._query(sql, params)
            try:
                return _records(rows)
            except _DamagedRow as error:
                raise StoreError(
                    f"{self.path} holds a damaged row ({error}); it was changed by another program"
                ) from None

    def sessions(
        self,
        *,
        since: datetime | timedelta | int | None = None,
        tag: str | Sequence[str] | None = None,
        state: str | None = None,
        limit: int | None = None,
        service: str | None = None,
    ) -> list[SessionSummary]:
        """Summaries of the stored sessions that started at or after `since`, carry every tag in `tag`, ended
        in `state` and were recorded by `service` (its `service.name`), newest first, at most `limit`. Reads the
        sessions table only."""
        where, params = _selection(since, tag, state, service)
        sql = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {where} ORDER BY start_ns DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        return self._read(_summary, self._query(sql, params))

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
    ) -> SessionTally:
        """The figures `agentotel check` judges (see `SessionTally`), counted in SQL over the sessions table: the
        sessions `sessions()` selects with the same filters, the outermost of them counted (a session nested in a
        selected one is in its figures), no summary built. Exact: every selected session is examined."""
        from .sources._scan import LISTED_IDS, Coverage, SessionTally

        where, params = _selection(since, tag, state, service)
        grace = int(min(grace_ns, 2**62))
        judged = f"(end_state IS NOT NULL OR ({int(now_ns)} - start_ns >= {grace}))"
        selected = (
            "WITH sel AS MATERIALIZED (SELECT session_id, parent_id, start_ns, end_state, "
            "CASE WHEN end_ns IS NOT NULL THEN COALESCE(cost, CASE WHEN llm_calls = 0 THEN 0.0 END) ELSE cost END "
            "AS c "
            f"FROM sessions WHERE {where}), "
            "counted AS MATERIALIZED (SELECT * FROM sel WHERE parent_id IS NULL OR parent_id NOT IN "
            "(SELECT session_id FROM sel)) "
        )
        over = "NULL" if max_cost is None else f"SUM(c > {float(max_cost)!r})"
        rows = self._query(
            selected + "SELECT (SELECT COUNT(*) FROM sel), COUNT(*), COUNT(end_state), "
            f"COALESCE(SUM(end_state IS NULL AND {int(now_ns)} - start_ns >= {grace}), 0), "
            f"COALESCE(SUM(end_state = '{FAIL}'), 0), COALESCE(SUM(c), 0.0), COUNT(c), "
            f"COALESCE(SUM({judged} AND c IS NULL), 0), {over} FROM counted",
            params,
        )
        examined, sessions, ended, crashed, failed, total, costs, unknown, over_count = (
            rows[0] if rows else (0, 0, 0, 0, 0, 0.0, 0, 0, 0)
        )
        tally = SessionTally(now_ns=now_ns, grace_ns=grace_ns, max_cost=max_cost)
        tally.sessions, tally.ended, tally.crashed = sessions, ended, crashed
        tally.running = sessions - ended - crashed
        tally.failed = failed + crashed
        tally.cost_total, tally.costs, tally.unknown_cost = float(total), costs, unknown
        tally.over_max_cost = over_count or 0

        def ids(condition: str) -> list[str]:
            sql = f"{selected}SELECT session_id FROM counted WHERE {condition} ORDER BY start_ns DESC "
            return [row[0] for row in self._query(sql + f"LIMIT {LISTED_IDS}", params)]

        crashed_sql = f"end_state IS NULL AND {int(now_ns)} - start_ns >= {grace}"
        tally.failed_ids = ids(f"end_state = '{FAIL}' OR ({crashed_sql})") if failed or crashed else []
        tally.crashed_ids = ids(crashed_sql) if crashed else []
        tally.unknown_cost_ids = ids(f"{judged} AND c IS NULL") if unknown else []
        if costs:
            top = self._query(
                f"{selected}SELECT session_id, c FROM counted WHERE c IS NOT NULL ORDER BY c DESC, "
                "start_ns DESC LIMIT 1",
                params,
            )
            if top:
                tally.priciest_id, tally.priciest = top[0][0], float(top[0][1])
        tally.coverage = Coverage(examined=examined, in_window=examined, counted_by="counted in SQL by the store")
        return tally

    def summary(self, session_id: str) -> SessionSummary | None:
        rows = self._query(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,))
        return self._read(_summary, rows)[0] if rows else None

    def records_for(self, session_id: str | None = None, *, trace_id: str | None = None) -> list[SpanRecord]:
        """The span records of a session (with those of the sessions nested in it), or of a whole trace."""
        if session_id is not None:
            sql = (
                "WITH RECURSIVE tree(id) AS (SELECT ? UNION SELECT s.session_id FROM sessions s JOIN tree "
                f"ON s.parent_id = tree.id) SELECT {_SPAN_COLUMNS} FROM spans "
                "WHERE session_id IN (SELECT id FROM tree)"
            )
            return self._read_records(sql, (session_id,))
        if trace_id is not None:
            sql = f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ?"
            return self._read_records(sql, (trace_id.lower(),))
        raise ValueError("records_for() needs a session id or a trace id")

    def last_session_id(self) -> str | None:
        """The id of the session that ended last (the outermost one, when nested sessions end together)."""
        rows = self._query("SELECT session_id FROM sessions ORDER BY end_ns DESC, start_ns ASC LIMIT 1")
        return rows[0][0] if rows else None

    def session_ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        return [
            row[0]
            for row in self._query(
                "SELECT session_id FROM sessions WHERE session_id >= ? AND session_id < ? ORDER BY start_ns LIMIT ?",
                (prefix, prefix + "\U0010ffff", limit),
            )
        ]

    def trace_ids_with_prefix(self, prefix: str, limit: int = 10) -> list[str]:
        prefix = prefix.lower()
        return [
            row[0]
            for row in self._query(
                "SELECT DISTINCT trace_id FROM spans WHERE trace_id >= ? AND trace_id < ? LIMIT ?",
                (prefix, prefix + "\U0010ffff", limit),
            )
        ]

    def outermost_session_in_trace(self, trace_id: str) -> str | None:
        """The first-started session of a trace that is not nested in another session of the trace."""
        rows = self._query(
            "SELECT session_id FROM sessions WHERE trace_id = ? AND (parent_id IS NULL OR parent_id NOT IN "
            "(SELECT session_id FROM sessions WHERE trace_id = ?)) ORDER BY start_ns LIMIT 1",
            (trace_id.lower(), trace_id.lower()),
        )
        return rows[0][0] if rows else None

    def has_spans_of_session(self, session_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM spans WHERE session_id = ? LIMIT 1", (session_id,)))

    def counts(self) -> tuple[int, int]:
        """(sessions, spans) stored."""
        sessions = self._query("SELECT COUNT(*) FROM sessions")
        spans = self._query("SELECT COUNT(*) FROM spans")
        return (sessions[0][0] if sessions else 0, spans[0][0] if spans else 0)

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.path}>"


def _marks(count: int) -> str:
    return ", ".join("?" * count)


def _stale_before() -> int:
    """ns since the epoch before which a session still `Running` started is taken for one a crash left so."""
    return time.time_ns() - int(STALE_RUNNING_S * 1e9)


class Pruning:
    """A prune (`Store.prune`) in steps of one short transaction each, run for as long as its caller lets it. What
    goes by count is settled when it starts (the sessions beyond the newest `keep` then), so the steps of later runs
    go on with it and sessions written meanwhile are never among them. Raises `StoreError` only."""

    def __init__(self, store: Store, keep: int | None, cutoff: int | None) -> None:
        self.store = store
        self.keep = keep
        self.cutoff = cutoff
        self.sessions = 0
        """Sessions removed so far (nested ones included)."""
        self.spans = 0
        """Spans removed so far."""
        self.done = False
        self._batch = _FIRST_PRUNE_BATCH
        self._steps = self._all_steps()

    def run(
        self, *, budget_s: float | None = None, hold: Callable[[], AbstractContextManager[Any]] | None = None
    ) -> bool:
        """Runs steps, pausing after each as long as it took (another writer's turn), until the prune is done
        (returns `True`) or `budget_s` is spent (returns `False`: run it again later). Each step runs inside
        `hold()` (the exporter's lock); what `hold` raises ends the run and goes on to the caller."""
        deadline = None if budget_s is None else time.monotonic() + budget_s
        while not self.done:
            started = time.monotonic()
            with hold() if hold is not None else nullcontext():
                try:
                    next(self._steps)
                except StopIteration:
                    self.done = True
                    break
            took = time.monotonic() - started
            if deadline is not None and time.monotonic() + took >= deadline:
                return False
            time.sleep(took)
        return True

    def _all_steps(self) -> Iterator[None]:
        """The prune, one transaction per step: sessions by count, sessions by age, then spans of no session."""
        store = self.store
        if not store._has_schema:
            return
        if self.keep is not None:
            stale_before = _stale_before()
            boundary = store._keep_boundary(self.keep, stale_before)
            if boundary is not None:
                more = True
                while more:
                    more = self._sessions_step(_DOOMED_BY_COUNT, (stale_before, boundary[0], *boundary))
                    yield
        if self.cutoff is not None:
            more = True
            while more:
                more = self._sessions_step(_DOOMED_BY_AGE, (self.cutoff, self.cutoff))
                yield
        spans_before = self.cutoff
        if self.keep is not None and self.sessions:
            oldest_kept = store._oldest_kept_start()
            if oldest_kept is not None:
                spans_before = oldest_kept if spans_before is None else max(spans_before, oldest_kept)
        if spans_before is not None:
            yield from self._span_steps(_NO_SESSION, spans_before)
        if self.cutoff is not None:
            yield from self._span_steps(_NO_SESSION_ROW, self.cutoff)

    def _sessions_step(self, doomed_sql: str, params: tuple[Any, ...]) -> bool:
        """One transaction removing up to a batch of outermost sessions; whether there may be more. The batch
        halves when a transaction takes longer than `PRUNE_TRANSACTION_S` and doubles when one takes under half (within
        `_MIN_PRUNE_BATCH` and `_MAX_PRUNE_BATCH`)."""
        batch = self._batch
        started = time.monotonic()
        outermost, sessions, spans = self.store._remove_sessions(doomed_sql, (*params, batch))
        took = time.monotonic() - started
        self.sessions += sessions
        self.spans += spans
        if took > PRUNE_TRANSACTION_S:
            self._batch = max(_MIN_PRUNE_BATCH, batch // 2)
        elif took < PRUNE_TRANSACTION_S / 2 and outermost >= batch:
            self._batch = min(_MAX_PRUNE_BATCH, batch * 2)
        return outermost >= batch

    def _span_steps(self, where: str, before_ns: int) -> Iterator[None]:
        """Spans matching `where` (its parameter `before_ns`) removed, `_MAX_PRUNE_ROWS` a transaction, in rowid
        order."""
        after = 0
        while after >= 0:
            after, removed = self.store._remove_span_rows(where, before_ns, after)
            self.spans += removed
            yield


# --- the exporter -----------------------------------------------------------------------------------------------------


class StoreBatchProcessor(AccountedBatchProcessor):
    """The store's batch processor: also queues a session's root span when the session starts (a snapshot, not
    ended), so the store lists a session while it runs; the ended root replaces it. Other exporters never see the
    snapshot. Never raises."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            attributes = span_attributes(span)
            if attributes.get(sc.AGENTOTEL_STEP_KIND) != KIND_SESSION:
                return
            context = span.get_span_context()
            if self._closed or not context.trace_flags.sampled:
                return
            # A copy, made while the span is still the starting thread's alone: the exporter's thread reads it
            # later, while the app goes on setting the live span's attributes.
            running = ReadableSpan(
                name=span.name,
                context=context,
                parent=span.parent,
                resource=span.resource,
                attributes=dict(attributes),
                kind=span.kind,
                start_time=span.start_time,
                instrumentation_scope=span.instrumentation_scope,
            )
            setattr(running, UNCOUNTED, True)  # not a span the app ended: never counted delivered or lost
            self._batch.on_end(running)
        except Exception:
            log.debug("Could not note a starting session in the store", exc_info=True)

    def shutdown(self) -> None:
        """Writes what is queued and stops; the exporter prunes no more (exit is never held up by it)."""
        try:
            exporter = self.span_exporter
            if isinstance(exporter, StoreSpanExporter):
                exporter.stop_pruning()
        except Exception:
            log.debug("Could not stop pruning the store", exc_info=True)
        super().shutdown()


class StoreSpanExporter(SpanExporter):
    """Writes each batch of spans to the store in one transaction. Use it through a `BatchSpanProcessor`, so the
    app never waits for the disk.

    Never raises: a store that cannot be opened or written (damaged, locked past the timeout, read-only) makes
    `export` return FAILURE, with a warning logged the first time and debug lines after. The file is opened on
    the first batch, so configuring the exporter touches no disk. A file deleted or replaced since it was opened
    is noticed before and after each batch: the batch goes to the file now at the path (a new store when there is
    none), with a warning the first time.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else (store_path() or default_store_path())
        self._store: Store | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._warned = False
        self._warned_replaced = False
        self._shut_down = False
        self._pruning_stopped = False
        self._pruning: Pruning | None = None
        self._held_for_fork = False
        self._forked_mid_write = False
        self.max_sessions = store_max_sessions()
        if hasattr(os, "register_at_fork"):
            # A fork while the batch processor's thread writes would leave the child a lock never released and
            # SQLite's record of the parent's file locks (a new connection of the child then waits on them until
            # it times out). So a fork waits, briefly, for the write in progress; the child gets a fresh lock.
            exporter = weakref.ref(self)
            os.register_at_fork(
                before=lambda: _call(exporter(), "_before_fork"),
                after_in_parent=lambda: _call(exporter(), "_after_fork_in_parent"),
                after_in_child=lambda: _call(exporter(), "_after_fork_in_child"),
            )

    def _before_fork(self) -> None:
        held = self._lock.acquire(timeout=FORK_WAIT_S)
        deadline = time.monotonic() + FORK_TRANSACTION_WAIT_S
        while not held and _in_transaction(self._store) and time.monotonic() < deadline:
            held = self._lock.acquire(timeout=0.01)
        self._held_for_fork = held

    def _after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._held_for_fork = False
        self._pruning = None
        inherited, self._store = self._store, None
        if inherited is not None:
            _INHERITED.append(inherited)
            self._forked_mid_write = _in_transaction(inherited)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        try:
            records = [record_from_span(span) for span in spans]
            with self._lock:
                store = self._current_store()
                sessions = store.write(records)
                if store.replaced():  # deleted while the batch was written: it went with the old file
                    store = self._reopen(store)
                    sessions = store.write(records)
            if sessions or self._pruning is not None:
                self._keep_within_limit(store)
            return SpanExportResult.SUCCESS
        except Exception as error:
            self._report(error)
            return SpanExportResult.FAILURE

    def _current_store(self) -> Store:
        """The store to write to, opened when there is none yet, after a fork, or when its file was deleted or
        replaced. Call holding `_lock`. Raises `StoreError`."""
        store = self._store
        if store is not None and self._pid != os.getpid():
            # A forked child must not use its parent's SQLite connection (SQLite forbids it): it is left alone, not
            # closed (`_INHERITED`), and the child opens its own.
            _INHERITED.append(store)
            store = self._store = None
        if self._forked_mid_write:
            raise StoreError(
                f"this process was forked while its parent was writing to the store {self.path}; SQLite cannot "
                "give it the store's lock, so its spans are not stored"
            )
        if store is not None and store.replaced():
            store = self._reopen(store)
        if store is None:
            store = self._store = Store(self.path, create=True)
            self._pid = os.getpid()
        return store

    def _reopen(self, old: Store) -> Store:
        """The store now at the path, for one whose file was deleted or replaced. Raises `StoreError`."""
        if not self._warned_replaced:
            self._warned_replaced = True
            log.warning(
                "agentotel's session store %s was deleted or replaced while this app wrote to it; "
                "new spans go to the store now at that path (a new one if there is none)",
                self.path,
            )
        else:
            log.debug("The session store %s was deleted or replaced; opening it again", self.path)
        self._store = None
        self._pruning = None
        old.close_moved()
        store = self._store = Store(self.path, create=True)
        self._pid = os.getpid()
        return store

    def _keep_within_limit(self, store: Store) -> None:
        """Once the store holds a tenth more than `max_sessions` (so that pruning starts once per many batches, not
        after each), removes the oldest sessions, for at most `PRUNE_BUDGET_S` after each batch until it is done;
        never once `stop_pruning` was called or the main thread has ended (the app exits). Never raises: a store
        that cannot be pruned still took the spans."""
        limit = self.max_sessions
        if limit is None or self._pruning_stopped:
            return
        if not threading.main_thread().is_alive():
            # The app is exiting (its main thread has ended: this is the flush at exit): it is not held up.
            return
        try:
            pruning = self._pruning
            if pruning is None or pruning.store is not store:
                with self._holding(store):  # a read too: a fork must not find its lock of the file held
                    if not store.holds_more_sessions_than(limit + max(10, limit // 10)):
                        return
                pruning = self._pruning = store.pruning(keep=limit)
            if pruning.run(budget_s=PRUNE_BUDGET_S, hold=lambda: self._holding(store)):
                self._pruning = None
                log.debug(
                    "Removed the %d oldest sessions (%d spans) from the store %s",
                    pruning.sessions,
                    pruning.spans,
                    self.path,
                )
        except _PruningStopped:
            self._pruning = None
        except Exception:
            self._pruning = None
            log.debug("Could not remove old sessions from the store", exc_info=True)

    @contextmanager
    def _holding(self, store: Store) -> Iterator[None]:
        """The exporter's lock, for one step of pruning `store`; raises `_PruningStopped` when that store is no
        longer the one written to, or pruning was stopped."""
        with self._lock:
            if self._store is not store or self._shut_down or self._pruning_stopped:
                raise _PruningStopped
            yield

    def stop_pruning(self) -> None:
        """No more pruning, from now on: the app is exiting (`StoreBatchProcessor.shutdown`)."""
        self._pruning_stopped = True

    def _report(self, error: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "agentotel could not write spans to the session store (%s); they are dropped. "
                "Set AGENTOTEL_STORE to another path, or to off.",
                error,
            )
        else:
            log.debug("agentotel could not write spans to the session store: %s", error)

    def shutdown(self) -> None:
        with self._lock:
            self._shut_down = True
            if self._store is not None:
                self._store.close()
                self._store = None

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<StoreSpanExporter {self.path}>"


class _PruningStopped(Exception):
    """A prune left off: its store is no longer the one written to, or the exporter is shutting down."""


def _in_transaction(store: Store | None) -> bool:
    """Whether `store`'s connection is in a write transaction, or has one open (no I/O). Never raises."""
    try:
        return store is not None and (store._writing > 0 or bool(store._db.in_transaction))
    except Exception:
        return False


def _call(exporter: StoreSpanExporter | None, method: str) -> None:
    """An at-fork hook of an exporter still alive. Never raises (it runs inside `os.fork()`)."""
    try:
        if exporter is not None:
            getattr(exporter, method)()
    except Exception:
        pass
