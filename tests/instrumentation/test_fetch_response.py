"""`responses.retrieve` (a stored response fetched by id) is a `fetch_response` operation step: the real `openai`
SDK replays the official instrumentation's recorded retrieve cassettes on loopback under agentotel alone, inside a
session, and the session counts no model call, no tokens and no cost for it, and blames no failure on a fetch whose
response's generation failed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import agentotel
from agentotel import semconv as sc
from agentotel.testing import capture

from . import cassette_replay
from .official_cassettes import SUCCESSOR, cassette_folder


def _cassette(stem: str) -> Path:
    folder, why = cassette_folder(SUCCESSOR)
    if folder is None:
        pytest.skip(why)
    path = folder / f"{stem}.yaml"
    if not path.exists():
        pytest.skip(f"{SUCCESSOR[0]} {SUCCESSOR[1]} has no cassette {stem}")
    return path


def _replayed(stem: str, *, capture_content: bool = False) -> tuple[agentotel.Session, list, BaseException | None]:  # type: ignore[type-arg]
    path = _cassette(stem)
    with (
        cassette_replay.CassetteServer(cassette_replay.load(path)) as server,
        capture(capture_content=capture_content) as cap,
    ):
        with agentotel.session("fetch"):
            outcomes = cassette_replay.replay(server, cassette_replay.plan_for(stem), is_async="async" in stem)
        # The SDK's error for a recorded HTTP error reaches the app unchanged.
        raised = next((o.error for o in outcomes if o.error is not None), None)
        assert not server.errors, server.errors
    spans = [s for s in cap.spans if (s.attributes or {}).get(sc.GEN_AI_OPERATION_NAME) == "fetch_response"]
    return cap.session(), spans, raised


@pytest.mark.parametrize(
    "stem",
    [
        "test_responses_retrieve_basic[content_mode0]",
        "test_async_responses_retrieve_basic[content_mode0]",
        "test_responses_retrieve_streaming[content_mode0]",
        "test_responses_retrieve_raw_response[content_mode0]",
    ],
)
def test_a_fetched_response_is_an_operation_step_with_no_tokens_or_cost(stem: str) -> None:
    session, spans, raised = _replayed(stem)
    assert raised is None
    assert [s.name for s in spans] == ["fetch_response"]
    attributes = dict(spans[0].attributes or {})
    assert attributes[sc.AGENTOTEL_STEP_KIND] == sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION
    assert attributes[sc.GEN_AI_RESPONSE_ID].startswith("resp_")
    assert attributes[sc.GEN_AI_RESPONSE_STATUS] == "completed"
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    assert not any(key.startswith("gen_ai.usage.") for key in attributes), attributes
    assert sc.GEN_AI_OUTPUT_MESSAGES not in attributes  # content capture off
    assert session.llm_calls == []
    assert session.input_tokens == session.output_tokens == 0
    assert session.cost_known and session.cost == 0
    assert [e.name for e in session.events if e.kind == sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION] == ["fetch_response"]
    if "streaming" in stem:
        assert attributes[sc.GEN_AI_REQUEST_STREAM] is True
        assert attributes[sc.GEN_AI_REQUEST_STREAM_CURSOR] == "3"


def test_a_fetched_failed_generation_is_not_a_failed_step() -> None:
    session, spans, raised = _replayed("test_responses_retrieve_failed_generation_is_not_a_fetch_error[content_mode0]")
    assert raised is None
    attributes = dict(spans[0].attributes or {})
    assert attributes[sc.GEN_AI_RESPONSE_STATUS] == "failed"
    assert attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] == ("error",)
    assert sc.ERROR_TYPE not in attributes
    assert session.first_error is None


def test_a_fetch_that_fails_is_the_sessions_error() -> None:
    session, spans, raised = _replayed("test_responses_retrieve_api_error[content_mode0]")
    assert type(raised).__name__ == "NotFoundError"
    assert dict(spans[0].attributes or {})[sc.ERROR_TYPE] == "openai.NotFoundError"
    assert session.first_error is not None and session.first_error.name == "fetch_response"


def test_a_fetched_responses_output_is_recorded_only_with_content_capture() -> None:
    _, spans, _ = _replayed("test_responses_retrieve_captures_content[content_mode0]", capture_content=True)
    attributes = dict(spans[0].attributes or {})
    assert "output_text" not in attributes[sc.GEN_AI_OUTPUT_MESSAGES]  # the conventions' parts, not the SDK's
    assert '"role": "assistant"' in attributes[sc.GEN_AI_OUTPUT_MESSAGES].replace('":"', '": "')
