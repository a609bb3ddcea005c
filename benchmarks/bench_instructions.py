"""Worker: the instructions one `openai` chat completion executes, uninstrumented and traced by one peer (or, with
`--what steps`, one call of each step case of `bench_steps.py`), counted by valgrind's callgrind. Unlike CPU time,
an instruction count is the same from run to run and does not move when another process shares the core, so it
settles comparisons that CPU time on a shared machine leaves to noise.

    <venv>/bin/python benchmarks/bench_instructions.py --peer agentotel --mode off [--plain 40 --stream 15]
    .venv/bin/python benchmarks/bench_instructions.py --peer agentotel --mode off --what steps [--calls 200]

The worker runs itself again under `valgrind --tool=callgrind` (the "inside" process) and reads the counts back.
Inside, each measured block of calls runs as a `ctypes` callback, and callgrind collects only while the calling
thread is inside `ffi_call` (`--toggle-collect`) and writes a profile each time `ffi_call` is entered
(`--dump-before`). An empty callback (the fence) right after each block makes the profile written at its entry hold
exactly that block. Start-up, imports and the peer's set-up are never counted.

What is counted: the instructions of the calling thread. Work a tracer leaves to another thread (the batch
processor's export thread, the same null exporter for every peer here) is not: the CPU-time benchmark
(`bench_llm.py`) counts every thread. Instructions are not time (a cache miss costs more than an add), so the two
tables are read together: this one is the repeatable one.

Prints one `BENCH-RESULT {json}` line: per-call instructions, baseline and traced, for plain and streamed calls.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _fake_openai as fake
import _harness as harness

INSIDE_PREFIX = "BENCH-INSIDE "
"""Marks the inside process's line: which profile file holds which block."""
CALLGRIND_OPTIONS = (
    "--tool=callgrind",
    "--collect-atstart=no",
    "--toggle-collect=ffi_call",
    "--dump-before=ffi_call",
)
_REGION = ctypes.CFUNCTYPE(None)


def _profiles(folder: Path) -> set[str]:
    return {path.name for path in folder.iterdir()}


def measure(folder: Path, label: str, func: Callable[[], Any], calls: int, found: dict[str, Any]) -> None:
    """Runs `func` `calls` times inside a counted block; records which profile file holds the block's count."""

    def block() -> None:
        for _ in range(calls):
            func()

    gc.collect()
    _REGION(block)()
    before = _profiles(folder)
    _REGION(lambda: None)()  # the fence: its entry writes the profile of the block just run
    written = sorted(_profiles(folder) - before)
    if len(written) != 1:
        raise RuntimeError(f"expected one profile for {label}, found {written}")
    found[label] = {"file": written[0], "calls": calls}


