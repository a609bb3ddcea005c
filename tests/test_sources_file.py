"""Sources: OTLP JSON and JSON Lines files -> the same sessions as live; telling files apart; the URL-scheme
registry; one-line errors for files that are not traces."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

import agentotel
from agentotel import semconv as sc
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


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ('{"name": "a\x01b"}', "not valid JSON (Invalid control character at line 1, column 12)"),
        ("{not json", "not valid JSON (Expecting property name enclosed in double quotes at line 1, column 2)"),
        ('{"resourceSpans": []}\n{"a": "\x01"}\n', "line 2 is not valid JSON (Invalid control character at column 8)"),
    ],
)
def test_a_json_error_says_what_and_where_once(tmp_path: Path, content: str, says: str) -> None:
    """`json`'s message for a control character ends in "at": the error read "at at line 1"."""
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(SourceError) as raised, open_source(str(path)) as source:
        source.sessions()
    message = str(raised.value)
    assert message.startswith(str(path)) and message.endswith(says), message
    assert "at at" not in message


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


# --- the fast path of the OTLP JSON reader -------------------------------------------------------------------------
# `_fast_span` reads spans as the OTLP JSON encoding writes them with fewer tests than `_span`, and leaves every other
# span to `_span`: whatever it returns must equal what `_span` returns, and it must give up on any span `_span`
# refuses. `_documents` keeps the first document of a JSON Lines file instead of parsing it twice: it must return
# what parsing each line does.

HEX16 = st.text("0123456789abcdef", min_size=16, max_size=16)
HEX32 = st.text("0123456789abcdef", min_size=32, max_size=32)
odd_scalars = st.sampled_from(
    [None, "", 0, 1, -1, 2.0, 3.5, True, False, "0", "12", " 12", "+7", "1_0", "x", "١٢", "NaN", "Infinity", [], {}]
)
ids16 = st.one_of(
    HEX16,
    HEX16.map(str.upper),
    HEX16.map(lambda h: base64.b64encode(bytes.fromhex(h)).decode()),
    st.just("0" * 16),
    HEX32,
    odd_scalars,
)
ids32 = st.one_of(
    HEX32,
    HEX32.map(str.upper),
    HEX32.map(lambda h: base64.b64encode(bytes.fromhex(h)).decode()),
    st.just("0" * 32),
    HEX16,
    odd_scalars,
)
times = st.one_of(
    st.integers(0, 2**64).map(str), st.integers(-5, 2**64), st.floats(allow_nan=True), odd_scalars, st.just("9" * 5000)
)
short_text = st.text(max_size=8) | st.sampled_from(["llm", "tool", "session", sc.SESSION_ID, "x" * 70])


def any_values(depth: int = 2) -> st.SearchStrategy[Any]:
    scalar = st.one_of(
        short_text.map(lambda t: {"stringValue": t}),
        st.integers(-(2**70), 2**70).map(lambda i: {"intValue": str(i)}),
        st.integers(-5, 5).map(lambda i: {"intValue": i}),
        st.booleans().map(lambda b: {"boolValue": b}),
        st.floats(allow_nan=True).map(lambda f: {"doubleValue": f}),
        st.sampled_from(["NaN", "Infinity", "1.5", "x", True]).map(lambda d: {"doubleValue": d}),
        odd_scalars.map(lambda v: {"stringValue": v}),
        odd_scalars.map(lambda v: {"intValue": v}),
        short_text.map(lambda t: {"string_value": t}),
        short_text.map(lambda t: {"bytesValue": t}),
        st.just({}),
        st.just({"stringValue": "a", "intValue": "1"}),
        st.just({"intValue": "1", "boolValue": False}),
        st.just({"arrayValue": None}),
        st.just({"arrayValue": {"values": None}}),
        st.just({"arrayValue": {"values": "no"}}),
        st.just({"arrayValue": []}),
        odd_scalars,
    )
    if depth == 0:
        return scalar
    inner = any_values(depth - 1)
    return st.one_of(
        scalar,
        st.lists(inner, max_size=3).map(lambda vs: {"arrayValue": {"values": vs}}),
        st.lists(attribute_items(inner), max_size=2).map(lambda vs: {"kvlistValue": {"values": vs}}),
    )


