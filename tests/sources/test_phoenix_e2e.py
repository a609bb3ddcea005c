"""End to end with a real Arize Phoenix: `phoenix serve` on free loopback ports and a temporary working dir, sessions
exported to it over OTLP/HTTP, read back through the Phoenix source, compared with the sessions rebuilt in process.

Phoenix pins `anthropic<2` (agentotel's tests use anthropic 2), so it usually lives in a virtualenv of its own:
`AGENTOTEL_PHOENIX_BIN=/path/to/venv/bin/phoenix`. Without it the `phoenix` on PATH (or beside this Python) is used;
with none, the test is skipped with that reason. Marked `phoenix` (`pytest -m phoenix`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from source_scenario import Recorded, assert_same_summary, fingerprint

import agentotel
from agentotel.configure import add_export_processor, remove_export_processor
from agentotel.sources import SessionSummary, open_source
from agentotel.sources.phoenix import PhoenixSource
from agentotel.testing import capture
from agentotel.testing.llm_server import LLMServer, Reply

pytestmark = pytest.mark.phoenix

READY_TIMEOUT = 60.0
T = TypeVar("T")


def _phoenix_bin() -> str | None:
    candidates = [
        os.environ.get("AGENTOTEL_PHOENIX_BIN"),
        shutil.which("phoenix"),
        str(Path(sys.executable).parent / "phoenix"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK) and Path(candidate).is_file():
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Phoenix:
    """`phoenix serve` in a subprocess; `url` once `/healthz` answers."""

    def __init__(self, binary: str, working_dir: Path) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "PHOENIX_HOST": "127.0.0.1",
            "PHOENIX_PORT": str(port),
            "PHOENIX_GRPC_PORT": str(_free_port()),
            "PHOENIX_WORKING_DIR": str(working_dir),
            "PHOENIX_TELEMETRY_ENABLED": "false",
        }
        self.log = working_dir / "phoenix.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
        started = time.monotonic()
        while time.monotonic() - started < READY_TIMEOUT:
            if self.process.poll() is not None:
                self._fail(f"phoenix serve exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        self.start_seconds = time.monotonic() - started
                        return
            except OSError:
                time.sleep(0.25)
        self.stop()
        self._fail(f"phoenix serve was not ready within {READY_TIMEOUT:.0f} s")

    def _fail(self, why: str) -> None:
        tail = self.log.read_text(errors="replace")[-3000:]
        pytest.fail(f"{why}; its log ends with:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(scope="module")
def phoenix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Phoenix]:
    binary = _phoenix_bin()
    if binary is None:
        pytest.skip("Arize Phoenix is not installed (pip install arize-phoenix, or set AGENTOTEL_PHOENIX_BIN)")
    server = Phoenix(binary, tmp_path_factory.mktemp("phoenix"))
    print(f"\nPhoenix ready in {server.start_seconds:.1f} s")
    try:
        yield server
    finally:
        server.stop()


def _eventually(read: Callable[[], T], done: Callable[[T], bool], timeout: float = 20.0) -> T:
    """Phoenix writes what it receives in batches: reads until `done` holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.3)


def test_recorded_sessions_come_back_from_phoenix(phoenix: Phoenix, recorded: Recorded) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{phoenix.url}/v1/traces", timeout=10)
    assert exporter.export(recorded.spans) == SpanExportResult.SUCCESS
    exporter.shutdown()
    source = open_source(f"phoenix+{phoenix.url}")
    assert isinstance(source, PhoenixSource)
    expected = {s.id: s for s in recorded.sessions if s.id != recorded.plain_trace_id}
    summaries = _eventually(lambda: {s.id: s for s in source.sessions()}, lambda found: set(found) >= set(expected))
    assert set(summaries) == set(expected)
    for session_id, session in expected.items():
        assert_same_summary(summaries[session_id], SessionSummary.from_session(session))
        assert fingerprint(source.session(session_id)) == fingerprint(session)
    # The remote tool (another service, same session through baggage) and a trace with no session come back too.
    assert "geocode" in [e.name for e in source.session(recorded.support.id).events]
    bare = source.session(recorded.plain_trace_id)
    assert (bare.id, [e.name for e in bare.events]) == (recorded.plain_trace_id, ["nightly-job", "cleanup"])


@agentotel.tool
def charge(amount: float) -> str:
    if amount > 100:
        raise PermissionError("charges over 100 need a human")
    return "charged"


def test_a_live_run_exported_as_users_export_it(phoenix: Phoenix) -> None:
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{phoenix.url}/v1/traces", timeout=10))
    add_export_processor(processor)
    try:
        with LLMServer() as server, capture() as cap:
            client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")
            server.script(Reply(text="ok", input_tokens=1000, output_tokens=200, cached_tokens=400))
            with agentotel.session("billing", tags=["e2e"]):
                client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "bill"}])
                charge(10)
            with pytest.raises(PermissionError), agentotel.session("billing"):
                charge(500)
        assert processor.force_flush(10_000)
    finally:
        remove_export_processor(processor)
        processor.shutdown()
    local = {s.id: s for s in cap.sessions}
    source = open_source(f"phoenix+{phoenix.url}?project=default")
    summaries = _eventually(
        lambda: {s.id: s for s in source.sessions(tag="e2e")} | {s.id: s for s in source.sessions(state="Fail")},
        lambda found: set(found) >= set(local),
    )
    assert set(local) <= set(summaries)
    for session_id, session in local.items():
        assert fingerprint(source.session(session_id)) == fingerprint(session)
    ok, failed = sorted(local.values(), key=lambda s: s.start_ns)
    assert summaries[ok.id].cost == pytest.approx(ok.cost) and ok.cost > 0
    assert (summaries[ok.id].input_tokens, summaries[ok.id].output_tokens) == (1000, 200)
    assert (summaries[failed.id].end_state, summaries[failed.id].error_count) == ("Fail", 1)
    assert source.session(failed.id).first_error is not None


def test_phoenix_shows_our_spans_as_llm_tool_and_agent_spans(phoenix: Phoenix) -> None:
    """Phoenix's UI reads OpenInference attributes (`openinference.span.kind`, `llm.*`, `tool.*`); Phoenix derives
    them from our `gen_ai.*` ones on ingestion, so agentotel does not write them twice. Should this stop holding
    for a Phoenix version, this test says so."""
    with urllib.request.urlopen(f"{phoenix.url}/v1/projects/default/spans?limit=1000", timeout=10) as answer:
        spans = json.loads(answer.read())["data"]
    kinds = {s["name"]: s["span_kind"] for s in spans}
    assert kinds["invoke_agent billing"] == "AGENT"
    assert kinds["chat gpt-4o"] == "LLM"
    assert kinds["execute_tool charge"] == "TOOL"
    llm = next(s for s in spans if s["name"] == "chat gpt-4o")
    assert llm["attributes"]["llm.model_name"] == "gpt-4o"
    assert (llm["attributes"]["llm.token_count.prompt"], llm["attributes"]["llm.token_count.completion"]) == (1000, 200)
    tool = next(s for s in spans if s["name"] == "execute_tool charge")
    assert tool["attributes"]["tool.name"] == "charge"
    assert tool["attributes"]["session.id"]  # Phoenix's Sessions view groups by this very attribute
