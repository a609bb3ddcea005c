"""What a user sees when an agent test fails (issue 15, "pytest"): the failure points at the test's line with the
message in pytest's one-line summary, the plugin's summary counts and names the tests whose sessions failed, the
fixture's session says why, messages print the numbers as given, and a step recorded without content says so."""

from __future__ import annotations

import copy
import pickle
import traceback

import pytest

import agentotel
from agentotel.testing import (
    BaselineError,
    Capture,
    SessionAssertionError,
    assert_cost_below,
    assert_no_errors,
    assert_tokens_below,
    assert_tool_called,
    capture,
    run_variations,
)
from agentotel.testing.assertions import CONTENT_HINT


@agentotel.tool
def lookup(customer_id: str | None) -> dict[str, str]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}


def _priced(prompt_tokens: int, completion_tokens: int, model: str = "gpt-4o") -> agentotel.Session:
    with agentotel.session("priced") as s:
        agentotel.record(
            agentotel.LLMEvent(
                model=model, provider="openai", prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
            )
        )
    return s


FAILURES = """
import agentotel
import pytest
from agentotel.testing import capture, assert_no_errors, run_variations

@agentotel.tool
def lookup(customer_id):
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}

def agent(text):
    with agentotel.session("support"):
        lookup(None if "twice" in text else "c1")
    return "refund offered" if "refund" in text else "ok"

def test_no_errors():
    with capture() as cap:
        with pytest.raises(ValueError):
            agent("charged twice")
    assert_no_errors(cap.session())

def test_variations():
    report = run_variations(agent, ["refund please", "hello"], check=lambda out, s: "refund" in out, progress=False)
    report.assert_all_passed()
"""


