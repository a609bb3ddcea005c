"""The support chat end to end: what the customer sees in the browser, and what the agent did to answer.

    pytest examples/support_chat            # pytest-playwright, headless Chromium

The `e2e` fixture (agentotel's pytest plugin) gives the test a trace of its own and sets its `traceparent` on the
browser context, so the agent session `/chat` runs is in the test's trace; `e2e.session()` is that session. When
the test fails, its report names the session with its first failing step and its replay command.
"""

from __future__ import annotations

from app import ChatApp
from playwright.sync_api import Page, expect

from agentotel.testing import assert_call_order, assert_cost_below, assert_tool_called
from agentotel.testing.e2e import E2ETest


def test_billing_question_is_answered(page: Page, e2e: E2ETest, chat_app: ChatApp) -> None:
    page.goto(chat_app.url)
    page.get_by_label("Your message").fill("I was charged twice on account C-1001")
    page.get_by_role("button", name="Send").click()

    # What the customer sees: an answer, within 5 seconds.
    expect(page.get_by_text("I have refunded the second payment")).to_be_visible(timeout=5000)

    # What the agent did to give it: the session the request ran, in this test's trace.
    session = e2e.session()
    assert_tool_called(session, "fetch_customer_data")
    assert_call_order(session, ["classify_intent", "fetch_customer_data", "session_complete"])
    assert_cost_below(session, 0.01)
