"""`agentotel ui`'s list without a browser: page and size from the URL, links that keep the filters, nested sessions
under their parents (damaged ancestry included), and only one page of rows in the HTML."""

from __future__ import annotations

import re

import agentotel
from agentotel.testing import Capture
from agentotel.ui import DEFAULT_PAGE_SIZE, Filters, SessionRow, nest, page_of, render_list


def row(session_id: str, parent: str | None = None, start: int = 0) -> SessionRow:
    return SessionRow(
        id=session_id,
        name=session_id,
        state="Success",
        reason=None,
        tags=(),
        start_ns=start,
        duration=1.0,
        cost=0.0,
        input_tokens=0,
        output_tokens=0,
        llm_calls=0,
        tool_calls=0,
        errors=0,
        parent_id=parent,
    )


def test_page_and_size_from_the_url() -> None:
    assert Filters.from_query("") == Filters()
    assert Filters.from_query("page=3&size=100") == Filters(page=3, size=100)
    for junk in ("page=0", "page=-2", "page=x", "page=1e9", "page=99999999999", "size=7", "size=", "size=50.0"):
        filters = Filters.from_query(junk)
        assert filters.page >= 1 and filters.size == DEFAULT_PAGE_SIZE, junk
    assert Filters.from_query("page=0").page == 1


def test_links_keep_the_filters_and_a_change_goes_back_to_page_one() -> None:
    filters = Filters(state="Fail", tag="billing", sort="cost", size=25, page=3)
    assert filters.query(page=4) == "state=Fail&tag=billing&sort=cost&page=4&size=25"
    assert filters.query(sort="duration", order="asc") == "state=Fail&tag=billing&sort=duration&order=asc&size=25"
    assert Filters(page=2).query(page=1) == ""


def test_nested_rows_follow_their_parent_and_damaged_ancestry_ends() -> None:
    rows = [row("a", start=1), row("b", start=2), row("a1", "a", 5), row("a0", "a", 3), row("a00", "a0", 4)]
    groups = nest([rows[1], rows[0], rows[2], rows[3], rows[4]], rows)
    assert [[(r.id, depth) for r, depth in group] for group in groups] == [
        [("b", 0)],
        [("a", 0), ("a0", 1), ("a00", 2), ("a1", 1)],
    ]
    # Sessions naming each other as parents (damaged data): each shown once, none lost.
    looped = [row("x", "y", 1), row("y", "x", 2), row("z", "z", 3)]
    groups = nest(looped, looped)
    assert sorted(r.id for group in groups for r, _ in group) == ["x", "y", "z"]


def test_pages_count_outermost_sessions() -> None:
    groups = nest([row(f"s{n}", start=n) for n in range(7)], [])
    page, number, pages = page_of(groups, Filters(size=25))
    assert (len(page), number, pages) == (7, 1, 1)
    assert page_of([], Filters(page=5)) == ([], 1, 1)


def test_the_html_holds_one_page_of_rows(cap: Capture) -> None:
    for n in range(DEFAULT_PAGE_SIZE + 5):
        with agentotel.session(f"run-{n}"):
            pass
    html = render_list(cap.sessions, Filters())
    assert len(re.findall(r'<tr class="session-row', html)) == DEFAULT_PAGE_SIZE
    assert 'id="page-of">Page 1 of 2<' in html
    assert 'href="/?page=2"' in html
    html = render_list(cap.sessions, Filters(page=2))
    assert len(re.findall(r'<tr class="session-row', html)) == 5
    assert 'id="prev-page" class="prev" rel="prev" href="/">' in html
