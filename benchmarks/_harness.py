"""What every benchmark worker shares: the SDK pipeline (batch processor, null exporter), timing in blocks, RSS,
versions and the JSON line a worker prints.

Standalone on purpose (the standard library and the OpenTelemetry SDK only): workers run in the peers' venvs,
where agentotel is not installed.

Timing: a worker times blocks of calls and reports, per block, the mean per call in process CPU time (all
threads: the batch processor's export thread counts) and in wall time. This machine is shared, so CPU time is the
primary figure (another process taking the core does not inflate it), and the minimum over blocks is the
estimate of a call's cost (noise only ever adds time).
"""

from __future__ import annotations

import gc
import importlib.metadata
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

RESULT_PREFIX = "BENCH-RESULT "
"""Marks the worker's result line on stdout (peers may print their own banners)."""


class NullExporter(SpanExporter):
    """Drops every span, counting them and keeping the last one (so a worker can check what a peer recorded)."""

    def __init__(self) -> None:
        self.count = 0
        self.last: ReadableSpan | None = None
        self.seen: list[ReadableSpan] = []
        self.keep = 0
        """How many spans to keep in `seen` (for checks); 0 keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        if spans:
            self.last = spans[-1]
            room = self.keep - len(self.seen)
            if room > 0:
                self.seen.extend(spans[:room])
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def make_provider(exporter: SpanExporter | None = None) -> tuple[TracerProvider, NullExporter]:
    """A tracer provider with the pipeline every measurement uses: a `BatchSpanProcessor` (SDK defaults) in front
    of a null exporter."""
    null = exporter if isinstance(exporter, NullExporter) else NullExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(null))
    return provider, null


@dataclass
class Blocks:
    """Per-call means of each timed block, in microseconds."""

    cpu_us: list[float] = field(default_factory=list)
    wall_us: list[float] = field(default_factory=list)
    calls: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_us": [round(v, 3) for v in self.cpu_us],
            "wall_us": [round(v, 3) for v in self.wall_us],
            "calls": self.calls,
            "cpu_us_min": round(min(self.cpu_us), 3) if self.cpu_us else None,
            "cpu_us_median": round(median(self.cpu_us), 3) if self.cpu_us else None,
            "wall_us_min": round(min(self.wall_us), 3) if self.wall_us else None,
        }


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of nothing")
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def time_block(func: Callable[[], Any], calls: int) -> tuple[float, float]:
    """(CPU µs per call, wall µs per call) of `calls` calls of `func`."""
    cpu0 = time.process_time_ns()
    wall0 = time.perf_counter_ns()
    for _ in range(calls):
        func()
    wall = time.perf_counter_ns() - wall0
    cpu = time.process_time_ns() - cpu0
    return cpu / calls / 1000, wall / calls / 1000


def interleaved(
    cases: dict[str, Callable[[], Any]],
    *,
    block: int,
    blocks: int,
    warmup: int,
    budget_s: float | None = None,
) -> dict[str, Blocks]:
    """Times each case in `blocks` blocks of `block` calls, cases alternating block by block (so that a noisy
    moment hits them alike). Stops early, after at least 3 blocks each, when `budget_s` runs out."""
    for func in cases.values():
        for _ in range(warmup):
            func()
    gc.collect()
    results = {name: Blocks() for name in cases}
    started = time.perf_counter()
    for index in range(blocks):
        for name, func in cases.items():
            cpu, wall = time_block(func, block)
            found = results[name]
            found.cpu_us.append(cpu)
            found.wall_us.append(wall)
            found.calls += block
        if budget_s is not None and index >= 2 and time.perf_counter() - started > budget_s:
            break
    return results


def rss_kib() -> int:
    """The process's resident set size in KiB (Linux), 0 when unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def versions(*names: str) -> dict[str, str | None]:
    """Installed versions of the named distributions (`None` for those not installed), and Python's."""
    found: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def emit(result: dict[str, Any]) -> None:
    """Prints the worker's result as the one marked JSON line the runner reads."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any] | None:
    """The result a worker printed, or `None` when it printed none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            parsed: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return parsed
    return None
