"""agentotel.testing: assertions and their messages, variations, deterministic snapshots, the pytest plugin."""

from __future__ import annotations

import os

import pytest

import agentotel
from agentotel.testing import (
    Capture,
    SessionAssertionError,
    assert_call_order,
    assert_called_before,
    assert_cost_below,
    assert_llm_calls_at_most,
    assert_no_errors,
    assert_tokens_below,
    assert_tool_called,
    assert_tool_not_called,
    deterministic,
    run_variations,
)


@agentotel.tool
def search(q: str) -> str:
    return q


@agentotel.tool
def answer(q: str) -> str:
    if "boom" in q:
        raise RuntimeError("answer failed")
    return q


def _run(text: str) -> agentotel.Session:
    with agentotel.session("agent") as s:
        search(text)
        agentotel.record(agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=100, completion_tokens=10))
        answer(text)
    return s


def test_passing_assertions_return_quietly(cap: Capture) -> None:
    s = _run("hello")
    assert len(assert_tool_called(s, "search", times=1)) == 1
    assert_tool_not_called(s, "delete_account")
    assert_called_before(s, "search", "answer")
    assert_call_order(s, ["search", "answer"])
    assert_no_errors(s)
    assert_cost_below(s, 0.01)
    assert_tokens_below(s, input=101, output=11, total=111)
    assert_llm_calls_at_most(s, 1)


@pytest.mark.parametrize(
    ("check", "expected"),
    [
        (
            lambda s: assert_tool_called(s, "refund"),
            "expected a call of 'refund'; the session called ['search', 'answer']",
        ),
        (lambda s: assert_tool_called(s, "search", times=2), "expected 'search' to be called 2 time(s)"),
        (lambda s: assert_tool_not_called(s, "search"), "expected no call of 'search'"),
        (lambda s: assert_called_before(s, "answer", "search"), "expected 'answer' before 'search'"),
        (lambda s: assert_call_order(s, ["answer", "search"]), "expected the calls ['answer', 'search'] in this order"),
        (lambda s: assert_cost_below(s, 0.0001), "expected a cost below $0.0001; the session cost $0.000350"),
        (lambda s: assert_tokens_below(s, input=50), "expected fewer than 50 input tokens; the session used 100"),
        (lambda s: assert_llm_calls_at_most(s, 0), "expected at most 0 model call(s); the session made 1"),
    ],
)
def test_failing_assertions_explain_and_include_the_replay(cap: Capture, check: object, expected: str) -> None:
    s = _run("hello")
    with pytest.raises(SessionAssertionError) as failure:
        check(s)  # type: ignore[operator]
    message = str(failure.value)
    assert expected in message
    assert f"Session: {s.id}" in message and "Tool: search" in message


def test_assert_no_errors_names_the_failing_step(cap: Capture) -> None:
    with pytest.raises(RuntimeError):
        _run("boom")
    s = agentotel.get_session()
    assert s is not None
    with pytest.raises(SessionAssertionError, match="'answer' failed first with RuntimeError: answer failed"):
        assert_no_errors(s)


def test_unpriced_model_calls_fail_the_cost_assertion(cap: Capture) -> None:
    with agentotel.session("x") as s:
        agentotel.record(agentotel.LLMEvent(model="my-private-model", prompt_tokens=10, completion_tokens=1))
    with pytest.raises(SessionAssertionError, match="no known price \\(my-private-model\\)"):
        assert_cost_below(s, 1.0)


def test_variations_report_each_failed_variant_like_the_seed(cap: Capture) -> None:
    def agent(text: str) -> str:
        search(text)
        if "twice" in text:
            answer("boom")
        return "ok"

    report = run_variations(
        agent,
        ["charged twice", "double charge", "two charges"],
        check=lambda output, s: "search" in [e.action_type for e in s.action_events] and "double" not in output,
        progress=False,
    )
    assert [r.passed for r in report.results] == [False, True, True]
    failed = report.failures[0]
    assert failed.error == "RuntimeError: answer failed"
    assert failed.failing_step is not None and failed.failing_step.action_type == "answer"
    assert failed.session is not None and failed.session.end_state == "Fail"
    message = report.failure_message()
    assert message.startswith("Agent failed on 1/3 variants:")
    assert "  - charged twice: RuntimeError: answer failed at 'answer'" in message
    with pytest.raises(AssertionError, match="Agent failed on 1/3 variants"):
        report.assert_all_passed()
    wrong = run_variations(lambda t: t, ["double"], check=lambda output, s: "double" not in output, progress=False)
    assert "double: check returned False" in wrong.failure_message()


def test_deterministic_sessions_match_a_snapshot(cap_content: Capture) -> None:
    def once() -> str:
        with deterministic(), agentotel.session("snap", tags=["t"]) as s:
            search("hello")
            agentotel.record(
                agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=10, completion_tokens=2)
            )
        return s.replay()

    first, second = once(), once()
    assert first == second
    assert first.splitlines()[0] == (
        "Session: session-0001 | snap | Duration: 0.004s | Cost: $0.000045 | Tokens: 10 in / 2 out | Status: Success"
    )
    assert first.splitlines()[3:5] == ["00:00.001  Tool: search", "           Input: q='hello'"]


SEED_FIXTURE_TEST = """
import agentotel as agentops
import pytest

@pytest.fixture(autouse=True)
def agentops_session(request):
    agentops.init(api_key="test-api-key")
    agentops.start_session(tags=["test", request.node.name])
    yield
    if request.node.rep_call.failed:
        agentops.end_session("Fail")
    else:
        agentops.end_session("Success")

@agentops.tool
def step():
    return 1

def test_passes():
    step()

def test_fails():
    step()
    assert False, "deliberate"

def test_fixture(agentotel_session):
    assert agentotel_session.name == "test_fixture"
"""


def test_pytest_plugin_records_reports_and_summarises_sessions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(SEED_FIXTURE_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "3 session(s), 1 failed, total cost $0.000000",
            "",
            "Test test_pytest_plugin_records_reports_and_summarises_sessions.py::test_fails failed: "
            "AssertionError: deliberate",
            "Session: * | session | * | Status: Fail",
            "Tags: test, test_fails",
            "",
            "??:??.???  Tool: step",  # its offset from the session start is timing (milliseconds on a loaded machine)
            "*Session ended: Fail",
        ]
    )


def test_pytest_plugin_is_silent_without_sessions(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "session(s)" not in result.stdout.str()


MANY_FAILURES_TEST = """
import agentotel
import pytest

@pytest.mark.parametrize("n", range(7))
def test_fails(n, agentotel_session):
    assert False, "deliberate"
"""


@pytest.mark.parametrize("stored", [True, False])
def test_pytest_summary_says_where_the_failures_it_does_not_show_are(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, stored: bool
) -> None:
    store = pytester.path / "runs.db"
    monkeypatch.setenv("AGENTOTEL_STORE", str(store) if stored else "off")
    for name in [k for k in os.environ if k.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    pytester.makepyfile(MANY_FAILURES_TEST)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=7)
    if stored:
        result.stdout.fnmatch_lines(
            [f"... and 2 more failed session(s): see `agentotel sessions --state Fail --source {store}`"]
        )
    else:
        result.stdout.fnmatch_lines(["... and 2 more failed session(s) (not stored: the session store is off*"])
