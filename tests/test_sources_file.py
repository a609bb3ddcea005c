"""Sources: OTLP JSON and JSON Lines files -> the same sessions as live; telling files apart; the URL-scheme
registry; one-line errors for files that are not traces."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

import agentotel
from agentotel.records import records_from_spans
from agentotel.sources import (
    SCHEMES,
    RecordsSource,
    SessionNotFound,
    SourceError,
    SpanSource,
    open_source,
    register_source,
)
from agentotel.sources.otlp_json import OtlpJsonSource, read_otlp_json, records_from_otlp_json
from agentotel.sources.store import StoreSource
from agentotel.store import Store
from agentotel.testing import Capture


@agentotel.record_action("fetch_customer_data")
def fetch_customer(customer_id: str | None) -> dict[str, str]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}


def otlp_document(spans: list[ReadableSpan], *, hex_ids: bool = True, int_enums: bool = True) -> dict[str, Any]:
    """An `ExportTraceServiceRequest` as OTLP/JSON: what the OTLP exporter would send, in the JSON encoding
    (hex ids, integer enums, int64 as strings) — or, with `hex_ids=False` / `int_enums=False`, as the generic
    protobuf JSON mapping writes it (base64 ids, enum names)."""
    document = MessageToDict(encode_spans(spans), use_integers_for_enums=int_enums)
    if hex_ids:
        for resource_spans in document["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                for span in scope_spans["spans"]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in span:
                            span[key] = base64.b64decode(span[key]).hex()
    return document


@pytest.fixture
def recorded(cap_content: Capture) -> Capture:
    """Two sessions (one failing, one nested in it) and a trace with no session, with content."""
    with pytest.raises(ValueError), agentotel.session("support", tags=["support", "v2.1"]):
        agentotel.record(agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=50, completion_tokens=5))
        with agentotel.session("lookup"):
            fetch_customer("c1")
        fetch_customer(None)
    with trace.get_tracer("plain").start_as_current_span("GET /health"):
        pass
    return cap_content


def test_an_otlp_json_file_gives_the_same_sessions_as_live(tmp_path: Path, recorded: Capture) -> None:
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(otlp_document(recorded.spans)))
    live = {s.id: s.to_dict() for s in agentotel.build_sessions(records_from_spans(recorded.spans))}
    with open_source(str(path)) as source:
        assert isinstance(source, OtlpJsonSource)
        summaries = source.sessions()
        assert {s.id for s in summaries} == set(live)
        for summary in summaries:
            assert source.session(summary.id).to_dict() == live[summary.id]
        support = source.session(next(s.id for s in summaries if s.name == "support"))
    assert support.end_state == "Fail"
    assert support.first_error is not None and support.first_error.params == {"customer_id": None}
    assert [e.kind for e in support.events] == ["llm", "session", "action", "action"]
    assert support.cost > 0
    assert "← PROBLEM" in support.replay()


def test_a_trace_without_a_session_is_one_session(tmp_path: Path, recorded: Capture) -> None:
    path = tmp_path / "traces.json"
    path.write_text(json.dumps(otlp_document(recorded.spans)))
    with open_source(str(path)) as source:
        health = [s for s in source.sessions() if s.name == "GET /health"]
        assert len(health) == 1 and health[0].id == health[0].trace_id
        assert source.session(health[0].trace_id[:10]).name == "GET /health"


def test_collector_file_exporter_json_lines(tmp_path: Path, recorded: Capture) -> None:
    spans = recorded.spans
    lines = [json.dumps(otlp_document([span])) for span in spans]
    path = tmp_path / "collector.jsonl"
    path.write_text("\n".join(lines) + "\n\n")
    assert len(read_otlp_json(path)) == len(spans)
    with open_source(str(path)) as source:
        names = sorted(s.name for s in source.sessions())
    assert names == ["GET /health", "lookup", "support"]


def test_protobuf_json_mapping_variants_are_read_too(tmp_path: Path, recorded: Capture) -> None:
    """Base64 ids and enum names (what a generic protobuf JSON writer emits), snake_case field names."""
    expected = records_from_otlp_json(otlp_document(recorded.spans))
    variant = otlp_document(recorded.spans, hex_ids=False, int_enums=False)
    assert records_from_otlp_json(variant) == expected
    snake = MessageToDict(encode_spans(recorded.spans), preserving_proto_field_name=True)
    assert records_from_otlp_json(snake) == expected
    failed = [r for r in expected if r.status_code == "ERROR"]
    assert failed and all(r.exceptions for r in failed if r.name == "fetch_customer_data")
    assert {r.kind for r in expected} == {"INTERNAL", "CLIENT"}


def test_records_read_from_a_file_equal_those_of_the_spans(recorded: Capture) -> None:
    from_file = sorted(records_from_otlp_json(otlp_document(recorded.spans)), key=lambda r: r.span_id)
    from_spans = sorted(records_from_spans(recorded.spans), key=lambda r: r.span_id)
    for got, want in zip(from_file, from_spans, strict=True):
        assert (got.trace_id, got.span_id, got.parent_span_id, got.name, got.kind) == (
            want.trace_id,
            want.span_id,
            want.parent_span_id,
            want.name,
            want.kind,
        )
        assert (got.start_ns, got.end_ns, got.status_code, got.status_message) == (
            want.start_ns,
            want.end_ns,
            want.status_code,
            want.status_message,
        )
        assert got.exceptions == want.exceptions
        assert got.service_name == want.service_name
        assert {k: list(v) if isinstance(v, tuple) else v for k, v in want.attributes.items()} == got.attributes


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not valid JSON"),
        ('{"resourceMetrics": []}', "metrics or logs"),
        ('{"hello": 1}', "no resourceSpans"),
        ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz", "spanId": "00"}]}]}]}', "traceId"),
        ('{"resourceSpans": []}\n{"resourceSpans": [1]}\n', "line 2"),
        ('{"resourceSpans": []}\n{oops\n', "line 2 is not valid JSON"),
    ],
)
def test_a_file_that_is_not_otlp_traces_is_a_one_line_error(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SourceError) as raised, open_source(str(path)) as source:
        source.sessions()
    message = str(raised.value)
    assert says in message and str(path) in message and "\n" not in message


def test_paths_are_told_apart_by_content(tmp_path: Path, recorded: Capture) -> None:
    store = tmp_path / "no-suffix"
    with Store(store, create=True) as writer:
        writer.write(records_from_spans(recorded.spans))
    assert isinstance(open_source(str(store)), StoreSource)
    json_file = tmp_path / "traces.txt"
    json_file.write_text("\n  " + json.dumps(otlp_document(recorded.spans)))
    assert isinstance(open_source(str(json_file)), OtlpJsonSource)
    empty_store = tmp_path / "empty.db"
    empty_store.touch()
    with open_source(str(empty_store)) as source:
        assert source.sessions() == []
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="neither an agentotel store"):
        open_source(str(tmp_path / "notes.txt"))
    with pytest.raises(SourceError, match="no such file"):
        open_source(str(tmp_path / "missing.json"))
    with pytest.raises(SourceError, match="is a folder"):
        open_source(str(tmp_path))
    assert isinstance(open_source(f"file://{json_file}"), OtlpJsonSource)


def test_url_schemes_open_registered_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    class Fixed(RecordsSource):
        def records(self) -> list[agentotel.SpanRecord]:
            return []

    opened: list[str] = []

    def opener(location: str) -> SpanSource:
        opened.append(location)
        return Fixed(location)

    monkeypatch.setitem(SCHEMES, "fake", "agentotel.sources.does_not_exist")
    with pytest.raises(SourceError, match="the fake source is not available"):
        open_source("fake+http://localhost:1")
    register_source("fake", opener)
    source = open_source("fake+https://example.invalid:443/x")
    assert opened == ["fake+https://example.invalid:443/x"] and source.location == opened[0]
    with pytest.raises(SessionNotFound, match="no sessions"):
        source.session("last")
    with pytest.raises(SourceError, match="unknown source"):
        open_source("nosuch+http://localhost:1")
    assert {"jaeger", "tempo", "phoenix"} <= set(SCHEMES)


def test_ambiguous_and_unknown_references(tmp_path: Path, cap: Capture) -> None:
    for n in range(30):  # enough sessions that some share a first hex digit
        with agentotel.session(f"s{n}"):
            pass
    path = tmp_path / "t.json"
    path.write_text(json.dumps(otlp_document(cap.spans)))
    with open_source(str(path)) as source:
        sessions = source.sessions()
        first_chars = [s.id[0] for s in sessions]
        shared = next(c for c in first_chars if first_chars.count(c) > 1)
        with pytest.raises(SessionNotFound, match="give more of it"):
            source.session(shared)
        with pytest.raises(SessionNotFound, match="no session or trace"):
            source.session("not-an-id")
        assert source.session("last").name == "s29"
        assert source.session(sessions[0].id[:12]).id == sessions[0].id
