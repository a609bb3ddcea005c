"""The HTML replay in real Chromium: header, scrubbing with keys, slider, rows and overview, running totals, the
first failing step, layouts at 1280x800 and 400x800, light and dark schemes, and the screenshots for the docs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_support import IMAGES, NARROW, WIDE, FakeClock, support_story

import agentotel
from agentotel import _clock as clock
from agentotel import semconv as sc
from agentotel.model import Session
from agentotel.replay.text import PROBLEM_MARK, format_cost, label
from agentotel.testing import capture, deterministic


def running_cost(session: Session, index: int) -> float:
    return sum(e.cost or 0.0 for e in session.events[: index + 1])


def running_tokens(session: Session, index: int) -> int:
    return sum((e.input_tokens or 0) + (e.output_tokens or 0) for e in session.events[: index + 1])


def definitions(page: Any, selector: str) -> dict[str, str]:
    """A `<dl>`'s terms and their values."""
    terms = page.locator(f"{selector} dt").all_inner_texts()
    return dict(zip(terms, page.locator(f"{selector} dd").all_inner_texts(), strict=True))


def assert_at(page: Any, session: Session, index: int) -> None:
    """The page shows step `index`: title, step counter, slider, highlighted row and running totals."""
    event = session.events[index]
    assert page.evaluate("window.agentotelReplay.index") == index
    assert page.inner_text("#detail-title") == label(event)
    assert page.inner_text("#ro-step") == f"{index + 1} / {len(session.events)}"
    assert page.input_value("#scrubber") == str(index)
    assert page.inner_text(".row.current .name") == label(event)
    cost = running_cost(session, index)
    assert page.inner_text("#ro-cost") == format_cost(cost)
    assert float(page.get_attribute("#ro-cost", "data-value") or "nan") == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert int(page.get_attribute("#ro-tokens", "data-value") or "-1") == running_tokens(session, index)


def test_header_shows_the_session(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    totals = story.totals()
    assert page.inner_text("#name") == "support-agent"
    assert page.inner_text("#state") == "Fail"
    assert "state-Fail" in (page.get_attribute("#state", "class") or "")
    assert page.inner_text("#reason") == "ValueError: customer_id cannot be None"
    assert page.locator("#tags .tag").all_inner_texts() == ["billing", "ci"]
    stats = definitions(page, "#stats")
    assert stats["LLM calls"] == str(totals[sc.AGENTOTEL_SESSION_LLM_CALL_COUNT]) == "3"
    assert stats["Tools + actions"] == str(totals[sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT]) == "4"
    assert stats["Cost"] == format_cost(story.cost)
    assert stats["Tokens"].startswith(f"{story.input_tokens + story.output_tokens:,} ")
    assert stats["Duration"] == f"{story.duration:.3f} s"
    assert page.title() == "support-agent · agentotel replay"


def test_first_step_shows_prompt_and_completion(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story) + "#step=1")  # a failed session opens on its failure otherwise
    assert_at(page, story, 0)
    roles = page.locator("#detail-inputs .msg .role").all_inner_texts()
    texts = page.locator("#detail-inputs .msg .text").all_inner_texts()
    assert [r.lower() for r in roles] == ["system", "user"]
    assert texts == ["You are a support agent for ACME billing.", "I was charged twice for my subscription this month."]
    assert page.locator("#detail-outputs .msg .text").all_inner_texts() == [
        "I'll look into your billing issue right away."
    ]
    facts = definitions(page, ".facts")
    first = story.events[0]
    assert facts["Model"] == "gpt-4o"
    assert facts["Tokens"] == "412 in / 38 out"
    assert facts["Cost"] == format_cost(first.cost)
    assert facts["Duration"] == "801 ms"


def test_arrow_keys_walk_every_step_with_running_totals(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story) + "#step=1")
    count = len(story.events)
    for index in range(1, count):
        page.keyboard.press("ArrowRight")
        assert_at(page, story, index)
    page.keyboard.press("ArrowRight")  # past the end: stays on the last step
    assert_at(page, story, count - 1)
    assert page.inner_text("#ro-cost") == format_cost(story.cost)
    page.keyboard.press("ArrowLeft")
    assert_at(page, story, count - 2)
    page.keyboard.press("Home")
    assert_at(page, story, 0)
    page.keyboard.press("End")
    assert_at(page, story, count - 1)


