"""The Tempo source against a loopback Tempo: trace by id (v2, and v1 `batches`), TraceQL search, Tempo's JSON
quirks, and the multi-tenant header."""

from __future__ import annotations

import pytest
from fake_backends import FakeTempo
from source_scenario import Recorded, assert_same_summary, fingerprint

from agentotel.sources import SessionNotFound, SessionSummary, SourceError, open_source
from agentotel.sources.tempo import TempoSource, records_from_tempo_json, traceql_equals


@pytest.mark.parametrize("v2", [True, False], ids=["v2", "v1"])
def test_every_session_comes_back_as_it_was_recorded(recorded: Recorded, v2: bool) -> None:
    with FakeTempo(recorded.spans, v2=v2) as tempo:
        source = open_source(f"tempo+{tempo.url}")
        assert isinstance(source, TempoSource)
        summaries = {s.id: s for s in source.sessions()}
        expected = {s.id: s for s in recorded.sessions if s.id != recorded.plain_trace_id}
        assert set(summaries) == set(expected)
        for session_id, session in expected.items():
            assert_same_summary(summaries[session_id], SessionSummary.from_session(session))
            assert fingerprint(source.session(session_id)) == fingerprint(session)
    fetched = {r.path.split("/api/")[1].split("/")[0] for r in tempo.requests if "/traces/" in r.path}
    assert fetched == ({"v2"} if v2 else {"v2", "traces"})  # an old Tempo is asked v2 once, then v1


def test_sessions_are_searched_with_traceql_in_a_time_window(recorded: Recorded) -> None:
    with FakeTempo(recorded.spans) as tempo:
        open_source(f"tempo+{tempo.url}?page_size=7").sessions(state="fail")
        open_source(f"tempo+{tempo.url}").session(recorded.triage.id)
    listing, by_id = [r for r in tempo.requests if r.path == "/api/search"]
    query, selected = (listing.one("q") or "").split(" | ")
    assert query == '{ span.agentotel.step.kind = "session" && span.agentotel.session.end_state = "Fail" }'
    assert selected.startswith("select(span.session.id, ") and "span.agentotel.session.cost.amount" in selected
    assert listing.one("limit") == "7"  # a page; the root spans' totals come with it, no trace is fetched
    assert int(listing.one("start") or 0) < int(listing.one("end") or 0)
    assert by_id.one("q") == f'{{ span.session.id = "{recorded.triage.id}" }}'


def test_state_filter_keeps_the_failed_session_only(recorded: Recorded) -> None:
    with FakeTempo(recorded.spans) as tempo:
        failed = open_source(f"tempo+{tempo.url}").sessions(state="Fail")
    assert [s.id for s in failed] == [recorded.triage.id]
    assert failed[0].error_count == 1


def test_trace_ids_without_leading_zeros_and_bare_traces(recorded: Recorded) -> None:
    with FakeTempo(recorded.spans) as tempo:
        source = open_source(f"tempo+{tempo.url}")
        short = recorded.support.trace_id.lstrip("0")  # as Tempo's search shows it
        assert source.session(short).id == recorded.support.id
        bare = source.session(recorded.plain_trace_id)
        with pytest.raises(SessionNotFound):
            source.session("f" * 32)
    assert bare.id == recorded.plain_trace_id and bare.name == "nightly-job"


def test_the_tenant_goes_in_the_scope_header(recorded: Recorded, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeTempo(recorded.spans, tenant="acme") as tempo:
        with pytest.raises(SourceError, match="HTTP 401") as raised:
            open_source(f"tempo+{tempo.url}").sessions()
        assert "\n" not in str(raised.value)
        assert len(open_source(f"tempo+{tempo.url}?tenant=acme").sessions()) == 3
        monkeypatch.setenv("AGENTOTEL_TEMPO_TENANT", "acme")
        assert len(open_source(f"tempo+{tempo.url}").sessions()) == 3
    assert {r.headers.get("x-scope-orgid") for r in tempo.requests[1:]} == {"acme"}


def test_traceql_strings_are_escaped() -> None:
    assert traceql_equals({"session.id": 'a"b\\c'}) == '{ span.session.id = "a\\"b\\\\c" }'


def test_tempo_json_quirks_are_undone() -> None:
    # Written from Tempo's answer format: base64 ids (a 64-bit trace id among them), enum names, int64 as text.
    document = {
        "trace": {
            "batches": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "agent"}}]},
                    "scopeSpans": [
                        {
                            "scope": {"name": "agentotel"},
                            "spans": [
                                {
                                    "traceId": "AAAAAAAAAAAAAAAAAAAAAQ==",
                                    "spanId": "AAAAAAAAAAI=",
                                    "name": "execute_tool refund",
                                    "kind": "SPAN_KIND_CLIENT",
                                    "startTimeUnixNano": "1700000000000000001",
                                    "endTimeUnixNano": "1700000000000000009",
                                    "attributes": [{"key": "gen_ai.tool.name", "value": {"stringValue": "refund"}}],
                                    "status": {"code": "STATUS_CODE_ERROR", "message": "no"},
                                },
                                {
                                    "traceId": "0a1b2c3d4e5f6071",
                                    "spanId": "ab",
                                    "parentSpanId": "AAAAAAAAAAI=",
                                    "name": "child",
                                    "kind": "SPAN_KIND_INTERNAL",
                                    "startTimeUnixNano": "1700000000000000002",
                                    "endTimeUnixNano": "1700000000000000003",
                                },
                            ],
                        }
                    ],
                }
            ]
        }
    }
    first, second = records_from_tempo_json(document)
    assert first.trace_id == "00000000000000000000000000000001"
    assert first.span_id == "0000000000000002"
    assert (first.kind, first.status_code, first.status_message) == ("CLIENT", "ERROR", "no")
    assert first.start_ns == 1_700_000_000_000_000_001 and first.service_name == "agent"
    assert second.trace_id == "00000000000000000a1b2c3d4e5f6071"
    assert second.span_id == "00000000000000ab" and second.parent_span_id == first.span_id
    assert records_from_tempo_json({}) == []
    assert records_from_tempo_json({"trace": {}, "status": "complete"}) == []
