"""Fixtures of the framework tests: a scripted model server per test, and the OpenAI variables a framework's
default client reads pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentotel.testing.llm_server import LLMServer


@pytest.fixture
def llm(monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMServer]:
    """A scripted model on loopback; `OPENAI_BASE_URL` / `OPENAI_API_KEY` name it for clients made without
    arguments."""
    with LLMServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
        yield server
