"""`agentotel ui`: the sessions list in Chromium (filters by state, tag and time; sorting by cost and duration),
links to replays and back, and the server's answers to other requests."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import FakeClock, llm_call, support_story

import agentotel
from agentotel.model import Session
from agentotel.testing import capture
from agentotel.ui import UIServer, start_in_thread


@pytest.fixture
def sessions(fake_clock: FakeClock) -> list[Session]:
    """Five sessions: a nightly eval three days old, then the failing support story with its nested research
    session, a cheap smoke check, and one that ended Indeterminate."""
    with capture(capture_content=True) as cap:
        with agentotel.session("nightly-eval", tags=["eval"]):
            llm_call(fake_clock, "grade these answers", "all good", 5000, 900, seconds=4.0)
        fake_clock.sleep(3 * 86400)
        support_story(fake_clock)
        with agentotel.session("smoke-check", tags=["smoke"]):
            llm_call(fake_clock, "ping", "pong", 5, 1, seconds=0.1)
        agentotel.start_session(["smoke", "slow"], name="stuck-run")
        fake_clock.sleep(7.5)
        agentotel.end_session("Indeterminate", "timed out after 7.5 s")
    return cap.sessions


@pytest.fixture
def server(sessions: list[Session]) -> Iterator[UIServer]:
    ui = start_in_thread(lambda: sessions)
    yield ui
    ui.shutdown()
    ui.server_close()


def names(page: Any) -> list[str]:
    return page.locator("tr.session-row a.replay-link").all_inner_texts()


def test_list_filters_by_state_tag_and_time(server: UIServer, sessions: list[Session], open_page: Any) -> None:
    page = open_page(server.url)
    assert len(sessions) == 5
    assert sorted(names(page)) == sorted(s.name for s in sessions)
    assert names(page)[0] == "stuck-run"  # newest first by default
    assert page.inner_text("#shown") == "5 of 5 sessions"
    states = dict(zip(names(page), page.locator("tr.session-row .badge").all_inner_texts(), strict=True))
    assert states == {
        "nightly-eval": "Success",
        "support-agent": "Fail",
        "research": "Success",
        "smoke-check": "Success",
        "stuck-run": "Indeterminate",
    }
    assert "in support-agent" in page.locator("tr.session-row", has_text="research").inner_text()

    page.select_option("#f-state", "Fail")  # the page applies a filter as soon as it changes
    page.wait_for_url("**state=Fail**")
    assert names(page) == ["support-agent"]
    assert "ValueError: customer_id cannot be None" in page.inner_text("tr.session-row .reason")

    page.click("a.reset")
    page.wait_for_url(server.url)
    page.select_option("#f-tag", "smoke")
    page.wait_for_url("**tag=smoke**")
    assert names(page) == ["stuck-run", "smoke-check"]

    page.select_option("#f-state", "Indeterminate")
    page.wait_for_url("**state=Indeterminate**")
    assert names(page) == ["stuck-run"]
    assert page.inner_text("tr.session-row .reason") == "timed out after 7.5 s"

    page.goto(server.url)
    page.select_option("#f-since", "24h")
    page.wait_for_url("**since=24h**")
    assert "nightly-eval" not in names(page) and len(names(page)) == 4

    page.fill("#f-q", "SMOKE")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**q=SMOKE**")
    assert names(page) == ["smoke-check"]

    page.goto(server.url + "?state=Success&tag=nope")
    assert names(page) == []
    assert "No session matches" in page.inner_text("tbody")


def nested_under_parent(order: list[str]) -> list[str]:
    """`order` with the nested `research` session moved right after its parent, `support-agent`."""
    roots = [name for name in order if name != "research"]
    at = roots.index("support-agent") + 1
    return [*roots[:at], "research", *roots[at:]]


def test_list_sorts_by_cost_and_duration(server: UIServer, sessions: list[Session], open_page: Any) -> None:
    # Issue 15: a nested session's row comes right after its parent's whatever the sort (it used to sort on its
    # own, after or before its parent).
    page = open_page(server.url)
    by_cost = [s.name for s in sorted(sessions, key=lambda s: s.cost, reverse=True)]
    page.click("th a[data-sort=cost]")
    page.wait_for_url("**sort=cost**")
    assert names(page) == nested_under_parent(by_cost)
    assert by_cost[0] == "nightly-eval"
    page.click("th a[data-sort=cost]")  # again: the other way round
    page.wait_for_url("**order=asc**")
    assert names(page) == nested_under_parent(by_cost[::-1])

    page.click("th a[data-sort=duration]")
    page.wait_for_url("**sort=duration**")
    by_duration = [s.name for s in sorted(sessions, key=lambda s: s.duration or 0.0, reverse=True)]
    assert names(page) == nested_under_parent(by_duration)
    assert by_duration[0] == "stuck-run"
    page.select_option("#f-order", "asc")
    page.wait_for_url("**order=asc**")
    assert names(page) == nested_under_parent(by_duration[::-1])


def test_list_links_to_replays_and_back(server: UIServer, sessions: list[Session], open_page: Any) -> None:
    page = open_page(server.url)
    page.click("a.replay-link:text-is('support-agent')")
    page.wait_for_function("window.agentotelReplay !== undefined")
    story = next(s for s in sessions if s.name == "support-agent")
    assert page.url == server.url + "sessions/" + story.id
    assert page.inner_text("#name") == "support-agent"
    page.keyboard.press("e")
    assert page.inner_text("#detail-title") == "Action: fetch_customer_data"
    page.click("#back")
    page.wait_for_url(server.url)
    assert len(names(page)) == 5


def _get(server: UIServer, path: str, host: str | None = None) -> tuple[int, dict[str, str], bytes]:
    address, port = server.server_address[:2]
    connection = http.client.HTTPConnection(str(address), int(port), timeout=10)
    try:
        headers = {"Host": host} if host else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def test_server_answers(server: UIServer, sessions: list[Session]) -> None:
    story = next(s for s in sessions if s.name == "support-agent")
    status, headers, body = _get(server, f"/sessions/{story.id}.json")
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["first_error"] == story.to_dict()["first_error"]

    status, headers, body = _get(server, f"/sessions/{story.id}")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b"Content-Security-Policy" in body and headers["x-content-type-options"] == "nosniff"

    assert _get(server, "/sessions/no-such-session")[0] == 404
    assert _get(server, "/elsewhere")[0] == 404
    # A page on another site that points its own name at 127.0.0.1 (DNS rebinding) is refused.
    assert _get(server, "/", host="attacker.example:8765")[0] == 421
    assert _get(server, "/", host=f"localhost:{server.server_address[1]}")[0] == 200


def test_server_survives_a_failing_provider() -> None:
    calls = {"n": 0}

    def provider() -> list[Session]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("store is locked")
        return []

    ui = start_in_thread(provider)
    try:
        status, _, body = _get(ui, "/")
        assert status == 500 and b"store is locked" in body
        status, _, body = _get(ui, "/")
        assert status == 200 and b"0 of 0 sessions" in body
    finally:
        ui.shutdown()
        ui.server_close()


def test_list_and_replays_from_a_store_source(fake_clock: FakeClock, open_page: Any, tmp_path: Any) -> None:
    """The CLI's wiring: a `--source` lists summaries (no spans read) and loads one session for its replay."""
    from agentotel.records import records_from_spans
    from agentotel.sources import open_source
    from agentotel.store import Store
    from agentotel.ui import MAX_ROWS

    with capture(capture_content=True) as cap:
        support_story(fake_clock)
    with Store(tmp_path / "sessions.db", create=True) as store:
        store.write(records_from_spans(cap.spans))
    with open_source(str(tmp_path / "sessions.db")) as source:
        ui = start_in_thread(lambda: source.sessions(limit=MAX_ROWS), load_session=source.session)
        try:
            page = open_page(ui.url)
            assert sorted(names(page)) == ["research", "support-agent"]
            page.select_option("#f-state", "Fail")
            page.wait_for_url("**state=Fail**")
            assert names(page) == ["support-agent"]
            page.click("a.replay-link")
            page.wait_for_function("window.agentotelReplay !== undefined")
            page.keyboard.press("e")
            assert page.inner_text("#detail-title") == "Action: fetch_customer_data"
            assert "customer_id cannot be None" in page.inner_text("#detail-error")
            assert _get(ui, "/sessions/unknown-id")[0] == 404
        finally:
            ui.shutdown()
            ui.server_close()
