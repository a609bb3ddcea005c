"""The store on the export path: `StoreSpanExporter` writes each batch the SDK hands it (reopening a file
deleted or replaced, pruning past the limit in short steps after a batch), `StoreBatchProcessor` also queues a
session's root when the session starts (the store lists it while it runs) and stops pruning at exit, and the
at-fork hooks keep a forked child off its parent's connection and lock. `store_exporters` says whether the store
runs. Never raises into the app."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .. import semconv as sc
from .._loss import UNCOUNTED, AccountedBatchProcessor
from ..model import KIND_SESSION
from ..records import record_from_span, span_attributes
from .database import Pruning, Store, StoreError
from .settings import default_store_path, store_max_sessions, store_path, store_setting

log = logging.getLogger("agentotel")

FORK_WAIT_S = 1.0
"""Longest a `fork()` waits for the exporter to finish what it is doing with the store."""
FORK_TRANSACTION_WAIT_S = 10.0
"""Longest a `fork()` then goes on waiting while the exporter's write transaction is still open: a child forked in
the middle of one can never write the store (it inherits SQLite's record of the parent's write lock)."""
_INHERITED: list[Store] = []
"""Connections a forked child inherited: kept, never closed nor used (closing one rolls back, in the memory the
child shares with its parent, the parent's transaction in progress: the parent's store is left malformed)."""
PRUNE_BUDGET_S = 0.05
"""Longest an app's exporter goes on pruning after a batch it wrote; the rest is left to its next batches."""


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
