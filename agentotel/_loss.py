"""Counting the spans that never reach their destination, so that no loss is silent, and keeping export from ever
holding the app (or its exit) hostage.

A span is lost when the batch processor's queue was full as it ended (`queue_full`), when its exporter failed or
raised (`export_failed`), or when it was still waiting as the processor shut down (`shutdown`). Each kind of loss is
logged once, as one warning line when it first happens; counted in the `agentotel.spans.lost` counter (the
OpenTelemetry metrics API: a no-op until the app sets a meter provider) with `error.type` set to the kind; summed
up when the processor shuts down, in one line per kind that grew since it was last reported; and readable with
`lost_spans()` (and a processor's `lost`).

How queue drops are counted without touching the SDK's internals: `AccountedBatchProcessor` numbers each span it
hands to the `BatchSpanProcessor` (under a lock, so the numbers follow the queue's order) and the exporter it
wraps sees the numbers of the spans it is given. The SDK's queue is first-in first-out and, when full, drops its
oldest span; so spans reach the exporter in increasing numbers and every gap between two of them is a span the
queue dropped. Drops are counted as they happen (past `capacity + batch` spans waiting, the rest must have been
dropped) and the gaps the exporter finds later make the count exact, whichever thread ends the spans.

Bounded waits: the SDK's `force_flush` ignores its timeout and its `shutdown` waits 30 s for a worker stuck on a
backend that does not answer (each export may take the exporter's whole timeout, retries included). Here both run
in a helper thread that is waited for at most the time given (`SHUTDOWN_TIMEOUT_S` for shutdown); past it the
exporter is abandoned (its retries are interrupted, later batches refused) and what it still held is counted lost.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from opentelemetry import metrics
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from . import semconv as sc
from ._version import __version__

log = logging.getLogger("agentotel")

QUEUE_FULL = "queue_full"
EXPORT_FAILED = "export_failed"
SHUTDOWN = "shutdown"
KINDS = (QUEUE_FULL, EXPORT_FAILED, SHUTDOWN)

METRIC_NAME = "agentotel.spans.lost"
SHUTDOWN_TIMEOUT_S = 2.0
"""Longest a processor's shutdown waits for its exporter to finish what it holds."""
STUCK_SHUTDOWN_TIMEOUT_S = 0.25
"""The wait instead, once a flush has already timed out (the backend is known not to answer)."""

_WHY = {
    QUEUE_FULL: "the export queue was full (the backend is slower than the app, or down)",
    EXPORT_FAILED: "the exporter could not send them (the backend is down, refused them or answered an error)",
    SHUTDOWN: "they were still waiting to be exported when export shut down (the backend did not answer in time)",
}

__all__ = [
    "EXPORT_FAILED",
    "KINDS",
    "METRIC_NAME",
    "QUEUE_FULL",
    "SHUTDOWN",
    "AccountedBatchProcessor",
    "CountingExporter",
    "LossLedger",
    "batch_processor",
    "ledger",
    "lost_spans",
]


