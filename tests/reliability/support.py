"""What the reliability tests share: an OTLP backend that misbehaves on demand, an agent to run against it, and
helpers to run Python in a child process.

`FaultyOTLPBackend` is a real OTLP/HTTP trace endpoint on loopback (the SDK's OTLP exporter talks to it over TCP)
whose answer is chosen per request by a policy: accept (200), answer an error status with headers (5xx, 429 with
`Retry-After`), or hang (read the request, never answer until the backend stops). It logs every attempt with its
time and the span ids it carried, so the tests can see retries and backoff, and which spans were delivered.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openai
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import agentotel
from agentotel import configure
from agentotel._loss import AccountedBatchProcessor

HANG = "hang"
Answer = tuple[int, dict[str, str]] | str
"""What the backend does with a request: `(status, headers)`, or `HANG`."""
Policy = Callable[[int], Answer]
"""The answer to the n-th request (from 0)."""


def always(status: int, headers: dict[str, str] | None = None) -> Policy:
    return lambda _n: (status, dict(headers or {}))


def hang(_n: int) -> Answer:
    return HANG


def flapping(period_s: float = 0.25) -> Policy:
    """Up and down by turns: ok, 503, ok, 429, ok, 502 ... each for `period_s`."""
    cycle: list[Answer] = [(200, {}), (503, {}), (200, {}), (429, {"Retry-After": "0.1"}), (200, {}), (502, {})]
    return lambda _n: cycle[int(time.monotonic() / period_s) % len(cycle)]


@dataclass
class Attempt:
    """One export request as the backend saw it."""

    at: float
    """`time.monotonic()` when it arrived."""
    span_ids: tuple[str, ...]
    status: int | None
    """The status answered; `None` when the backend never answered."""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class FaultyOTLPBackend:
    """An OTLP/HTTP trace backend on a free loopback port whose answers follow `policy` (switchable any time)."""

    def __init__(self, policy: Policy | None = None) -> None:
        self.policy: Policy = policy or always(200)
        self.attempts: list[Attempt] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self) -> FaultyOTLPBackend:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner._handle(self, body)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultyOTLPBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """The full traces URL, for `OTLPSpanExporter(endpoint=...)`."""
        return f"http://127.0.0.1:{self.port}/v1/traces"

    @property
    def base_url(self) -> str:
        """The base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`."""
        return f"http://127.0.0.1:{self.port}"

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        message = ExportTraceServiceRequest()
        try:
            message.ParseFromString(body)
        except Exception:
            handler.send_response(400)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        span_ids = tuple(
            span.span_id.hex() for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans
        )
        with self._lock:
            index = len(self.attempts)
            headers = {k.lower(): v for k, v in handler.headers.items()}
            attempt = Attempt(time.monotonic(), span_ids, None, headers, body)
            self.attempts.append(attempt)
        answer = self.policy(index)
        if answer == HANG:
            self._release.wait(120)
            handler.close_connection = True
            return
        status, headers = answer  # type: ignore[misc]
        payload = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
        attempt.status = status
        handler.send_response(status)
        handler.send_header("Content-Type", "application/x-protobuf")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)

    @property
    def delivered(self) -> set[str]:
        """Ids of the spans of every request answered 200."""
        with self._lock:
            return {span_id for a in self.attempts if a.status == 200 for span_id in a.span_ids}

    def tries_of_each_batch(self) -> list[list[Attempt]]:
        """The attempts grouped by the batch they carried (a retry carries the same spans), in arrival order."""
        groups: dict[tuple[str, ...], list[Attempt]] = {}
        with self._lock:
            for attempt in self.attempts:
                groups.setdefault(attempt.span_ids, []).append(attempt)
        return list(groups.values())

    def wait_until(self, condition: Callable[[FaultyOTLPBackend], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self):
                return True
            time.sleep(0.02)
        return condition(self)


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- exporting from this process -----------------------------------------------------------------------------------


@contextmanager
def exporting_through(processor: SpanProcessor) -> Iterator[SpanProcessor]:
    """`processor` in agentotel's export pipeline for the block (beside the test's capture), shut down after."""
    configure.add_export_processor(processor)
    try:
        yield processor
    finally:
        configure.remove_export_processor(processor)
        processor.shutdown()


def accounted(exporter: Any) -> AccountedBatchProcessor:
    """The processor `agentotel.init()` puts in front of a network exporter (the `OTEL_BSP_*` variables apply)."""
    processor = configure._processor_for(exporter)
    assert isinstance(processor, AccountedBatchProcessor)
    return processor


class EndedSpans(SpanProcessor):
    """Counts the spans that end, and keeps weak references to them (to see how many are still held)."""

    def __init__(self) -> None:
        import weakref

        self._refs: list[weakref.ref[ReadableSpan]] = []
        self._weakref = weakref
        self.count = 0

    def on_end(self, span: ReadableSpan) -> None:
        self.count += 1
        self._refs.append(self._weakref.ref(span))

    def alive(self) -> int:
        import gc

        gc.collect()
        return sum(1 for ref in self._refs if ref() is not None)


# --- the agent -----------------------------------------------------------------------------------------------------

PROMPT = "Where is my order 4417? My e-mail is jane@example.com"


@agentotel.tool
def lookup_order(order_id: str) -> dict[str, str]:
    return {"order_id": order_id, "status": "shipped"}


@agentotel.tool
def draft_reply(status: str) -> str:
    return f"Your order has {status}."


def agent_run(client: openai.OpenAI, n: int = 0) -> str:
    """One agent run: a session with a streamed LLM call and two tool calls. (Streamed: the local server answers a
    stream in about 2 ms, a plain reply in about 44 ms, which would hide what tracing costs.)"""
    with agentotel.session("support", tags=["reliability"]):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": PROMPT}],
            stream=True,
            stream_options={"include_usage": True},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        order = lookup_order(f"{4417 + n}")
        reply = draft_reply(order["status"])
        return f"{text} {reply}"


def traced_steps(n: int = 0) -> int:
    """Tracing alone, no I/O: a session of ten tool calls (a few hundred microseconds)."""
    with agentotel.session("steps"):
        for i in range(10):
            lookup_order(str(n + i))
    return n


def per_call_times(action: Callable[[int], object], count: int) -> list[float]:
    """Wall-clock seconds of each of `count` calls of `action(n)`."""
    times = []
    for n in range(count):
        start = time.perf_counter()
        action(n)
        times.append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# --- child processes -----------------------------------------------------------------------------------------------


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A child's environment: no OTEL or agentotel variables from the test run, a private data folder, unbuffered
    output, and only what `extra` sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOTEL_"))}
    env["HOME"] = str(tmp_path / "home")
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class ChildRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    """Wall-clock time from start to exit."""
    exit_seconds: float | None
    """Time from the script's last line (it prints `READY-TO-EXIT`) to the process's exit."""


def run_child(
    code: str, env: dict[str, str], tmp_path: Path, *, timeout: float = 60.0, args: tuple[str, ...] = ()
) -> ChildRun:
    """Runs `code` (dedented) in a fresh interpreter. A line `READY-TO-EXIT` on stdout marks the end of the
    script's own work: the time from it to the exit is `exit_seconds`."""
    script = tmp_path / f"child_{abs(hash(code)) % 10**8}.py"
    script.write_text(textwrap.dedent(code))
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, str(script), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    ready_at: list[float] = []
    lines: list[str] = []
    errors: list[str] = []

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if line.strip() == "READY-TO-EXIT" and not ready_at:
                ready_at.append(time.monotonic())

    def read_stderr() -> None:
        assert process.stderr is not None
        errors.extend(process.stderr)

    readers = [threading.Thread(target=read, daemon=True) for read in (read_stdout, read_stderr)]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(
            f"the child did not exit within {timeout}s; stdout: {''.join(lines)} stderr: {''.join(errors)}"
        ) from None
    ended = time.monotonic()
    for reader in readers:
        reader.join(5)
    return ChildRun(
        returncode=process.returncode,
        stdout="".join(lines),
        stderr="".join(errors),
        seconds=ended - started,
        exit_seconds=(ended - ready_at[0]) if ready_at else None,
    )
