"""Other tracers' spans read as the agent's steps: what each span stands for (`kind_of`), and where its content is,
in every form the GenAI conventions, OpenInference, Traceloop, LangSmith and the frameworks write it — through
the one reconstruction path (`build_sessions`), from SDK spans and from OTLP JSON alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentotel import build_sessions, conventions, open_source
from agentotel import semconv as sc
from agentotel.model import KIND_AGENT, KIND_LLM, KIND_OPERATION, KIND_SPAN, KIND_TOOL, Session, kind_of
from agentotel.records import SpanRecord, with_event_content
from agentotel.sources.otlp_json import records_from_otlp_json

TRACE = "ab" * 16


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_USAGE_INPUT_TOKENS: 1}, KIND_LLM),
        ({sc.GEN_AI_OPERATION_NAME: "generate_content"}, KIND_LLM),
        ({sc.GEN_AI_OPERATION_NAME: "execute_tool"}, KIND_TOOL),
        ({sc.GEN_AI_OPERATION_NAME: "invoke_workflow"}, KIND_AGENT),
        # an operation that is no model call is never an LLM call, whatever usage it rolls up
        (
            {sc.GEN_AI_OPERATION_NAME: "chain", sc.GEN_AI_USAGE_INPUT_TOKENS: 120, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 18},
            KIND_SPAN,
        ),
        (
            {sc.GEN_AI_OPERATION_NAME: "chain", sc.LANGSMITH_SPAN_KIND: "chain", sc.GEN_AI_USAGE_INPUT_TOKENS: 1},
            KIND_OPERATION,
        ),
        ({sc.GEN_AI_OPERATION_NAME: "invoke_agent", sc.GEN_AI_USAGE_INPUT_TOKENS: 300}, KIND_AGENT),
        ({sc.OPENINFERENCE_SPAN_KIND: "LLM", sc.LLM_TOKEN_COUNT_PROMPT: 5}, KIND_LLM),
        ({sc.OPENINFERENCE_SPAN_KIND: "CHAIN", sc.LLM_TOKEN_COUNT_PROMPT: 5}, KIND_OPERATION),
        ({sc.OPENINFERENCE_SPAN_KIND: "TOOL"}, KIND_TOOL),
        ({sc.OPENINFERENCE_SPAN_KIND: "AGENT"}, KIND_AGENT),
        ({sc.TRACELOOP_SPAN_KIND: "workflow"}, KIND_AGENT),
        ({sc.TRACELOOP_SPAN_KIND: "tool"}, KIND_TOOL),
        ({sc.LANGSMITH_SPAN_KIND: "llm"}, KIND_LLM),
        ({sc.LLM_TOKEN_COUNT_PROMPT: 5}, KIND_LLM),  # usage and no mark: a model call
        ({sc.GEN_AI_REQUEST_MODEL: "gpt-4o"}, KIND_SPAN),  # a model named, no usage: token counting, not a call
        ({"http.method": "GET"}, KIND_SPAN),
    ],
)
def test_kind_of_reads_every_tracers_mark(attributes: dict[str, Any], kind: str) -> None:
    assert kind_of(attributes) == kind


def _record(
    span_id: str,
    name: str,
    attributes: dict[str, Any],
    *,
    parent: str | None = "0" * 15 + "1",
    start: int = 10,
    end: int = 20,
    status: str = "UNSET",
) -> SpanRecord:
    return SpanRecord(TRACE, span_id, parent, name, "INTERNAL", start, end, attributes, status)


def _session(*records: SpanRecord) -> Session:
    root = _record(
        "0" * 15 + "1",
        "invoke_agent s",
        {sc.AGENTOTEL_STEP_KIND: "session", sc.SESSION_ID: "s"},
        parent=None,
        start=0,
        end=100,
    )
    stamped = [
        SpanRecord(
            r.trace_id,
            r.span_id,
            r.parent_span_id,
            r.name,
            r.kind,
            r.start_ns,
            r.end_ns,
            {**r.attributes, sc.SESSION_ID: "s"},
            r.status_code,
        )
        for r in records
    ]
    (session,) = build_sessions([root, *stamped])
    return session


def test_openinference_spans_read_as_llm_and_tool_steps_with_their_content_and_cost() -> None:
    llm = _record(
        "a" * 16,
        "ChatOpenAI",
        {
            sc.OPENINFERENCE_SPAN_KIND: "LLM",
            sc.LLM_MODEL_NAME: "gpt-4o-mini",
            sc.LLM_PROVIDER: "openai",
            sc.LLM_TOKEN_COUNT_PROMPT: 120,
            sc.LLM_TOKEN_COUNT_COMPLETION: 18,
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be brief.",
            "llm.input_messages.1.message.role": "user",
            "llm.input_messages.1.message.content": "I was charged twice",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.id": "call_1",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "fetch_customer_data",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": '{"customer_id": "cust_42"}',
        },
    )
    tool = _record(
        "b" * 16,
        "fetch_customer_data",
        {
            sc.OPENINFERENCE_SPAN_KIND: "TOOL",
            sc.TOOL_NAME: "fetch_customer_data",
            sc.INPUT_VALUE: '{"customer_id": "cust_42"}',
            sc.INPUT_MIME_TYPE: "application/json",
            sc.OUTPUT_VALUE: '{"name": "Ada"}',
        },
        start=30,
        end=40,
    )
    session = _session(llm, tool)
    (call,) = session.llm_calls
    assert (call.model, call.input_tokens, call.output_tokens) == ("gpt-4o-mini", 120, 18)
    assert call.cost is not None and call.cost > 0
    assert [m["role"] for m in call.params] == ["system", "user"]
    assert call.returns[0]["parts"] == [
        {"type": "tool_call", "id": "call_1", "name": "fetch_customer_data", "arguments": {"customer_id": "cust_42"}}
    ]
    (step,) = session.tool_calls
    assert (step.action_type, step.params, step.returns) == (
        "fetch_customer_data",
        {"customer_id": "cust_42"},
        {"name": "Ada"},
    )
    replay = session.replay()
    assert "fetch_customer_data(customer_id='cust_42')" in replay and "Tool: fetch_customer_data" in replay


def test_traceloop_and_langsmith_forms_read_as_messages() -> None:
    traceloop = _record(
        "c" * 16,
        "openai.chat",
        {
            sc.LLM_REQUEST_TYPE: "chat",
            sc.GEN_AI_SYSTEM: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_PROMPT_TOKENS: 10,
            sc.GEN_AI_USAGE_COMPLETION_TOKENS: 3,
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": "hello",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "hi there",
            "gen_ai.completion.0.finish_reason": "stop",
        },
    )
    langsmith = _record(
        "d" * 16,
        "ChatOpenAI",
        {
            sc.LANGSMITH_SPAN_KIND: "llm",
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 7,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 1,
            sc.GEN_AI_PROMPT: json.dumps({"messages": [[{"role": "user", "content": "ping"}]]}),
            sc.GEN_AI_COMPLETION: json.dumps(
                {"generations": [[{"text": "pong", "message": {"role": "assistant", "content": "pong"}}]]}
            ),
        },
        start=40,
        end=50,
    )
    first, second = _session(traceloop, langsmith).llm_calls
    assert first.params == [{"role": "user", "parts": [{"type": "text", "content": "hello"}]}]
    assert first.returns == [
        {"role": "assistant", "parts": [{"type": "text", "content": "hi there"}], "finish_reason": "stop"}
    ]
    assert second.params == [{"role": "user", "parts": [{"type": "text", "content": "ping"}]}]
    assert second.returns[0]["parts"] == [{"type": "text", "content": "pong"}]


def test_google_adk_request_and_response_attributes_read_as_messages() -> None:
    request = {
        "model": "gemini-2.0-flash",
        "contents": [
            {"role": "user", "parts": [{"text": "charged twice"}]},
            {
                "role": "model",
                "parts": [
                    {"function_call": {"id": "c1", "name": "fetch_customer_data", "args": {"customer_id": "cust_42"}}}
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"function_response": {"id": "c1", "name": "fetch_customer_data", "response": {"name": "Ada"}}}
                ],
            },
        ],
    }
    response = {"content": {"role": "model", "parts": [{"text": "Refunded."}]}, "finish_reason": "STOP"}
    record = _record(
        "e" * 16,
        "call_llm",
        {
            sc.GEN_AI_SYSTEM: "gcp.vertex.agent",
            sc.GEN_AI_REQUEST_MODEL: "gemini-2.0-flash",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 12,
            sc.GCP_VERTEX_AGENT_LLM_REQUEST: json.dumps(request),
            sc.GCP_VERTEX_AGENT_LLM_RESPONSE: json.dumps(response),
        },
    )
    (call,) = _session(record).llm_calls
    assert [m["role"] for m in call.params] == ["user", "assistant", "user"]
    assert call.params[1]["parts"][0] == {
        "type": "tool_call",
        "id": "c1",
        "name": "fetch_customer_data",
        "arguments": {"customer_id": "cust_42"},
    }
    assert call.params[2]["parts"][0] == {"type": "tool_call_response", "id": "c1", "response": {"name": "Ada"}}
    assert call.returns == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Refunded."}], "finish_reason": "stop"}
    ]


def test_content_events_fold_into_the_attributes_every_reader_knows() -> None:
    """The older per-message events on a chat span, and Strands' tool span (arguments in a tool message event, the
    result in a choice event), and the current conventions' details event."""
    chat = with_event_content(
        {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_USAGE_INPUT_TOKENS: 4},
        [
            ("gen_ai.system.message", {"content": "Be brief."}),
            ("gen_ai.user.message", {"content": json.dumps([{"text": "charged twice"}])}),
            (
                "gen_ai.choice",
                {
                    "finish_reason": "tool_use",
                    "message": json.dumps(
                        [
                            {
                                "toolUse": {
                                    "toolUseId": "t1",
                                    "name": "fetch_customer_data",
                                    "input": {"customer_id": "cust_42"},
                                }
                            }
                        ]
                    ),
                },
            ),
        ],
    )
    assert json.loads(chat[sc.GEN_AI_INPUT_MESSAGES]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": "charged twice"}]},
    ]
    assert json.loads(chat[sc.GEN_AI_OUTPUT_MESSAGES]) == [
        {
            "role": "assistant",
            "finish_reason": "tool_use",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "t1",
                    "name": "fetch_customer_data",
                    "arguments": {"customer_id": "cust_42"},
                }
            ],
        }
    ]
    tool = with_event_content(
        {sc.GEN_AI_OPERATION_NAME: "execute_tool", sc.GEN_AI_TOOL_NAME: "fetch_customer_data"},
        [
            ("gen_ai.tool.message", {"role": "tool", "content": json.dumps({"customer_id": "cust_42"}), "id": "t1"}),
            ("gen_ai.choice", {"message": json.dumps([{"text": json.dumps({"name": "Ada"})}]), "id": "t1"}),
        ],
    )
    assert json.loads(tool[sc.GEN_AI_TOOL_CALL_ARGUMENTS]) == {"customer_id": "cust_42"}
    assert json.loads(tool[sc.GEN_AI_TOOL_CALL_RESULT]) == {"name": "Ada"}
    details = with_event_content(
        {sc.GEN_AI_OPERATION_NAME: "chat"},
        [
            (
                "gen_ai.client.inference.operation.details",
                {sc.GEN_AI_INPUT_MESSAGES: '[{"role": "user", "parts": []}]'},
            ),
        ],
    )
    assert details[sc.GEN_AI_INPUT_MESSAGES] == '[{"role": "user", "parts": []}]'
    # what the span itself says wins; a span without content events is returned as it is
    own = {sc.GEN_AI_OPERATION_NAME: "chat", sc.GEN_AI_INPUT_MESSAGES: "[]"}
    assert with_event_content(own, [("gen_ai.user.message", {"content": "x"})])[sc.GEN_AI_INPUT_MESSAGES] == "[]"
    plain = {sc.GEN_AI_OPERATION_NAME: "chat"}
    assert with_event_content(plain, [("retry", {"n": 1})]) is plain