def attribute_items(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = short_text | st.sampled_from([1, None, sc.SESSION_ID])
    item = st.builds(lambda k, v: {"key": k, "value": v}, keys, values)
    return st.one_of(
        item, item, item, st.just({"value": {"stringValue": "no key"}}), st.just({"key": "no value"}), odd_scalars
    )


FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "traceId": ids32,
    "spanId": ids16,
    "parentSpanId": ids16,
    "parent_span_id": ids16,
    "trace_id": ids32,
    "span_id": ids16,
    "name": short_text | odd_scalars,
    "kind": st.sampled_from([0, 1, 2, 3, 4, 5, 6, True, 2.0, "SPAN_KIND_SERVER", "span_kind_client", "CLIENT", "-1"])
    | odd_scalars,
    "startTimeUnixNano": times,
    "start_time_unix_nano": times,
    "endTimeUnixNano": times,
    "end_time_unix_nano": times,
    "status": st.one_of(
        st.fixed_dictionaries(
            {},
            optional={
                "code": st.sampled_from([0, 1, 2, 7, "STATUS_CODE_ERROR", "Ok", 1.0]) | odd_scalars,
                "message": short_text | odd_scalars,
            },
        ),
        odd_scalars,
    ),
    "attributes": st.lists(attribute_items(any_values()), max_size=6) | odd_scalars,
    "events": st.lists(
        st.fixed_dictionaries(
            {"name": st.sampled_from(["exception", "other"]), "attributes": st.lists(attribute_items(any_values(0)))}
        ),
        max_size=2,
    )
    | odd_scalars,
}


USUAL: dict[str, st.SearchStrategy[Any]] = {
    "traceId": HEX32,
    "spanId": HEX16,
    "parentSpanId": HEX16,
    "name": short_text,
    "kind": st.integers(1, 5),
    "startTimeUnixNano": st.integers(0, 2**63 - 1).map(str),
    "endTimeUnixNano": st.integers(0, 2**63 - 1).map(str),
    "status": st.sampled_from([{}, {"code": 2, "message": "boom"}, {"code": 1}]),
    "attributes": st.lists(
        st.builds(
            lambda k, v: {"key": k, "value": v},
            short_text,
            st.one_of(
                short_text.map(lambda t: {"stringValue": t}),
                st.integers(0, 2**40).map(lambda i: {"intValue": str(i)}),
                st.lists(short_text.map(lambda t: {"stringValue": t}), max_size=2).map(
                    lambda vs: {"arrayValue": {"values": vs}}
                ),
                any_values(1),
            ),
        ),
        max_size=6,
    ),
}


@st.composite
def odd_spans(draw: st.DrawFn) -> dict[str, Any]:
    """Spans as the encoding writes them, some of their fields replaced by an odd value, dropped, or written as
    another writer would (snake case, base64 ids, enum names)."""
    span = {}
    for name, odd in FIELDS.items():
        usual = USUAL.get(name)
        if usual is None:  # the snake case names and events: now and then
            choice = draw(st.sampled_from(["none", "none", "none", "odd"]))
        else:  # mostly the usual value; now and then an odd one, or none
            choice = draw(st.sampled_from(["usual"] * 8 + ["none", "odd"]))
        if choice == "usual" and usual is not None:
            span[name] = draw(usual)
        elif choice == "odd":
            span[name] = draw(odd)
    return span


def general_read(span: Any, service: str | None) -> tuple[str, Any]:
    from agentotel.sources.otlp_json import _span

    try:
        return ("record", _span(span, service))
    except Exception as error:
        return ("refused", type(error))


@settings(max_examples=800, deadline=None)
@given(spans=st.lists(odd_spans(), min_size=1, max_size=4), service=st.sampled_from([None, "svc"]))
def test_the_fast_path_reads_a_span_as_the_general_one_or_leaves_it(spans: list[Any], service: str | None) -> None:
    from agentotel.sources.otlp_json import _fast_span, _Memo

    memo = _Memo()  # shared by the spans, as a file's documents share it
    for span in spans:
        expected = general_read(span, service)
        try:
            got = _fast_span(span, service, memo)
        except Exception:
            continue  # left to `_span`
        assert repr(expected) == repr(("record", got)), span  # repr: NaN equals NaN, 1 differs from 1.0 and True


@settings(max_examples=300, deadline=None)
@given(spans=st.lists(odd_spans(), min_size=1, max_size=5))
def test_records_of_odd_documents_are_those_of_the_general_path(spans: list[Any]) -> None:
    from agentotel.sources.otlp_json import _span

    document = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}
    expected: list[Any] | type[Exception]
    try:
        expected = [_span(span, None) for span in spans]
    except ValueError:
        expected = ValueError
    try:
        got: list[Any] | type[Exception] = records_from_otlp_json(document)
    except ValueError:
        got = ValueError
    assert repr(got) == repr(expected)


