"""Hostile and odd input gets a safe value or a clear error, never a crash in the user's code: tool arguments and
results JSON cannot hold; attribute values past the OpenTelemetry limits; session names and tags of odd types;
malformed OTLP JSON files and damaged store rows (fuzzed with hypothesis) read only as a one-line `SourceError`."""

from __future__ import annotations

import base64
import copy
import datetime
import decimal
import json
import math
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

import agentotel
from agentotel import semconv as sc
from agentotel._config import settings as agentotel_settings
from agentotel._content import TRUNCATION_MARK
from agentotel.model import Session, build_sessions
from agentotel.records import SpanRecord, records_from_spans
from agentotel.replay.text import render_text
from agentotel.sources import SessionSummary, SourceError
from agentotel.sources.otlp_json import OtlpJsonSource, read_otlp_json, records_from_otlp_json
from agentotel.sources.store import StoreSource
from agentotel.store import Store
from agentotel.testing import Capture, capture

from .support import FaultyOTLPBackend, child_env, run_child

# --- tool arguments and results ------------------------------------------------------------------------------------


class ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")

    def __str__(self) -> str:
        raise RuntimeError("no str either")


class GetattrRaises:
    """Every attribute lookup fails, not with AttributeError (as proxies of dead objects do)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")

    def __repr__(self) -> str:
        return "<getattr raises>"


class DumpRaises:
    def model_dump(self) -> Any:
        raise ValueError("cannot dump")

    def __repr__(self) -> str:
        return "<dump raises>"


class EqRaises:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing")

    __hash__ = object.__hash__


def recursive_list() -> list[Any]:
    value: list[Any] = [1]
    value.append(value)
    return value


def recursive_dict() -> dict[str, Any]:
    value: dict[str, Any] = {"a": 1}
    value["self"] = {"again": value}
    return value


def deep(n: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(n):
        value = [value]
    return value


ODD_VALUES: dict[str, Callable[[], Any]] = {
    "object": object,
    "recursive list": recursive_list,
    "recursive dict": recursive_dict,
    "nested 100000 deep": lambda: deep(100_000),
    "5 MB string": lambda: "x" * 5_000_000,
    "a million ints": lambda: list(range(1_000_000)),
    "1 MB of bytes": lambda: b"\x00\xff" * 500_000,
    "NaN and infinities": lambda: {"nan": math.nan, "inf": math.inf, "-inf": -math.inf},
    "tuple keys": lambda: {(1, 2): "a", None: "b", 3.5: "c"},
    "repr raises": ReprRaises,
    "getattr raises": GetattrRaises,
    "model_dump raises": DumpRaises,
    "eq raises": EqRaises,
    "set and frozenset": lambda: {"s": {1, 2}, "f": frozenset({3})},
    "decimal, datetime, complex": lambda: [decimal.Decimal("1.1"), datetime.datetime.now(), 1j],
    "lone surrogate": lambda: "bad \ud800 text",
    "type objects": lambda: [int, ReprRaises, len],
}


@agentotel.tool
def echo(value: Any) -> Any:
    return value


@agentotel.record_action("odd")
def act(value: Any, *, key: Any = None) -> Any:
    return value


@pytest.mark.parametrize("make", list(ODD_VALUES.values()), ids=list(ODD_VALUES))
def test_odd_arguments_and_results_are_recorded_safely(make: Callable[[], Any], cap_content: Capture) -> None:
    value = make()
    started = time.perf_counter()
    with agentotel.session("odd-input") as s:
        assert echo(value) is value
        assert act(value, key=value) is value
    seconds = time.perf_counter() - started
    assert s.end_state == "Success" and len(s.action_events) == 2
    limit = agentotel_settings.content_max_length
    for span in cap_content.spans:
        for key in (sc.GEN_AI_TOOL_CALL_ARGUMENTS, sc.GEN_AI_TOOL_CALL_RESULT, sc.AGENTOTEL_ACTION_PARAMS):
            text = (span.attributes or {}).get(key)
            if text is not None:
                assert isinstance(text, str) and len(text) <= limit
                if not text.endswith(TRUNCATION_MARK):
                    json.loads(text)  # whole content is valid JSON
    assert seconds < 5, f"recording took {seconds:.1f}s"


def test_a_generator_argument_is_not_consumed(cap_content: Capture) -> None:
    items = (n for n in range(3))
    with agentotel.session("lazy-arg"):
        echo(items)
    assert list(items) == [0, 1, 2]


# --- OpenTelemetry attribute limits --------------------------------------------------------------------------------

LIMITED = """
import sys
import openai
import agentotel
from agentotel.testing.llm_server import LLMServer

agentotel.init(capture_content=True)

@agentotel.tool
def echo(value):
    return value

