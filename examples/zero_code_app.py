"""A tiny support agent with no tracing set-up code: `opentelemetry-instrument` does the set-up.

    pip install agentotel openai
    export OPENAI_API_KEY=...            # OPENAI_BASE_URL too, for any OpenAI-compatible server
    export OTEL_SERVICE_NAME=support-bot
    opentelemetry-instrument python examples/zero_code_app.py "I was charged twice"

With no exporter variable set, the session lands in agentotel's local store (see it with `agentotel sessions`);
with `OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318` it goes to your OTLP backend as well.
The only agentotel code here is what marks the agent's work: the session and the tool.
"""

from __future__ import annotations

import os
import sys

import openai

import agentotel

ORDERS = {"A-1001": {"status": "shipped", "carrier": "UPS"}}


@agentotel.tool
def lookup_order(order_id: str) -> dict[str, str]:
    """The agent's tool: an order's status."""
    return ORDERS.get(order_id, {"status": "unknown"})


def answer(question: str) -> str:
    client = openai.OpenAI()  # reads OPENAI_API_KEY and OPENAI_BASE_URL
    with agentotel.session("support") as session:
        order = lookup_order("A-1001")
        reply = client.chat.completions.create(
            model=os.environ.get("SUPPORT_MODEL", "gpt-4o-mini"),
            messages=[
                {"role": "system", "content": f"You are a support agent. Order A-1001: {order}."},
                {"role": "user", "content": question},
            ],
        )
        print(f"session {session.id}")
        return reply.choices[0].message.content or ""


if __name__ == "__main__":
    print(answer(" ".join(sys.argv[1:]) or "Where is my order A-1001?"))
