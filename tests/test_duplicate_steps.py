"""Each step counted once, whatever records it: two spans of one LLM call are one call when nested or side by side
(same response id, or same trace, model, usage and time), a framework's own provider name notwithstanding; a span
rolling up several calls, or an operation that is not a model call, is never counted; a tool call traced twice is
one step, failed with its origin's error."""

from __future__ import annotations

from typing import Any

from agentotel import build_sessions
from agentotel import semconv as sc
from agentotel.model import Session
from agentotel.records import ExceptionInfo, SpanRecord

TRACE = "cd" * 16
ROOT = "0" * 15 + "1"


def _span(span_id: int, parent: int | None, name: str, start: int, end: int, **attributes: Any) -> SpanRecord:
    return SpanRecord(
        TRACE,
        f"{span_id:016x}",
        ROOT if parent is None else f"{parent:016x}",
        name,
        "INTERNAL",
        start,
        end,
        {sc.SESSION_ID: "s", **attributes},
    )


def _ours(
    span_id: int, parent: int | None, start: int, end: int, tokens: tuple[int, int], response_id: str
) -> SpanRecord:
    return _span(
        span_id,
        parent,
        "chat gpt-4o-mini",
        start,
        end,
        **{
            sc.AGENTOTEL_STEP_KIND: "llm",
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_PROVIDER_NAME: "openai",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
            sc.GEN_AI_RESPONSE_ID: response_id,
            sc.GEN_AI_USAGE_INPUT_TOKENS: tokens[0],
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: tokens[1],
        },
    )


def _session(*records: SpanRecord) -> Session:
    root = SpanRecord(
        TRACE,
        ROOT,
        None,
        "invoke_agent s",
        "INTERNAL",
        0,
        1000,
        {sc.AGENTOTEL_STEP_KIND: "session", sc.SESSION_ID: "s"},
    )
    (session,) = build_sessions([root, *records])
    return session


def test_a_frameworks_chat_span_around_ours_counts_once_whatever_provider_it_names() -> None:
    strands = _span(
        10,
        None,
        "chat",
        100,
        200,
        **{
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_SYSTEM: "strands-agents",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 120,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 18,
        },
    )
    session = _session(strands, _ours(11, 10, 110, 190, (120, 18), "chatcmpl-1"))
    assert len(session.llm_calls) == 1 and (session.input_tokens, session.output_tokens) == (120, 18)
    assert [e.duplicate_of for e in session.events if e.kind == "llm"] == [None, f"{10:016x}"]


def test_sibling_spans_of_one_call_count_once_by_response_id_or_by_usage_and_time() -> None:
    """A LangSmith or OpenInference span beside agentotel's (each tracer parents its own span)."""
    langsmith = _span(
        20,
        None,
        "ChatOpenAI",
        100,
        200,
        **{
            sc.LANGSMITH_SPAN_KIND: "llm",
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 120,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 18,
        },
    )
    openinference = _span(
        21,
        None,
        "ChatOpenAI",
        300,
        400,
        **{
            sc.OPENINFERENCE_SPAN_KIND: "LLM",
            sc.LLM_MODEL_NAME: "gpt-4o-mini",
            sc.LLM_TOKEN_COUNT_PROMPT: 180,
            sc.LLM_TOKEN_COUNT_COMPLETION: 12,
            sc.GEN_AI_RESPONSE_ID: "chatcmpl-2",
        },
    )
    session = _session(
        langsmith,
        _ours(22, None, 105, 195, (120, 18), "chatcmpl-1"),
        openinference,
        _ours(23, None, 305, 390, (180, 12), "chatcmpl-2"),
    )
    assert len(session.llm_calls) == 2
    assert (session.input_tokens, session.output_tokens) == (300, 30)
    assert sum(1 for e in session.events if e.duplicate_of) == 2


def test_calls_that_merely_look_alike_are_two_calls() -> None:
    """Side by side with the same usage but other response ids, or one after the other, or both agentotel's."""
    a = _ours(30, None, 100, 200, (50, 5), "chatcmpl-a")
    b = _span(
        31,
        None,
        "ChatOpenAI",
        150,
        250,
        **{
            sc.OPENINFERENCE_SPAN_KIND: "LLM",
            sc.LLM_MODEL_NAME: "gpt-4o-mini",
            sc.LLM_TOKEN_COUNT_PROMPT: 50,
            sc.LLM_TOKEN_COUNT_COMPLETION: 5,
            sc.GEN_AI_RESPONSE_ID: "chatcmpl-b",
        },
    )
    c = _ours(32, None, 300, 400, (50, 5), "chatcmpl-c")
    d = _ours(33, None, 310, 390, (50, 5), "chatcmpl-d")  # parallel calls of agentotel's own: never one call
    e = _span(
        34,
        None,
        "ChatOpenAI",
        500,
        600,
        **{
            sc.LANGSMITH_SPAN_KIND: "llm",
            sc.GEN_AI_REQUEST_MODEL: "claude-3-5-haiku",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 50,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 5,
        },
    )
    f = _ours(35, None, 510, 590, (50, 5), "chatcmpl-f")  # same usage and time, another model
    session = _session(a, b, c, d, e, f)
    assert len(session.llm_calls) == 6 and all(x.duplicate_of is None for x in session.events)