def test_the_records_of_a_file_share_the_attribute_names_agentotel_reads(tmp_path: Path) -> None:
    """Names and short values are shared, the names agentotel looks up as its own objects: a large part of the
    speed of building sessions from a file (see `_Memo`)."""
    span = {
        "traceId": "ab" * 16,
        "spanId": "cd" * 8,
        "name": "chat gpt-4o",
        "startTimeUnixNano": "1",
        "attributes": [{"key": sc.SESSION_ID, "value": {"stringValue": "s-1"}}],
    }
    lines = [json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) for _ in range(3)]
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(lines))
    records = read_otlp_json(path)
    keys = [next(iter(r.attributes)) for r in records]
    assert all(key is sc.SESSION_ID for key in keys)
    values = [r.attributes[sc.SESSION_ID] for r in records]
    assert values == ["s-1"] * 3 and values[0] is values[1] is values[2]


def reference_documents(text: str) -> list[tuple[int | None, Any]]:
    """What `_documents` returned before it kept the first document of JSON Lines (the definition)."""
    from agentotel.sources.otlp_json import json_error_text

    try:
        return [(None, json.loads(text))]
    except RecursionError:
        raise ValueError("nested too deeply to be an OTLP document") from None
    except json.JSONDecodeError as whole_error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if len(lines) <= 1:
            raise ValueError(f"not valid JSON ({json_error_text(whole_error)})") from None
        documents: list[tuple[int | None, Any]] = []
        for number, line in lines:
            try:
                documents.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                raise ValueError(f"line {number} is not valid JSON ({json_error_text(error, line=False)})") from None
            except RecursionError:
                raise ValueError(f"line {number} is nested too deeply to be an OTLP document") from None
        return documents


JSON_PIECES = ['{"a": 1}', '{"a":\n 1}', "[1, 2]", "12", "1e5", '"text"', "null", "true", "{", "}", '{"a": 1} {"b": 2}']
SPACE_PIECES = ["\n", "\r\n", "\r", " ", "\t", "\u2028", "\x0c", "\ufeff", "\u3000", "x", "[" * 3000 + "]" * 3000]
json_pieces = st.sampled_from([*JSON_PIECES, *SPACE_PIECES])


@settings(max_examples=500, deadline=None)
@given(pieces=st.lists(json_pieces, min_size=1, max_size=8))
def test_documents_are_those_of_parsing_each_line(pieces: list[str]) -> None:
    from agentotel.sources.otlp_json import _documents

    text = "".join(pieces)
    try:
        expected: Any = reference_documents(text)
    except ValueError as error:
        expected = str(error)
    try:
        got: Any = _documents(text)
    except ValueError as error:
        got = str(error)
    assert got == expected


def test_json_lines_with_space_around_the_first_document(tmp_path: Path) -> None:
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8}]}]}]}
    text = " \n\t" + json.dumps(document) + " \r\n\n" + json.dumps(document) + "\n"
    path = tmp_path / "spans.jsonl"
    path.write_text(text)
    assert len(read_otlp_json(path)) == 2


# --- the typed reader (the `fast` extra: msgspec) ------------------------------------------------------------------


def general_file_read(path: Path) -> Any:
    """What the general reader (no msgspec) gives for a file: its records, or the kind of error."""
    from agentotel.sources import otlp_json

    typed, otlp_json._read_typed = otlp_json._read_typed, None
    try:
        return otlp_json.read_otlp_json(path)
    except Exception as error:
        return type(error)
    finally:
        otlp_json._read_typed = typed


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spans=st.lists(odd_spans(), min_size=1, max_size=5),
    service=st.sampled_from([None, "svc", 7]),
    lines=st.booleans(),
)
def test_the_typed_reader_reads_a_file_as_the_general_one_or_leaves_it(
    tmp_path: Path, spans: list[Any], service: Any, lines: bool
) -> None:
    pytest.importorskip("msgspec")
    from agentotel.sources._otlp_typed import read_typed

    resource = {} if service is None else {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]}
    documents = [{"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]} for span in spans]
    path = tmp_path / "spans.json"
    if lines:
        path.write_text("\n".join(json.dumps(d) for d in documents) + "\n")
    else:
        path.write_text(json.dumps(documents[0]))
    got = read_typed(path.read_bytes())
    if got is not None:  # taken: exactly the general reader's records
        assert repr(got) == repr(general_file_read(path)), documents


def test_the_typed_reader_takes_what_agentotel_and_the_collector_write(tmp_path: Path, recorded: Capture) -> None:
    pytest.importorskip("msgspec")
    from agentotel.sources._otlp_typed import read_typed

    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(json.dumps(otlp_document(recorded.spans[i : i + 2])) for i in range(0, 6, 2)))
    got = read_typed(path.read_bytes())
    assert got is not None and got == general_file_read(path)
    assert [(r.trace_id, r.span_id) for r in got] == [
        (r.trace_id, r.span_id) for r in records_from_spans(recorded.spans[:6])
    ]
