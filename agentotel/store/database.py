"""The store file and its connection (`Store`): opening or creating it (owner-only, in WAL mode), writing
batches in one transaction each, the queries that list and rebuild sessions, and retention (`Store.prune`, run in
short steps by `Pruning`). Raises `StoreError` only."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from .._gc import paused_gc
from ..listing import LISTED_IDS, Coverage, SessionSummary, SessionTally, SourceError, since_ns
from ..model import FAIL
from ..records import SpanRecord
from .schema import (
    _BY_COUNT,
    _DOOMED_BY_AGE,
    _DOOMED_BY_COUNT,
    _NO_SESSION,
    _NO_SESSION_ROW,
    _OUTERMOST,
    _SCHEMA,
    _SESSION_COLUMNS,
    _SPAN_COLUMNS,
    SCHEMA_VERSION,
    _DamagedRow,
    _records,
    _selection,
    _session_row,
    _span_row,
    _summary,
)
from .settings import default_store_path

log = logging.getLogger("agentotel")

T = TypeVar("T")

WRITE_TIMEOUT_S = 10.0
"""How long a writer waits for another process's write lock before the batch is given up."""
READ_TIMEOUT_S = 5.0
"""How long a reader waits for a lock (only a writer in exclusive locking mode blocks readers in WAL mode)."""
PRUNE_TRANSACTION_S = 0.02
"""About how long one pruning transaction holds the store's write lock: how many sessions each removes adapts to it
(and a pause as long follows it, in which other writers get the lock)."""
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


class StoreError(SourceError):
    """The store cannot be read or written: damaged, locked, read-only, or from a newer agentotel. One-line
    message."""


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
