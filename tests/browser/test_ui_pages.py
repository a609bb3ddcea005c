"""Issue 15, `ui` in Chromium: the sessions list comes a page at a time (server-side, a page size, previous / next
with every filter kept) and a nested session's row comes right after its parent's whatever the sort."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from browser_support import FakeClock, llm_call

import agentotel
from agentotel.model import Session
from agentotel.testing import capture
from agentotel.ui import DEFAULT_PAGE_SIZE, UIServer, start_in_thread

OUTERMOST = 120
"""Outermost sessions in the list: two and a half pages of the default size."""


@pytest.fixture(scope="module")
def many() -> list[Session]:
    """120 outermost sessions a minute apart (`run-000` oldest), tagged `even` / `odd`, every third one failed;
    `run-007` holds two nested sessions, the second with one of its own."""
    fake = FakeClock()
    with pytest.MonkeyPatch.context() as patch:
        from agentotel import _clock as clock

        patch.setattr(clock, "now_ns", fake)
        with capture(capture_content=True) as cap:
            for n in range(OUTERMOST):
                fake.sleep(60)
                try:
                    with agentotel.session(f"run-{n:03d}", tags=["even" if n % 2 == 0 else "odd"]):
                        llm_call(fake, "q", "a", 10 + n, 1, seconds=0.1 + n / 100)
                        if n == 7:
                            _nested(fake)
                        if n % 3 == 0:
                            raise RuntimeError(f"run {n} failed")
                except RuntimeError:
                    pass
    return cap.sessions


def _nested(fake: FakeClock) -> None:
    with agentotel.session("child-a", tags=["odd"]):
        llm_call(fake, "q", "a", 5000, 1, seconds=9.0)  # costs more and lasts longer than its parent's others
    with agentotel.session("child-b", tags=["odd"]):
        llm_call(fake, "q", "a", 1, 1, seconds=0.01)
        with agentotel.session("grandchild", tags=["odd"]):
            llm_call(fake, "q", "a", 1, 1, seconds=0.01)


@pytest.fixture
def server(many: list[Session]) -> Iterator[UIServer]:
    ui = start_in_thread(lambda: many)
    yield ui
    ui.shutdown()
    ui.server_close()


def names(page: Any) -> list[str]:
    return page.locator("tr.session-row a.replay-link").all_inner_texts()


def outermost(page: Any) -> list[str]:
    return page.locator('tr.session-row[data-depth="0"] a.replay-link').all_inner_texts()


def query(page: Any) -> dict[str, str]:
    return {key: values[-1] for key, values in parse_qs(urlsplit(page.url).query).items()}


def test_the_list_comes_a_page_at_a_time(server: UIServer, many: list[Session], open_page: Any) -> None:
    assert len(many) == OUTERMOST + 3
    page = open_page(server.url)
    newest_first = [f"run-{n:03d}" for n in reversed(range(OUTERMOST))]
    assert outermost(page) == newest_first[:DEFAULT_PAGE_SIZE]
    assert page.inner_text("#page-of") == "Page 1 of 3"
    assert page.inner_text("#shown") == f"{len(many)} of {len(many)} sessions"
    assert page.locator("#pager .prev.disabled").count() == 1  # nothing before the first page

    page.click("#next-page")
    page.wait_for_url("**page=2**")
    assert outermost(page) == newest_first[DEFAULT_PAGE_SIZE : 2 * DEFAULT_PAGE_SIZE]
    assert page.inner_text("#page-of") == "Page 2 of 3"
    page.click("#next-page")
    page.wait_for_url("**page=3**")
    assert outermost(page) == newest_first[2 * DEFAULT_PAGE_SIZE :]
    at = names(page).index("run-007")
    assert names(page)[at : at + 4] == ["run-007", "child-a", "child-b", "grandchild"]
    assert page.locator("#pager .next.disabled").count() == 1
    page.click("#prev-page")
    page.wait_for_url("**page=2**")
    assert page.inner_text("#page-of") == "Page 2 of 3"

    # Only the page's rows are sent: the page holds 50 sessions, not 123.
    assert page.locator("tr.session-row").count() == DEFAULT_PAGE_SIZE

    page.goto(server.url + "?page=99")  # past the end: the last page
    assert page.inner_text("#page-of") == "Page 3 of 3"
    page.goto(server.url + "?page=banana&size=7")  # nonsense: the first page of the default size
    assert page.inner_text("#page-of") == "Page 1 of 3"


def test_previous_and_next_keep_the_filters(server: UIServer, open_page: Any) -> None:
    page = open_page(server.url)
    page.select_option("#f-tag", "even")
    page.wait_for_url("**tag=even**")
    page.select_option("#f-size", "25")
    page.wait_for_url("**size=25**")
    page.click("th a[data-sort=cost]")
    page.wait_for_url("**sort=cost**")
    assert page.inner_text("#page-of") == "Page 1 of 3"  # 60 even runs, 25 a page
    first_page = outermost(page)
    assert len(first_page) == 25 and all(int(name[-3:]) % 2 == 0 for name in first_page)
    page.click("#next-page")
    page.wait_for_url("**page=2**")
    assert query(page) == {"tag": "even", "sort": "cost", "size": "25", "page": "2"}
    second_page = outermost(page)
    assert len(second_page) == 25 and not set(first_page) & set(second_page)
    # Cost sorts the runs by their prompt size (10 + n tokens): the dearest first, across pages.
    ranks = [int(name[-3:]) for name in first_page + second_page]
    assert ranks == sorted(ranks, reverse=True)

    page.select_option("#f-state", "Fail")  # a new filter starts at its first page
    page.wait_for_url("**state=Fail**")
    assert query(page) == {"state": "Fail", "tag": "even", "sort": "cost", "order": "desc", "size": "25"}
    assert page.inner_text("#page-of") == "Page 1 of 1"  # runs 0, 6, 12, ...: 20 of them
    assert len(outermost(page)) == 20 and page.locator("#pager a").count() == 0


@pytest.mark.parametrize(
    ("sort", "order"),
    [("start", "desc"), ("start", "asc"), ("cost", "desc"), ("cost", "asc"), ("duration", "desc"), ("name", "asc")],
)
def test_a_nested_session_comes_right_after_its_parent(server: UIServer, open_page: Any, sort: str, order: str) -> None:
    page = open_page(f"{server.url}?sort={sort}&order={order}&size=200")
    shown = names(page)
    assert len(shown) == OUTERMOST + 3
    at = shown.index("run-007")
    # In the order they started, each under its own parent, whatever the list's order.
    assert shown[at : at + 4] == ["run-007", "child-a", "child-b", "grandchild"]
    depths = page.eval_on_selector_all("tr.session-row", "rows => rows.map(r => Number(r.dataset.depth))")
    assert depths[at : at + 4] == [0, 1, 1, 2]
    assert sum(depths) == 4
    pads = page.eval_on_selector_all(
        "tr.session-row td.name", "cells => cells.map(c => parseFloat(getComputedStyle(c).paddingLeft))"
    )
    assert pads[at] < pads[at + 1] == pads[at + 2] < pads[at + 3]


def test_a_parent_and_its_nested_sessions_share_a_page(server: UIServer, open_page: Any) -> None:
    # A page holds a number of outermost sessions, each with the sessions nested in it: a parent's nested
    # sessions are never on another page.
    page = open_page(f"{server.url}?sort=start&order=asc&size=25")
    assert outermost(page) == [f"run-{n:03d}" for n in range(25)]
    assert page.locator("tr.session-row").count() == 25 + 3  # the three nested sessions ride with run-007
    assert page.inner_text("#page-of") == "Page 1 of 5"


def test_a_nested_session_whose_parent_is_filtered_out_stands_alone(server: UIServer, open_page: Any) -> None:
    page = open_page(f"{server.url}?q=child-&size=200")
    assert names(page) == ["child-b", "child-a"]  # newest first, each on its own
    assert page.eval_on_selector_all("tr.session-row", "rows => rows.map(r => r.dataset.depth)") == ["0", "0"]
    assert "in run-007" in page.locator("tr.session-row", has_text="child-a").inner_text()
    # With its parent filtered out, a session goes under its nearest ancestor that is shown.
    page = open_page(f"{server.url}?q=child&size=200")
    assert names(page) == ["child-b", "grandchild", "child-a"]
    assert page.eval_on_selector_all("tr.session-row", "rows => rows.map(r => r.dataset.depth)") == ["0", "1", "0"]
    page = open_page(f"{server.url}?q=grand&size=200")
    assert names(page) == ["grandchild"]
    assert "in child-b" in page.inner_text("tr.session-row")