def inside(args: argparse.Namespace) -> int:
    """Runs under callgrind: the baseline blocks, the peer's set-up, then the traced blocks."""
    import bench_llm
    from opentelemetry import trace

    folder = Path(args.profiles)
    blocks: dict[str, Any] = {}
    result: dict[str, Any] = {"blocks": blocks}
    client = fake.make_client()
    for _ in range(args.warmup):
        fake.call_plain(client)
        fake.call_stream(client)
    measure(folder, "baseline.plain", lambda: fake.call_plain(client), args.plain, blocks)
    measure(folder, "baseline.stream", lambda: fake.call_stream(client), args.stream, blocks)
    try:
        if args.peer in bench_llm.OWN_PROVIDER:
            from bench_agentops import setup_agentops

            provider, null = setup_agentops(args.mode == "on")
        else:
            provider, null = harness.make_provider()
            null.keep = 64
            trace.set_tracer_provider(provider)
        result["note"] = bench_llm.SETUPS[args.peer](provider, args.mode == "on")
    except bench_llm.NotRunnable as reason:
        result.update(status="not-run", reason=str(reason))
        sys.stdout.write(INSIDE_PREFIX + json.dumps(result) + "\n")
        return 0
    for _ in range(args.warmup):
        fake.call_plain(client)
        fake.call_stream(client)
    measure(folder, "traced.plain", lambda: fake.call_plain(client), args.plain, blocks)
    measure(folder, "traced.stream", lambda: fake.call_stream(client), args.stream, blocks)
    provider.force_flush()
    calls = 2 * args.warmup + args.plain + args.stream
    result.update(
        status="ok",
        spans_per_call=round(null.count / calls, 3),
        prompt_recorded=bench_llm.prompt_recorded(list(null.seen)),
        versions=harness.versions("openai", "opentelemetry-sdk", bench_llm.PACKAGES.get(args.peer, args.peer)),
    )
    sys.stdout.write(INSIDE_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0


STEP_CASES = ("floor", "floor+content", "agentotel", "agentotel+content")
"""The step cases of `bench_steps.py` counted here: each agentotel case beside the bare span it is compared with."""


def inside_steps(args: argparse.Namespace) -> int:
    """Runs under callgrind: each step case of `bench_steps.py` (agentotel's venv) in a counted block."""
    import bench_steps
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    folder = Path(args.profiles)
    floor_provider = TracerProvider()
    floor_provider.add_span_processor(BatchSpanProcessor(harness.NullExporter()))
    cases, exported = bench_steps.agentotel_cases(floor_provider.get_tracer("bench-floor"))
    for _ in range(args.warmup):
        for name in STEP_CASES:
            cases[name]()
    blocks: dict[str, Any] = {}
    for name in STEP_CASES:
        measure(folder, name, cases[name], args.calls, blocks)
    result = {"blocks": blocks, "status": "ok", "spans_exported": exported()}
    result["versions"] = harness.versions("opentelemetry-sdk", "agentotel")
    sys.stdout.write(INSIDE_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0


def read_total(path: Path) -> int:
    """The instruction count of one callgrind profile (its `totals:` line)."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"{path.name}: no totals line")


def outside(args: argparse.Namespace) -> dict[str, Any]:
    """Runs the inside process under callgrind; the per-call counts (millions of instructions: `M`)."""
    result: dict[str, Any] = {"peer": args.peer, "mode": args.mode, "what": args.what}
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        result.update(status="not-run", reason="valgrind is not installed (Debian: apt-get install valgrind)")
        return result
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentotel-callgrind-") as scratch:
        folder = Path(scratch)
        command = [
            valgrind,
            *CALLGRIND_OPTIONS,
            f"--callgrind-out-file={folder / 'cg.%p'}",
            sys.executable,
            __file__,
            "--inside",
            "--profiles",
            str(folder),
            "--peer",
            args.peer,
            "--mode",
            args.mode,
            "--plain",
            str(args.plain),
            "--stream",
            str(args.stream),
            "--calls",
            str(args.calls),
            "--warmup",
            str(args.warmup),
            "--what",
            args.what,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts, hence the same count, every run
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
        inner = None
        for line in reversed(done.stdout.splitlines()):
            if line.startswith(INSIDE_PREFIX):
                inner = json.loads(line[len(INSIDE_PREFIX) :])
                break
        if inner is None:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            result.update(status="error", reason=f"callgrind run exit {done.returncode}: {tail}"[:400])
            return result
        blocks = inner.pop("blocks")
        result.update(inner)
        if inner.get("status") == "ok":
            per_call = {label: read_total(folder / block["file"]) / block["calls"] for label, block in blocks.items()}
            if args.what == "steps":
                result["cases"] = {name: round(count) for name, count in per_call.items()}
                result["ratio_to_floor"] = {
                    "agentotel": round(per_call["agentotel"] / per_call["floor"], 3),
                    "agentotel+content": round(per_call["agentotel+content"] / per_call["floor+content"], 3),
                }
                result["wall_s"] = round(time.perf_counter() - started, 1)
                return result
            for kind in ("plain", "stream"):
                base = per_call[f"baseline.{kind}"]
                traced = per_call[f"traced.{kind}"]
                result[kind] = {
                    "baseline_instructions": round(base),
                    "traced_instructions": round(traced),
                    "added_instructions": round(traced - base),
                }
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", required=True)
    parser.add_argument("--mode", required=True, choices=("off", "on"))
    parser.add_argument("--plain", type=int, default=40, help="plain calls counted (each side)")
    parser.add_argument("--stream", type=int, default=15, help="streamed calls counted (each side)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--what", choices=("llm", "steps"), default="llm", help="LLM calls, or agentotel's steps")
    parser.add_argument("--calls", type=int, default=200, help="steps: calls counted per case")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profiles", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        code = inside_steps(args) if args.what == "steps" else inside(args)
        os._exit(code)  # no atexit hooks: some peers flush to their cloud endpoints at exit
    harness.emit(outside(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
