"""Issue 15, "Replay", in Chromium: the replay (and `ui`'s session page) opens on the first failure, `#step=N` and
`#problem` choose the step, the failing step's traceback shows the user's frames (agentotel's one click away), and
the header says what the agent was asked and answered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import FakeClock, llm_call

import agentotel
from agentotel.model import Session
from agentotel.testing import capture
from agentotel.ui import UIServer, start_in_thread

QUESTION = "I was charged twice for my subscription this month."


def index(page: Any) -> int:
    return int(page.evaluate("window.agentotelReplay.index"))


def problem_index(session: Session) -> int:
    assert session.first_error is not None
    return session.events.index(session.first_error)


def current_rows(page: Any) -> list[str]:
    return page.eval_on_selector_all(".row.current", "rows => rows.map(r => r.dataset.index)")


def test_a_failed_session_opens_on_its_first_failure(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    problem = problem_index(story)
    assert problem == len(story.events) - 1 > 0
    assert index(page) == problem
    assert page.inner_text("#detail-title") == "Action: fetch_customer_data"
    assert page.locator("#detail-problem").is_visible()
    assert page.inner_text("#ro-step") == f"{problem + 1} / {len(story.events)}"
    assert current_rows(page) == [str(problem)]
    row = page.locator(".row.current").bounding_box()
    rows = page.locator("#rows").bounding_box()
    assert row is not None and rows is not None
    assert rows["y"] <= row["y"] and row["y"] + row["height"] <= rows["y"] + rows["height"]


def test_a_session_that_got_over_an_error_opens_on_it_and_a_clean_one_on_step_one(
    open_page: Any, replay_file: Any, fake_clock: FakeClock
) -> None:
    @agentotel.tool
    def lookup(order: str) -> str:
        fake_clock.sleep(0.1)
        if order == "bad":
            raise KeyError(order)
        return "shipped"

    with capture(capture_content=True) as cap:
        with agentotel.session("recovered"):
            lookup("A-1")
            try:
                lookup("bad")
            except KeyError:
                pass
            lookup("A-2")
        with agentotel.session("clean"):
            lookup("A-3")
            lookup("A-4")
    recovered = cap.session("recovered")
    assert recovered.end_state == "Success"
    page = open_page(replay_file(recovered, "recovered.html"))
    assert index(page) == 1 and page.inner_text("#detail-title") == "Tool: lookup"
    assert "KeyError" in page.inner_text("#detail-error")

    page = open_page(replay_file(cap.session("clean"), "clean.html"))
    assert index(page) == 0
    page = open_page(replay_file(cap.session("clean"), "clean.html") + "#problem")  # no failure: step 1 still
    assert index(page) == 0


def test_step_and_problem_in_the_url_choose_the_step(open_page: Any, story: Session, replay_file: Any) -> None:
    url = replay_file(story)
    last = len(story.events) - 1
    for fragment, expected in (
        ("#step=1", 0),
        ("#step=4", 3),
        ("#step=0", 0),
        ("#step=999", last),
        ("#problem", problem_index(story)),
        ("#elsewhere", problem_index(story)),
    ):
        page = open_page(url + fragment)
        assert index(page) == expected, fragment
        assert current_rows(page) == [str(expected)], fragment
        page.context.close()
    # A link to another step of the open page (or an edited address) moves there.
    page = open_page(url + "#step=2")
    page.evaluate("location.hash = '#step=5'")
    page.wait_for_function("window.agentotelReplay.index === 4")
    page.evaluate("location.hash = '#problem'")
    page.wait_for_function(f"window.agentotelReplay.index === {problem_index(story)}")
    assert page.inner_text("#detail-title") == "Action: fetch_customer_data"


@pytest.fixture
def server(story: Session) -> Iterator[UIServer]:
    sessions = [story]
    ui = start_in_thread(lambda: sessions)
    yield ui
    ui.shutdown()
    ui.server_close()


def test_the_ui_session_page_opens_on_the_failure_too(server: UIServer, story: Session, open_page: Any) -> None:
    page = open_page(server.url)
    page.click("a.replay-link")
    page.wait_for_function("window.agentotelReplay !== undefined")
    assert index(page) == problem_index(story)
    assert page.inner_text("#detail-title") == "Action: fetch_customer_data"
    page = open_page(f"{server.url}sessions/{story.id}#step=1")
    assert index(page) == 0


def test_the_traceback_shows_the_users_frames(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    stack = page.inner_text("#detail-stack")
    assert "_wrapping.py" not in stack and "_rerun_hook.py" not in stack
    lines = stack.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert "browser_support.py" in lines[1] and lines[1].endswith("in fetch_customer_data")
    assert lines[-1] == "ValueError: customer_id cannot be None"
    full = page.locator("#detail-stack-full")
    assert full.locator("summary").inner_text() == "2 agentotel frames hidden · show the whole traceback"
    assert not full.locator("pre").is_visible()
    full.locator("summary").click()
    assert full.locator("pre").is_visible()
    assert "_wrapping.py" in full.locator("pre").inner_text()


def test_the_header_says_what_the_agent_was_asked_and_answered(
    open_page: Any, story: Session, replay_file: Any
) -> None:
    page = open_page(replay_file(story))
    assert page.inner_text("#io-input .io-text") == QUESTION
    assert page.inner_text("#io-output .io-text") == "extract_customer_id()"  # the last model call's answer
    page.click("#io-input .io-step")
    assert index(page) == 0 and page.inner_text("#detail-title") == "LLM Call (gpt-4o)"
    last_llm = max(i for i, e in enumerate(story.events) if e.kind == "llm")
    page.click("#io-output .io-step")
    assert index(page) == last_llm
    assert page.get_attribute("#io-output .io-step", "title") == f"Step {last_llm + 1}: LLM Call (gpt-4o)"


def test_a_long_answer_is_one_line_until_clicked(open_page: Any, replay_file: Any, fake_clock: FakeClock) -> None:
    answer = "\n".join(f"Paragraph {n}: the refund for the duplicate charge is on its way." for n in range(30))
    with capture(capture_content=True) as cap, agentotel.session("long-answer"):
        llm_call(fake_clock, [{"role": "user", "content": "Explain the refund."}], answer, 10, 400)
    page = open_page(replay_file(cap.session("long-answer")))
    text = page.locator("#io-output .io-text")
    one_line = text.bounding_box()
    assert one_line is not None and one_line["height"] < 30
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    text.click()
    opened = text.bounding_box()
    assert opened is not None and opened["height"] > 3 * one_line["height"]
    assert text.inner_text() == answer


def test_no_summary_when_content_was_not_captured(open_page: Any, replay_file: Any, fake_clock: FakeClock) -> None:
    with capture(capture_content=False) as cap, agentotel.session("private"):
        llm_call(fake_clock, [{"role": "user", "content": "secret"}], "secret answer", 10, 5)
    page = open_page(replay_file(cap.session("private")))
    assert page.locator("#io").is_hidden()
    assert page.locator("#io-input").count() == 0