def _otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    return {"stringValue": str(value)}


def _kv(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": _otlp_value(v)} for k, v in attributes.items()]


def test_an_otlp_file_of_a_framework_that_writes_content_as_events_replays_its_tool_call(tmp_path: Path) -> None:
    """Read from a file (as from any backend): the events fold in the same way, the tool step shows its arguments
    and result, its error is attributed."""
    span = {
        "traceId": TRACE,
        "spanId": "f" * 16,
        "name": "execute_tool fetch_customer_data",
        "kind": 1,
        "startTimeUnixNano": "10",
        "endTimeUnixNano": "20",
        "attributes": _kv(
            {
                sc.GEN_AI_OPERATION_NAME: "execute_tool",
                sc.GEN_AI_TOOL_NAME: "fetch_customer_data",
                sc.GEN_AI_SYSTEM: "strands-agents",
            }
        ),
        "events": [
            {
                "name": "gen_ai.tool.message",
                "timeUnixNano": "11",
                "attributes": _kv({"role": "tool", "content": json.dumps({"customer_id": None}), "id": "t1"}),
            },
            {
                "name": "exception",
                "timeUnixNano": "19",
                "attributes": _kv(
                    {sc.EXCEPTION_TYPE: "ValueError", sc.EXCEPTION_MESSAGE: "customer_id cannot be None"}
                ),
            },
        ],
        "status": {"code": 2, "message": "customer_id cannot be None"},
    }
    document = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}
    path = tmp_path / "strands.json"
    path.write_text(json.dumps(document))
    (parsed,) = build_sessions(records_from_otlp_json(json.loads(path.read_text())))
    with open_source(str(path)) as source:  # the file source: the typed (msgspec) reader where it is installed
        from_file = source.session("last")
    for session in (parsed, from_file):
        (step,) = session.tool_calls
        assert step.params == {"customer_id": None}
        assert session.first_error is step and step.error is not None and step.error.type == "ValueError"
        assert "customer_id=None" in session.replay()


def test_parts_of_reads_each_providers_content_blocks() -> None:
    assert conventions.parts_of(
        [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t", "name": "f", "input": {"x": 1}}]
    ) == [
        {"type": "text", "content": "a"},
        {"type": "tool_call", "id": "t", "name": "f", "arguments": {"x": 1}},
    ]
    assert conventions.parts_of(
        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "42"}]}
    ) == [{"type": "tool_call_response", "id": "t", "response": "42"}]
    assert conventions.parts_of("plain") == [{"type": "text", "content": "plain"}]
    assert conventions.parts_of(None) == []
