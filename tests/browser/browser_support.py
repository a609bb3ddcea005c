"""What the browser tests share: where Chromium is, window sizes, a fake clock, and the sessions they replay,
recorded with the real API (`agentotel.session`, `@agentotel.tool`, `@agentotel.record_action`,
`agentotel.record(LLMEvent(...))`) under the fake clock so that their timelines have realistic, repeatable
durations."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import agentotel
from agentotel import LLMEvent
from agentotel.model import Session
from agentotel.testing import capture

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
HERE = Path(__file__).resolve().parent
IMAGES = HERE.parent.parent / "docs" / "images"
WIDE = {"width": 1280, "height": 800}
NARROW = {"width": 400, "height": 800}


class FakeClock:
    """agentotel's clock for a test: each reading moves 1 ms on, and `sleep()` moves it as far as asked."""

    def __init__(self, start: datetime = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)) -> None:
        self.now = int(start.timestamp()) * 1_000_000_000

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self() / 1e9, tz=UTC)


def llm_call(
    fake: FakeClock, prompt: Any, completion: Any, prompt_tokens: int, completion_tokens: int, seconds: float = 0.8
) -> None:
    """An LLM call recorded the AgentOps way, lasting `seconds` on the fake clock."""
    start = fake.datetime()
    fake.sleep(seconds)
    agentotel.record(
        LLMEvent(
            model="gpt-4o",
            provider="openai",
            prompt=prompt,
            completion=completion,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            init_timestamp=start,
            end_timestamp=fake.datetime(),
        )
    )


def support_story(fake: FakeClock) -> Session:
    """The seed guide's support agent: it classifies the message, a nested research session looks things up, and
    a billing agent step fails with a ValueError in `fetch_customer_data`."""

    @agentotel.record_action("classify_intent")
    def classify_intent(message: str) -> str:
        fake.sleep(0.15)
        return "billing_dispute"

    @agentotel.tool
    def search_docs(query: str, limit: int = 3) -> list[dict[str, str]]:
        fake.sleep(0.35)
        return [{"title": "Refunds for duplicate charges", "url": "kb://billing/duplicate"}]

    @agentotel.tool
    def extract_customer_id(message: str) -> str | None:
        fake.sleep(0.05)
        return None

    @agentotel.record_action("fetch_customer_data")
    def fetch_customer_data(customer_id: str | None) -> dict[str, Any]:
        fake.sleep(0.02)
        if customer_id is None:
            raise ValueError("customer_id cannot be None")
        return {"id": customer_id}

    @agentotel.agent("billing_agent")
    def billing_agent(message: str) -> dict[str, Any]:
        llm_call(
            fake,
            [{"role": "user", "parts": [{"type": "text", "content": "Which customer wrote: " + message}]}],
            [{"role": "assistant", "parts": [{"type": "tool_call", "name": "extract_customer_id", "arguments": {}}]}],
            205,
            17,
            seconds=0.6,
        )
        return fetch_customer_data(extract_customer_id(message))

    message = "I was charged twice for my subscription this month."

    def run_agent() -> None:
        llm_call(
            fake,
            [
                {"role": "system", "content": "You are a support agent for ACME billing."},
                {"role": "user", "content": message},
            ],
            [{"role": "assistant", "content": "I'll look into your billing issue right away."}],
            412,
            38,
        )
        classify_intent(message)
        with agentotel.session("research", tags=["kb"]):
            search_docs("duplicate charge refund")
            llm_call(
                fake,
                [{"role": "user", "content": "Summarise the refund policy for duplicate charges."}],
                [{"role": "assistant", "content": "Duplicate charges are refunded within 5 days."}],
                980,
                64,
                seconds=1.1,
            )
        fake.sleep(0.2)
        billing_agent(message)

    with (
        capture(capture_content=True) as cap,
        pytest.raises(ValueError, match="customer_id cannot be None"),
        agentotel.session("support-agent", tags=["billing", "ci"]),
    ):
        run_agent()
    return cap.session("support-agent")
