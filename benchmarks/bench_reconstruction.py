"""Worker: rebuilding sessions from stored spans, listing stored sessions, and replaying a big session.

    .venv/bin/python benchmarks/bench_reconstruction.py [--spans 100000 --stored-sessions 100000 --events 10000]

- one session of `--spans` spans, from an OTLP JSON Lines file (`agentotel/sources/otlp_json.py`) and from the
  embedded store (`agentotel/store/`): read, `build_sessions`, and the events materialised (what replay and
  assertions read), each timed;
- `agentotel sessions` over a store of `--stored-sessions` sessions (each a root span and one LLM call): in-process
  (`cli.main`) and as the command a user runs (a new process);
- text replay (`Session.replay()`) and HTML replay (`agentotel/replay/html.py`) of a session of `--events` events.

Modules another engineer has not written yet are reported as pending. Everything is written under a temporary
folder that is removed at the end. Times are wall seconds, the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ["AGENTOTEL_STORE"] = "off"

import _harness as harness
import _workload as workload

from agentotel.model import Session, build_sessions
from agentotel.records import SpanRecord


def best(func: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(the shortest wall time in seconds of `repeat` runs, the last result)."""
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - started)
    return min(times), result


def pending(module: str) -> str | None:
    return None if importlib.util.find_spec(module) is not None else f"pending: {module} does not exist yet"


def materialise(records: list[SpanRecord]) -> Session:
    """`build_sessions` and the session's events: the session as replay and assertions read it."""
    sessions = build_sessions(records)
    session = max(sessions, key=len)
    session.events  # noqa: B018 - building the events is what is timed
    return session


def otlp_json(records: list[SpanRecord], folder: Path, repeat: int) -> dict[str, Any]:
    missing = pending("agentotel.sources.otlp_json")
    if missing:
        return {"status": "pending", "reason": missing}
    from agentotel.sources.otlp_json import read_otlp_json

    path = folder / "spans.jsonl"
    with path.open("w", encoding="utf-8") as out:
        for document in workload.otlp_document(records):
            out.write(json.dumps(document, separators=(",", ":")) + "\n")
    from agentotel.sources import otlp_json as reader

    typed = getattr(reader, "_read_typed", None)
    stdlib_read_s = None
    if typed is not None:  # msgspec (the `fast` extra) installed: the standard library's reader too, for the record
        reader._read_typed = None
        try:
            stdlib_read_s, stdlib_read = best(lambda: read_otlp_json(path), repeat)
        finally:
            reader._read_typed = typed
        del stdlib_read
    read_s, read = best(lambda: read_otlp_json(path), repeat)
    build_s, session = best(lambda: materialise(read), repeat)
    return {
        "status": "ok",
        "reader": "msgspec (the fast extra)" if typed is not None else "standard library json",
        "stdlib_read_s": None if stdlib_read_s is None else round(stdlib_read_s, 3),
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "read_s": round(read_s, 3),
        "build_s": round(build_s, 3),
        "total_s": round(read_s + build_s, 3),
        "events": len(session.events),
    }


def store_session(records: list[SpanRecord], folder: Path, repeat: int) -> dict[str, Any]:
    missing = pending("agentotel.store") or pending("agentotel.sources.store")
    if missing:
        return {"status": "pending", "reason": missing}
    from agentotel.sources.store import StoreSource
    from agentotel.store import Store

    path = folder / "one-session.db"
    started = time.perf_counter()
    with Store(path, create=True) as store:
        for begin in range(0, len(records), 10_000):
            store.write(records[begin : begin + 10_000])
    write_s = time.perf_counter() - started
    session_id = str(records[0].attributes[workload.sc.SESSION_ID])
    source = StoreSource(path)
    read_s, read = best(lambda: source.store.records_for(session_id), repeat)  # type: ignore[union-attr]
    build_s, session = best(lambda: materialise(read), repeat)
    total_s, whole = best(lambda: source.session(session_id).events, 1)
    source.close()
    return {
        "status": "ok",
        "write_spans_per_s": round(len(records) / write_s),
        "read_s": round(read_s, 3),
        "build_s": round(build_s, 3),
        "total_s": round(min(total_s, read_s + build_s), 3),
        "events": len(session.events),
        "events_via_source": len(whole),
    }


