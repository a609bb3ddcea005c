"""The link without a browser: an `E2ETest`'s headers sent to the example app make the agent's session a
descendant of the test's span, in its trace; the test gathers it live, stamps it, and reports a failure."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import post_chat

from agentotel import semconv as sc
from agentotel.testing import Capture, assert_tool_called
from agentotel.testing.e2e import FAILED, PASSED, E2ETest


@pytest.fixture(scope="module")
def chat_app() -> Iterator[object]:
    from app import ChatApp

    with ChatApp() as app:
        yield app


def test_the_session_is_a_child_of_the_test_span(chat_app: object, cap: Capture) -> None:
    e2e = E2ETest("tests/e2e/test_e2e_link.py::the_browser_test")
    headers = e2e.headers()
    assert headers["traceparent"].split("-")[1] == e2e.trace_id
    assert "agentotel.e2e.test.name=" in headers["baggage"]
    assert sc.SESSION_ID not in headers["baggage"]  # the test is no session: the trust rule is untouched

    status, answer = post_chat(chat_app.url, "I was charged twice on account C-1042", headers)  # type: ignore[attr-defined]
    assert status == 200 and "Alan Turing" in answer["reply"]

    session = e2e.session()
    assert session.trace_id == e2e.trace_id
    assert_tool_called(session, "fetch_customer_data")
    e2e.conclude(PASSED)
    e2e.end()

    # The session's root span, under the app's server span, under the test's span: the root of the trace.
    spans = {span.context.span_id: span for span in cap.spans}
    span = next(s for s in cap.spans if s.attributes.get(sc.AGENTOTEL_STEP_KIND) == "session")
    chain = []
    while span.parent is not None:
        span = spans[span.parent.span_id]
        chain.append(span.name)
    assert chain == ["POST /chat", "e2e_test tests/e2e/test_e2e_link.py::the_browser_test"]
    assert span.attributes[sc.AGENTOTEL_E2E_TEST_OUTCOME] == PASSED
    assert sc.SESSION_ID not in span.attributes
    assert session.root_attributes[sc.AGENTOTEL_E2E_TEST_OUTCOME] == PASSED


def test_a_failed_test_reports_its_sessions_failed_first(chat_app: object, cap: Capture) -> None:
    e2e = E2ETest("Support Chat.Charged Twice", framework="robot")
    url = chat_app.url  # type: ignore[attr-defined]
    assert post_chat(url, "Hello, when are you open?", e2e.headers())[0] == 200
    assert post_chat(url, "I was charged twice for my subscription", e2e.headers())[0] == 500
    other = E2ETest("another test")  # a session in another trace is not this test's
    assert post_chat(url, "Hello again", other.headers())[0] == 200

    sessions = e2e.conclude(FAILED, failure="AssertionError: no refund shown", screenshot="/tmp/shot.png")
    e2e.end()
    other.end()
    assert len(sessions) == 2
    report = e2e.report()
    lines = report.splitlines()
    assert lines[0] == "E2E test Support Chat.Charged Twice failed: AssertionError: no refund shown"
    assert lines[1] == "Screenshot: /tmp/shot.png"
    assert "2, 1 failed, failed first:" in lines[2]
    assert lines[3].startswith("1. support_agent (") and "ended Fail: customer_id cannot be None" in lines[3]
    assert lines[4] == "   first failing step: fetch_customer_data: ValueError: customer_id cannot be None"
    assert lines[5].startswith("   replay: agentotel replay ")
    assert "ended Success" in lines[6]

    failed = next(s for s in sessions if s.end_state == "Fail")
    replay = failed.replay()
    assert (
        "E2E test: Support Chat.Charged Twice failed: AssertionError: no refund shown · screenshot /tmp/shot.png"
        in replay
    )
    html = failed.to_html()
    assert "E2E test" in html and "Support Chat.Charged Twice failed" in html


def test_no_session_in_the_trace_says_what_to_check() -> None:
    e2e = E2ETest("lonely")
    assert e2e.sessions(timeout=0) == []
    with pytest.raises(LookupError, match="continue the browser's trace"):
        e2e.session(timeout=0)
    e2e.conclude(FAILED, timeout=0)
    e2e.end()
    e2e.end()  # idempotent
    assert "No agent session was found in the test's trace" in e2e.report()


def test_attach_refuses_what_is_not_a_browser() -> None:
    e2e = E2ETest("misuse")
    with pytest.raises(TypeError, match="BrowserContext"):
        e2e.attach(object())
    with pytest.raises(TypeError, match="WebDriver"):
        e2e.attach_selenium(object())
    e2e.end()
