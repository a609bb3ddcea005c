"""`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=EVENT_ONLY`: a model call's messages go into the conventions'
`gen_ai.client.inference.operation.details` log event (redacted), none onto its span; `SPAN_AND_EVENT` does both;
`SPAN_ONLY` (and `true`) the span only. Each mode runs in a fresh interpreter: the logger provider is global."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, openai
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor, InMemoryLogRecordExporter
    import agentotel
    from agentotel.testing import capture
    from agentotel.testing.llm_server import LLMServer, Reply

    logs = InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    set_logger_provider(provider)
    agentotel.init()
    with LLMServer() as server, capture() as cap:
        server.script(Reply("Refunded, ada@example.com.", input_tokens=9, output_tokens=3))
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
        with agentotel.session("events"):
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "key sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX01"}]
            )
    (span,) = [s for s in cap.spans if s.name.startswith("chat")]
    records = [r.log_record if hasattr(r, "log_record") else r for r in logs.get_finished_logs()]
    print(json.dumps({
        "span_keys": sorted(span.attributes),
        "span_id": format(span.context.span_id, "016x"),
        "events": [
            {"name": r.event_name, "attributes": dict(r.attributes or {}), "span_id": format(r.span_id or 0, "016x")}
            for r in records
        ],
    }))
    """
)


def _run(mode: str) -> dict:  # type: ignore[type-arg]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": mode, "AGENTOTEL_STORE": "off"})
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("mode", "on_span", "as_event"),
    [
        ("EVENT_ONLY", False, True),
        ("SPAN_AND_EVENT", True, True),
        ("SPAN_ONLY", True, False),
        ("true", True, False),
    ],
)
def test_each_content_mode_puts_messages_where_it_says(mode: str, on_span: bool, as_event: bool) -> None:
    found = _run(mode)
    assert ("gen_ai.input.messages" in found["span_keys"]) is on_span, found["span_keys"]
    assert ("gen_ai.output.messages" in found["span_keys"]) is on_span
    events = [e for e in found["events"] if e["name"] == "gen_ai.client.inference.operation.details"]
    assert len(events) == (1 if as_event else 0), found["events"]
    if as_event:
        (event,) = events
        attributes = event["attributes"]
        assert event["span_id"] == found["span_id"], "the event is in the call's span context"
        assert attributes["gen_ai.request.model"] == "gpt-4o-mini" and attributes["gen_ai.usage.input_tokens"] == 9
        inputs = json.loads(attributes["gen_ai.input.messages"])
        assert inputs[0]["parts"][0]["content"] == "key [REDACTED:openai_key]", "redacted as span content is"
        assert "[REDACTED:email]" in attributes["gen_ai.output.messages"]