class LossLedger:
    """The process's count of lost spans, by kind and destination. The first loss of each kind is logged at once;
    each destination's losses are summed up when its processor shuts down. Never raises."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = dict.fromkeys(KINDS, 0)
        self._warned: set[str] = set()
        self._by_destination: dict[tuple[str, str], int] = {}
        self._reported: dict[tuple[str, str], int] = {}
        self._counter: Any = None

    def add(self, kind: str, count: int, destination: str) -> None:
        """Counts `count` spans lost on the way to `destination`; the first loss of a kind is logged."""
        if count <= 0:
            return
        try:
            key = (kind, destination)
            with self._lock:
                self._counts[kind] = self._counts.get(kind, 0) + count
                self._by_destination[key] = self._by_destination.get(key, 0) + count
                first = kind not in self._warned
                if first:
                    self._warned.add(kind)
                    self._reported[key] = self._by_destination[key]
            if first:
                log.warning(
                    "agentotel lost %d span(s) for %s: %s. Further losses are counted (metric %s, "
                    "agentotel.lost_spans()) and summed up at exit.",
                    count,
                    destination,
                    _WHY.get(kind, kind),
                    METRIC_NAME,
                )
            self._metric().add(count, {sc.ERROR_TYPE: kind})
        except Exception:
            log.debug("Could not count lost spans", exc_info=True)

    def _metric(self) -> Any:
        # Made on first use: the API's proxy meter follows a meter provider set later, and importing costs nothing.
        if self._counter is None:
            meter = metrics.get_meter("agentotel", __version__)
            self._counter = meter.create_counter(
                METRIC_NAME,
                unit="{span}",
                description="Spans that never reached an exporter's destination, by kind (error.type): "
                "queue_full, export_failed, shutdown",
            )
        return self._counter

    def summarise(self, destination: str | None = None) -> None:
        """Logs one line per kind of loss (of `destination`, or of all) that grew since it was last reported, with
        its running count."""
        try:
            with self._lock:
                grown = [
                    (key, count)
                    for key, count in self._by_destination.items()
                    if (destination is None or key[1] == destination) and count > self._reported.get(key, 0)
                ]
                for key, count in grown:
                    self._reported[key] = count
            for (kind, where), count in grown:
                log.warning("agentotel lost %d span(s) in all for %s: %s.", count, where, _WHY.get(kind, kind))
        except Exception:
            log.debug("Could not sum up lost spans", exc_info=True)

    def count(self, kind: str | None = None) -> int:
        with self._lock:
            return self._counts.get(kind, 0) if kind is not None else sum(self._counts.values())

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        """Forgets every count and report (tests use it between cases)."""
        with self._lock:
            self._counts = dict.fromkeys(KINDS, 0)
            self._warned.clear()
            self._by_destination.clear()
            self._reported.clear()

    def _after_fork(self) -> None:
        # A forked child counts its own losses: the parent's were the parent's to report (and it does).
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(KINDS, 0)
        self._warned = set()
        self._by_destination = {}
        self._reported = {}


ledger = LossLedger()
"""The process-wide ledger."""


def lost_spans(kind: str | None = None) -> int:
    """How many spans this process lost so far: all of them, or those of one kind (`queue_full`, `export_failed`,
    `shutdown`)."""
    return ledger.count(kind)


def _describe(exporter: SpanExporter) -> str:
    """A short name of an exporter's destination for log lines, without credentials or query. Never raises."""
    try:
        where = getattr(exporter, "_endpoint", None) or getattr(exporter, "path", None)
        name = type(exporter).__name__
        if not where:
            return name
        text = str(where)
        parts = urlsplit(text)
        if parts.scheme and parts.netloc:  # a URL: user:password@ and ?query may hold secrets
            host = parts.netloc.rpartition("@")[2]
            text = urlunsplit((parts.scheme, host, parts.path, "", ""))
        return f"{name} ({text})"
    except Exception:
        return "an exporter"


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return value if value > 0 else default


def queue_limits() -> tuple[int, int]:
    """(queue size, export batch size) as the `OTEL_BSP_*` variables set them, with the SDK's defaults."""
    capacity = _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
    return capacity, min(_env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512), capacity)


class _Numbering:
    """What a processor knows of its queue: the number the next ended span gets, the numbers the exporter has
    seen, and the queue drops already counted but not yet located.

    Spans with numbers below `expected` are settled (seen by the exporter, or counted as a gap). Of the spans at
    or above it, at most `capacity` are in the queue and at most `batch` are on their way from the queue to the
    exporter (taken off the queue, not yet handed over), so any more than that were dropped: they are counted at
    once (`credit`), and the gaps the exporter finds later are counted only past that credit.
    """

    __slots__ = (
        "__weakref__",
        "abandoned",
        "attribute",
        "batch",
        "capacity",
        "credit",
        "expected",
        "in_flight",
        "lock",
        "lost",
        "next",
    )

    def __init__(self, capacity: int, batch: int) -> None:
        self.lock = threading.Lock()
        self.capacity = capacity
        self.batch = batch
        self.next = 0
        self.expected = 0
        self.credit = 0
        self.in_flight = 0
        self.abandoned = False
        self.lost = 0
        # Each processor numbers the spans under a name of its own: the same span object goes to every processor.
        self.attribute = f"_agentotel_loss_seq_{id(self):x}"

    def surely_dropped(self) -> int:
        """Queue drops not counted yet that must have happened (call with the lock held)."""
        certain = self.next - self.expected - self.capacity - self.batch
        if certain <= self.credit:
            return 0
        new, self.credit = certain - self.credit, certain
        return new

    def located(self, gaps: int) -> int:
        """Of `gaps` drops the exporter just located, those not counted yet (call with the lock held)."""
        new = max(0, gaps - self.credit)
        self.credit = max(0, self.credit - gaps)
        return new

    def settle(self) -> int:
        """Counts everything not exported yet as lost and returns how many were not counted already (lock held)."""
        pending = self.next - self.expected - self.credit + self.in_flight
        self.expected, self.credit = self.next, 0
        return max(0, pending)

    def after_fork(self) -> None:
        # The SDK empties the batch queue in a forked child: what it held is the parent's to export.
        self.lock = threading.Lock()
        self.expected, self.credit, self.in_flight = self.next, 0, 0


