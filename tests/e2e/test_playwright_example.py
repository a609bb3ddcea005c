"""The example's Playwright test in real headless Chromium (Debian's), through pytest-playwright and agentotel's
`e2e` fixture, run by pytest in a subprocess (Playwright's sync API keeps an event loop on the main thread while it
is open, which later asyncio tests of this run would trip on), beside a copy of it failing on purpose: the failed
test's report names the agent session it caused, its first failing step and its replay command, and the
session's replays name the test."""

from __future__ import annotations

import importlib.util
import re
import shutil

import pytest
from support import CHROMIUM, EXAMPLE

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pytest_playwright") is None or not CHROMIUM.exists(),
    reason=f"needs pytest-playwright and {CHROMIUM} (pip install -e '.[dev]'; apt-get install chromium)",
)

FAILING = '''
from playwright.sync_api import Page, expect


def test_charged_twice_without_an_account(page: Page, e2e, chat_app) -> None:
    """The seed guide's bug: the message names no account, the agent fails, the page says sorry."""
    page.goto(chat_app.url)
    page.get_by_label("Your message").fill("I was charged twice for my subscription")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Sorry, something went wrong")).to_be_visible(timeout=5000)
    expect(page.get_by_text("I have refunded the second payment")).to_be_visible(timeout=500)
'''

ATTACHED_BY_HAND = '''
from playwright.sync_api import expect

from agentotel.testing import assert_tool_called


def test_a_context_made_by_hand(browser, e2e, chat_app) -> None:
    """No `page` / `context` fixture: the test attaches the context it makes."""
    context = browser.new_context()
    e2e.attach(context)
    page = context.new_page()
    page.goto(chat_app.url)
    page.get_by_label("Your message").fill("When are you open?")
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_text("Our support team is available")).to_be_visible(timeout=5000)
    assert_tool_called(e2e.session(), "classify_intent")
    context.close()
'''


def test_the_example_passes_and_a_failing_copy_links_its_session(pytester: pytest.Pytester) -> None:
    for name in ("app.py", "chat.html", "conftest.py", "test_chat_e2e.py"):
        shutil.copy(EXAMPLE / name, pytester.path / name)
    pytester.makepyfile(test_fails_on_purpose=FAILING, test_attached_by_hand=ATTACHED_BY_HAND)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning", "--output", "artifacts", timeout=240
    )
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    failing = "test_fails_on_purpose.py::test_charged_twice_without_an_account[chromium]"

    # The failed test's report: the test, its screenshot, then its session, the failing step first.
    section = out[out.index("agentotel: agent sessions this E2E test caused") :]
    lines = section.splitlines()[1:6]
    assert lines[0] == f"E2E test {failing} failed: AssertionError: Locator expected to be visible"
    screenshot = lines[1].removeprefix("Screenshot: ")
    assert screenshot.endswith("agentotel-e2e-failure.png")
    assert (pytester.path / screenshot).stat().st_size > 1000
    assert re.fullmatch(r"Agent sessions this test caused \(trace [0-9a-f]{32}\): 1, 1 failed, failed first:", lines[2])
    assert re.fullmatch(r"1\. support_agent \(\S+\) ended Fail: customer_id cannot be None", lines[3])
    assert lines[4] == "   first failing step: fetch_customer_data: ValueError: customer_id cannot be None"
    assert "   replay: agentotel replay " in section and "   HTML replay: " in section
    html = re.search(r"HTML replay: (\S+)", section)
    assert html is not None and f"{failing} failed" in (pytester.path / html.group(1)).read_text()

    # The run's summary: the failed session, its replay naming the E2E test that caused it.
    summary = out[out.index("agentotel sessions ====") :]
    assert "3 session(s), 1 failed" in summary
    assert f"E2E test: {failing} failed: AssertionError: Locator expected to be visible · screenshot" in summary
    assert "fetch_customer_data   ← PROBLEM" in summary