def test_tool_step_shows_arguments_and_result(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    index = next(i for i, e in enumerate(story.events) if e.name == "search_docs")
    page.evaluate("i => window.agentotelReplay.go(i)", index)
    assert_at(page, story, index)
    assert page.locator("#detail-inputs .key").all_inner_texts() == ["query"]
    assert "duplicate charge refund" in page.inner_text("#detail-inputs")
    assert "Refunds for duplicate charges" in page.inner_text("#detail-outputs")
    assert "kb://billing/duplicate" in page.inner_text("#detail-outputs")


def test_slider_moves_through_steps(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    count = len(story.events)
    box = page.locator("#scrubber").bounding_box()
    assert box is not None
    # A click on the slider's track (a real mouse event) moves it to about that fraction of the steps.
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
    middle = page.evaluate("window.agentotelReplay.index")
    assert abs(middle - (count - 1) / 2) <= 1
    assert_at(page, story, middle)
    page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)
    assert_at(page, story, count - 1)
    # With the slider focused, one key press is still exactly one step.
    page.focus("#scrubber")
    page.keyboard.press("ArrowLeft")
    assert_at(page, story, count - 2)
    page.keyboard.press("Home")
    assert_at(page, story, 0)


def test_rows_and_overview_are_clickable(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    page.locator('.row[data-index="4"]').click()
    assert_at(page, story, 4)
    box = page.locator("#overview-wrap").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    assert_at(page, story, len(story.events) - 1)
    page.mouse.click(box["x"] + 3, box["y"] + box["height"] / 2)
    assert_at(page, story, 0)


def test_one_key_jumps_to_the_first_failing_step(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    problem = story.first_error
    assert problem is not None and problem.name == "fetch_customer_data"
    index = story.events.index(problem)
    page.keyboard.press("e")
    assert_at(page, story, index)
    assert page.inner_text("#detail-title") == "Action: fetch_customer_data"
    assert page.inner_text("#detail-problem") == PROBLEM_MARK
    error = page.inner_text("#detail-error")
    assert "ValueError" in error
    assert "customer_id cannot be None" in error
    assert "Traceback (most recent call last)" in page.inner_text("#detail-error .stack")
    assert page.locator("#detail-inputs .field").all_inner_texts() == ["customer_id\nnull"]
    # Exactly one row carries the mark, the failing step's; the agent step the error went through is failed but
    # not marked.
    assert page.locator(".row .mark:not(:empty)").all_inner_texts() == [PROBLEM_MARK]
    assert page.locator(".row.problem .name").inner_text() == "Action: fetch_customer_data"
    agent_row = page.locator(".row.failed", has_text="Agent: billing_agent")
    assert agent_row.count() == 1
    page.keyboard.press("Home")
    page.click("#jump-problem")
    assert_at(page, story, index)


def test_nested_steps_are_indented_by_parent_span(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    pads = page.eval_on_selector_all(
        ".row:not([hidden])",
        "rows => rows.map(r => [r.querySelector('.name').textContent,"
        " parseFloat(getComputedStyle(r.querySelector('.lbl')).paddingLeft)])",
    )
    indent = dict(pads)
    assert indent["Session: research"] == 0
    assert indent["Tool: search_docs"] > 0
    assert indent["Agent: billing_agent"] == 0
    assert indent["Action: fetch_customer_data"] == indent["Tool: extract_customer_id"] > 0


def test_step_bars_are_to_scale_in_time(open_page: Any, story: Session, replay_file: Any) -> None:
    page = open_page(replay_file(story))
    bars = page.eval_on_selector_all(
        ".row:not([hidden])",
        "rows => rows.map(r => { const b = r.querySelector('.bar').getBoundingClientRect();"
        " const t = r.querySelector('.track').getBoundingClientRect();"
        " return [Number(r.dataset.index), (b.left - t.left) / t.width, b.width / t.width]; })",
    )
    total = story.duration
    assert total is not None
    for index, left, width in bars:
        event = story.events[index]
        assert left == pytest.approx((event.start_ns - story.start_ns) / 1e9 / total, abs=0.01)
        if event.duration is not None and event.duration / total > 0.02:
            assert width == pytest.approx(event.duration / total, abs=0.01)


def _luminance(css_colour: str) -> float:
    r, g, b = (int(x) / 255 for x in re.findall(r"\d+", css_colour)[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_readable_in_light_and_dark(open_page: Any, story: Session, replay_file: Any, scheme: str) -> None:
    page = open_page(replay_file(story), color_scheme=scheme)
    page.keyboard.press("e")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    text = page.evaluate("getComputedStyle(document.querySelector('#detail-title')).color")
    error = page.evaluate("getComputedStyle(document.querySelector('#detail-error .etype')).color")
    error_bg = page.evaluate("getComputedStyle(document.querySelector('#detail-error')).backgroundColor")
    if scheme == "dark":
        assert _luminance(background) < 0.15 and _luminance(text) > 0.75
    else:
        assert _luminance(background) > 0.9 and _luminance(text) < 0.2
    assert abs(_luminance(error) - _luminance(error_bg)) > 0.3


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["wide", "narrow"])
def test_layout_fits_the_window(open_page: Any, story: Session, replay_file: Any, viewport: dict[str, int]) -> None:
    page = open_page(replay_file(story), viewport=viewport)
    page.keyboard.press("e")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    for selector in ("#name", "#scrubber", "#ro-cost", "#overview-wrap", ".row.current", "#detail-title"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["width"] > 0, selector
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"] + 0.5, selector
    timeline = page.locator("#timeline").bounding_box()
    detail = page.locator("#detail").bounding_box()
    assert timeline is not None and detail is not None
    if viewport is WIDE:
        # Side by side, both within the window: nothing to scroll to see the current step.
        assert detail["x"] >= timeline["x"] + timeline["width"]
        assert detail["y"] + detail["height"] <= viewport["height"]
        assert page.evaluate("document.documentElement.scrollHeight") <= viewport["height"]
    else:
        assert detail["y"] >= timeline["y"] + timeline["height"]
        # The scrubber stays on screen while the page scrolls to the detail pane.
        page.locator("#detail-error").scroll_into_view_if_needed()
        scrub = page.locator("#scrub").bounding_box()
        assert scrub is not None and scrub["y"] == pytest.approx(0, abs=1)
        page.keyboard.press("Home")
        assert page.inner_text("#ro-step") == f"1 / {len(story.events)}"


def test_screenshots(open_page: Any, replay_file: Any, fake_clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pictures for the README and the docs, kept in docs/images/ (look at them when the page changes).
    Ids and times are fixed, so that a run that changes nothing on the page leaves the files as they were."""
    with deterministic():
        monkeypatch.setattr(clock, "now_ns", fake_clock)  # keep the story's realistic durations
        story = support_story(fake_clock)
    IMAGES.mkdir(parents=True, exist_ok=True)
    url = replay_file(story)
    for name, viewport, scheme in (("wide", WIDE, "light"), ("narrow", NARROW, "light"), ("dark", WIDE, "dark")):
        page = open_page(url, viewport=viewport, color_scheme=scheme)
        page.keyboard.press("e")
        path = IMAGES / f"replay-{name}.png"
        page.screenshot(path=str(path))
        assert path.stat().st_size > 10_000


def test_running_empty_and_uncaptured_sessions(open_page: Any, replay_file: Any, fake_clock: Any) -> None:
    @agentotel.tool
    def lookup(order_id: str) -> str:
        fake_clock.sleep(0.2)
        return "shipped"

    with capture(capture_content=False) as cap:
        with agentotel.session("quiet", tags=[]):
            pass
        with agentotel.session("no-content"):
            lookup("A-1")
        running = agentotel.start_session(name="still-running")
        lookup("A-2")
        page = open_page(replay_file(running, "running.html"))
        running.end()
    assert page.inner_text("#state") == "Running"
    assert definitions(page, "#stats")["Duration"] == "running"
    assert page.inner_text("#detail-title") == "Tool: lookup"

    page = open_page(replay_file(cap.session("quiet"), "quiet.html"))
    assert page.inner_text("#ro-step") == "0 / 0"
    assert page.inner_text("#detail") == "This session has no steps."
    assert page.locator("#jump-problem").is_hidden()
    page.keyboard.press("ArrowRight")  # nothing to move to, and nothing breaks

    page = open_page(replay_file(cap.session("no-content"), "no-content.html"))
    assert page.inner_text("#detail-title") == "Tool: lookup"
    assert "not captured" in page.inner_text("#detail .note")
    assert page.locator("#detail-inputs").count() == 0
