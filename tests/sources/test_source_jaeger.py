"""The Jaeger source against a loopback Jaeger query service: api_v3 and the legacy API, found out by itself."""

from __future__ import annotations

import json

import pytest
from fake_backends import FakeJaeger
from source_scenario import TOOL_SERVICE, Recorded, assert_same_summary, fingerprint

from agentotel.sources import SessionNotFound, SessionSummary, open_source
from agentotel.sources.jaeger import JaegerSource, records_from_jaeger_json

APIS = ["v3", "legacy"]


@pytest.mark.parametrize("api", APIS)
def test_every_session_comes_back_as_it_was_recorded(recorded: Recorded, api: str) -> None:
    with FakeJaeger(recorded.spans, api=api) as jaeger:
        source = open_source(f"jaeger+{jaeger.url}")
        assert isinstance(source, JaegerSource)
        summaries = {s.id: s for s in source.sessions()}
        assert source.api == api
        expected = {s.id: s for s in recorded.sessions if s.id != recorded.plain_trace_id}
        assert set(summaries) == set(expected)  # sessions only: the trace without one is not listed
        for session_id, session in expected.items():
            assert_same_summary(summaries[session_id], SessionSummary.from_session(session))
            assert fingerprint(source.session(session_id)) == fingerprint(session)
        root = next(s for s in recorded.spans if s.name == "invoke_agent support")
        assert summaries[recorded.support.id].service_name == root.resource.attributes["service.name"]


@pytest.mark.parametrize("api", APIS)
def test_a_tool_served_by_another_service_is_in_the_session(recorded: Recorded, api: str) -> None:
    with FakeJaeger(recorded.spans, api=api) as jaeger:
        support = open_source(f"jaeger+{jaeger.url}").session(recorded.support.id)
    remote = [e for e in support.events if e.name == "geocode"]
    assert len(remote) == 1
    assert remote[0].session_id == recorded.support.id
    assert remote[0].trace_id == recorded.support.trace_id


def test_search_asks_api_v3_for_session_spans_in_a_time_window(recorded: Recorded) -> None:
    with FakeJaeger(recorded.spans) as jaeger:
        open_source(f"jaeger+{jaeger.url}?service={TOOL_SERVICE}").sessions()
    searches = [r for r in jaeger.requests if r.path == "/api/v3/traces"]
    assert [r.one("query.service_name") for r in searches] == [TOOL_SERVICE]  # only the service named
    query = searches[0]
    assert json.loads(query.one("query.attributes") or "") == {"agentotel.step.kind": "session"}
    low, high = query.one("query.start_time_min") or "", query.one("query.start_time_max") or ""
    assert low.endswith("Z") and "T" in low and low < high


def test_a_trace_id_finds_its_session_or_the_bare_trace(recorded: Recorded) -> None:
    with FakeJaeger(recorded.spans) as jaeger:
        source = open_source(f"jaeger+{jaeger.url}")
        assert source.session(recorded.support.trace_id).id == recorded.support.id
        assert source.session(recorded.support.trace_id.upper()).id == recorded.support.id
        # Jaeger prints 64-bit-looking trace ids as 16 digits: padded back to 32.
        assert source.session(recorded.triage.trace_id[16:]).id == recorded.triage.id
        bare = source.session(recorded.plain_trace_id)
    assert bare.id == recorded.plain_trace_id
    assert [e.name for e in bare.events] == ["nightly-job", "cleanup"]


def test_last_and_prefixes_resolve_among_recent_sessions(recorded: Recorded) -> None:
    with FakeJaeger(recorded.spans, api="legacy") as jaeger:
        source = open_source(f"jaeger+{jaeger.url}")
        assert source.session("last").id == recorded.triage.id
        assert source.session(recorded.research.id).parent_id == recorded.support.id
        with pytest.raises(SessionNotFound, match="matches"):
            source.session("sess")


def test_an_unknown_session_is_one_clear_line(recorded: Recorded) -> None:
    with FakeJaeger(recorded.spans) as jaeger, pytest.raises(SessionNotFound) as raised:
        open_source(f"jaeger+{jaeger.url}").session("no-such-session")
    assert "no-such-session" in str(raised.value) and "\n" not in str(raised.value)


def test_legacy_json_quirks_are_undone() -> None:
    document = {
        "data": [
            {
                "traceID": "a1b2c3d4e5f60718",
                "processes": {"p1": {"serviceName": "agent", "tags": []}},
                "spans": [
                    {
                        "traceID": "a1b2c3d4e5f60718",
                        "spanID": "00000000000000ff",
                        "operationName": "invoke_agent support",
                        "references": [],
                        "startTime": 1_700_000_000_000_001,
                        "duration": 2_500,
                        "processID": "p1",
                        "tags": [
                            {"key": "session.id", "type": "string", "value": "s-1"},
                            {"key": "agentotel.step.kind", "type": "string", "value": "session"},
                            {"key": "agentotel.session.tags", "type": "string", "value": '["a", "b"]'},
                            {"key": "agentotel.session.llm_call.count", "type": "int64", "value": 2},
                            {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                            {"key": "otel.status_description", "type": "string", "value": "boom"},
                            {"key": "error", "type": "bool", "value": True},
                            {"key": "span.kind", "type": "string", "value": "server"},
                            {"key": "otel.scope.name", "type": "string", "value": "agentotel"},
                        ],
                        "logs": [
                            {
                                "timestamp": 1_700_000_000_000_002,
                                "fields": [
                                    {"key": "event", "type": "string", "value": "exception"},
                                    {"key": "exception.type", "type": "string", "value": "ValueError"},
                                    {"key": "exception.message", "type": "string", "value": "bad"},
                                ],
                            }
                        ],
                    },
                    {
                        "traceID": "a1b2c3d4e5f60718",
                        "spanID": "100",
                        "operationName": "child",
                        "references": [{"refType": "CHILD_OF", "traceID": "a1b2c3d4e5f60718", "spanID": "ff"}],
                        "startTime": 1_700_000_000_000_002,
                        "duration": 1,
                        "process": {"serviceName": "tools"},
                        "tags": [],
                    },
                ],
            }
        ]
    }
    root, child = records_from_jaeger_json(document)
    assert root.trace_id == "0000000000000000a1b2c3d4e5f60718"
    assert root.span_id == "00000000000000ff" and child.span_id == "0000000000000100"
    assert child.parent_span_id == root.span_id
    assert (root.kind, root.status_code, root.status_message) == ("SERVER", "ERROR", "boom")
    assert root.start_ns == 1_700_000_000_000_001_000 and root.end_ns == 1_700_000_000_002_501_000
    assert root.attributes == {
        "session.id": "s-1",
        "agentotel.step.kind": "session",
        "agentotel.session.tags": ["a", "b"],
        "agentotel.session.llm_call.count": 2,
    }
    assert [str(e) for e in root.exceptions] == ["ValueError: bad"]
    assert (root.service_name, child.service_name) == ("agent", "tools")
