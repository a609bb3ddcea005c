"""One session across two services: the tool service of examples/two_services runs as a subprocess exporting
OTLP/HTTP to a loopback receiver, the agent runs here; the session rebuilt from both processes' spans holds the
remote tool calls under the same session.id (carried in W3C baggage)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf.json_format import MessageToDict
from otlp_receiver import OTLPReceiver

import agentotel
from agentotel import semconv as sc
from agentotel.records import SpanRecord, records_from_spans
from agentotel.sources.otlp_json import records_from_otlp_json
from agentotel.testing import Capture

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "two_services"
START_TIMEOUT = 20.0


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"two_services_{name}", EXAMPLE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


agent = _load("agent")


class ToolService:
    """The tool service in a subprocess, exporting to `receiver`; its URL is read from its first output line."""

    def __init__(self, receiver: OTLPReceiver, propagators: str | None) -> None:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "AGENTOTEL_STORE": "off",
        }
        env.pop("OTEL_PROPAGATORS", None)
        if propagators is not None:
            env["OTEL_PROPAGATORS"] = propagators
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLE / "tool_service.py"), "--port", "0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self._read_url()

    def _read_url(self) -> str:
        found: list[str] = []
        reader = threading.Thread(target=lambda: found.append(self.process.stdout.readline()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(START_TIMEOUT)
        line = found[0].strip() if found else ""
        if not line.startswith("listening on "):
            self.stop()
            raise AssertionError(f"the tool service did not start: {line!r} {self.process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        return line.removeprefix("listening on ")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture
def receiver() -> Iterator[OTLPReceiver]:
    with OTLPReceiver("http/protobuf") as found:
        yield found


def _remote_records(receiver: OTLPReceiver) -> list[SpanRecord]:
    """What the tool service exported, read through the OTLP JSON reader (the path files and backends take)."""
    return [r for request in receiver.requests for r in records_from_otlp_json(MessageToDict(request.message))]


def _run_agent(
    receiver: OTLPReceiver, cap: Capture, propagators: str | None
) -> tuple[agentotel.Session, list[SpanRecord]]:
    service = ToolService(receiver, propagators)
    try:
        with pytest.raises(RuntimeError, match="unknown city 'Atlantis'"):
            agent.plan_trip(service.url, ["Paris", "Atlantis"])
        receiver.wait_for_spans(lambda spans: sum(s.name == "execute_tool geocode" for s in spans) >= 2, timeout=10)
    finally:
        service.stop()
    local = records_from_spans(cap.spans)
    return agentotel.get_session(), [*local, *_remote_records(receiver)]  # type: ignore[return-value]


def test_the_remote_tool_calls_are_in_the_agents_session(receiver: OTLPReceiver, cap: Capture) -> None:
    live, records = _run_agent(receiver, cap, propagators=None)
    remote = [r for r in records if r.service_name == "tool-service"]
    assert {r.name for r in remote} == {"POST /tools/geocode", "execute_tool geocode"}
    assert all(r.attributes.get(sc.SESSION_ID) == live.id for r in remote)
    assert all(r.trace_id == live.trace_id for r in remote)
    clients = {r.span_id for r in records if r.service_name != "tool-service" and r.kind == "CLIENT"}
    assert {r.parent_span_id for r in remote if r.kind == "SERVER"} <= clients  # children of the agent's calls

    (session,) = [s for s in agentotel.build_sessions(records) if s.id == live.id]
    tools = [e for e in session.events if e.kind == "tool"]
    assert [(e.name, e.failed) for e in tools] == [("geocode", False), ("geocode", True)]
    assert tools[1].error is not None and tools[1].error.type == "LookupError"
    assert tools[0].returns is None  # content capture is off by default, in the tool service too
    assert session.end_state == "Fail"
    assert session.first_error is not None and session.first_error.span_id in {r.span_id for r in remote}


def test_without_the_baggage_propagator_the_remote_spans_lose_the_session(receiver: OTLPReceiver, cap: Capture) -> None:
    live, records = _run_agent(receiver, cap, propagators="tracecontext")
    remote = [r for r in records if r.service_name == "tool-service"]
    assert remote and all(r.trace_id == live.trace_id for r in remote)  # the trace still crosses
    assert all(sc.SESSION_ID not in r.attributes for r in remote)  # but the session id does not
    (session,) = [s for s in agentotel.build_sessions(records) if s.id == live.id]
    assert not [e for e in session.events if e.kind == "tool"]
