"""Fixtures of the support chat's browser test: the app on a free loopback port (with its scripted model), and
pytest-playwright launching Debian's Chromium (`AGENTOTEL_CHROMIUM`, default `/usr/bin/chromium`) instead of a
browser Playwright would download."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from app import ChatApp

CHROMIUM = Path(os.environ.get("AGENTOTEL_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        return browser_type_launch_args  # Playwright's own browser, if it has one
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def chat_app() -> Iterator[ChatApp]:
    """The app and its scripted model, started once for the session and stopped after it."""
    with ChatApp() as app:
        yield app