with LLMServer() as server:
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    with agentotel.session("limited", tags=["t" * 500, "short"]) as s:
        echo("y" * 10_000)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi " * 500}])
print("LIVE", s.end_state, len(s.tool_calls), len(s.llm_calls), s.input_tokens)
agentotel.force_flush()
print("READY-TO-EXIT")
"""


def test_attribute_limits_are_respected_and_sessions_still_rebuild(tmp_path: Path) -> None:
    value_limit, count_limit = 64, 10
    with FaultyOTLPBackend() as backend:
        env = child_env(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=backend.base_url,
            AGENTOTEL_STORE="off",
            OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=str(value_limit),
            OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=str(count_limit),
        )
        run = run_child(LIMITED, env, tmp_path, timeout=60)
        bodies = [a.body for a in backend.attempts if a.status == 200]
    assert run.returncode == 0, run.stderr
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    documents = []
    for body in bodies:
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        documents.append(MessageToDict(message))
    records = [r for document in documents for r in records_from_otlp_json(document)]
    assert len(records) == 3
    for record in records:
        assert len(record.attributes) <= count_limit, record.attributes
        for value in record.attributes.values():
            for item in value if isinstance(value, list) else [value]:
                assert not isinstance(item, str) or len(item) <= value_limit
    # What a session is rebuilt from survives the limits: identity, kind, end state, the LLM call and its usage.
    (session,) = build_sessions(records, include_traces_without_session=False)
    assert (session.name, session.end_state, len(session.tool_calls), len(session.llm_calls)) == (
        "limited",
        "Success",
        1,
        1,
    )
    assert session.input_tokens > 0 and session.cost > 0
    assert f"LIVE Success 1 1 {session.input_tokens}" in run.stdout


# --- odd session names and tags ------------------------------------------------------------------------------------

ODD_NAMES: list[Any] = [
    None,
    "",
    123,
    4.5,
    b"bytes \xff name",
    ReprRaises(),
    ["a", "list"],
    "n" * 100_000,
    "emoji ☃ and \x00 nul",
    object(),
]
ODD_TAGS: list[Any] = [
    None,
    "one-string",
    b"bytes",
    [1, None, 2.5, ReprRaises(), b"b", ("t", "u")],
    {"a": 1, "b": 2},
    (t for t in ["from", "a", "generator"]),
    42,
    ReprRaises(),
    range(10_000),
    [["nested"]],
]


@pytest.mark.parametrize("tags", ODD_TAGS, ids=[f"tags{n}" for n in range(len(ODD_TAGS))])
@pytest.mark.parametrize("name", ODD_NAMES, ids=[f"name{n}" for n in range(len(ODD_NAMES))])
def test_odd_session_names_and_tags_never_raise(name: Any, tags: Any, cap: Capture) -> None:
    with agentotel.session(name, tags=tags) as s:
        s.add_tags([ReprRaises(), 7, "x"])
        assert echo(1) == 1
    manual = agentotel.start_session(tags, name=name, conversation_id=ReprRaises())
    agentotel.end_session(ReprRaises(), ReprRaises(), session=manual)
    for one in (s, manual):
        assert one.ended and isinstance(one.name, str) and len(one.name) <= 256
        assert all(isinstance(t, str) and len(t) <= 256 for t in one.tags) and len(one.tags) <= 256
    assert s.end_state == "Success" and len(s.tool_calls) == 1
    assert manual.end_state == "Indeterminate"
    rebuilt = {x.id: x for x in cap.sessions}
    assert rebuilt[s.id].name == s.name and rebuilt[s.id].tags == s.tags


# --- malformed OTLP JSON -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_document() -> dict[str, Any]:
    """A real OTLP JSON document: a failing session with a nested one, tools, an LLM event, content on."""
    with capture(capture_content=True) as cap:
        try:
            with agentotel.session("seed", tags=["a", "b"]):
                agentotel.record(agentotel.LLMEvent(model="gpt-4o", prompt_tokens=5, completion_tokens=2))
                with agentotel.session("nested"):
                    echo({"k": [1, 2.5, None, True]})
                raise ValueError("boom")
        except ValueError:
            pass
        spans: list[ReadableSpan] = cap.spans
    document = MessageToDict(encode_spans(spans))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    assert len(records_from_otlp_json(document)) == len(spans)
    return document


OTLP_KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "resource",
    "attributes",
    "key",
    "value",
    "stringValue",
    "intValue",
    "doubleValue",
    "boolValue",
    "arrayValue",
    "kvlistValue",
    "bytesValue",
    "values",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "status",
    "code",
    "message",
    "events",
    "startTimeUnixNano",
    "endTimeUnixNano",
    sc.SESSION_ID,
    sc.AGENTOTEL_STEP_KIND,
    sc.AGENTOTEL_SESSION_TAGS,
    sc.GEN_AI_USAGE_INPUT_TOKENS,
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
    | st.sampled_from(["0" * 32, "1" * 16, "session", "llm", "tool", "NaN", "Infinity", "-1", "1e400", "SPAN_KIND_X"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(OTLP_KEYS) | st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def nodes(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value inside a JSON document."""
    yield path
    if isinstance(document, dict):
        for key, value in document.items():
            yield from nodes(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from nodes(value, (*path, index))


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(document)
    target = copied
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copied


def read_all(records: list[SpanRecord]) -> None:
    """What the CLI does with the records of a source: sessions, their summaries, JSON and text replays."""
    for session in build_sessions(records, include_traces_without_session=True):
        SessionSummary.from_session(session).to_dict()
        json.dumps(session.to_dict(), default=str)
        render_text(session)
        repr(session)


FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(data=st.data())
def test_mutated_otlp_json_is_read_or_refused_with_a_clear_error(seed_document: dict[str, Any], data: Any) -> None:
    paths = list(nodes(seed_document))
    path = data.draw(st.sampled_from(paths), label="path")
    document = replaced(seed_document, path, data.draw(json_values, label="value"))
    try:
        records = records_from_otlp_json(document)
    except ValueError as refusal:
        assert_one_line(refusal)  # the documented refusal: the file reader turns it into a one-line SourceError
        return
    assert_normalised_ids(records)
    read_all(records)


@FUZZ
@given(document=json_values)
def test_random_json_is_read_or_refused_with_a_clear_error(document: Any) -> None:
    try:
        records = records_from_otlp_json({"resourceSpans": [{"scopeSpans": [{"spans": [document]}]}]})
    except ValueError as refusal:
        assert_one_line(refusal)
        return
    assert_normalised_ids(records)
    read_all(records)


def assert_one_line(refusal: ValueError) -> None:
    message = str(refusal)
    assert message.strip() and "\n" not in message.strip(), f"a refusal says what is wrong in one line: {message!r}"


def assert_normalised_ids(records: list[SpanRecord]) -> None:
    for record in records:
        assert re.fullmatch(r"[0-9a-f]{32}", record.trace_id), record.trace_id
        assert re.fullmatch(r"[0-9a-f]{16}", record.span_id), record.span_id
        assert record.parent_span_id is None or re.fullmatch(r"[0-9a-f]{16}", record.parent_span_id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_otlp_json_files_are_a_one_line_source_error(
    seed_document: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    text = json.dumps(seed_document)
    kind = data.draw(st.sampled_from(["cut", "bytes", "lines", "deep", "bom"]), label="damage")
    if kind == "cut":
        raw = text[: data.draw(st.integers(0, len(text)), label="at")].encode()
    elif kind == "bytes":
        raw = data.draw(st.binary(max_size=200), label="bytes")
    elif kind == "lines":
        raw = (text + "\n" + data.draw(st.text(max_size=50), label="line") + "\n" + text).encode()
    elif kind == "deep":
        depth = data.draw(st.integers(1_000, 200_000), label="depth")
        raw = ("[" * depth + "]" * depth).encode()
    else:
        raw = b"\xef\xbb\xbf" + text.encode() + data.draw(st.binary(max_size=5), label="tail")
    path = tmp_path_factory.mktemp("otlp") / "trace.json"
    path.write_bytes(raw)
    try:
        source = OtlpJsonSource(path)
        read_all(source.records())
        for summary in source.sessions():
            source.session(summary.id)
    except SourceError as error:
        assert "\n" not in str(error) and str(path) in str(error)


# --- damaged store rows --------------------------------------------------------------------------------------------

COLUMNS = {
    "spans": ["name", "kind", "start_ns", "end_ns", "status_code", "status_message", "attributes", "exceptions"],
    "sessions": ["name", "tags", "start_ns", "end_ns", "end_state", "cost", "input_tokens", "llm_calls", "parent_id"],
}
cell_values = (
    st.none()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.binary(max_size=10)
    | st.sampled_from(["{", "[1, 2", "null", "[]", "{}", '{"a": 1}', '["x", 1, null]', "[{}]", '[{"type": 5}]'])
)


@pytest.fixture(scope="module")
def seed_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with capture(capture_content=True) as cap:
        try:
            with agentotel.session("stored", tags=["x"]):
                echo([1, 2])
                raise ValueError("stored failure")
        except ValueError:
            pass
        path = tmp_path_factory.mktemp("store") / "seed.db"
        with Store(path, create=True) as store:
            store.write(records_from_spans(cap.spans))
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = DELETE")  # one file to copy
    connection.close()
    return path


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_store_rows_are_read_or_refused_with_a_clear_error(
    seed_store: Path, tmp_path_factory: pytest.TempPathFactory, data: Any
) -> None:
    path = tmp_path_factory.mktemp("fuzzstore") / "sessions.db"
    path.write_bytes(seed_store.read_bytes())
    connection = sqlite3.connect(path)
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        table = data.draw(st.sampled_from(sorted(COLUMNS)), label="table")
        column = data.draw(st.sampled_from(COLUMNS[table]), label="column")
        value = data.draw(cell_values, label="value")
        try:
            connection.execute(f"UPDATE {table} SET {column} = ?", (value,))
        except sqlite3.IntegrityError:
            pass  # NOT NULL: SQLite keeps that promise itself
    connection.commit()
    connection.close()
    try:
        with StoreSource(path) as source:
            for summary in source.sessions():
                summary.to_dict()
                session = source.session(summary.id)
                json.dumps(session.to_dict(), default=str)
                render_text(session)
            source.session("last")
    except SourceError as error:
        assert "\n" not in str(error)


def test_a_deeply_nested_otlp_json_file_is_refused_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(SourceError) as raised:
        read_otlp_json(path)
    assert "\n" not in str(raised.value)


def test_sessions_rebuilt_from_odd_attribute_types(cap: Capture) -> None:
    """Attributes another tool wrote with other types than agentotel writes: sessions still rebuild."""
    root = SpanRecord(
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id=None,
        name="invoke_agent odd",
        kind="INTERNAL",
        start_ns=1,
        end_ns=10,
        attributes={
            sc.AGENTOTEL_STEP_KIND: "session",
            sc.SESSION_ID: 5,
            sc.AGENTOTEL_SESSION_TAGS: 7,
            sc.AGENTOTEL_SESSION_DROPPED_EVENTS: "many",
            sc.GEN_AI_AGENT_NAME: ["x"],
        },
    )
    child = SpanRecord(
        trace_id="a" * 32,
        span_id="c" * 16,
        parent_span_id="b" * 16,
        name="chat",
        kind="CLIENT",
        start_ns=2,
        end_ns=3,
        attributes={
            sc.SESSION_ID: "5",
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_USAGE_INPUT_TOKENS: "12",
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: -3.5,
            sc.AGENTOTEL_USAGE_COST_AMOUNT: "0.1",
            sc.GEN_AI_INPUT_MESSAGES: "{not json",
        },
    )
    sessions: list[Session] = build_sessions([root, child])
    assert sessions
    read_all([root, child])


# --- backend answers -----------------------------------------------------------------------------------------------

BACKEND_KEYS = [
    "data",
    "spans",
    "traceID",
    "spanID",
    "operationName",
    "references",
    "refType",
    "startTime",
    "duration",
    "tags",
    "key",
    "value",
    "type",
    "logs",
    "fields",
    "processes",
    "processID",
    "trace",
    "batches",
    "result",
    "context",
    "span_id",
    "trace_id",
    "parent_id",
    "start_time",
    "end_time",
    "attributes",
    "events",
    "status_code",
    *OTLP_KEYS,
]
backend_answers = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["1" * 32, "2" * 16, "CHILD_OF", "int64", "2026-01-01T00:00:00Z"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(BACKEND_KEYS) | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=15,
)


def _readers() -> list[tuple[str, Callable[[Any], Any], tuple[type[Exception], ...]]]:
    """Each backend's answer reader, and the exceptions its source turns into a one-line `SourceError`."""
    from agentotel.sources.jaeger import records_from_jaeger_json, records_from_jaeger_v3
    from agentotel.sources.phoenix import record_from_phoenix_span
    from agentotel.sources.tempo import records_from_tempo_json

    jaeger = (ValueError, TypeError, KeyError, AttributeError)
    phoenix = (ValueError, TypeError, KeyError)
    return [
        ("jaeger", records_from_jaeger_json, jaeger),
        ("jaeger-v3", records_from_jaeger_v3, jaeger),
        ("tempo", records_from_tempo_json, (ValueError, TypeError)),
        # The Phoenix source hands the reader the answer's JSON objects only.
        (
            "phoenix",
            lambda d: [record_from_phoenix_span(d)] if isinstance(d, dict) else [],
            phoenix,
        ),
    ]


@pytest.mark.parametrize("reader", _readers(), ids=lambda r: r[0])
def test_malformed_backend_answers_are_refused_as_their_sources_expect(reader: Any) -> None:
    _, read, refusals = reader

    @settings(max_examples=150, deadline=None, database=None)
    @given(answer=backend_answers)
    def check(answer: Any) -> None:
        try:
            records = read(answer)
        except refusals:
            return
        read_all(records)

    check()