UNCOUNTED = "_agentotel_uncounted"
"""Marks a span object queued beside the app's spans that is not one of them (the store's snapshot of a session
that starts): it is exported like the others but never counted, delivered or lost."""


class CountingExporter(SpanExporter):
    """An exporter that counts the spans it could not export and the gaps the queue left. Never raises.

    After `abandon()` batches are refused at once: what was pending then was counted lost by the processor."""

    def __init__(self, exporter: SpanExporter, numbering: _Numbering | None = None, losses: LossLedger = ledger):
        self.exporter = exporter
        self.destination = _describe(exporter)
        self._numbering = numbering or _Numbering(*queue_limits())
        self._ledger = losses
        self._shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        numbering = self._numbering
        count = sum(1 for span in spans if not getattr(span, UNCOUNTED, False))
        gaps = 0
        with numbering.lock:
            abandoned = numbering.abandoned
            for span in spans:
                number = getattr(span, numbering.attribute, None)
                if number is None or number < numbering.expected:
                    continue
                gaps += number - numbering.expected
                numbering.expected = number + 1
            dropped = numbering.located(gaps)
            if not abandoned:
                numbering.in_flight += count
        if dropped and not abandoned:
            self.count_lost(QUEUE_FULL, dropped)
        if abandoned:
            return SpanExportResult.FAILURE  # counted when the processor gave up on the exporter
        result = SpanExportResult.FAILURE
        try:
            result = self.exporter.export(spans)
        except Exception:
            log.debug("A span exporter raised", exc_info=True)
        finally:
            with numbering.lock:
                numbering.in_flight -= count
                counted_already = numbering.abandoned
        if result is not SpanExportResult.SUCCESS and not counted_already:
            self.count_lost(EXPORT_FAILED, count)
        return result

    def count_lost(self, kind: str, count: int) -> None:
        """Counts spans of this exporter lost, in its own count and the process's ledger."""
        if count <= 0:
            return
        with self._numbering.lock:
            self._numbering.lost += count
        self._ledger.add(kind, count, self.destination)

    def shutdown(self) -> None:
        if self._shut_down:  # once: the processor may give up on the exporter before the SDK shuts it down too
            return
        self._shut_down = True
        try:
            self.exporter.shutdown()
        except Exception:
            log.debug("A span exporter failed to shut down", exc_info=True)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        try:
            return bool(self.exporter.force_flush(timeout_millis))
        except Exception:
            log.debug("A span exporter failed to flush", exc_info=True)
            return False

    def __repr__(self) -> str:
        return f"<CountingExporter {self.exporter!r}>"


class _Background:
    """An action running in a daemon thread, which callers wait for with a bound. Never raises."""

    def __init__(self, action: Callable[[], object], name: str) -> None:
        self.done = threading.Event()
        self.succeeded = False
        self._action = action
        self._name = name
        try:
            threading.Thread(target=self._run, name=f"agentotel-{name}", daemon=True).start()
        except RuntimeError:  # no new threads this late in interpreter shutdown: run it here
            self._run()

    def _run(self) -> None:
        try:
            self.succeeded = self._action() is not False
        except Exception:
            log.debug("agentotel's %s failed", self._name, exc_info=True)
        finally:
            self.done.set()

    def wait(self, timeout_s: float) -> bool | None:
        """The action's success when it finished within `timeout_s`, else `None` (it goes on in the background)."""
        return self.succeeded if self.done.wait(max(0.0, timeout_s)) else None


def _bounded(action: Callable[[], object], timeout_s: float, name: str) -> bool | None:
    """Runs `action` in a daemon thread and waits at most `timeout_s`: its success when it finished in time, `None`
    when it did not. Never raises."""
    return _Background(action, name).wait(timeout_s)


