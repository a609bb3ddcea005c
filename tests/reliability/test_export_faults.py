"""An OTLP backend that is down, hangs, answers errors or flaps never slows the agent down, exports retry with
backoff, the queue stays bounded, and every span is either delivered or counted lost (and reported once).

The real OTLP/HTTP exporter talks over TCP to `FaultyOTLPBackend` on loopback; the agent makes real `openai` calls to
the local `LLMServer`. Times are compared within each test (a healthy backend against a faulty one), never against
absolute figures.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

import agentotel
from agentotel import configure
from agentotel._loss import (
    EXPORT_FAILED,
    METRIC_NAME,
    QUEUE_FULL,
    SHUTDOWN,
    STUCK_SHUTDOWN_TIMEOUT_S,
    ledger,
    lost_spans,
)
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer

from .support import (
    EndedSpans,
    FaultyOTLPBackend,
    Policy,
    accounted,
    agent_run,
    always,
    child_env,
    closed_port,
    exporting_through,
    flapping,
    hang,
    lookup_order,
    median,
    per_call_times,
    run_child,
    traced_steps,
)

EXPORT_TIMEOUT_S = 2.0
CALLS = 40
STEP_RUNS = 160
BLOCKS = 8


@pytest.fixture
def llm() -> Iterator[openai.OpenAI]:
    with (
        LLMServer() as server,
        openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0) as client,
    ):
        yield client


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Export often in small batches, so that a short run meets the fault many times (the queue keeps its size:
    a healthy backend must lose nothing)."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64")


def loss_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "agentotel" and r.levelno == logging.WARNING and "agentotel lost" in r.getMessage()
    ]


MODES: dict[str, Policy | None] = {
    "refused": None,
    "hanging": hang,
    "500": always(500),
    "503": always(503),
    "429-retry-after": always(429, {"Retry-After": "0.2"}),
    "flapping": flapping(0.25),
}


def _retried_then_delivered(backend: FaultyOTLPBackend) -> list[Any]:
    """The batches the backend refused at first and took on a later try."""
    return [t for t in backend.tries_of_each_batch() if len(t) > 1 and t[0].status != 200 and t[-1].status == 200]


@pytest.mark.usefixtures("small_batches")
@pytest.mark.parametrize("mode", list(MODES))
def test_a_faulty_backend_never_slows_the_agent_and_every_span_is_delivered_or_counted(
    mode: str,
    llm: openai.OpenAI,
    caplog: pytest.LogCaptureFixture,
    record_property: pytest.RecordProperty,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.WARNING, logger="agentotel")
    shutdown_bound = 0.5
    monkeypatch.setattr("agentotel._loss.SHUTDOWN_TIMEOUT_S", shutdown_bound)  # the bound's value is not the point
    for _ in range(5):
        agent_run(llm)  # warm up: connections, caches, imports

    policy = MODES[mode]
    healthy_times: list[float] = []
    healthy_steps: list[float] = []
    faulty_times: list[float] = []
    faulty_steps: list[float] = []
    with FaultyOTLPBackend() as healthy_backend, FaultyOTLPBackend(policy) as backend:
        endpoint = backend.endpoint if policy is not None else f"http://127.0.0.1:{closed_port()}/v1/traces"
        healthy = accounted(OTLPSpanExporter(endpoint=healthy_backend.endpoint, timeout=EXPORT_TIMEOUT_S))
        faulty = accounted(OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S))
        try:
            # Healthy and faulty runs by turns, so that whatever else the machine does weighs on both alike.
            for block in range(BLOCKS):
                turns = [(healthy, healthy_times, healthy_steps), (faulty, faulty_times, faulty_steps)]
                for processor, times, steps in turns if block % 2 else reversed(turns):
                    configure.add_export_processor(processor)
                    try:
                        times += per_call_times(lambda n: agent_run(llm, n), CALLS // BLOCKS)
                        steps += per_call_times(traced_steps, STEP_RUNS // BLOCKS)
                    finally:
                        configure.remove_export_processor(processor)
            if mode in ("503", "429-retry-after", "flapping"):  # give the exporter time to retry
                assert backend.wait_until(lambda b: any(len(t) > 1 for t in b.tries_of_each_batch()), timeout=6)
            if mode == "flapping":  # up half the time: retries get batches through while it is up
                # Wait for what is asserted below, a refused batch delivered by a retry, not only any delivery: a
                # retry can land in another down window (backoff 1 s, 2 s, ...) on a slow machine.
                assert backend.wait_until(lambda b: bool(_retried_then_delivered(b)), timeout=20)
            during_run = loss_lines(caplog)
        finally:
            healthy.shutdown()
            started = time.monotonic()
            faulty.shutdown()
            shutdown_s = time.monotonic() - started
        assert healthy.lost == 0 and len(healthy_backend.delivered) == healthy.ended, "a healthy backend gets all"

    ratio = median(faulty_times) / median(healthy_times)
    steps_ratio = median(faulty_steps) / median(healthy_steps)
    record_property("median_ratio", round(ratio, 2))
    record_property("steps_median_ratio", round(steps_ratio, 2))
    record_property("shutdown_s", round(shutdown_s, 2))
    print(
        f"{mode}: agent run median {median(faulty_times) * 1e3:.2f} ms vs healthy {median(healthy_times) * 1e3:.2f} ms"
        f" ({ratio:.2f}x); 10-step session {median(faulty_steps) * 1e6:.0f} us vs {median(healthy_steps) * 1e6:.0f} us"
        f" ({steps_ratio:.2f}x); shutdown {shutdown_s:.2f}s; lost {ledger.counts()} of {faulty.ended}"
    )
    assert ratio < 2.0, f"agent runs slowed down {ratio:.2f}x with a {mode} backend"
    assert steps_ratio < 2.0, f"traced steps slowed down {steps_ratio:.2f}x with a {mode} backend"
    assert shutdown_s < shutdown_bound + 0.75

    # Every span the agent ended was either delivered or counted lost: nothing vanishes silently.
    delivered = len(backend.delivered)
    assert faulty.lost == lost_spans()
    assert delivered + faulty.lost == faulty.ended, (delivered, ledger.counts(), faulty.ended)
    if mode == "flapping":
        assert delivered > 0
        assert _retried_then_delivered(backend), "a batch refused while the backend was down is sent again when up"
    else:
        assert delivered == 0 and faulty.lost == faulty.ended

    # Retries and backoff, as the backend saw them.
    tries = backend.tries_of_each_batch()
    if mode == "503":
        retried = [t for t in tries if len(t) > 1]
        assert retried and all(b.at - a.at > 0.5 for t in retried for a, b in itertools.pairwise(t))
    if mode == "429-retry-after":
        retried = [t for t in tries if len(t) > 2]
        gaps = [b.at - a.at for t in retried for a, b in itertools.pairwise(t)]
        assert gaps and all(0.15 < gap < 0.7 for gap in gaps), gaps  # Retry-After: 0.2, not the 1 s default backoff
    if mode == "500":
        assert tries and all(len(t) == 1 for t in tries), "500 is not retryable (OTLP/HTTP spec): tried once"

    # Reported once: one warning per kind of loss while it runs, then at most one summary per kind at shutdown.
    kinds_lost = [kind for kind, count in ledger.counts().items() if count]
    assert len(during_run) <= len(kinds_lost)
    assert len(loss_lines(caplog)) <= 2 * len(kinds_lost)


@pytest.mark.usefixtures("small_batches")
def test_each_kind_of_loss_is_logged_once_and_summed_up_at_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agentotel")
    with FaultyOTLPBackend(always(500)) as backend:
        processor = accounted(OTLPSpanExporter(endpoint=backend.endpoint, timeout=EXPORT_TIMEOUT_S))
        with exporting_through(processor):
            for n in range(5):
                with agentotel.session("batch"):
                    for i in range(40):
                        lookup_order(str(i))
                assert processor.force_flush(5_000)
                assert len(backend.attempts) >= n + 1
            lines_before_shutdown = loss_lines(caplog)
    lines = loss_lines(caplog)
    total = lost_spans(EXPORT_FAILED)
    assert total == 5 * 41
    assert len(lines_before_shutdown) == 1 and "could not send them" in lines_before_shutdown[0]
    assert len(lines) == 2, lines
    summary = rf"lost {total} span\(s\) in all for OTLPSpanExporter \(http://127.0.0.1:\d+/v1/traces\)"
    assert re.search(summary, lines[1]), lines[1]


def test_a_stuck_exporter_keeps_the_queue_bounded_and_counts_every_drop_in_the_metric(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    def metric_points() -> dict[str, int]:
        found: dict[str, int] = {}
        data = reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == METRIC_NAME:
                        for point in metric.data.data_points:
                            found[str(point.attributes["error.type"])] = int(point.value)
        return found

    before = metric_points()
    capacity, batch = 64, 16
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", str(capacity))
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", str(batch))
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "20")
    with FaultyOTLPBackend(hang) as backend:
        processor = accounted(OTLPSpanExporter(endpoint=backend.endpoint, timeout=30))
        ended = EndedSpans()
        configure.add_export_processor(ended)
        with exporting_through(processor):
            assert backend.wait_until(lambda b: True)
            for n in range(100):
                with agentotel.session("flood"):
                    for i in range(49):
                        lookup_order(f"{n}-{i}")
            assert backend.wait_until(lambda b: len(b.attempts) >= 1)
            held = ended.alive()
            dropped_while_running = lost_spans(QUEUE_FULL)
        configure.remove_export_processor(ended)
    assert ended.count == 5_000
    # The queue holds `capacity` spans and the exporter one batch: the other spans were let go, not kept.
    assert held <= capacity + batch + 2, held
    assert dropped_while_running >= ended.count - capacity - 2 * batch  # counted as they happen, not at the end
    assert lost_spans() == ended.count  # nothing was delivered: every span is counted, exactly once
    assert lost_spans(SHUTDOWN) > 0
    after = metric_points()
    delta = {kind: after.get(kind, 0) - before.get(kind, 0) for kind in after}
    assert delta == {kind: count for kind, count in ledger.counts().items() if count}


def test_flush_and_shutdown_return_within_their_bounds_when_the_backend_hangs(cap: Capture) -> None:
    with FaultyOTLPBackend(hang) as backend:
        processor = accounted(OTLPSpanExporter(endpoint=backend.endpoint, timeout=30))
        configure.add_export_processor(processor)
        try:
            with agentotel.session("stuck"):
                lookup_order("1")
            started = time.monotonic()
            assert agentotel.force_flush(300) is False
            flush_s = time.monotonic() - started
            assert backend.attempts, "the flush did reach the backend"
        finally:
            configure.remove_export_processor(processor)
            started = time.monotonic()
            processor.shutdown()
            shutdown_s = time.monotonic() - started
    print(f"flush returned in {flush_s:.2f}s (bound 0.3s), shutdown in {shutdown_s:.2f}s")
    assert flush_s < 0.3 + 0.5
    assert shutdown_s < STUCK_SHUTDOWN_TIMEOUT_S * 2 + 0.5  # after a timed-out flush the backend is known stuck
    assert lost_spans() == 2  # the session and its tool call: in flight when shut down
    assert len(cap.spans) == 2  # other exporters got them regardless


CHILD = """
import sys, time
import agentotel

