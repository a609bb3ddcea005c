"""Worker: spans per second through agentotel's processors (session stamping, cost, live reconstruction) with 1,
100 and 10,000 sessions open at once, against the same spans on a bare SDK provider (the floor) in the same
process, blocks interleaved.

    .venv/bin/python benchmarks/bench_processors.py [--sessions 1,100,10000] [--spans 20000]

Every other span is an LLM call with token usage (so the cost processor prices it: the price of a model is resolved
once and cached) and the others are tool calls; spans go round-robin over the open sessions. Checks: every span
reached its session (live reconstruction), LLM spans carry a cost, and the price book resolved the model once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ["AGENTOTEL_STORE"] = "off"

import _harness as harness
import _workload as workload
from opentelemetry import context, trace
from opentelemetry.context import Context

import agentotel
from agentotel import semconv as sc
from agentotel.pricing import prices
from agentotel.sessions import LiveSession


def open_sessions(count: int) -> tuple[list[LiveSession], list[Context]]:
    """`count` sessions open side by side (none nested in another), and the context of each."""
    base = context.get_current()
    sessions: list[LiveSession] = []
    contexts: list[Context] = []
    for index in range(count):
        context.attach(base)
        sessions.append(agentotel.start_session(name=f"bench-{index}"))
        contexts.append(context.get_current())
    context.attach(base)
    return sessions, contexts


def _emitters(
    tracer: trace.Tracer, floor_tracer: trace.Tracer, contexts: list[Context], steps: list[tuple[str, dict[str, Any]]]
) -> tuple[Callable[[], None], Callable[[], None], dict[str, int]]:
    """Two functions that each emit the next span, round-robin over the sessions' contexts: one through agentotel's
    provider, one through the floor's; and the count each has emitted."""
    emitted = {"agentotel": 0, "floor": 0}

    def emit(which: str, through: trace.Tracer) -> None:
        index = emitted[which]
        emitted[which] = index + 1
        name, attributes = steps[index % len(steps)]
        through.start_span(name, context=contexts[index % len(contexts)], attributes=attributes).end()

    return lambda: emit("agentotel", tracer), lambda: emit("floor", floor_tracer), emitted


def run(session_counts: list[int], spans: int, block: int) -> dict[str, Any]:
    provider, null = harness.make_provider()
    trace.set_tracer_provider(provider)
    agentotel.init(instrument=False)
    floor_provider, floor_null = harness.make_provider()
    tracer = trace.get_tracer("bench")
    floor_tracer = floor_provider.get_tracer("bench")
    steps = [workload.step(i) for i in range(64)]
    rows: list[dict[str, Any]] = []
    for count in session_counts:
        started = time.perf_counter()
        sessions, contexts = open_sessions(count)
        open_s = time.perf_counter() - started
        emit_traced, emit_floor, emitted = _emitters(tracer, floor_tracer, contexts, steps)
        blocks = max(3, spans // block)
        measured = harness.interleaved(
            {"agentotel": emit_traced, "floor": emit_floor}, block=block, blocks=blocks, warmup=0
        )
        filed = sum(len(s) for s in sessions)
        started = time.perf_counter()
        for session in sessions:
            session.end()  # computes its totals from its events: the first time they are built
        end_s = time.perf_counter() - started
        checked = sessions[: min(count, 50)]
        priced = sum(1 for s in checked for e in s.llm_calls if e.cost is not None and e.cost > 0)
        llm_seen = sum(1 for s in checked for _e in s.llm_calls)
        traced_cpu = min(measured["agentotel"].cpu_us)
        floor_cpu = min(measured["floor"].cpu_us)
        rows.append(
            {
                "sessions": count,
                "spans": emitted["agentotel"],
                "agentotel": measured["agentotel"].to_dict(),
                "floor": measured["floor"].to_dict(),
                "spans_per_s": round(1e6 / traced_cpu),
                "floor_spans_per_s": round(1e6 / floor_cpu),
                "added_us_per_span": round(traced_cpu - floor_cpu, 2),
                "ratio_to_floor": round(traced_cpu / floor_cpu, 3),
                "open_us_per_session": round(open_s / count * 1e6, 1),
                "end_us_per_session": round(end_s / count * 1e6, 1),
                "filed_spans": filed,
                "all_spans_filed": filed == emitted["agentotel"],
                "llm_calls_priced": f"{priced}/{llm_seen}",
            }
        )
    provider.force_flush()
    floor_provider.force_flush()
    return {
        "status": "ok",
        "rows": rows,
        "prices_resolved": len(prices._prices),
        "models_priced": sorted(f"{p}/{m}" for p, m in prices._prices),
        "exported": null.count,
        "floor_exported": floor_null.count,
        "versions": harness.versions("opentelemetry-sdk", "genai-prices"),
        "session_id_attr": sc.SESSION_ID,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,100,10000", help="comma-separated counts of open sessions")
    parser.add_argument("--spans", type=int, default=20_000, help="spans per count (per case)")
    parser.add_argument("--block", type=int, default=1_000, help="spans per timed block")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.sessions.split(",") if c.strip()]
    harness.emit(run(counts, args.spans, args.block))
    return 0


if __name__ == "__main__":
    sys.exit(main())