class AccountedBatchProcessor(SpanProcessor):
    """A `BatchSpanProcessor` whose lost spans are counted and whose flush and shutdown never wait past a bound.

    Ends spans as the SDK's processor does (the app never waits for the backend); see the module's docstring for
    how losses are counted. Never raises."""

    def __init__(self, exporter: SpanExporter, losses: LossLedger = ledger) -> None:
        capacity, batch = queue_limits()
        self._numbering = _Numbering(capacity, batch)
        self._ledger = losses
        self.exporter = CountingExporter(exporter, self._numbering, losses)
        # The queue's limits are passed, not left to the SDK, so that the numbering knows them.
        self._batch = BatchSpanProcessor(self.exporter, max_queue_size=capacity, max_export_batch_size=batch)
        self._closed = False
        self._stuck = False
        self._flushing: _Background | None = None
        self._flush_lock = threading.Lock()
        if hasattr(os, "register_at_fork"):
            me = weakref.ref(self)  # a strong reference would keep every processor ever made

            def after_fork_in_child() -> None:
                found = me()
                if found is not None:
                    found._after_fork_in_child()

            os.register_at_fork(after_in_child=after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        """The child's processor starts clean: the SDK emptied the queue (what it held is the parent's to export),
        and a flush the parent had in progress is the parent's: its thread does not exist here, and waiting for it
        would time out every flush of the child. Runs inside `os.fork()`."""
        self._numbering.after_fork()
        self._flush_lock = threading.Lock()
        self._flushing = None
        self._stuck = False

    @property
    def span_exporter(self) -> SpanExporter:
        """The exporter given (not the counting wrapper)."""
        return self.exporter.exporter

    @property
    def ended(self) -> int:
        """Spans handed to this processor so far (sampled ones: the others are not exported)."""
        return self._numbering.next

    @property
    def lost(self) -> int:
        """Spans of this processor counted lost so far."""
        return self._numbering.lost

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass  # the SDK's batch processor does nothing on start

    def _on_ending(self, span: Span) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        try:
            context = span.context
            if not (context and context.trace_flags.sampled):
                return
            if self._closed:
                self.exporter.count_lost(SHUTDOWN, 1)
                return
            numbering = self._numbering
            with numbering.lock:
                setattr(span, numbering.attribute, numbering.next)
                numbering.next += 1
                self._batch.on_end(span)
                dropped = numbering.surely_dropped()
            if dropped:
                self.exporter.count_lost(QUEUE_FULL, dropped)
        except Exception:
            log.debug("Could not queue a span for export", exc_info=True)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Exports what is queued, waiting at most `timeout_millis`; `False` when it could not finish in time."""
        if self._closed:
            return False
        with self._flush_lock:
            # A flush still stuck on the backend is waited for again rather than joined by one more thread.
            flushing = self._flushing
            if flushing is None or flushing.done.is_set():
                flushing = self._flushing = _Background(self._batch.force_flush, "flush")
        done = flushing.wait(timeout_millis / 1000)
        if done is None:
            self._stuck = True
            return False
        return done

    def shutdown(self) -> None:
        """Exports what is queued and stops, within `SHUTDOWN_TIMEOUT_S`; what could not be exported by then is
        counted lost, and the losses are summed up in the log."""
        if self._closed:
            return
        self._closed = True
        timeout = STUCK_SHUTDOWN_TIMEOUT_S if self._stuck else SHUTDOWN_TIMEOUT_S
        finished = _bounded(self._batch.shutdown, timeout, "shutdown") is not None
        numbering = self._numbering
        with numbering.lock:
            numbering.abandoned = True  # from now on the exporter refuses batches: what it held is counted here
            if finished:
                numbering.in_flight = 0
            pending = numbering.settle()
        self.exporter.count_lost(SHUTDOWN, pending)
        if not finished:
            # The OTLP exporters stop retrying once shut down; an export already on the wire ends at its own
            # timeout, in a daemon thread that does not hold the process.
            _bounded(self.exporter.shutdown, STUCK_SHUTDOWN_TIMEOUT_S, "exporter-shutdown")
        self._ledger.summarise(self.exporter.destination)

    def __repr__(self) -> str:
        return f"<AccountedBatchProcessor {self.exporter.exporter!r}>"


def batch_processor(exporter: SpanExporter) -> AccountedBatchProcessor:
    """The processor agentotel puts in front of a network or disk exporter: batched (the `OTEL_BSP_*` variables
    apply), its losses counted, its flush and shutdown bounded."""
    return AccountedBatchProcessor(exporter)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=ledger._after_fork)
