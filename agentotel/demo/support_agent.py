"""The support agent of the AgentOps testing guide, written as the guide writes it (`import agentotel as agentops`).

It classifies the customer's message with an LLM call, fetches the customer's record for billing questions
(`@record_action("fetch_customer_data")`), writes the answer with another LLM call and records a
`session_complete` action; each run is one session tagged `support`, `v2.1`. The guide's bug is kept on purpose:
"I was charged twice for my subscription" names no account, `extract_customer_id` returns `None`, and
`fetch_customer_data` raises `ValueError: customer_id cannot be None`.

It talks to any OpenAI-compatible endpoint through the real `openai` client (`use_client(...)`); `scripted_model`
answers like a model would, so that `agentotel.testing.llm_server.LLMServer(scripted_model)` can stand in for
one with no API key and no network.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import agentotel as agentops
from agentotel import ActionEvent, record_action
from agentotel.testing.llm_server import RecordedRequest, Reply, last_user_text

if TYPE_CHECKING:
    import openai

MODEL = "gpt-4o"
TAGS = ("support", "v2.1")
SESSION_NAME = "support_agent"

CUSTOMERS: dict[str, dict[str, Any]] = {
    "C-1001": {"id": "C-1001", "name": "Ada Lovelace", "plan": "Pro", "last_charge": "$29.00"},
    "C-1042": {"id": "C-1042", "name": "Alan Turing", "plan": "Team", "last_charge": "$99.00"},
}

_BILLING_WORDS = ("charge", "billed", "billing", "bill ", "invoice", "refund", "payment", "subscription")
_CUSTOMER_ID = re.compile(r"\bC-\d{4}\b", re.IGNORECASE)

_client: openai.OpenAI | None = None


def use_client(client: openai.OpenAI) -> None:
    """Makes the agent call the model through `client` (e.g. one whose `base_url` is an `LLMServer`)."""
    global _client
    _client = client


def _openai() -> openai.OpenAI:
    global _client
    if _client is None:
        import openai

        _client = openai.OpenAI()  # reads OPENAI_API_KEY and OPENAI_BASE_URL, as the guide's code does
    return _client


def _ask(prompt: str) -> str:
    response = _openai().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": prompt}])
    return response.choices[0].message.content or ""


@record_action("classify_intent")
def classify(message: str) -> str:
    """`billing` or `general`, as the model answers."""
    return _ask(f"Classify: {message}").strip().lower()


def extract_customer_id(message: str) -> str | None:
    """The account id (`C-1234`) the message names, or `None` (the guide's bug: nobody checks for `None`)."""
    found = _CUSTOMER_ID.search(message)
    return found.group(0).upper() if found else None


@record_action("fetch_customer_data")
def fetch_customer(customer_id: str | None) -> dict[str, Any]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    customer = CUSTOMERS.get(customer_id)
    if customer is None:
        raise LookupError(f"no customer {customer_id}")
    return dict(customer)


def generate_billing_response(customer: dict[str, Any], user_message: str) -> str:
    return _ask(
        f"Reply to {customer['name']} (plan {customer['plan']}, last charge {customer['last_charge']}) "
        f"about their billing question: {user_message}"
    )


def generate_general_response(user_message: str) -> str:
    return _ask(f"Reply to the customer: {user_message}")


def run_support_agent(user_message: str, *, tags: Sequence[str] = TAGS) -> str:
    """One support conversation turn, in its own session (the guide's `run_support_agent`)."""
    agentops.start_session(tags=list(tags), name=SESSION_NAME)

    try:
        intent = classify(user_message)

        if intent == "billing":
            customer = fetch_customer(extract_customer_id(user_message))
            response = generate_billing_response(customer, user_message)
        else:
            response = generate_general_response(user_message)

        agentops.record(
            ActionEvent(
                action_type="session_complete",
                params={"intent": intent},
                returns={"response_length": len(response)},
            )
        )

        agentops.end_session("Success")
        return response

    except Exception as e:
        agentops.end_session("Fail", end_state_reason=str(e))
        raise


# --- a stand-in for the model -----------------------------------------------------------------------------------------


def scripted_model(request: RecordedRequest) -> Reply:
    """Answers the agent's prompts as a model would, deterministically: an intent for `Classify:` prompts, a
    short support answer otherwise. An `LLMServer` responder."""
    text = last_user_text(request)
    if text.startswith("Classify:"):
        message = text.removeprefix("Classify:").lower()
        return Reply("billing" if any(word in message for word in _BILLING_WORDS) else "general")
    if "billing question" in text:
        name = text.removeprefix("Reply to ").split(" (", 1)[0]
        return Reply(
            f"Hi {name}, I'm sorry about the duplicate charge. I have refunded the second payment; "
            "it will be back on your card within 3 to 5 business days."
        )
    return Reply(
        "Thanks for reaching out! Our support team is available Monday to Friday, 9:00 to 18:00 CET, "
        "and this chat answers around the clock."
    )