def test_a_failure_points_at_the_test_and_the_summary_line_shows_the_message(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    pytester.makepyfile(test_failures=FAILURES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    # agentotel's own frames (and their locals: the session, the whole VariationReport) are hidden.
    for internal in ("assertions.py", "def _fail", "variations.py", "VariationReport(", "self = "):
        assert internal not in out
    result.stdout.fnmatch_lines(
        [
            ">       assert_no_errors(cap.session())",
            "E       SessionAssertionError: expected no errors; 'lookup' failed first with ValueError: customer_id "
            "cannot be None",
            f"E       {CONTENT_HINT}",
            "test_failures.py:*: SessionAssertionError",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            ">       report.assert_all_passed()",
            "E       AssertionError: Agent failed on 1/2 variants:",
            "E         - hello: check returned False ?agentotel replay *",
            "test_failures.py:*: AssertionError",
        ]
    )
    # The summary's replays lack the arguments too: said once, after them.
    result.stdout.fnmatch_lines(
        ["*agentotel sessions*", "*Session ended: Fail (check returned False)", "", CONTENT_HINT]
    )
    result.stdout.fnmatch_lines(
        [
            "FAILED test_failures.py::test_no_errors - SessionAssertionError: expected no errors; 'lookup' failed*",
            "FAILED test_failures.py::test_variations - AssertionError: Agent failed on 1/2 variants:*",
        ]
    )


SUMMARY = """
import threading

import agentotel
import pytest
from agentotel.testing import capture, assert_tool_called, run_variations

@agentotel.tool
def search(q):
    return q

def agent(text):
    with agentotel.session("support"):
        search(text)
    return text

with agentotel.session("at-import") as outside:  # recorded while pytest collects: in no test
    outside.end("Fail", "recorded at import")

@pytest.fixture(scope="module")
def background_job():
    # A session that outlives the first test using it, on a thread of its own so that no test's sessions nest in it.
    started, finish = threading.Event(), threading.Event()

    def job():
        with agentotel.session("background") as s:
            started.set()
            finish.wait()
            s.end("Fail", "the job gave up")

    thread = threading.Thread(target=job)
    thread.start()
    started.wait()
    yield
    finish.set()
    thread.join()

def test_capture_judged(background_job):
    with capture() as cap:
        agent("charged twice")
    assert_tool_called(cap.session(), "refund")

def test_capture_passes(background_job):
    with capture() as cap:
        agent("hello")
    assert_tool_called(cap.session(), "search")

def test_fixture_reason(agentotel_session):
    search("x")
    assert 1 == 2, "numbers differ"

def test_variants():
    report = run_variations(agent, ["refund", "hello"], check=lambda out, s: "refund" in out, progress=False)
    report.assert_all_passed()
"""


def test_the_summary_counts_and_names_the_tests_whose_sessions_failed(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_summary=SUMMARY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=3)
    # Sessions: the one at import, each capture's (2), the fixture's, the background job's, one per variant (2).
    # Failed: the one at import, the capture whose test failed though it ended Success, the fixture's, the variant
    # that ended Fail (not the one that passed in the same failed test), and the background job's, which ended Fail
    # after its first test.
    result.stdout.fnmatch_lines(["7 session(s), 5 failed, total cost $0.000000"])
    result.stdout.fnmatch_lines(
        ["Outside any test: the session ended Fail", "Session: * | at-import | * | Status: Fail"]
    )
    result.stdout.fnmatch_lines(
        [
            "Test test_summary.py::test_capture_judged failed: SessionAssertionError: expected a call of 'refund'; "
            "the session called ['search']",
            "Session: * | support | * | Status: Success",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "Test test_summary.py::test_fixture_reason failed: AssertionError: numbers differ",
            "Session: * | test_fixture_reason | * | Status: Fail",
            "Reason: AssertionError: numbers differ",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "Test test_summary.py::test_variants failed: AssertionError: Agent failed on 1/2 variants:",
            "Session: * | variation | * | Status: Fail",
            "Reason: check returned False",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "Started in test test_summary.py::test_capture_judged, ended after it: the session ended Fail",
            "Session: * | background | * | Status: Fail",
        ]
    )
    out = result.stdout.str()
    assert "test_capture_passes" not in out.split("agentotel sessions")[-1]
    assert out.count("| variation |") == 1  # the variant that passed is not shown


def test_session_assertion_errors_print_their_short_name_and_still_pickle() -> None:
    for error in (SessionAssertionError("expected a call of 'refund'"), BaselineError("no baseline")):
        name = type(error).__name__
        assert traceback.format_exception_only(error) == [f"{name}: {error.args[0]}\n"]
        for again in (pickle.loads(pickle.dumps(error)), copy.deepcopy(error)):
            assert type(again) is type(error) and again.args == error.args
    assert isinstance(SessionAssertionError("x"), AssertionError)
    assert SessionAssertionError.defined_in == "agentotel.testing.assertions"


def test_the_cost_limit_is_printed_as_given(cap: Capture) -> None:
    s = _priced(68, 10)  # gpt-4o: 68 x $2.50/M + 10 x $10/M = $0.00027
    with pytest.raises(SessionAssertionError, match=r"^expected a cost below \$0\.00025; the session cost \$0\.000270"):
        assert_cost_below(s, 0.00025)
    with pytest.raises(SessionAssertionError, match=r"^expected a cost below \$0\.00001; the session cost \$0\.000270"):
        assert_cost_below(s, 1e-05)
    with pytest.raises(SessionAssertionError, match=r"below \$0\.00000001; the session cost \$0\.00027000\n"):
        assert_cost_below(s, 0.00000001)
    with pytest.raises(SessionAssertionError, match=r"below \$0; the session cost"):
        assert_cost_below(s, 0)
    assert_cost_below(s, 0.00028)


@pytest.mark.parametrize(
    ("limit", "error"),
    [(float("nan"), ValueError), (float("inf"), ValueError), (-0.01, ValueError), ("0.01", TypeError)],
)
def test_a_cost_limit_that_bounds_nothing_is_refused(cap: Capture, limit: object, error: type[Exception]) -> None:
    s = _priced(10, 1)
    with pytest.raises(error, match="assert_cost_below"):
        assert_cost_below(s, limit)  # type: ignore[arg-type]


def test_an_unknown_cost_fails_the_cost_limit_with_that_reason(cap: Capture) -> None:
    with agentotel.session("local") as s:
        agentotel.record(agentotel.LLMEvent(model="my-local-llama", prompt_tokens=10, completion_tokens=1))
        agentotel.record(agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=68, completion_tokens=10))
    with pytest.raises(SessionAssertionError) as failure:
        assert_cost_below(s, 1000)
    assert str(failure.value).startswith(
        "expected a cost below $1000; unknown cost: 1 model call(s) have no known price (my-local-llama), "
        "the priced ones cost $0.000270\n"
    )


def test_a_token_budget_needs_a_limit(cap: Capture) -> None:
    s = _priced(10, 1)
    with pytest.raises(TypeError, match=r"assert_tokens_below\(\) needs a limit: input=, output= and/or total="):
        assert_tokens_below(s)
    assert_tokens_below(s, total=12)


def _two_sessions() -> Capture:
    with capture() as cap:
        with agentotel.session("triage"), agentotel.session("lookup-step"):
            lookup("c1")
        with agentotel.session("reply"):
            lookup("c2")
        with agentotel.session("reply"):
            lookup("c3")
    return cap


def test_capture_session_refuses_to_guess_among_several(cap: Capture) -> None:
    captured = _two_sessions()
    triage, first_reply, second_reply = captured.root_sessions
    with pytest.raises(LookupError) as several:
        captured.session()
    message = str(several.value)
    assert message.startswith("3 sessions were captured: ")
    for s in (triage, first_reply, second_reply):
        assert f"{s.name!r} ({s.id})" in message
    assert "pick one with cap.session(name or id)" in message
    assert captured.session("triage").id == triage.id
    assert captured.session(second_reply.id).id == second_reply.id
    assert captured.session("lookup-step").parent_id == triage.id  # a nested session, when no root one has the name
    with pytest.raises(LookupError, match=r"^2 sessions named 'reply' were captured: "):
        captured.session("reply")
    with pytest.raises(LookupError, match=r"^no session named 'refund' was captured"):
        captured.session("refund")


def test_a_failed_tool_step_without_arguments_says_they_were_not_recorded(cap: Capture) -> None:
    def failing() -> agentotel.Session:
        with pytest.raises(ValueError), agentotel.session("support") as s:
            lookup(None)
        return s

    with capture(capture_content=False) as off:
        failing()
    with pytest.raises(SessionAssertionError) as without:
        assert_no_errors(off.session())
    lines = str(without.value).splitlines()
    assert lines[0].startswith("expected no errors; 'lookup' failed first") and lines[1] == CONTENT_HINT
    with capture(capture_content=True) as on:
        failing()
    with pytest.raises(SessionAssertionError) as recorded:
        assert_no_errors(on.session())
    assert CONTENT_HINT not in str(recorded.value) and "Input: customer_id=None" in str(recorded.value)
    with pytest.raises(SessionAssertionError) as other:  # no failed tool step: nothing to say about arguments
        assert_tool_called(_priced(1, 1), "lookup")
    assert CONTENT_HINT not in str(other.value)


def test_a_variation_check_says_why_it_failed(cap: Capture) -> None:
    def check(output: str, session: agentotel.Session) -> bool | str | None:
        if output == "false":
            return False
        if output == "text":
            return f"no refund offered: {output!r}"
        if output == "raise":
            raise AssertionError("the check raised")
        return None

    report = run_variations(lambda text: text, ["false", "text", "raise", "fine"], check=check, progress=False)
    assert [r.error for r in report.results] == [
        "check returned False",
        "no refund offered: 'text'",
        "the check raised",
        None,
    ]
    assert [r.session.end_state_reason for r in report.results if r.session is not None][:2] == [
        "check returned False",
        "no refund offered: 'text'",
    ]
    assert "  - false: check returned False [agentotel replay " in report.failure_message()
