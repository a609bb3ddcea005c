"""Content from the agent is data, never markup: hostile text in every field of a session is shown as text on the
replay page and the sessions list, and none of it runs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from browser_support import FakeClock, llm_call

import agentotel
from agentotel import LLMEvent, ToolEvent
from agentotel.model import Session
from agentotel.replay.html import json_for_script, render_html
from agentotel.testing import Capture, capture
from agentotel.ui import start_in_thread

HOSTILE = (
    "</script><script>window.__pwned=1</script>"
    "<img src=x onerror=\"window.__pwned=2;alert('img')\">"
    "<svg onload=window.__pwned=3></svg><!-- <script "
    "\u2028\u2029 & &amp; {{data}} {{script}} \\u003c/script\\u003e"
)


def hostile_capture(fake: FakeClock) -> Capture:
    """HOSTILE in the session's name and tags, a nested session's name, tool arguments and results, action type,
    params and returns, LLM prompt, completion, role and model, and the error message."""

    @agentotel.tool(HOSTILE)
    def lookup(query: str) -> dict[str, str]:
        fake.sleep(0.1)
        return {"result": HOSTILE, HOSTILE: "key"}

    @agentotel.record_action(HOSTILE)
    def act(param: str) -> str:
        fake.sleep(0.05)
        return HOSTILE

    @agentotel.tool
    def explode(payload: str) -> None:
        raise ValueError(HOSTILE)

    with (
        capture(capture_content=True) as cap,
        pytest.raises(ValueError),
        agentotel.session(HOSTILE, tags=[HOSTILE, "safe-tag"]),
    ):
        llm_call(fake, [{"role": HOSTILE, "content": HOSTILE}], [{"role": "assistant", "content": HOSTILE}], 10, 5)
        agentotel.record(LLMEvent(model=HOSTILE, prompt=HOSTILE, completion=HOSTILE, prompt_tokens=3))
        lookup(HOSTILE)
        act(param=HOSTILE)
        agentotel.record(ToolEvent(name=HOSTILE, params={"q": HOSTILE}, returns=HOSTILE))
        with agentotel.session(HOSTILE + " nested"):
            act(param="inner " + HOSTILE)
        explode(HOSTILE)
    return cap


@pytest.fixture
def hostile_cap(fake_clock: FakeClock) -> Capture:
    return hostile_capture(fake_clock)


@pytest.fixture
def hostile(hostile_cap: Capture) -> Session:
    return hostile_cap.session(HOSTILE)


def test_script_json_cannot_close_its_element() -> None:
    text = json_for_script({"a": HOSTILE, HOSTILE: [HOSTILE]})
    assert not re.search(r"[<>&\u2028\u2029]", text)
    assert all(ord(c) < 128 for c in text)


def test_page_source_holds_no_markup_from_the_session(hostile: Session) -> None:
    page = render_html(hostile)
    # The page's own two script elements (the JSON data and the code) and nothing else.
    assert page.count("<script") == 2
    assert page.lower().count("</script") == 2
    assert "<img" not in page and "<svg" not in page
    assert "\u2028" not in page and "\u2029" not in page
    # The placeholders in the session's text were not filled in: the data appears once, the code once.
    assert page.count('id="agentotel-data"') == 1


def test_replay_shows_hostile_text_and_runs_none_of_it(
    hostile: Session, open_page: Any, replay_file: Any, browser: Any
) -> None:
    page = open_page(replay_file(hostile))
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    assert page.evaluate("document.getElementById('name').textContent") == HOSTILE
    assert page.evaluate("document.title") == HOSTILE + " \u00b7 agentotel replay"
    assert HOSTILE in page.evaluate("document.getElementById('reason').textContent")
    assert page.evaluate("[...document.querySelectorAll('#tags .tag')].map(t => t.textContent)") == [
        HOSTILE,
        "safe-tag",
    ]
    # The header's summary: the first model call's prompt and the last one's completion, as text.
    assert page.evaluate("document.querySelector('#io-input .io-text').textContent") == HOSTILE
    assert page.evaluate("document.querySelector('#io-output .io-text').textContent") == HOSTILE
    assert page.evaluate("document.querySelector('#io-output .io-text').title") == HOSTILE
    page.click("#io-output .io-text")  # opened to its whole text: still text
    # Two rows, each a div of dt > button and dd: nothing else was made of the text.
    assert page.evaluate("document.querySelectorAll('#io *').length") == 8
    seen: list[str] = []
    for index, event in enumerate(hostile.events):
        page.evaluate("i => window.agentotelReplay.go(i)", index)
        detail = page.evaluate("document.getElementById('detail').textContent")
        row = page.evaluate("document.querySelector('.row.current').textContent")
        seen.append(event.name)
        # Every step holds the hostile text in its label, inputs, outputs or error, and shows it as text.
        assert HOSTILE in detail, (index, event.name, detail)
        assert HOSTILE[:40] in row, (index, row)
    page.keyboard.press("e")
    error = page.evaluate("document.getElementById('detail-error').textContent")
    assert error.startswith("ValueError") and HOSTILE in error
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('img, svg, iframe, object, embed').length") == 0
    assert page.evaluate("document.scripts.length") == 2
    assert dialogs == []
    assert len(seen) == len(hostile.events) >= 8


def test_sessions_list_shows_hostile_text_and_runs_none_of_it(hostile_cap: Capture, open_page: Any) -> None:
    sessions = hostile_cap.sessions
    assert len(sessions) == 2
    server = start_in_thread(lambda: sessions)
    try:
        page = open_page(server.url)
        names = page.evaluate("[...document.querySelectorAll('a.replay-link')].map(a => a.textContent)")
        assert sorted(names) == sorted([HOSTILE, HOSTILE + " nested"])
        tags = page.evaluate("[...document.querySelectorAll('#f-tag option')].map(o => o.textContent)")
        assert HOSTILE in tags
        reason = page.evaluate("document.querySelector('.reason').textContent")
        assert HOSTILE in reason
        page.select_option("#f-tag", HOSTILE)
        page.wait_for_url("**tag=**")
        assert page.locator("tr.session-row").count() == 1
        page.click("a.replay-link")
        page.wait_for_function("window.agentotelReplay !== undefined")
        assert page.evaluate("document.getElementById('name').textContent") == HOSTILE
        assert page.evaluate("document.querySelector('#io-input .io-text').textContent") == HOSTILE
        assert page.evaluate("document.querySelector('#io-output .io-text').textContent") == HOSTILE
        assert page.evaluate("window.__pwned") is None
        assert page.evaluate("document.querySelectorAll('img, svg').length") == 0
    finally:
        server.shutdown()
        server.server_close()
