"""The HTML behaviour diff in real headless Chromium: two sessions side by side, moving between changes, folding
identical steps, and content from the agent shown as text that never runs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import FakeClock, llm_call

import agentotel
from agentotel.cli import main
from agentotel.demo import run_demo
from agentotel.diff import SessionDiff
from agentotel.model import Session
from agentotel.testing import capture

HOSTILE = (
    "</script><script>window.__pwned=1</script>"
    "<img src=x onerror=\"window.__pwned=2;alert('img')\">"
    "<svg onload=window.__pwned=3></svg><!-- <script "
    "\u2028\u2029 & &amp; {{data}} {{script}} \\u003c/script\\u003e"
)


@pytest.fixture
def open_diff(browser: Any, tmp_path: Path) -> Iterator[Callable[[SessionDiff], Any]]:
    """`open_diff(diff)`: the diff's page written to a file and opened in a fresh page, closed after the test.
    Fails the test on any error the page's script throws or logs, and on any dialog."""
    contexts: list[Any] = []
    errors: list[str] = []

    def opener(found: SessionDiff, viewport: dict[str, int] | None = None) -> Any:
        path = tmp_path / f"diff-{len(contexts)}.html"
        found.to_html(path)
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 800}, device_scale_factor=1)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and errors.append(f"console error: {msg.text}"))
        page.on("dialog", lambda dialog: (errors.append(f"dialog: {dialog.message}"), dialog.dismiss()))
        page.goto(path.resolve().as_uri())
        page.wait_for_function("window.agentotelDiff !== undefined")
        return page

    yield opener
    for context in contexts:
        context.close()
    assert not errors, errors


def json_text(value: str) -> str:
    """A changed value as the page shows it: JSON (text in quotes, quotes inside escaped)."""
    return json.dumps(value, ensure_ascii=False)


def hostile_pair(fake: FakeClock) -> tuple[Session, Session]:
    """Two runs with HOSTILE in the session's name, a tool's name, arguments and result, an action's name and an
    LLM prompt; the second run passes other arguments and calls one more hostile tool."""

    @agentotel.tool(HOSTILE)
    def lookup(query: str) -> dict[str, str]:
        fake.sleep(0.1)
        return {"result": query, HOSTILE: "key"}

    @agentotel.record_action(HOSTILE + " action")
    def act(param: str) -> str:
        return HOSTILE

    def run(query: str, *, extra: bool) -> Session:
        with capture(capture_content=True) as cap, agentotel.session(HOSTILE):
            llm_call(fake, [{"role": "user", "content": HOSTILE}], [{"role": "assistant", "content": query}], 10, 5)
            lookup(query)
            if extra:
                act(param=HOSTILE)
        return cap.session(HOSTILE)

    return run(HOSTILE + " one", extra=False), run(HOSTILE + " two", extra=True)


def test_hostile_content_is_shown_as_text_and_none_of_it_runs(fake_clock: FakeClock, open_diff: Any) -> None:
    before, after = hostile_pair(fake_clock)
    found = before.diff(after)
    page_source = found.to_html()
    assert page_source.count("<script") == 2 and page_source.lower().count("</script") == 2
    assert "<img" not in page_source and "<svg" not in page_source and "\u2028" not in page_source
    page = open_diff(found)
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img, svg, iframe, object, embed').length") == 0
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("document.title") == f"{HOSTILE} → {HOSTILE} · agentotel diff"
    names = page.evaluate("[...document.querySelectorAll('.side .name')].map(n => n.textContent)")
    assert names == [HOSTILE, HOSTILE]
    labels = page.evaluate("[...document.querySelectorAll('.drow .card .label')].map(n => n.textContent)")
    assert f"tool {HOSTILE}" in labels and f"action {HOSTILE} action" in labels
    changes = page.evaluate(
        "[...document.querySelectorAll('.change')].map(c => [...c.children].map(x => x.textContent))"
    )
    by_path = {path: (was, now) for path, was, now in changes}
    assert by_path["arguments.query"] == (json_text(HOSTILE + " one"), json_text(HOSTILE + " two"))
    # The pretty-printed content of a step, with HOSTILE as a key, is text too.
    tool = page.locator(".card.after", has=page.locator(".label", has_text="tool <"))
    tool.locator("summary").click()
    content = tool.locator("details").text_content()
    assert json_text(HOSTILE) + ": " + json_text("key") in content
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img, svg').length") == 0


