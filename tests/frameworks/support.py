"""The seed guide's support agent, as each framework test writes it, and the seed's assertions on its session.

Every framework test builds the same agent in its framework: one model (`MODEL`, served by the scripted
`LLMServer` through the OpenAI wire format), two tools — `fetch_customer_data(customer_id)`, which raises
`ValueError("customer_id cannot be None")` for `None`, and `lookup_invoice(customer_id)` — and runs it inside an
AgentOps-style session (`agentops.start_session` … `record(ActionEvent("session_complete"))` … `end_session`),
with `import agentotel as agentops` as the only change from the seed. The scripted model first asks for
`fetch_customer_data` with the customer id it is given (or `None`), then answers. What the seed's tests assert
about the session is then the same for every framework:

- `fetch_customer_data` is among `session.action_events`, before `session_complete`;
- for `None`, `session.first_error` is that tool call, with `ValueError` and its message;
- the session counts exactly the scripted model calls, their tokens, and their cost as genai-prices computes it;
- with content capture off, no prompt, argument, result, e-mail address or key leaves the process: not in any
  exported span's attributes or events, not in the live session.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from genai_prices import Usage, calc_price
from opentelemetry.sdk.trace import ReadableSpan

import agentotel as agentops
from agentotel import ActionEvent
from agentotel import semconv as sc
from agentotel.model import Session
from agentotel.testing import Capture, capture
from agentotel.testing.llm_server import LLMServer, Reply, ToolCall

MODEL = "gpt-4o-mini"
FETCH_TOOL = "fetch_customer_data"
INVOICE_TOOL = "lookup_invoice"
CALL_ID = "call_fetch_0001"

SECRET_EMAIL = "ada.lovelace@example.com"
SECRET_KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX0123456789"
USER_MESSAGE = f"I was charged twice for my subscription. Reach me at {SECRET_EMAIL}, my key is {SECRET_KEY}."
"""The customer's message: it holds an e-mail address and a key, which must never leave with content off."""
CUSTOMER = {"id": "cust_42", "name": "Ada", "plan": "pro", "email": SECRET_EMAIL}
ANSWER = "I have refunded the duplicate charge on plan pro."
INSTRUCTIONS = "You are a billing support agent. Always fetch the customer's data first."

# The two scripted model calls, with their usage: what the session must count, exactly.
FIRST_CALL_TOKENS = (120, 18)
SECOND_CALL_TOKENS = (180, 12)
LLM_CALLS = 2
INPUT_TOKENS = FIRST_CALL_TOKENS[0] + SECOND_CALL_TOKENS[0]
OUTPUT_TOKENS = FIRST_CALL_TOKENS[1] + SECOND_CALL_TOKENS[1]


class CustomerDatabase:
    """The seed's `db`."""

    def get_customer(self, customer_id: str | None) -> dict[str, Any]:
        if customer_id is None:
            raise ValueError("customer_id cannot be None")
        return dict(CUSTOMER, id=customer_id)


db = CustomerDatabase()


def fetch_customer_data(customer_id: str | None) -> dict[str, Any]:
    """The seed's tool, undecorated: each framework wraps it its own way."""
    return db.get_customer(customer_id)


def lookup_invoice(customer_id: str) -> dict[str, Any]:
    """A second tool the agent is offered (never called by the script)."""
    return {"customer_id": customer_id, "invoices": ["inv_1", "inv_2"]}


def expected_cost(model: str = MODEL) -> float:
    """The two calls' cost, as genai-prices computes it (not through agentotel's price book)."""
    return float(
        sum(
            calc_price(Usage(input_tokens=i, output_tokens=o), model_ref=model, provider_id="openai").total_price
            for i, o in (FIRST_CALL_TOKENS, SECOND_CALL_TOKENS)
        )
    )


def script(server: LLMServer, customer_id: str | None, *, streamed_chunks: int | None = None) -> None:
    """Queues the model's two answers: ask for `fetch_customer_data(customer_id)`, then answer."""
    server.script(
        Reply(
            tool_calls=[ToolCall(CALL_ID, FETCH_TOOL, {"customer_id": customer_id})],
            input_tokens=FIRST_CALL_TOKENS[0],
            output_tokens=FIRST_CALL_TOKENS[1],
            chunks=streamed_chunks,
        ),
        Reply(
            text=ANSWER,
            input_tokens=SECOND_CALL_TOKENS[0],
            output_tokens=SECOND_CALL_TOKENS[1],
            chunks=streamed_chunks,
        ),
    )


@dataclass
class SupportRun:
    """What one run of the support agent left: the live session, the captured spans and the agent's answer (or
    the exception it raised)."""

    live: Session
    captured: Capture
    response: str | None = None
    error: BaseException | None = None
    sessions: list[Session] = field(default_factory=list)

    @property
    def rebuilt(self) -> Session:
        """The session rebuilt from the exported spans."""
        return self.captured.session()

    @property
    def spans(self) -> list[ReadableSpan]:
        return self.captured.spans


def run_support_agent(agent: Callable[[str], str], message: str = USER_MESSAGE) -> str:
    """The seed's `run_support_agent`, its agent's work done by a framework: `agent(message)` returns the reply."""
    agentops.start_session(tags=["support", "v2.1"])
    try:
        response = agent(message)
        agentops.record(
            ActionEvent(
                action_type="session_complete", params={"intent": "billing"}, returns={"response_length": len(response)}
            )
        )
        agentops.end_session("Success")
        return response
    except Exception as e:
        agentops.end_session("Fail", end_state_reason=str(e))
        raise


