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
sessions nested in them and their spans, on the batch processor's thread. `agentotel prune` does the same by hand,
by count or by age.
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
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from . import semconv as sc
from ._gc import paused_gc
from ._loss import UNCOUNTED, AccountedBatchProcessor
from .model import KIND_SESSION, Session
from .records import ExceptionInfo, SpanRecord, record_from_span, span_attributes
from .sources import SessionSummary, SourceError, normalise_state, since_ns, tags_of

log = logging.getLogger("agentotel")

T = TypeVar("T")

STORE_ENV = "AGENTOTEL_STORE"
OFF_VALUES = frozenset({"off", "none", "false", "0", "no"})
SCHEMA_VERSION = 1
WRITE_TIMEOUT_S = 10.0
"""How long a writer waits for another process's write lock before the batch is given up."""
FORK_WAIT_S = 1.0
"""Longest a `fork()` waits for a write to the store in progress to finish."""
READ_TIMEOUT_S = 5.0
"""How long a reader waits for a lock (only a writer in exclusive locking mode blocks readers in WAL mode)."""
MAX_SESSIONS_ENV = "AGENTOTEL_STORE_MAX_SESSIONS"
DEFAULT_MAX_SESSIONS = 10_000

__all__ = [
    "MAX_SESSIONS_ENV",
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


def _list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _summary(row: sqlite3.Row | tuple[Any, ...]) -> SessionSummary:
    """The summary of a `sessions` row. Raises `_DamagedRow` for values agentotel never writes."""
    return SessionSummary(
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
        tool_calls=_integer(row[13], "tool_calls"),
        error_count=_integer(row[14], "error_count"),
        parent_id=_text(row[15], "parent_id", optional=True),
        service_name=_text(row[16], "service_name", optional=True),
    )


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

    def _create_file(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            # Created owner-only before SQLite opens it: SQLite gives its -wal and -shm files the same mode.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))

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
        """Whether more than `count` outermost sessions are stored (an index walk of `count` entries, no count of
        the whole table)."""
        rows = self._query(
            f"SELECT 1 FROM sessions WHERE {_OUTERMOST} ORDER BY start_ns DESC LIMIT 1 OFFSET ?", (max(0, count),)
        )
        return bool(rows)

    def prune(
        self, *, keep: int | None = None, ended_before: datetime | timedelta | int | None = None
    ) -> tuple[int, int]:
        """Removes the outermost sessions older than the newest `keep` and those that ended before `ended_before`
        (a moment, a span of time before now, or ns since the epoch), with the sessions nested in them and every
        span of those; returns (sessions removed, spans removed). Spans of no session go with them when they ended
        before the oldest session kept started (or before `ended_before`). Spans of a session still running (no
        session row yet) are only removed by age. One transaction: readers see the store before or after."""
        if keep is None and ended_before is None:
            raise ValueError("prune() needs keep= or ended_before=")
        cutoff = since_ns(ended_before)
        with self._guard():
            if not self._has_schema:
                return (0, 0)
            with self._transaction():
                db = self._db
                db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
                db.execute("DELETE FROM doomed")
                if keep is not None:  # never a running session (no end yet): it is the newest there is
                    db.execute(
                        f"INSERT OR IGNORE INTO doomed SELECT session_id FROM sessions WHERE {_OUTERMOST} "
                        "AND end_ns IS NOT NULL ORDER BY start_ns DESC LIMIT -1 OFFSET ?",
                        (max(0, int(keep)),),
                    )
                if cutoff is not None:
                    db.execute(
                        f"INSERT OR IGNORE INTO doomed SELECT session_id FROM sessions WHERE {_OUTERMOST} "
                        "AND end_ns < ?",
                        (cutoff,),
                    )
                db.execute(
                    "INSERT OR IGNORE INTO doomed WITH RECURSIVE tree(id) AS (SELECT id FROM doomed UNION "
                    "SELECT s.session_id FROM sessions s JOIN tree ON s.parent_id = tree.id) SELECT id FROM tree"
                )
                removed_spans = db.execute("DELETE FROM spans WHERE session_id IN (SELECT id FROM doomed)").rowcount
                removed_sessions = db.execute(
                    "DELETE FROM sessions WHERE session_id IN (SELECT id FROM doomed)"
                ).rowcount
                boundary = cutoff
                if keep is not None and removed_sessions:
                    oldest_kept = db.execute(f"SELECT MIN(start_ns) FROM sessions WHERE {_OUTERMOST}").fetchone()[0]
                    if oldest_kept is not None:
                        boundary = oldest_kept if boundary is None else max(boundary, oldest_kept)
                if boundary is not None:
                    removed_spans += db.execute(
                        "DELETE FROM spans WHERE session_id IS NULL AND end_ns < ?", (boundary,)
                    ).rowcount
                if cutoff is not None:
                    removed_spans += db.execute(
                        "DELETE FROM spans WHERE end_ns < ? AND session_id IS NOT NULL AND session_id NOT IN "
                        "(SELECT session_id FROM sessions)",
                        (cutoff,),
                    ).rowcount
                db.execute("DELETE FROM doomed")
        return (removed_sessions, removed_spans)

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
    ) -> list[SessionSummary]:
        """Summaries of the stored sessions that started at or after `since`, carry every tag in `tag` and ended
        in `state`, newest first, at most `limit`. Reads the sessions table only."""
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
        sql = f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {' AND '.join(where)} ORDER BY start_ns DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        return self._read(_summary, self._query(sql, params))

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


class StoreSpanExporter(SpanExporter):
    """Writes each batch of spans to the store in one transaction. Use it through a `BatchSpanProcessor`, so the
    app never waits for the disk.

    Never raises: a store that cannot be opened or written (damaged, locked past the timeout, read-only) makes
    `export` return FAILURE, with a warning logged the first time and debug lines after. The file is opened on
    the first batch, so configuring the exporter touches no disk.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path).expanduser() if path is not None else (store_path() or default_store_path())
        self._store: Store | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._warned = False
        self._shut_down = False
        self._held_for_fork = False
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
        self._held_for_fork = self._lock.acquire(timeout=FORK_WAIT_S)

    def _after_fork_in_parent(self) -> None:
        if self._held_for_fork:
            self._held_for_fork = False
            self._lock.release()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._held_for_fork = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut_down:
            return SpanExportResult.FAILURE
        try:
            records = [record_from_span(span) for span in spans]
            with self._lock:
                if self._store is not None and self._pid != os.getpid():
                    # A forked child must not use its parent's SQLite connection (SQLite forbids it): it is left
                    # alone, not closed, and the child opens its own.
                    self._store = None
                if self._store is None:
                    self._store = Store(self.path, create=True)
                    self._pid = os.getpid()
                if self._store.write(records):
                    self._keep_within_limit(self._store)
            return SpanExportResult.SUCCESS
        except Exception as error:
            self._report(error)
            return SpanExportResult.FAILURE

    def _keep_within_limit(self, store: Store) -> None:
        """Removes the oldest sessions once the store holds a tenth more than `max_sessions` (so that removal runs
        once per many batches, not after each). Never raises: a store that cannot be pruned still took the spans."""
        limit = self.max_sessions
        if limit is None:
            return
        try:
            if store.holds_more_sessions_than(limit + max(10, limit // 10)):
                removed, spans = store.prune(keep=limit)
                log.debug("Removed the %d oldest sessions (%d spans) from the store %s", removed, spans, self.path)
        except Exception:
            log.debug("Could not remove old sessions from the store", exc_info=True)

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


def _call(exporter: StoreSpanExporter | None, method: str) -> None:
    """An at-fork hook of an exporter still alive. Never raises (it runs inside `os.fork()`)."""
    try:
        if exporter is not None:
            getattr(exporter, method)()
    except Exception:
        pass
