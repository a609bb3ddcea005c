"""Issue 15, "Replay": what a user sees first. A failed step's traceback shows the user's frames only (agentotel's
hidden at display time and counted, the recorded stack left whole), the HTML replay opens on the first failure,
and its header says what the agent was asked and answered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

import agentotel
from agentotel.model import Session
from agentotel.replay.html import io_summary, page_data
from agentotel.replay.text import (
    TRACEBACK_LINES,
    UserTraceback,
    depths,
    is_agentotel_file,
    shown_events,
    traceback_lines,
    user_traceback,
)
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer

OWN_FRAMES = ("_wrapping.py", "_rerun_hook.py")


@agentotel.record_action("fetch_customer_data")
def fetch_customer_data(customer_id: str | None) -> dict[str, str]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}


@agentotel.agent("billing_agent")
def billing_agent(message: str) -> dict[str, str]:
    return fetch_customer_data(None)


RAISE_LINE = next(
    number
    for number, line in enumerate(Path(__file__).read_text().splitlines(), 1)
    if line.strip() == 'raise ValueError("customer_id cannot be None")'
)


def failed_session(cap: Capture) -> Session:
    with pytest.raises(ValueError), agentotel.session("support"):
        billing_agent("I was charged twice")
    return cap.session("support")


def error_of(session: Session, name: str) -> Any:
    event = next(e for e in session.events if e.name == name)
    assert event.error is not None and event.error.stacktrace
    return event.error


# --- the user's frames ----------------------------------------------------------------------------------------


def test_a_steps_traceback_keeps_the_users_frames_and_counts_agentotels(cap_content: Capture) -> None:
    session = failed_session(cap_content)
    recorded = error_of(session, "fetch_customer_data").stacktrace
    # Display time: the stored stack trace is what Python gave, agentotel's frames included.
    assert all(own in recorded for own in OWN_FRAMES)

    shown = user_traceback(recorded)
    assert shown.hidden == 2 and shown.note == "2 agentotel frames hidden"
    assert not any(own in shown.text for own in OWN_FRAMES)
    lines = shown.text.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert lines[1].startswith(f'  File "{__file__}", line ') and lines[1].endswith(", in fetch_customer_data")
    assert lines[2].strip() == 'raise ValueError("customer_id cannot be None")'
    assert lines[-1] == "ValueError: customer_id cannot be None"

    # The agent step the error went through: its own frame and the action's, three of agentotel's around them
    # (an agent step has no re-run shim).
    through = user_traceback(error_of(session, "billing_agent").stacktrace)
    assert through.hidden == 3
    assert [line.rsplit(", in ", 1)[1] for line in through.text.splitlines() if line.startswith("  File ")] == [
        "billing_agent",
        "fetch_customer_data",
    ]


def test_chained_exceptions_and_groups_keep_every_exception_line() -> None:
    here = __file__
    own = "/opt/venv/lib/python3.11/site-packages/agentotel/_wrapping.py"  # recorded on another machine
    chained = (
        "Traceback (most recent call last):\n"
        f'  File "{own}", line 69, in call\n'
        "    result = func(*args, **kwargs)\n"
        "             ^^^^^^^^^^^^^^^^^^^^^\n"
        f'  File "{here}", line 10, in lookup\n'
        "    return table[key]\n"
        "           ~~~~~^^^^^\n"
        "KeyError: 'c-1'\n"
        "\n"
        "During handling of the above exception, another exception occurred:\n"
        "\n"
        "Traceback (most recent call last):\n"
        f'  File "{here}", line 12, in lookup\n'
        '    raise LookupError("no such customer")\n'
        "LookupError: no such customer\n"
    )
    shown = user_traceback(chained)
    assert shown.hidden == 1
    assert own not in shown.text and "result = func" not in shown.text
    assert shown.text.splitlines() == [
        "Traceback (most recent call last):",
        f'  File "{here}", line 10, in lookup',
        "    return table[key]",
        "           ~~~~~^^^^^",
        "KeyError: 'c-1'",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        f'  File "{here}", line 12, in lookup',
        '    raise LookupError("no such customer")',
        "LookupError: no such customer",
    ]

    group = (
        "  + Exception Group Traceback (most recent call last):\n"
        f'  |   File "{own}", line 69, in call\n'
        "  |     result = func(*args, **kwargs)\n"
        f'  |   File "{here}", line 20, in run_all\n'
        '  |     raise ExceptionGroup("tools failed", errors)\n'
        "  | ExceptionGroup: tools failed (1 sub-exception)\n"
        "  +-+---------------- 1 ----------------\n"
        "    | ValueError: bad input\n"
        "    +------------------------------------\n"
    )
    shown = user_traceback(group)
    assert shown.hidden == 1 and "result = func" not in shown.text
    assert "  | ExceptionGroup: tools failed (1 sub-exception)" in shown.text
    assert "    | ValueError: bad input" in shown.text
    assert f'  |   File "{here}", line 20, in run_all' in shown.text


def test_a_carriage_return_in_a_message_is_no_line_of_its_own() -> None:
    recorded = (
        "Traceback (most recent call last):\n"
        f'  File "{agentotel.__file__}", line 1, in call\n'
        "    result = func(*args, **kwargs)\n"
        '  File "/srv/app/tools.py", line 3, in lookup\n'
        '    raise OSError("db down\\rall good")\n'
        "OSError: db down\rall good\u2028forged\n"
    )
    shown = user_traceback(recorded)
    assert shown.hidden == 1
    assert shown.text.split("\n")[-1] == "OSError: db down\rall good\u2028forged"


def test_an_exception_raised_inside_agentotel_keeps_its_line_and_no_empty_header() -> None:
    own = agentotel.__file__
    recorded = (
        "Traceback (most recent call last):\n"
        f'  File "{own}", line 69, in call\n'
        "    result = func(*args, **kwargs)\n"
        f'  File "{own}", line 88, in served_call\n'
        "    return served()\n"
        "KeyError: 'C-1042'\n"
    )
    assert user_traceback(recorded) == UserTraceback("KeyError: 'C-1042'", 2)
    assert traceback_lines(recorded) == ["KeyError: 'C-1042'", "(2 agentotel frames hidden)"]


def test_only_agentotels_own_files_are_hidden() -> None:
    import agentotel.demo.support_agent as support_agent
    import agentotel.testing.assertions as assertions

    assert is_agentotel_file(agentotel.__file__)
    assert is_agentotel_file(assertions.__file__)
    assert is_agentotel_file("C:\\Users\\me\\venv\\Lib\\site-packages\\agentotel\\_wrapping.py")
    assert not is_agentotel_file(__file__)
    assert not is_agentotel_file(support_agent.__file__)  # the demo's agent plays the user's code
    assert not is_agentotel_file("/srv/app/agentotel_helpers.py")
    assert not is_agentotel_file("/usr/lib/python3.11/site-packages/opentelemetry/trace/__init__.py")
    # A stack in another language's format has no frame to hide: it comes back as recorded.
    other = "Error: boom\n    at lookup (/srv/app/tools.js:10:5)\n"
    assert user_traceback(other).text == other.rstrip("\n") and user_traceback(other).hidden == 0


def test_text_replay_shows_the_failing_steps_user_frames(cap_content: Capture) -> None:
    replay = failed_session(cap_content).replay(width=200)
    assert not any(own in replay for own in OWN_FRAMES)
    lines = replay.splitlines()
    problem = next(i for i, line in enumerate(lines) if "← PROBLEM" in line)
    assert lines[problem + 1 : problem + 8] == [
        "             Input: customer_id=None",
        "             Error: ValueError: customer_id cannot be None",
        "             Traceback (most recent call last):",
        f'               File "{__file__}", line {RAISE_LINE}, in fetch_customer_data',
        '                 raise ValueError("customer_id cannot be None")',
        "             ValueError: customer_id cannot be None",
        "             (2 agentotel frames hidden)",
    ]
    # Only the failing step's traceback: the agent step it went through does not repeat it.
    assert replay.count("Traceback (most recent call last):") == 1


def test_text_replay_keeps_the_innermost_lines_of_a_deep_traceback(cap_content: Capture) -> None:
    # The user's own frames, not steps; two functions in turn, which Python does not fold into "repeated".
    def ping(depth: int) -> None:
        if depth == 0:
            raise RecursionError("too deep to go on")
        pong(depth - 1)

    def pong(depth: int) -> None:
        ping(depth)

    @agentotel.tool
    def descend(depth: int) -> None:
        ping(depth)

    with pytest.raises(RecursionError), agentotel.session("deep"):
        descend(TRACEBACK_LINES)
    replay = cap_content.session("deep").replay(width=200)
    lines = replay.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("(") and "earlier lines" in line)
    trace = lines[start : start + TRACEBACK_LINES + 1]
    assert len(trace) == TRACEBACK_LINES + 1  # the cut, the innermost lines and the hidden-frames note
    assert trace[-2].strip() == "RecursionError: too deep to go on"
    assert trace[-1].strip() == "(2 agentotel frames hidden)"


def test_the_html_replay_shows_the_users_frames_and_keeps_the_whole_one_beside(cap_content: Capture) -> None:
    session = failed_session(cap_content)
    data = page_data(session)
    row = data["events"][data["first_error"]]
    error = row["error"]
    assert error["stack_note"] == "2 agentotel frames hidden"
    assert not any(own in error["stack"] for own in OWN_FRAMES)
    assert error["stack"].endswith("ValueError: customer_id cannot be None")
    assert error["stack_full"] == error_of(session, "fetch_customer_data").stacktrace


# --- where the page opens ---------------------------------------------------------------------------------------


def test_the_page_opens_on_the_first_failure_else_where_a_failed_session_stopped(cap_content: Capture) -> None:
    failed = failed_session(cap_content)
    data = page_data(failed)
    assert data["open"] == data["first_error"] is not None
    assert data["events"][data["open"]]["label"] == "Action: fetch_customer_data"

    @agentotel.tool
    def flaky(n: int) -> int:
        if n == 0:
            raise ConnectionError("timed out")
        return n

    with agentotel.session("recovered"):  # an error the agent got over: the session still succeeds
        flaky(1)
        try:
            flaky(0)
        except ConnectionError:
            pass
        flaky(2)
    recovered = page_data(cap_content.session("recovered"))
    assert recovered["open"] == recovered["first_error"] == 1

    agentotel.start_session(name="gave-up")
    flaky(1)
    flaky(2)
    agentotel.end_session("Fail", "no answer the user accepted")
    gave_up = page_data(cap_content.session("gave-up"))
    assert gave_up["first_error"] is None and gave_up["open"] == 1  # the last step: where it stopped

    with agentotel.session("fine"):
        flaky(3)
        flaky(4)
    assert page_data(cap_content.session("fine"))["open"] == 0


# --- what the agent was asked and answered ------------------------------------------------------------------------


def summary_of(session: Session) -> dict[str, Any]:
    events, _ = shown_events(session)
    return io_summary(events, depths(session, events))


def test_summary_is_the_first_user_message_and_the_last_models_answer(
    cap_content: Capture, llm: LLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the real openai SDK against the scripted model: the messages as the instrumentation records them."""
    client = openai.OpenAI()
    llm.script("Let me look up your account.", "You were charged twice; a refund is on its way.")

    @agentotel.tool
    def lookup_charges(customer: str) -> list[str]:
        return ["2026-11-01 $9.99", "2026-11-01 $9.99"]

    with agentotel.session("support"):
        system = {"role": "system", "content": "You are ACME's billing agent."}
        question = {"role": "user", "content": "I was charged twice this month."}
        client.chat.completions.create(model="gpt-4o-mini", messages=[system, question])
        charges = lookup_charges("C-1042")
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[system, question, {"role": "user", "content": "Charges: " + str(charges)}]
        )
    session = cap_content.session("support")
    summary = summary_of(session)
    events, _ = shown_events(session)
    assert summary["input"]["text"] == "I was charged twice this month."
    assert summary["output"]["text"] == "You were charged twice; a refund is on its way."
    assert events[summary["input"]["step"]].kind == "llm" and summary["input"]["step"] == 0
    assert summary["output"]["step"] == len(events) - 1
    assert page_data(session)["io"] == summary


