"""A scripted LLM on loopback for the seed guide's examples: it classifies billing messages as `billing`, and
the module-level `openai` client talks to it."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from agentotel.testing.llm_server import LLMServer, RecordedRequest, Reply, last_user_text

BILLING_WORDS = ("charge", "bill", "twice", "double", "duplicate")


def support_llm(request: RecordedRequest) -> Reply:
    text = last_user_text(request) or ""
    if text.startswith("Classify:"):
        billing = any(word in text.lower() for word in BILLING_WORDS)
        return Reply(text="billing" if billing else "general", input_tokens=20, output_tokens=1)
    return Reply(text="I have looked into it and refunded the duplicate charge.", input_tokens=60, output_tokens=12)


@pytest.fixture(scope="session", autouse=True)
def support_llm_server() -> Iterator[LLMServer]:
    with LLMServer(support_llm) as server:
        saved = (openai.base_url, openai.api_key, openai.max_retries)
        openai.base_url = server.openai_base_url + "/"
        openai.api_key = "sk-test-not-a-real-key"
        openai.max_retries = 0
        try:
            yield server
        finally:
            openai.base_url, openai.api_key, openai.max_retries = saved