def test_the_page_moves_between_changes_and_folds_identical_steps(fake_clock: FakeClock, open_diff: Any) -> None:
    @agentotel.tool
    def step(n: int) -> int:
        fake_clock.sleep(0.01)
        return n

    def run(changed_at: int) -> Session:
        with capture(capture_content=True) as cap, agentotel.session("long"):
            for n in range(30):
                step(n if n != changed_at else -1)
        return cap.session("long")

    found = run(-2).diff(run(20))
    assert found.first_divergence == 20
    page = open_diff(found)
    assert page.evaluate("document.getElementById('verdict').textContent") == "Behaviour changed"
    assert page.evaluate("document.getElementById('summary').textContent") == "29 same, 1 changed"
    # Steps far from the change are folded: 19 before it (one shown as context), 8 after.
    folds = page.evaluate("[...document.querySelectorAll('button.fold')].map(b => b.textContent)")
    assert folds == ["▸ 19 same step(s)", "▸ 8 same step(s)"]
    assert page.evaluate("[...document.querySelectorAll('.drow')].filter(r => !r.hidden).length") == 3
    assert page.evaluate("document.getElementById('first-mark').textContent") == "← FIRST DIVERGENCE"
    page.keyboard.press("e")
    assert page.evaluate("window.agentotelDiff.index") == 20
    assert page.evaluate("document.querySelector('.drow.current').id") == "row-20"
    assert page.evaluate("document.querySelector('.drow.current .change .path').textContent") == "arguments.n"
    page.evaluate("window.agentotelDiff.go(3)")  # a folded step: its fold opens
    assert page.evaluate("document.getElementById('row-3').hidden") is False
    assert page.evaluate("document.querySelectorAll('button.fold:not([hidden])').length") == 1
    page.keyboard.press("n")
    assert page.evaluate("window.agentotelDiff.index") == 20
    page.check("#show-same")
    assert page.evaluate("[...document.querySelectorAll('.drow')].filter(r => r.hidden).length") == 0


def test_two_demo_like_sessions_side_by_side_on_a_narrow_screen(fake_clock: FakeClock, open_diff: Any) -> None:
    @agentotel.record_action("fetch_customer_data")
    def fetch(customer_id: str | None) -> dict[str, str]:
        if customer_id is None:
            raise ValueError("customer_id cannot be None")
        return {"id": customer_id}

    def run(customer_id: str | None) -> Session:
        with capture(capture_content=True) as cap:
            try:
                with agentotel.session("support_agent"):
                    fetch(customer_id)
            except ValueError:
                pass
        return cap.session("support_agent")

    found = run("C-1042").diff(run(None))
    page = open_diff(found, viewport={"width": 400, "height": 800})
    states = page.evaluate("[...document.querySelectorAll('.side .badge')].map(b => b.textContent)")
    assert states == ["Success", "Fail"]
    figures = page.evaluate(
        "[...document.querySelectorAll('#figures tr')].map(r => [r.cells[0] ? r.cells[0].textContent : "
        "r.querySelector('th').textContent, r.querySelector('td').textContent, r.className])"
    )
    end_state = next(f for f in figures if f[0] == "End state")
    assert end_state[1].startswith("Success → Fail") and end_state[2] == "changed"
    error = page.evaluate("document.querySelector('.card.after .err').textContent")
    assert error == "ValueError: customer_id cannot be None"
    # One column: nothing wider than the window.
    assert page.evaluate("document.documentElement.scrollWidth") <= 400


def test_agentotel_diff_html_of_two_demo_sessions_opens_in_chromium(
    browser: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_demo(tmp_path / "demo.db")
    billing, failing = run.sessions[1], run.sessions[2]
    page_path = tmp_path / "demo-diff.html"
    assert main(["diff", billing.id, failing.id, "--source", str(run.store_path), "--html", str(page_path)]) == 0
    assert capsys.readouterr().out.strip() == f"Wrote {page_path}"
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(page_path.resolve().as_uri() + "#first")
        page.wait_for_function("window.agentotelDiff !== undefined")
        assert page.evaluate("window.agentotelDiff.index") == page.evaluate("window.agentotelDiff.first") == 0
        current = page.evaluate("document.querySelector('.drow.current .card.after .label').textContent")
        assert current == "action classify_intent"
        states = page.evaluate("[...document.querySelectorAll('.side .badge')].map(b => b.textContent)")
        assert states == ["Success", "Fail"]
        removed = page.evaluate(
            "[...document.querySelectorAll('.drow.status-removed .card.before .label')].map(n => n.textContent)"
        )
        assert removed == ["llm gpt-4o", "action session_complete"]
        assert errors == []
    finally:
        context.close()