@contextmanager
def recorded(*, capture_content: bool) -> Iterator[Capture]:
    """`capture()` with the live registry's last session cleared first (so `get_session()` is this run's)."""
    from agentotel.live import registry

    registry.clear()
    with capture(capture_content=capture_content) as captured:
        yield captured


def run(agent: Callable[[str], str], *, capture_content: bool, message: str = USER_MESSAGE) -> SupportRun:
    """Runs the support agent once under `capture()`; an exception the agent raises is kept, not raised."""
    response: str | None = None
    error: BaseException | None = None
    with recorded(capture_content=capture_content) as captured:
        try:
            response = run_support_agent(agent, message)
        except Exception as raised:
            error = raised
        live = agentops.get_session()
    assert live is not None, "no session was recorded"
    agentops.force_flush()
    return SupportRun(live=live, captured=captured, response=response, error=error)


# --------------------------------------------------------------------------------------------------------------------
# The seed's assertions


def action_types(session: Session) -> list[str]:
    return [e.action_type for e in session.action_events if e.action_type is not None]


def assert_fetched_before_complete(session: Session) -> None:
    """The seed's `test_billing_intent_routing`, on the session."""
    types = action_types(session)
    assert FETCH_TOOL in types, f"Agent should have fetched customer data for billing query; saw {types}\n" + (
        session.replay()
    )
    assert "session_complete" in types, f"no session_complete in {types}"
    assert types.index(FETCH_TOOL) < types.index("session_complete"), "Customer data should be fetched before the end"


def assert_tool_error_attributed(session: Session) -> None:
    """The seed's error attribution: the failing step is the tool call, with the exception's type and message."""
    first = session.first_error
    assert first is not None, "no error was attributed\n" + session.replay()
    assert first.action_type == FETCH_TOOL, f"first error on {first.kind} {first.name!r}\n" + session.replay()
    assert first.error is not None
    assert first.error.type.rsplit(".", 1)[-1] == "ValueError", first.error
    assert "customer_id cannot be None" in first.error.message, first.error


def assert_counts_and_cost(session: Session, model: str = MODEL) -> None:
    """Exactly the scripted model calls, tokens and genai-prices cost: each call counted once."""
    calls = session.llm_calls
    assert len(calls) == LLM_CALLS, f"{len(calls)} LLM calls counted, expected {LLM_CALLS}\n" + session.replay()
    assert session.input_tokens == INPUT_TOKENS, session.replay()
    assert session.output_tokens == OUTPUT_TOKENS, session.replay()
    assert abs(session.cost - expected_cost(model)) < 1e-12, (session.cost, expected_cost(model))


def assert_seed_behaviour(run_: SupportRun, *, failing: bool, model: str = MODEL) -> None:
    """Every seed assertion, on the live session and on the one rebuilt from the exported spans."""
    for session in (run_.live, run_.rebuilt):
        assert_fetched_before_complete(session)
        assert_counts_and_cost(session, model)
        if failing:
            assert_tool_error_attributed(session)
        else:
            assert session.first_error is None, session.replay()


SECRETS = (SECRET_EMAIL, SECRET_KEY, "charged twice", "cust_42", ANSWER, INSTRUCTIONS)
"""Text that is content: the prompt, its e-mail address and key, the tool's argument and result, the answer."""


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif value is not None:
        yield str(value)


_NOT_CONTENT = frozenset({sc.AGENTOTEL_TEST_NODE_ID})
"""The test's own node id, which the pytest plugin stamps on each session: it holds the test's parameters
(`[cust_42]`), not the agent's content."""


def leaked_content(run_: SupportRun, secrets: Iterable[str] = SECRETS) -> list[str]:
    """Where content was found: exported spans' attributes, events and status, and the live session's events."""
    found = []
    secrets = tuple(secrets)
    for span in run_.spans:
        places: list[tuple[str, Any]] = [
            (f"{span.name} attribute {k}", v) for k, v in (span.attributes or {}).items() if k not in _NOT_CONTENT
        ]
        for event in span.events:
            places += [(f"{span.name} event {event.name}.{k}", v) for k, v in (event.attributes or {}).items()]
        places.append((f"{span.name} status", span.status.description))
        for where, value in places:
            for text in _texts(value):
                for secret in secrets:
                    if secret in text:
                        found.append(f"{where}: {secret!r}")
    for event in run_.live.events:
        for where, value in (("params", event.params), ("returns", event.returns)):
            for text in _texts(value):
                for secret in secrets:
                    if secret in text:
                        found.append(f"live {event.kind} {event.name} {where}: {secret!r}")
    return found


def assert_no_content(run_: SupportRun, secrets: Iterable[str] = SECRETS) -> None:
    """With content capture off, no content anywhere (the error message of the tool is not content: it stays)."""
    found = leaked_content(run_, secrets)
    assert not found, "content left the process with capture off:\n" + "\n".join(sorted(set(found)))


def tool_event(session: Session, name: str = FETCH_TOOL) -> Any:
    events = [e for e in session.tool_calls if e.action_type == name]
    assert events, f"no {name} tool call\n" + session.replay()
    return events[0]


def assert_content_recorded(run_: SupportRun, customer_id: str = "cust_42") -> None:
    """With content capture on: the tool's arguments and result are on its step, and the replay shows the result
    handed back to the model (not a placeholder), the key redacted."""
    for session in (run_.live, run_.rebuilt):
        call = tool_event(session)
        assert call.params == {"customer_id": customer_id}, call.params
        result = call.returns if isinstance(call.returns, dict) else json.loads(str(call.returns))
        assert result["name"] == "Ada", call.returns
        replay = session.replay()
        assert "tool_call_response" not in replay, replay
        assert "tool result: " in replay, "the result handed back to the model is shown\n" + replay
        assert SECRET_KEY not in replay, replay
