"""The recorded agent run the backend-source tests serve from their fake backends, and how to compare sessions.
(A plain module, not the conftest, so that test files can import it by a name no other conftest shadows.)

`recorded` runs, once per test session, real agentotel code (the openai SDK against the local LLM server):
- "support" (tags prod, v2): a priced chat call, a tool call, a nested "research" session, and a tool served by a
  second service ("tool-service", its own tracer provider) that got the session id through W3C baggage;
- "triage": a tool that raises, so the session ends Fail;
- a trace with no agentotel session in it ("nightly-job").
Ids are deterministic (trace and span ids count from 1, so they have leading zeros) and times recent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import openai
import pytest
from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import agentotel
from agentotel import semconv as sc
from agentotel._clock import id_generator
from agentotel.model import Session
from agentotel.processors import SessionSpanProcessor
from agentotel.sources import SessionSummary
from agentotel.testing import capture, deterministic
from agentotel.testing.llm_server import LLMServer, Reply

TOOL_SERVICE = "tool-service"


@dataclass
class Recorded:
    spans: list[ReadableSpan]
    sessions: list[Session]
    """The sessions rebuilt in process from the same spans: what every source must give back."""
    support: Session
    research: Session
    triage: Session
    plain_trace_id: str


def _tool_provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(resource=Resource.create({sc.SERVICE_NAME: TOOL_SERVICE}), id_generator=id_generator)
    provider.add_span_processor(SessionSpanProcessor())
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _remote_tool(provider: TracerProvider, headers: dict[str, str]) -> None:
    """What the tool service does with a request: the caller's context from the headers, a tool span in it."""
    token = context.attach(propagate.extract(headers))
    try:
        tracer = provider.get_tracer("tool-service")
        with (
            tracer.start_as_current_span("POST /tools/geocode", kind=SpanKind.SERVER),
            tracer.start_as_current_span(
                "execute_tool geocode",
                attributes={
                    sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
                    sc.GEN_AI_TOOL_NAME: "geocode",
                    sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_TOOL,
                },
            ),
        ):
            pass
    finally:
        context.detach(token)


@agentotel.tool
def lookup_order(order_id: str) -> dict[str, str]:
    return {"order": order_id, "status": "shipped"}


@agentotel.tool
def refund(order_id: str) -> None:
    raise ValueError(f"order {order_id} cannot be refunded")


def record_run() -> Recorded:
    """Runs the agent described above and returns its spans and sessions."""
    provider, tool_exporter = _tool_provider()
    with (
        LLMServer() as server,
        capture(capture_content=True) as cap,
        deterministic(start_ns=time.time_ns() - 600 * 1_000_000_000),
    ):
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="test")
        server.script(Reply(text="Your order shipped.", input_tokens=120, output_tokens=30))
        with agentotel.session("support", tags=["prod", "v2"]) as support:
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Where?"}])
            lookup_order("A-17")
            with agentotel.session("research") as research:
                lookup_order("A-18")
            headers: dict[str, str] = {}
            propagate.inject(headers)
            _remote_tool(provider, headers)
        with pytest.raises(ValueError), agentotel.session("triage") as triage:
            refund("A-17")
        plain = trace.get_tracer("nightly").start_span("nightly-job")
        trace.get_tracer("nightly").start_span("cleanup", context=trace.set_span_in_context(plain)).end()
        plain.end()
        spans = [*cap.spans, *tool_exporter.get_finished_spans()]
    provider.shutdown()
    sessions = agentotel.build_sessions(agentotel.records_from_spans(spans))
    return Recorded(
        spans=spans,
        sessions=sessions,
        support=next(s for s in sessions if s.id == support.id),
        research=next(s for s in sessions if s.id == research.id),
        triage=next(s for s in sessions if s.id == triage.id),
        plain_trace_id=f"{plain.get_span_context().trace_id:032x}",
    )


def assert_same_summary(got: SessionSummary, want: SessionSummary) -> None:
    """Equal summaries, but for times within 2 µs (Jaeger's legacy API keeps µs; Phoenix rounds through a float)
    and the service name (which only some backends give back)."""
    assert abs(got.start_ns - want.start_ns) <= 2000, (got.start_ns, want.start_ns)
    assert (got.end_ns is None) == (want.end_ns is None)
    if got.end_ns is not None and want.end_ns is not None:
        assert abs(got.end_ns - want.end_ns) <= 2000, (got.end_ns, want.end_ns)
    assert replace(got, start_ns=0, end_ns=0, service_name=None) == replace(
        want, start_ns=0, end_ns=0, service_name=None
    )


def fingerprint(session: Session) -> dict[str, Any]:
    """What must survive a trip through a backend: identity, outcome, totals and every event (times aside:
    backends keep µs at best)."""
    events = sorted(
        (
            {key: value for key, value in event.to_dict().items() if key not in ("start_time", "duration", "cost")}
            | {"cost": None if event.cost is None else round(event.cost, 12)}
            for event in session.events
        ),
        key=lambda e: e["span_id"],
    )
    return {
        "id": session.id,
        "name": session.name,
        "tags": sorted(session.tags),
        "trace_id": session.trace_id,
        "span_id": session.span_id,
        "parent_id": session.parent_id,
        "end_state": session.end_state,
        "end_state_reason": session.end_state_reason,
        "cost": round(session.cost, 12),
        "input_tokens": session.input_tokens,
        "output_tokens": session.output_tokens,
        "first_error": None if session.first_error is None else session.first_error.span_id,
        "events": events,
    }
