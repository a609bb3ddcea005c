"""Worker: `agentotel check` over a window of `--sessions` sessions (100,000), in the store and from a
Tempo-shaped loopback server.

    .venv/bin/python benchmarks/bench_check.py [--sessions 100000 --repeat 3]

- the store: `agentotel check --source STORE --max-failure-rate 0.5 --json` in process (`cli.main`), which counts
  in SQL (`Store.tally`), against the baseline measured in the same run: the Python rule over every summary
  (`check_figures(store.sessions())`, what `check` did before);
- Tempo: the same command against `tempo+http://127.0.0.1:PORT`, a server in another process answering TraceQL
  searches with `select(...)` in Tempo's documented search shape (`tests/sources/fake_backends.FakeTempo` over a
  `RootTable`), so the client's time is measured apart from the server's: wall seconds, and the client
  process's CPU seconds (`time.process_time`), with the number of search requests.

Prints one JSON object. Everything is written under a temporary folder that is removed at the end. Times are
the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["AGENTOTEL_STORE"] = "off"
_TESTS = Path(__file__).resolve().parent.parent / "tests" / "sources"
sys.path.insert(0, str(_TESTS))

from agentotel import semconv as sc  # noqa: E402
from agentotel.cli import check_figures, main  # noqa: E402
from agentotel.records import SpanRecord  # noqa: E402
from agentotel.store import Store  # noqa: E402

SECOND = 1_000_000_000
WINDOW_S = 20 * 3600


def _attributes(index: int, rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    state = "Fail" if roll < 0.05 else "Indeterminate" if roll < 0.08 else "Success"
    llm_calls = rng.randrange(1, 5)
    return {
        sc.AGENTOTEL_STEP_KIND: "session",
        sc.SESSION_ID: f"bench-{index:07d}",
        sc.GEN_AI_AGENT_NAME: "support",
        sc.AGENTOTEL_SESSION_END_STATE: state,
        sc.AGENTOTEL_SESSION_LLM_CALL_COUNT: llm_calls,
        sc.AGENTOTEL_SESSION_COST_AMOUNT: round(0.001 * llm_calls, 6),
        sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS: 500 * llm_calls,
        sc.AGENTOTEL_SESSION_USAGE_OUTPUT_TOKENS: 80 * llm_calls,
        sc.AGENTOTEL_SESSION_TAGS: ["prod"],
    }


def _starts(count: int, now_ns: int) -> list[int]:
    rng = random.Random(11)
    return [now_ns - 60 * SECOND - rng.randrange(WINDOW_S * SECOND) for _ in range(count)]


def _roots(count: int, now_ns: int) -> list[Any]:
    from fake_backends import RootSpan

    rng = random.Random(12)
    return [
        RootSpan(
            trace_id=f"{i + 1:032x}",
            span_id=f"{i + 1:016x}",
            name="invoke_agent support",
            start_ns=start,
            duration_ns=5 * SECOND,
            service="agent",
            status="unset",
            attributes=_attributes(i, rng),
        )
        for i, start in enumerate(_starts(count, now_ns))
    ]


def _serve_tempo(count: int, now_ns: int, ready: Any, stop: Any) -> None:
    """The Tempo-shaped server, in its own process (its CPU is not the client's)."""
    from fake_backends import FakeTempo, RootTable

    with FakeTempo(roots=RootTable(_roots(count, now_ns))) as tempo:
        ready.put(tempo.port)
        stop.wait()
        ready.put(tempo.searches)


def _run_check(location: str) -> tuple[float, float, dict[str, Any]]:
    """(wall s, client CPU s, figures) of `agentotel check --source location --max-failure-rate 0.5 --json`."""
    out = io.StringIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(out):
        code = main(["check", "--source", location, "--max-failure-rate", "0.5", "--json"])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if code not in (0, 1):
        raise SystemExit(f"check exited {code}")
    return wall, cpu, json.loads(out.getvalue())


def bench_store(count: int, repeat: int, folder: Path) -> dict[str, Any]:
    now = time.time_ns()
    path = folder / "sessions.db"
    rng = random.Random(12)
    records = [
        SpanRecord(
            trace_id=f"{i + 1:032x}",
            span_id=f"{i + 1:016x}",
            parent_span_id=None,
            name="invoke_agent support",
            kind="INTERNAL",
            start_ns=start,
            end_ns=start + 5 * SECOND,
            attributes=_attributes(i, rng),
            service_name="agent",
        )
        for i, start in enumerate(_starts(count, now))
    ]
    with Store(path, create=True) as store:
        for first in range(0, len(records), 10_000):
            store.write(records[first : first + 10_000])
    runs = [_run_check(str(path)) for _ in range(repeat)]
    wall, cpu, figures = min(runs, key=lambda r: r[0])
    baseline = []
    with Store(path) as store:
        for _ in range(repeat):
            started = time.perf_counter()
            check_figures(store.sessions(), max_failure_rate=0.5)
            baseline.append(time.perf_counter() - started)
    return {
        "sessions": figures["sessions"],
        "coverage": figures["coverage"],
        "check_wall_s": round(wall, 3),
        "check_cpu_s": round(cpu, 3),
        "baseline_python_rule_s": round(min(baseline), 3),
        "ratio_to_baseline": round(wall / min(baseline), 3),
    }


def bench_tempo(count: int, repeat: int) -> dict[str, Any]:
    now = time.time_ns()
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=_serve_tempo, args=(count, now, ready, stop), daemon=True)
    server.start()
    try:
        port = ready.get(timeout=600)
        location = f"tempo+http://127.0.0.1:{port}"
        runs = [_run_check(location) for _ in range(repeat)]
    finally:
        stop.set()
    searches = ready.get(timeout=60)
    server.join(timeout=60)
    wall, cpu, figures = min(runs, key=lambda r: r[0])
    return {
        "sessions": figures["sessions"],
        "coverage": figures["coverage"],
        "check_wall_s": round(wall, 3),
        "check_client_cpu_s": round(cpu, 3),
        "search_requests_per_check": round(searches / repeat, 1),
    }


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = {
            "scenario": "check",
            "sessions": args.sessions,
            "store": bench_store(args.sessions, args.repeat, Path(folder)),
            "tempo": bench_tempo(args.sessions, args.repeat),
            "load_average": os.getloadavg()[0],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main_bench()
