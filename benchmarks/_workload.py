"""Synthetic agent workloads for the benchmarks that run in the project's venv: the attributes of realistic steps
(LLM calls with usage, tool calls), span records of big sessions, and the OTLP JSON document of those records.

Spans carry what agentotel's instrumentation records with content capture off, so that sizes and processor paths
(session stamping, cost) are those of a real agent.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from agentotel import semconv as sc
from agentotel.model import KIND_LLM, KIND_SESSION, KIND_TOOL
from agentotel.records import SpanRecord

MODEL = "gpt-4o-mini"
START_NS = 1_764_000_000_000_000_000
STEP_NS = 1_000_000


def llm_attributes(index: int) -> dict[str, Any]:
    """A chat call's attributes as agentotel's openai instrumentation sets them (content off)."""
    return {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_CHAT,
        sc.GEN_AI_PROVIDER_NAME: sc.GEN_AI_PROVIDER_NAME_VALUE_OPENAI,
        sc.AGENTOTEL_STEP_KIND: KIND_LLM,
        sc.GEN_AI_REQUEST_MODEL: MODEL,
        sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        sc.GEN_AI_RESPONSE_ID: f"chatcmpl-{index}",
        sc.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        sc.GEN_AI_USAGE_INPUT_TOKENS: 200 + index % 50,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS: 40 + index % 20,
        sc.SERVER_ADDRESS: "api.openai.com",
        sc.SERVER_PORT: 443,
    }


def tool_attributes(index: int) -> dict[str, Any]:
    """A tool call's attributes as `@agentotel.tool` sets them (content off)."""
    name = ("search", "lookup_order", "refund")[index % 3]
    return {
        sc.AGENTOTEL_STEP_KIND: KIND_TOOL,
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
        sc.GEN_AI_TOOL_NAME: name,
        sc.GEN_AI_TOOL_TYPE: "function",
    }


def step(index: int) -> tuple[str, dict[str, Any]]:
    """The span name and attributes of the `index`-th step of an agent: LLM call and tool call by turns."""
    if index % 2 == 0:
        return f"chat {MODEL}", llm_attributes(index)
    attributes = tool_attributes(index)
    return f"execute_tool {attributes[sc.GEN_AI_TOOL_NAME]}", attributes


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def session_records(
    spans: int, *, seed: int = 1, session_id: str | None = None, start_ns: int = START_NS, failed_every: int = 0
) -> list[SpanRecord]:
    """One ended session of `spans` spans: its root and `spans - 1` steps, children of the root (every tenth
    tool call nested under the LLM call before it). `failed_every` > 0 makes every n-th step fail."""
    rng = random.Random(seed)
    trace_id = _hex(rng, 32)
    root_id = _hex(rng, 16)
    sid = session_id or f"session-{seed:08d}"
    end_ns = start_ns + spans * STEP_NS
    root_attributes = {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: "support",
        sc.SESSION_ID: sid,
        sc.AGENTOTEL_STEP_KIND: KIND_SESSION,
        sc.AGENTOTEL_SESSION_TAGS: ("bench",),
        sc.AGENTOTEL_SESSION_END_STATE: "Success",
    }
    records = [
        SpanRecord(trace_id, root_id, None, "invoke_agent support", "INTERNAL", start_ns, end_ns, root_attributes)
    ]
    previous_llm = root_id
    for index in range(spans - 1):
        name, attributes = step(index)
        attributes[sc.SESSION_ID] = sid
        span_id = _hex(rng, 16)
        parent = previous_llm if index % 20 == 19 else root_id
        begin = start_ns + (index + 1) * STEP_NS
        failed = failed_every > 0 and index % failed_every == failed_every - 1
        if failed:
            attributes[sc.ERROR_TYPE] = "TimeoutError"
        records.append(
            SpanRecord(
                trace_id,
                span_id,
                parent,
                name,
                "CLIENT" if index % 2 == 0 else "INTERNAL",
                begin,
                begin + STEP_NS // 2,
                attributes,
                status_code="ERROR" if failed else "UNSET",
                status_message="TimeoutError: took too long" if failed else None,
                service_name="bench-agent",
            )
        )
        if index % 2 == 0:
            previous_llm = span_id
    return records


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_any_value(v) for v in value]}}
    return {"stringValue": str(value)}


_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}


def otlp_span(record: SpanRecord) -> dict[str, Any]:
    """The OTLP JSON encoding of a record (what the Collector's file exporter writes)."""
    span: dict[str, Any] = {
        "traceId": record.trace_id,
        "spanId": record.span_id,
        "name": record.name,
        "kind": _KINDS.get(record.kind, 1),
        "startTimeUnixNano": str(record.start_ns),
        "endTimeUnixNano": str(record.end_ns or 0),
        "attributes": [{"key": k, "value": _any_value(v)} for k, v in record.attributes.items()],
        "status": {"code": _STATUS.get(record.status_code, 0)},
    }
    if record.parent_span_id:
        span["parentSpanId"] = record.parent_span_id
    if record.status_message:
        span["status"]["message"] = record.status_message
    return span


def otlp_document(records: list[SpanRecord], *, per_request: int = 5_000) -> Iterator[dict[str, Any]]:
    """ExportTraceServiceRequest documents of `per_request` spans each (one JSON Lines line each)."""
    for begin in range(0, len(records), per_request):
        yield {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bench-agent"}}]},
                    "scopeSpans": [
                        {
                            "scope": {"name": "agentotel"},
                            "spans": [otlp_span(r) for r in records[begin : begin + per_request]],
                        }
                    ],
                }
            ]
        }
