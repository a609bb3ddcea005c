"""The content policy holds for every span, whoever made it: with content capture off no prompt, completion, tool
argument or result of any instrumentation leaves the process (exporters, the store, live sessions); with it on,
redaction runs on all of it, events included; a user can keep one library's own content explicitly."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import agentotel
from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.live import registry
from agentotel.testing import capture

SECRET = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX0123456789"
PROMPT = f"my key is {SECRET}, please refund ada@example.com"

FOREIGN_CONTENT: dict[str, Any] = {
    # the current conventions, written by another library
    sc.GEN_AI_INPUT_MESSAGES: json.dumps([{"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]),
    sc.GEN_AI_SYSTEM_INSTRUCTIONS: json.dumps([{"type": "text", "content": PROMPT}]),
    # OpenInference
    sc.INPUT_VALUE: PROMPT,
    sc.OUTPUT_VALUE: PROMPT,
    "llm.input_messages.0.message.role": "user",
    "llm.input_messages.0.message.content": PROMPT,
    "llm.output_messages.0.message.content": PROMPT,
    # Traceloop / the older conventions
    "gen_ai.prompt.0.content": PROMPT,
    "gen_ai.completion.0.content": PROMPT,
    sc.GEN_AI_PROMPT: PROMPT,
    # frameworks' own
    sc.PYDANTIC_AI_ALL_MESSAGES: json.dumps([{"parts": [{"content": PROMPT}]}]),
    sc.GCP_VERTEX_AGENT_LLM_REQUEST: json.dumps({"contents": [{"role": "user", "parts": [{"text": PROMPT}]}]}),
    sc.ANTHROPIC_TOOL_RESULT_CONTENT: PROMPT,
}
NOT_CONTENT = {
    sc.GEN_AI_OPERATION_NAME: "chat",
    sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
    sc.GEN_AI_USAGE_INPUT_TOKENS: 10,
    sc.GEN_AI_USAGE_OUTPUT_TOKENS: 2,
    sc.LLM_MODEL_NAME: "gpt-4o",
}
CONTENT_EVENTS = [
    ("gen_ai.user.message", {"content": PROMPT}),
    ("gen_ai.choice", {"index": 0, "finish_reason": "stop", "message": json.dumps({"content": PROMPT})}),
    ("gen_ai.client.inference.operation.details", {sc.GEN_AI_INPUT_MESSAGES: PROMPT}),
]


@pytest.fixture
def restore_settings() -> Iterator[None]:
    saved = (settings.capture_content, settings.keep_content_from)
    yield
    settings.capture_content, settings.keep_content_from = saved


def _foreign_span(scope: str = "openinference.instrumentation.langchain") -> None:
    """A span as another instrumentation writes it (its own tracer, the same global provider), in a session."""
    with agentotel.session("policy"):
        tracer = trace.get_tracer(scope)
        with tracer.start_as_current_span("ChatOpenAI") as span:
            span.set_attributes({**FOREIGN_CONTENT, **NOT_CONTENT})
            for name, attributes in CONTENT_EVENTS:
                span.add_event(name, attributes)
            span.add_event("retry", {"attempt": 1})  # not content: kept


def _texts(value: Any) -> str:
    return json.dumps(value, default=str)


def test_capture_off_drops_every_librarys_content_before_any_exporter_or_session(restore_settings: None) -> None:
    with capture(capture_content=False) as cap:
        _foreign_span()
    (span,) = [s for s in cap.spans if s.name == "ChatOpenAI"]
    attributes = dict(span.attributes or {})
    assert not set(FOREIGN_CONTENT) & set(attributes), sorted(set(FOREIGN_CONTENT) & set(attributes))
    assert not [k for k in attributes if k.startswith(("llm.input_messages.", "gen_ai.prompt.", "gen_ai.completion."))]
    assert attributes[sc.GEN_AI_REQUEST_MODEL] == "gpt-4o" and attributes[sc.GEN_AI_USAGE_INPUT_TOKENS] == 10
    assert [event.name for event in span.events] == ["retry"]
    assert SECRET not in _texts(attributes) and "ada@example.com" not in _texts(attributes)
    # the live session and the rebuilt one hold none of it either
    live = registry.last_ended
    assert live is not None
    for session in (live, cap.session("policy")):
        (call,) = session.llm_calls
        assert call.params is None and call.returns is None
        assert SECRET not in _texts(session.to_dict())


def test_capture_off_keeps_content_from_a_library_the_user_names(restore_settings: None) -> None:
    settings.keep_content_from = ("openinference.instrumentation",)
    with capture(capture_content=False) as cap:
        _foreign_span("openinference.instrumentation.langchain")
        _foreign_span("langsmith")
    by_scope = {s.instrumentation_scope.name: s for s in cap.spans if s.name == "ChatOpenAI"}
    kept = dict(by_scope["openinference.instrumentation.langchain"].attributes or {})
    assert kept[sc.INPUT_VALUE] == PROMPT  # kept as the library wrote it: agentotel's redaction is off with capture
    assert len(by_scope["openinference.instrumentation.langchain"].events) == len(CONTENT_EVENTS) + 1
    assert sc.INPUT_VALUE not in (by_scope["langsmith"].attributes or {})


def test_keep_content_from_is_read_from_the_environment(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from agentotel._config import settings
        print(",".join(settings.keep_content_from))
        """
    )
    env = {"AGENTOTEL_KEEP_CONTENT_FROM": " pydantic-ai , ,langsmith", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "pydantic-ai,langsmith"


def test_capture_on_redacts_every_librarys_content_and_content_events(restore_settings: None) -> None:
    with capture(capture_content=True) as cap:
        _foreign_span()
    (span,) = [s for s in cap.spans if s.name == "ChatOpenAI"]
    attributes = dict(span.attributes or {})
    assert set(FOREIGN_CONTENT) <= set(attributes), "content stays with capture on"
    assert SECRET not in _texts(attributes) and "ada@example.com" not in _texts(attributes)
    assert "[REDACTED:openai_key]" in attributes["llm.input_messages.0.message.content"]
    assert "[REDACTED:email]" in attributes[sc.INPUT_VALUE]
    events = {event.name: dict(event.attributes or {}) for event in span.events}
    assert set(events) == {name for name, _ in CONTENT_EVENTS} | {"retry"}
    assert SECRET not in _texts(events)
    assert events["gen_ai.user.message"]["content"].startswith("my key is [REDACTED:openai_key]")
    assert events["gen_ai.choice"]["finish_reason"] == "stop" and events["gen_ai.choice"]["index"] == 0


def test_the_redaction_hook_sees_other_libraries_attributes_and_events(
    restore_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentotel.redaction import redaction

    seen: list[str] = []

    def hook(key: str, text: str) -> str | None:
        seen.append(key)
        return None if key == "gen_ai.user.message.content" else text

    monkeypatch.setattr(redaction, "hook", hook)
    with capture(capture_content=True) as cap:
        _foreign_span()
    (span,) = [s for s in cap.spans if s.name == "ChatOpenAI"]
    assert sc.ANTHROPIC_TOOL_RESULT_CONTENT in seen and "llm.output_messages.0.message.content" in seen
    assert "gen_ai.user.message.content" in seen and "gen_ai.choice.message" in seen
    user = next(e for e in span.events if e.name == "gen_ai.user.message")
    assert "content" not in (user.attributes or {}), "the hook's None drops that attribute of the event"


def test_the_store_never_holds_another_librarys_content_with_capture_off(
    restore_settings: None, tmp_path: Path
) -> None:
    from agentotel.store import StoreSpanExporter

    db = tmp_path / "sessions.db"
    exporter = StoreSpanExporter(db)
    with capture(capture_content=False) as cap:
        _foreign_span()
    exporter.export(cap.spans)
    exporter.shutdown()
    dump = "\n".join(str(row) for row in sqlite3.connect(db).execute("select * from spans"))
    assert "ChatOpenAI" in dump and SECRET not in dump and "refund" not in dump
