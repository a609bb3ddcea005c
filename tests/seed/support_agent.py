"""The seed guide's support agent, as its "Setup and Integration" section writes it, with `import agentotel as
agentops` the only change. The helpers the guide leaves undefined (db, extract_customer_id, the two response
generators) are filled in here; the LLM calls go through the real `openai` module-level client."""

from __future__ import annotations

import re

import openai

import agentotel as agentops
from agentotel import ActionEvent, record_action

agentops.init(api_key="your-api-key")


class _Database:
    customers = {"cust_42": {"id": "cust_42", "name": "Ada", "plan": "pro"}}

    def get_customer(self, customer_id: str) -> dict:
        if customer_id is None:
            raise ValueError("customer_id cannot be None")
        return self.customers.get(customer_id, {"id": customer_id, "name": "unknown", "plan": "free"})


db = _Database()


def extract_customer_id(message: str) -> str | None:
    """The customer id in the message, else the signed-in customer's; a guest has none."""
    found = re.search(r"cust_\d+", message)
    if found:
        return found.group(0)
    return None if "guest" in message.lower() else "cust_42"


@record_action("fetch_customer_data")
def fetch_customer(customer_id: str) -> dict:
    # This tool call will be tracked in the session
    return db.get_customer(customer_id)


@record_action("classify_intent")
def classify(message: str) -> str:
    response = openai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": f"Classify: {message}"}]
    )
    return response.choices[0].message.content


def generate_billing_response(customer: dict, message: str) -> str:
    response = openai.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"Customer {customer['name']} on plan {customer['plan']}: {message}"}],
    )
    return f"About your billing charge: {response.choices[0].message.content}"


def generate_general_response(message: str) -> str:
    response = openai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": message}])
    return f"Thanks for reaching out! {response.choices[0].message.content}"


def run_support_agent(user_message: str):
    agentops.start_session(tags=["support", "v2.1"])

    try:
        intent = classify(user_message)

        if intent == "billing":
            customer = fetch_customer(extract_customer_id(user_message))
            response = generate_billing_response(customer, user_message)
        else:
            response = generate_general_response(user_message)

        agentops.record(
            ActionEvent(
                action_type="session_complete", params={"intent": intent}, returns={"response_length": len(response)}
            )
        )

        agentops.end_session("Success")
        return response

    except Exception as e:
        agentops.end_session("Fail", end_state_reason=str(e))
        raise
