"""Shared test set-up: one tracer provider for the whole run (OpenTelemetry allows one global provider), the
embedded store off unless a test points it somewhere, and a fresh capture per test."""

from __future__ import annotations

import os

os.environ.setdefault("AGENTOTEL_STORE", "off")
os.environ.pop("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", None)
os.environ.pop("OTEL_TRACES_EXPORTER", None)
os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)

from collections.abc import Iterator

import pytest

import agentotel
from agentotel.testing import Capture, capture
from agentotel.testing.llm_server import LLMServer

pytest_plugins = ["pytester"]


@pytest.fixture(scope="session", autouse=True)
def _agentotel_initialised() -> None:
    agentotel.init()


@pytest.fixture
def cap() -> Iterator[Capture]:
    """Spans and sessions of the test, content capture off (the default)."""
    with capture(capture_content=False) as result:
        yield result


@pytest.fixture
def cap_content() -> Iterator[Capture]:
    """Spans and sessions of the test, with content capture on."""
    with capture(capture_content=True) as result:
        yield result


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    """A scripted model on loopback; `OPENAI_BASE_URL` / `OPENAI_API_KEY` name it for clients made without
    arguments."""
    with LLMServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
        yield server


SLOW_PATHS = (
    "tests/browser/",
    "tests/e2e/",
    "tests/frameworks",
    "tests/legacy_anthropic/",
    "tests/sources/test_phoenix_e2e.py",
    "tests/instrumentation/test_official_cassettes.py",
    "tests/test_benchmarks_smoke.py",
    "tests/test_demo.py",
    "tests/test_distro.py",
    "tests/test_cli_serve_llm.py",
    "tests/reliability/test_load.py",
    "tests/reliability/test_process_exit.py",
    "tests/reliability/test_export_faults.py",
    "tests/reliability/test_fault_injection.py",
    "tests/reliability/test_store_faults.py",
    "tests/reliability/test_backend_peers.py",
)
"""What takes seconds a test: a browser, a framework, a backend, a subprocess, a benchmark, a load."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks the slow tests `slow` (those under `SLOW_PATHS`, and those that run pytest in pytest), so that
    `pytest -m "not slow"` is a developer's fast inner loop; CI runs everything."""
    root = config.rootpath
    for item in items:
        try:
            path = item.path.relative_to(root).as_posix()
        except ValueError:
            continue
        if path.startswith(SLOW_PATHS) or "pytester" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
