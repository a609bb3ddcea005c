"""The support agent written by hand (the real `openai` client, `@agentotel.tool`): the baseline every framework
test matches, and a check that the shared assertions catch what they are meant to."""

from __future__ import annotations

import json

import openai
import pytest

import agentotel
from agentotel.testing.llm_server import LLMServer

from . import support


def _agent(server: LLMServer):
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
    fetch = agentotel.tool(support.FETCH_TOOL)(support.fetch_customer_data)

    def agent(message: str) -> str:
        messages: list[dict] = [
            {"role": "system", "content": support.INSTRUCTIONS},
            {"role": "user", "content": message},
        ]
        first = client.chat.completions.create(model=support.MODEL, messages=messages)
        call = first.choices[0].message.tool_calls[0]
        try:
            result = json.dumps(fetch(**json.loads(call.function.arguments)))
        except ValueError as error:
            result = f"Error: {error}"
        messages += [
            first.choices[0].message.model_dump(),
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ]
        second = client.chat.completions.create(model=support.MODEL, messages=messages)
        return second.choices[0].message.content or ""

    return agent


@pytest.mark.parametrize("capture_content", [False, True])
def test_handwritten_agent_meets_the_seed(llm: LLMServer, capture_content: bool) -> None:
    support.script(llm, "cust_42")
    run = support.run(_agent(llm), capture_content=capture_content)
    assert run.error is None and run.response == support.ANSWER
    support.assert_seed_behaviour(run, failing=False)
    if capture_content:
        support.assert_content_recorded(run)
    else:
        support.assert_no_content(run)


def test_handwritten_agent_attributes_the_tool_error(llm: LLMServer) -> None:
    support.script(llm, None)
    run = support.run(_agent(llm), capture_content=False)
    support.assert_seed_behaviour(run, failing=True)


def test_the_shared_assertions_fail_on_a_wrong_session(llm: LLMServer) -> None:
    """The harness itself: an agent that skips the tool and makes one call fails each assertion it should."""
    client = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-test", max_retries=0)
    support.script(llm, "cust_42")

    def lazy(message: str) -> str:
        client.chat.completions.create(model=support.MODEL, messages=[{"role": "user", "content": message}])
        return "done"

    run = support.run(lazy, capture_content=True)
    with pytest.raises(AssertionError, match="fetched customer data"):
        support.assert_fetched_before_complete(run.live)
    with pytest.raises(AssertionError, match="1 LLM calls counted"):
        support.assert_counts_and_cost(run.live)
    with pytest.raises(AssertionError, match="no error was attributed"):
        support.assert_tool_error_attributed(run.live)
    with pytest.raises(AssertionError, match="content left the process"):
        support.assert_no_content(run)