agentotel.init()

@agentotel.tool
def step(n):
    return n

sessions = int(sys.argv[1])
started = time.perf_counter()
for i in range(sessions):
    with agentotel.session("exit"):
        for n in range(10):
            step(n)
print(f"RUN-SECONDS {time.perf_counter() - started:.3f}")
print("READY-TO-EXIT")
"""


def lost_by_kind(stderr: str) -> dict[str, int]:
    """The final count of each kind of loss, from a process's log lines."""
    why = {"export queue was full": QUEUE_FULL, "could not send them": EXPORT_FAILED, "still waiting": SHUTDOWN}
    found: dict[str, int] = {}
    for line in stderr.splitlines():
        match = re.search(r"agentotel lost (\d+) span\(s\)", line)
        if match:
            for text, kind in why.items():
                if text in line:
                    found[kind] = int(match.group(1))
    return found


def test_the_process_exits_within_a_bound_and_reports_what_it_lost(tmp_path: Path) -> None:
    with FaultyOTLPBackend(hang) as backend:
        env = child_env(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=backend.base_url,
            AGENTOTEL_STORE="off",
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="openai,anthropic",
        )
        run = run_child(CHILD, env, tmp_path, args=("300",), timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.exit_seconds is not None
    print(f"exit took {run.exit_seconds:.2f}s after the script's end; lost: {lost_by_kind(run.stderr)}")
    # Bound: the exit flush (5 s) and a shutdown cut short once the flush has timed out; not the SDK's 30 s per
    # processor plus 10 s per queued batch.
    assert run.exit_seconds < 9.0, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert sum(lost_by_kind(run.stderr).values()) == 300 * 11, run.stderr[-3000:]
