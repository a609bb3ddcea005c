"""The Phoenix source against a loopback stand-in of Phoenix's REST API (paging, filters, projects). The real
Phoenix is exercised by test_phoenix_e2e.py."""

from __future__ import annotations

import json

import pytest
from fake_backends import FakePhoenix
from source_scenario import Recorded, assert_same_summary, fingerprint

from agentotel.sources import SessionNotFound, SessionSummary, SourceError, open_source
from agentotel.sources.phoenix import PhoenixSource, record_from_phoenix_span


def test_every_session_comes_back_through_paged_answers(recorded: Recorded) -> None:
    with FakePhoenix(recorded.spans, page_size=3) as phoenix:
        source = open_source(f"phoenix+{phoenix.url}")
        assert isinstance(source, PhoenixSource)
        summaries = {s.id: s for s in source.sessions()}
        expected = {s.id: s for s in recorded.sessions if s.id != recorded.plain_trace_id}
        assert set(summaries) == set(expected)
        for session_id, session in expected.items():
            assert_same_summary(summaries[session_id], SessionSummary.from_session(session))
            assert fingerprint(source.session(session_id)) == fingerprint(session)
        bare = source.session(recorded.plain_trace_id)
    assert bare.id == recorded.plain_trace_id
    assert any(r.one("cursor") for r in phoenix.requests)  # more than one page was read


def test_filters_are_sent_as_phoenix_takes_them(recorded: Recorded) -> None:
    with FakePhoenix(recorded.spans) as phoenix:
        open_source(f"phoenix+{phoenix.url}?project=default").session(recorded.support.id)
    first = next(r for r in phoenix.requests if r.path.endswith("/spans"))
    assert first.path == "/v1/projects/default/spans"
    assert first.query["attribute"] == [f"session.id:{json.dumps(recorded.support.id)}"]
    assert first.one("start_time") and first.one("end_time")
    assert not any(r.path == "/v1/projects" for r in phoenix.requests)  # the project was named


def test_an_unknown_project_is_one_clear_line(recorded: Recorded) -> None:
    with FakePhoenix(recorded.spans) as phoenix:
        with pytest.raises(SourceError, match="no project 'nope'") as raised:
            open_source(f"phoenix+{phoenix.url}?project=nope").sessions()
        with pytest.raises(SessionNotFound):
            open_source(f"phoenix+{phoenix.url}").session("no-such-session")
    assert "\n" not in str(raised.value)


def test_a_phoenix_span_becomes_a_record() -> None:
    record = record_from_phoenix_span(
        {
            "id": "U3Bhbjoy",
            "name": "execute_tool boom",
            "context": {"trace_id": "7456da3d567356b353de87d3c826eea7", "span_id": "4c8b3722ba0b83cb"},
            "span_kind": "TOOL",
            "parent_id": "5f14ad7e04444e7d",
            "start_time": "2026-11-25T08:14:20.205420+00:00",
            "end_time": "2026-11-25T08:14:20.205768+00:00",
            "status_code": "ERROR",
            "status_message": "ValueError: bad x",
            "attributes": {"session.id": "s-1", "gen_ai.tool.name": "boom", "agentotel.step.kind": "tool"},
            "events": [
                {
                    "name": "exception",
                    "timestamp": "2026-11-25T08:14:20.205751+00:00",
                    "attributes": {"exception.type": "ValueError", "exception.message": "bad x"},
                }
            ],
        }
    )
    assert record.start_ns == 1_795_594_460_205_420_000 and record.end_ns == 1_795_594_460_205_768_000
    assert (record.status_code, record.status_message) == ("ERROR", "ValueError: bad x")
    assert record.parent_span_id == "5f14ad7e04444e7d"
    assert [str(e) for e in record.exceptions] == ["ValueError: bad x"]