def test_a_span_rolling_up_calls_and_a_chain_with_usage_are_no_calls() -> None:
    chain = _span(
        40,
        None,
        "RunnableSequence",
        100,
        500,
        **{sc.GEN_AI_OPERATION_NAME: "chain", sc.GEN_AI_USAGE_INPUT_TOKENS: 300, sc.GEN_AI_USAGE_OUTPUT_TOKENS: 30},
    )
    agent_llm = _span(
        41,
        40,
        "model",
        110,
        490,
        **{
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 300,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 30,
        },
    )
    session = _session(
        chain, agent_llm, _ours(42, 41, 120, 200, (120, 18), "r1"), _ours(43, 41, 300, 480, (180, 12), "r2")
    )
    assert len(session.llm_calls) == 2
    assert (session.input_tokens, session.output_tokens) == (300, 30)
    totals = session.totals()
    assert totals[sc.AGENTOTEL_SESSION_LLM_CALL_COUNT] == 2


def test_a_tool_traced_twice_is_one_step_failed_with_its_origins_error() -> None:
    """An MCP client's call around the server's span of it, and an `@agentotel.tool` function inside a framework's
    tool step: one step each, named by the outer span, failed as the inner one raised."""
    client = _span(
        50,
        None,
        "execute_tool fetch_customer_data",
        100,
        300,
        **{sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "fetch_customer_data", sc.GEN_AI_TOOL_CALL_ID: "c1"},
    )
    client.status_code, client.exceptions = "ERROR", (ExceptionInfo("tool_error", "Error executing tool"),)
    transport = _span(51, 50, "MCP send tools/call fetch_customer_data", 110, 290)
    server = _span(
        52,
        51,
        "tools/call fetch_customer_data",
        120,
        280,
        **{sc.GEN_AI_OPERATION_NAME: "execute_tool", sc.GEN_AI_TOOL_NAME: "fetch_customer_data"},
    )
    server.status_code, server.exceptions = "ERROR", (ExceptionInfo("ValueError", "customer_id cannot be None"),)
    sibling = _span(
        53,
        None,
        "fetch_customer_data",
        105,
        295,
        **{sc.OPENINFERENCE_SPAN_KIND: "TOOL", sc.TOOL_NAME: "fetch_customer_data", sc.TOOL_CALL_ID: "c1"},
    )
    other = _span(
        54,
        None,
        "execute_tool lookup_invoice",
        400,
        500,
        **{sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "lookup_invoice"},
    )
    session = _session(client, transport, server, sibling, other)
    assert [(e.action_type, e.span_id) for e in session.tool_calls] == [
        ("fetch_customer_data", f"{50:016x}"),
        ("lookup_invoice", f"{54:016x}"),
    ]
    first = session.first_error
    assert first is not None and first.span_id == f"{50:016x}"
    assert first.error is not None and (first.error.type, first.error.message) == (
        "ValueError",
        "customer_id cannot be None",
    )
    assert session.totals()[sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT] == 2
    assert session.totals()[sc.AGENTOTEL_SESSION_ERROR_COUNT] == 1
    assert len(session.errors) == 1


def test_the_same_tool_called_twice_in_a_row_is_two_steps() -> None:
    first = _span(
        60,
        None,
        "execute_tool search",
        100,
        200,
        **{sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "search", sc.GEN_AI_TOOL_CALL_ID: "c1"},
    )
    second = _span(
        61,
        None,
        "execute_tool search",
        300,
        400,
        **{sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "search", sc.GEN_AI_TOOL_CALL_ID: "c2"},
    )
    nested_other = _span(
        62, 61, "execute_tool fetch", 310, 390, **{sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "fetch"}
    )
    session = _session(first, second, nested_other)
    assert [e.action_type for e in session.tool_calls] == ["search", "search", "fetch"]


def test_the_replay_shows_each_call_once_and_says_it_was_traced_twice() -> None:
    strands = _span(
        70,
        None,
        "chat",
        100,
        200,
        **{
            sc.GEN_AI_OPERATION_NAME: "chat",
            sc.GEN_AI_SYSTEM: "strands-agents",
            sc.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            sc.GEN_AI_USAGE_INPUT_TOKENS: 120,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: 18,
        },
    )
    outer_tool = _span(
        72, None, "execute_tool fetch", 300, 400, **{sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "fetch"}
    )
    inner_tool = _span(
        73, 72, "execute_tool fetch", 310, 390, **{sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "fetch"}
    )
    session = _session(strands, _ours(71, 70, 110, 190, (120, 18), "chatcmpl-1"), outer_tool, inner_tool)
    replay = session.replay()
    assert replay.count("LLM Call (") == 1 and replay.count("Tool: fetch") == 1, replay
    assert replay.count("(also traced by another instrumentation; counted once)") == 2, replay
    from agentotel.replay.html import page_data

    rows = page_data(session)["events"]
    assert [row["label"].split(" (")[0] for row in rows] == ["LLM Call", "Tool: fetch"]
    assert rows[-1]["cost_so_far"] == session.cost, "running totals count each call once"
