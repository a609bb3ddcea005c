"""Worker: resident memory while an agent process records 1,000,000 spans in 10,000 sessions, with agentotel's
default settings (ended sessions kept: `max_ended_sessions`; events per session: `max_events_per_session`).

    .venv/bin/python benchmarks/bench_memory.py [--spans 1000000 --sessions 10000 --concurrent 100]

Sessions run `--concurrent` at a time, their steps interleaved (LLM calls with usage, tool calls), each ending
after `spans / sessions` steps; spans go through agentotel's processors and a batch processor with a null exporter
(the embedded store is off: its file is not memory). RSS is sampled every `--every` spans. Memory must plateau:
the growth over the second half of the run is the figure to watch.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from typing import Any

os.environ["AGENTOTEL_STORE"] = "off"

import _harness as harness
import _workload as workload
from bench_processors import open_sessions
from opentelemetry import trace

import agentotel
from agentotel._config import settings
from agentotel.live import registry


def run(total_spans: int, sessions: int, concurrent: int, every: int) -> dict[str, Any]:
    provider, null = harness.make_provider()
    trace.set_tracer_provider(provider)
    agentotel.init(instrument=False)
    tracer = trace.get_tracer("bench")
    per_session = max(1, total_spans // sessions)
    steps = [workload.step(i) for i in range(64)]
    curve: list[dict[str, Any]] = [{"spans": 0, "rss_mib": round(harness.rss_kib() / 1024, 1)}]
    emitted = 0
    started = time.perf_counter()
    next_sample = every
    for _wave in range(max(1, sessions // concurrent)):
        open_now, contexts = open_sessions(concurrent)
        for index in range(per_session * concurrent):
            name, attributes = steps[index % 64]
            tracer.start_span(name, context=contexts[index % concurrent], attributes=attributes).end()
            emitted += 1
            if emitted >= next_sample:
                curve.append(
                    {
                        "spans": emitted,
                        "rss_mib": round(harness.rss_kib() / 1024, 1),
                        "s": round(time.perf_counter() - started, 1),
                    }
                )
                next_sample += every
        for session in open_now:
            session.end()
    elapsed = time.perf_counter() - started
    gc.collect()
    final = round(harness.rss_kib() / 1024, 1)
    half = [p for p in curve if p["spans"] >= total_spans // 2]
    growth = round(curve[-1]["rss_mib"] - half[0]["rss_mib"], 1) if half else None
    peak = max(p["rss_mib"] for p in curve)
    return {
        "status": "ok",
        "spans": emitted,
        "sessions": registry.started_count,
        "curve": curve,
        "final_rss_mib_after_gc": final,
        "peak_rss_mib": peak,
        "second_half_growth_mib": growth,
        "plateau": growth is not None and growth <= max(16.0, 0.05 * peak),
        "ended_sessions_kept": len(registry.ended()),
        "settings": {
            "max_ended_sessions": settings.max_ended_sessions,
            "max_events_per_session": settings.max_events_per_session,
        },
        "elapsed_s": round(elapsed, 1),
        "us_per_span_wall": round(elapsed / max(1, emitted) * 1e6, 2),
        "exported": null.count,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--concurrent", type=int, default=100, help="sessions open at once")
    parser.add_argument("--every", type=int, default=100_000, help="spans between RSS samples")
    args = parser.parse_args(argv)
    harness.emit(run(args.spans, args.sessions, args.concurrent, args.every))
    return 0


if __name__ == "__main__":
    sys.exit(main())
