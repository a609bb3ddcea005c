"""Browser tests: real headless Chromium (Debian's `/usr/bin/chromium`) driven by Playwright.

No browser is downloaded: Playwright launches the system Chromium by `executable_path`. Every test that drives it
is marked `browser` and skips, with the reason, when the `playwright` package or `/usr/bin/chromium` is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, HERE, WIDE, FakeClock, support_story

from agentotel import _clock as clock
from agentotel.model import Session
from agentotel.replay.html import write_html


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives headless Chromium through Playwright (needs /usr/bin/chromium)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks `browser` the tests here that drive Chromium (`-m "not browser"` still runs the others)."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents and "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


# --- the browser ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module (each test opens its own context). Not per session: Playwright's sync API
    keeps an event loop running on the main thread while it is open, which would break later `asyncio.run` calls."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright; no browser download needed)")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Any]]:
    """`open_page(url, viewport=WIDE, color_scheme="light")`: a fresh page at `url`, closed after the test.
    Fails the test on any error the page's script throws or logs."""
    contexts: list[Any] = []
    errors: list[str] = []

    def opener(url: str, viewport: dict[str, int] = WIDE, color_scheme: str = "light") -> Any:
        context = browser.new_context(viewport=viewport, color_scheme=color_scheme, device_scale_factor=1)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        page.on("console", lambda msg: msg.type == "error" and errors.append(f"console error: {msg.text}"))
        page.goto(url)
        page.wait_for_function("window.agentotelReplay !== undefined || document.body.dataset.page === 'sessions'")
        return page

    yield opener
    for context in contexts:
        context.close()
    assert not errors, errors


# --- sessions recorded with the real API -------------------------------------------------------------------------


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(clock, "now_ns", fake)
    return fake


@pytest.fixture
def story(fake_clock: FakeClock) -> Session:
    return support_story(fake_clock)


@pytest.fixture
def replay_file(tmp_path: Path) -> Callable[[Session], str]:
    """Writes a session's replay page under the test's tmp dir and gives its file:// URL."""

    def write(session: Session, name: str = "replay.html") -> str:
        return write_html(session, tmp_path / name).resolve().as_uri()

    return write