def stored_sessions(count: int, folder: Path, repeat: int) -> dict[str, Any]:
    missing = pending("agentotel.store") or pending("agentotel.cli")
    if missing:
        return {"status": "pending", "reason": missing}
    from agentotel import cli
    from agentotel.store import Store

    path = folder / "many-sessions.db"
    started = time.perf_counter()
    with Store(path, create=True) as store:
        batch: list[SpanRecord] = []
        for index in range(count):
            batch.extend(
                workload.session_records(2, seed=index + 1, start_ns=workload.START_NS + index * 10 * workload.STEP_NS)
            )
            if len(batch) >= 20_000:
                store.write(batch)
                batch = []
        store.write(batch)
        stored = store.counts()
    fill_s = time.perf_counter() - started

    def in_process(*argv: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = cli.main([*argv, "--source", str(path)])
        if code != 0:
            raise RuntimeError(f"agentotel {' '.join(argv)} exited {code}")
        return out.getvalue()

    list_s, listed = best(lambda: in_process("sessions"), repeat)
    json_s, listed_json = best(lambda: in_process("sessions", "--json"), repeat)
    check_s, _ = best(lambda: in_process("check"), 1)
    command = [sys.executable, "-m", "agentotel", "sessions", "--source", str(path)]
    env = {**os.environ, "AGENTOTEL_STORE": "off"}
    process_s, done = best(lambda: subprocess.run(command, capture_output=True, text=True, env=env), repeat)
    startup_s, _ = best(
        lambda: subprocess.run([sys.executable, "-m", "agentotel", "--version"], capture_output=True, env=env),
        repeat,
    )
    return {
        "status": "ok",
        "sessions_stored": stored[0],
        "spans_stored": stored[1],
        "fill_s": round(fill_s, 1),
        "sessions_s": round(list_s, 4),
        "sessions_json_s": round(json_s, 4),
        "check_all_s": round(check_s, 3),
        "command_s": round(process_s, 3),
        "command_startup_s": round(startup_s, 3),
        "rows_listed": len(json.loads(listed_json)),
        "table_lines": len(listed.splitlines()),
        "command_ok": done.returncode == 0 and len(done.stdout.splitlines()) > 1,
    }


def replay(events: int, repeat: int) -> dict[str, Any]:
    session = materialise(workload.session_records(events + 1, failed_every=997))
    text_s, text = best(session.replay, repeat)
    result: dict[str, Any] = {
        "status": "ok",
        "events": len(session.events),
        "text_s": round(text_s, 3),
        "text_lines": len(text.splitlines()),
    }
    missing = pending("agentotel.replay.html")
    if missing:
        result.update(html_status="pending", html_reason=missing)
        return result
    from agentotel.replay.html import render_html

    html_s, page = best(lambda: render_html(session), repeat)
    result.update(html_status="ok", html_s=round(html_s, 3), html_mib=round(len(page) / 2**20, 2))
    return result


def run(spans: int, stored: int, events: int, repeat: int) -> dict[str, Any]:
    records = workload.session_records(spans, failed_every=997)
    result: dict[str, Any] = {"status": "ok", "spans": spans, "versions": harness.versions("opentelemetry-sdk")}
    with tempfile.TemporaryDirectory(prefix="agentotel-bench-") as tmp:
        folder = Path(tmp)
        for name, step in (
            ("otlp_json", lambda: otlp_json(records, folder, repeat)),
            ("store", lambda: store_session(records, folder, repeat)),
            ("sessions_list", lambda: stored_sessions(stored, folder, repeat)),
            ("replay", lambda: replay(events, repeat)),
        ):
            try:
                result[name] = step()
            except Exception as error:
                result[name] = {"status": "error", "reason": f"{type(error).__name__}: {error}"[:300]}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--stored-sessions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    harness.emit(run(args.spans, args.stored_sessions, args.events, args.repeat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