def test_summary_without_llm_calls_is_the_first_input_and_the_last_ended_output(cap_content: Capture) -> None:
    @agentotel.tool
    def search(query: str) -> list[str]:
        return ["kb://refunds"]

    @agentotel.record_action("answer")
    def answer(question: str) -> str:
        search("refund duplicate charge")
        return "Refunds take five days."

    @agentotel.agent("answerer")
    def agent(question: str) -> str:  # an agent step records no content: the action is the first with some
        return answer(question)

    with agentotel.session("no-model"), agentotel.session("inner"):
        agent("How long does a refund take?")
    session = cap_content.session("no-model")
    events, _ = shown_events(session)
    assert [e.name for e in events] == ["inner", "answerer", "answer", "search"]
    summary = summary_of(session)
    assert summary["input"] == {"text": "How long does a refund take?", "step": 2}
    # The action's answer, not its tool's result, though the tool started last.
    assert summary["output"] == {"text": "Refunds take five days.", "step": 2}


def test_summary_is_empty_when_content_was_not_captured(cap: Capture) -> None:
    failed = failed_session(cap)
    assert summary_of(failed) == {}
    assert page_data(failed)["io"] == {}


def test_summary_text_is_bounded(cap_content: Capture) -> None:
    from agentotel.replay.html import IO_SUMMARY_LENGTH

    @agentotel.tool
    def echo(text: str) -> str:
        return text

    with agentotel.session("long"):
        echo("x" * (IO_SUMMARY_LENGTH * 2))
    summary = summary_of(cap_content.session("long"))
    assert len(summary["input"]["text"]) == IO_SUMMARY_LENGTH and summary["input"]["text"].endswith("…")
