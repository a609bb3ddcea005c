"""Error messages are content (issue 13, item 1): an API key a provider's 401 echoes, a URL's query string in an
HTTP client's error, the input a pydantic `ValidationError` quotes. With content capture off they leave the
process scrubbed (the type and the rest of the message stay); with it on, redaction runs on them — in the span's
exception event, its status, and the session's end-state reason, live and exported alike."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

import agentotel
from agentotel import semconv as sc
from agentotel.redaction import redaction
from agentotel.testing import capture

KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX0123456789"
PROMPT = "I was charged twice for my subscription, please refund it"


class Customer(pydantic.BaseModel):
    customer_id: int


@agentotel.tool
def call_provider() -> None:
    raise PermissionError(f"Error code: 401 - Incorrect API key provided: {KEY}")


@agentotel.tool
def fetch_url() -> None:
    raise ConnectionError("GET https://api.example.com/v1/customers?email=ada%40example.com&limit=5 failed")


@agentotel.tool
def parse(customer_id: Any) -> Customer:
    return Customer(customer_id=customer_id)


@agentotel.tool
def fetch_customer_data(customer_id: Any) -> None:
    raise ValueError("customer_id cannot be None")


def _everything(cap: Any) -> str:
    found = []
    for span in cap.spans:
        found.append(span.status.description or "")
        found.extend(json.dumps(dict(e.attributes or {})) for e in span.events)
        found.append(json.dumps(dict(span.attributes or {}), default=str))
    return "\n".join(found)


def _run(tool: Any, *args: Any) -> tuple[Any, agentotel.Session]:
    with capture() as cap, pytest.raises((PermissionError, ConnectionError, ValueError)), agentotel.session("errors"):
        tool(*args)
    return cap, cap.session("errors")


@pytest.mark.parametrize("capture_content", [False, True])
def test_a_key_echoed_in_an_error_never_leaves(capture_content: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentotel._config import settings

    monkeypatch.setattr(settings, "capture_content", capture_content)
    cap, session = _run(call_provider)
    text = _everything(cap)
    assert KEY not in text and KEY not in (session.end_state_reason or "")
    assert "[REDACTED:openai_key]" in text
    first = session.first_error
    assert first is not None and first.error is not None
    assert first.error.type == "PermissionError" and "Incorrect API key provided" in first.error.message
    assert KEY not in (first.error.stacktrace or "")


def test_with_capture_off_query_strings_and_quoted_inputs_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentotel._config import settings

    monkeypatch.setattr(settings, "capture_content", False)
    cap, session = _run(fetch_url)
    assert "ada%40example.com" not in _everything(cap) and "?[REDACTED:query]" in _everything(cap)
    cap, session = _run(parse, PROMPT)
    text = _everything(cap)
    assert PROMPT not in text, "the ValidationError quotes the input"
    first = session.first_error
    assert first is not None and first.error is not None and "ValidationError" in first.error.type
    assert "input_value=[REDACTED:input]" in first.error.message and "int_parsing" in first.error.message


def test_a_plain_error_message_keeps_what_tells_the_step_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentotel._config import settings

    monkeypatch.setattr(settings, "capture_content", False)
    _, session = _run(fetch_customer_data, None)
    first = session.first_error
    assert first is not None and first.error is not None
    assert (first.error.type, first.error.message) == ("ValueError", "customer_id cannot be None")
    assert session.end_state_reason == "ValueError: customer_id cannot be None"


def test_with_capture_on_the_hook_sees_error_text_and_can_drop_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentotel._config import settings

    monkeypatch.setattr(settings, "capture_content", True)
    seen: list[str] = []

    def hook(key: str, text: str) -> str | None:
        seen.append(key)
        return None if key == sc.EXCEPTION_STACKTRACE else text.replace("cannot", "must not")

    monkeypatch.setattr(redaction, "hook", hook)
    cap, session = _run(fetch_customer_data, None)
    assert {sc.EXCEPTION_MESSAGE, sc.EXCEPTION_STACKTRACE, "status.description"} <= set(seen)
    assert sc.AGENTOTEL_SESSION_END_STATE_REASON in seen
    (tool,) = [s for s in cap.spans if s.name == "execute_tool fetch_customer_data"]
    (event,) = [e for e in tool.events if e.name == "exception"]
    assert event.attributes[sc.EXCEPTION_MESSAGE] == "customer_id must not be None"
    assert sc.EXCEPTION_STACKTRACE not in event.attributes
    assert tool.status.description == "ValueError: customer_id must not be None"
    assert session.end_state_reason == "ValueError: customer_id must not be None"


def test_with_capture_off_a_traceback_keeps_its_file_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack trace says where the error was raised (the file names are code, not content); a long quoted text in
    the message is still scrubbed."""
    from agentotel._config import settings

    monkeypatch.setattr(settings, "capture_content", False)
    _, session = _run(fetch_customer_data, None)
    first = session.first_error
    assert first is not None and first.error is not None and first.error.stacktrace
    assert f'File "{__file__}"' in first.error.stacktrace
    assert "[REDACTED:quoted]" not in first.error.stacktrace
    from agentotel.redaction import scrub_error_text

    quoted = f'ValueError: bad reply "{PROMPT}"\n  File "{__file__}", line 1, in f'
    assert scrub_error_text(quoted) == f"ValueError: bad reply '[REDACTED:quoted]'\n  File \"{__file__}\", line 1, in f"
