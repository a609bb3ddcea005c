"""No secret leaks: a full agent run (OpenAI chat, streamed chat with a tool call, Responses, embeddings, a failing
call, decorated tools) is scanned everywhere agentotel puts what it records: every span (name, attributes, events,
status), every log line (DEBUG and up), every row of the store, every byte sent to the OTLP backend, and the
sessions' JSON and text replays.

- With content capture off (the default) no prompt, completion, tool argument or result appears anywhere.
- In every mode the API key, bearer tokens and auth header values never appear, nor any auth header by name.
The same scan with content capture on must find the content: the scanner is shown to see what it looks for.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan

import agentotel
from agentotel.replay.text import render_text
from agentotel.store import StoreSpanExporter
from agentotel.testing import capture
from agentotel.testing.llm_server import LLMServer, Reply, ToolCall

from .support import FaultyOTLPBackend, accounted, exporting_through

API_KEY = "sk-proj-SECRETKEY-9f8e7d6c5b4a"
HEADER_SECRET = "hdr-SECRET-0a1b2c3d"
OTLP_TOKEN = "otlp-SECRET-token-77aa"
SECRETS = (API_KEY, HEADER_SECRET, OTLP_TOKEN, "Bearer ")
AUTH_HEADER_NAMES = ("authorization", "x-custom-auth", "api-key", "api_key", "x-api-key")

CONTENT = {
    "prompt": "PROMPT-7f3a what is my balance",
    "system": "SYSTEM-9c1d you are a bank agent",
    "completion": "COMPLETION-4b2e your balance is 42",
    "tool argument": "TOOLARG-81aa",
    "tool result": "TOOLRESULT-5d0c",
    "embedding input": "EMBED-INPUT-33f1",
    "responses input": "RESP-INPUT-aa02",
    "responses output": "RESP-OUTPUT-bb03",
    "streamed completion": "STREAMED-COMPLETION-c4d5",
}


@agentotel.tool
def get_balance(account: str) -> str:
    return f"{CONTENT['tool result']} for {account}"


@dataclass
class Recorded:
    """Everything a run left behind, as text to search."""

    places: dict[str, list[str]] = field(default_factory=dict)

    def add(self, place: str, text: Any) -> None:
        self.places.setdefault(place, []).append(text if isinstance(text, str) else json.dumps(text, default=str))

    def where(self, needle: str) -> list[str]:
        """The places `needle` shows up in (case-insensitive), with a bit of context."""
        found = []
        for place, texts in self.places.items():
            for text in texts:
                at = text.lower().find(needle.lower())
                if at >= 0:
                    found.append(f"{place}: ...{text[max(0, at - 60) : at + 60]}...")
                    break
        return found


def span_texts(span: ReadableSpan) -> list[Any]:
    return [
        span.name,
        dict(span.attributes or {}),
        [(e.name, dict(e.attributes or {})) for e in span.events],
        span.status.description,
        dict(span.resource.attributes),
    ]


class Everything(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logs() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def run_agent(server: LLMServer) -> agentotel.Session:
    server.script(
        Reply(tool_calls=[ToolCall("call_1", "get_balance", {"account": CONTENT["tool argument"]})]),
        Reply(CONTENT["completion"], input_tokens=50, output_tokens=8),
        Reply(CONTENT["streamed completion"]),
        Reply(CONTENT["responses output"]),
        Reply(input_tokens=3),  # the embeddings call's
        Reply("the request was malformed", status=400),
    )
    client = openai.OpenAI(
        base_url=server.openai_base_url,
        api_key=API_KEY,
        max_retries=0,
        default_headers={"X-Custom-Auth": HEADER_SECRET},
    )
    messages: list[Any] = [
        {"role": "system", "content": CONTENT["system"]},
        {"role": "user", "content": CONTENT["prompt"]},
    ]
    tools = [
        {
            "type": "function",
            "function": {"name": "get_balance", "parameters": {"type": "object", "properties": {"account": {}}}},
        }
    ]
    with agentotel.session("bank", tags=["security"]) as s:
        first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=tools)
        call = first.choices[0].message.tool_calls[0]
        result = get_balance(**json.loads(call.function.arguments))
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ]
        assert client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content
        stream = client.chat.completions.create(model="gpt-4o", messages=messages, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert client.responses.create(model="gpt-4o", input=CONTENT["responses input"]).output_text
        client.embeddings.create(model="text-embedding-3-small", input=CONTENT["embedding input"])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="gpt-4o", messages=messages)
    client.close()
    return s


@pytest.fixture(params=[False, True], ids=["content-off", "content-on"])
def recorded(request: pytest.FixtureRequest, tmp_path: Path, logs: Everything) -> Iterator[tuple[bool, Recorded]]:
    content_on: bool = request.param
    db = tmp_path / "sessions.db"
    found = Recorded()
    with FaultyOTLPBackend() as backend, LLMServer() as server, capture(capture_content=content_on) as cap:
        otlp = accounted(OTLPSpanExporter(endpoint=backend.endpoint, headers={"Authorization": f"Bearer {OTLP_TOKEN}"}))
        with exporting_through(accounted(StoreSpanExporter(db))), exporting_through(otlp):
            session = run_agent(server)
        spans = cap.spans
        bodies = [a.body for a in backend.attempts if a.status == 200]
    assert len(session.llm_calls) == 6 and len(session.tool_calls) == 1 and len(spans) == 8
    for span in spans:
        found.add(f"span {span.name}", span_texts(span))
    formatter = logging.Formatter("%(message)s")
    for record in logs.records:  # every logger's: agentotel's, the SDK's and exporters', the clients'
        found.add(f"log {record.name}", formatter.format(record))
    connection = sqlite3.connect(db)
    for table in ("spans", "sessions"):
        for row in connection.execute(f"SELECT * FROM {table}"):
            found.add(f"store {table}", [str(v) for v in row])
    connection.close()
    assert bodies, "the OTLP backend got the spans"
    for body in bodies:
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        found.add("otlp body", body.decode("latin-1"))
        found.add("otlp json", MessageToDict(message))
    for rebuilt in cap.sessions:
        found.add("session json", rebuilt.to_dict())
        found.add("text replay", render_text(rebuilt))
    yield content_on, found


def test_no_api_key_token_or_auth_header_is_recorded_anywhere(recorded: tuple[bool, Recorded]) -> None:
    _, found = recorded
    for secret in SECRETS:
        assert not found.where(secret), f"{secret!r} found in {found.where(secret)}"
    for name in AUTH_HEADER_NAMES:
        assert not found.where(f'"{name}'), f"an auth header by name ({name}) in {found.where(name)}"


def test_content_is_recorded_only_when_asked_for(recorded: tuple[bool, Recorded]) -> None:
    content_on, found = recorded
    for what, marker in CONTENT.items():
        if content_on and what == "embedding input":
            continue  # the GenAI conventions record no embeddings input
        if content_on:
            assert found.where(marker), f"with content on, the {what} should be recorded: the scan must see it"
        else:
            assert not found.where(marker), f"the {what} leaked with content off: {found.where(marker)}"


def test_the_store_and_its_journal_files_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    import os
    import stat

    previous = os.umask(0o022)  # a usual umask, which would leave new files world-readable
    try:
        db = tmp_path / "private" / "sessions.db"
        with capture() as cap, exporting_through(accounted(StoreSpanExporter(db))) as processor:
            with agentotel.session("private"):
                get_balance("x")
            assert processor.force_flush(5_000)
            files = [p for p in db.parent.iterdir() if p.name.startswith("sessions.db")]
            assert {p.name for p in files} >= {"sessions.db", "sessions.db-wal", "sessions.db-shm"}
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
            folder = stat.S_IMODE(db.parent.stat().st_mode)
        assert len(cap.spans) == 2
    finally:
        os.umask(previous)
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes
    assert folder & 0o077 == 0, oct(folder)


def test_loss_reports_never_show_the_credentials_of_an_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    from .support import closed_port

    caplog.set_level(logging.DEBUG)
    endpoint = f"http://user:pw-SECRET-1@127.0.0.1:{closed_port()}/v1/traces?token=query-SECRET-2"
    with capture(), exporting_through(accounted(OTLPSpanExporter(endpoint=endpoint, timeout=1))) as processor:
        with agentotel.session("credentials"):
            get_balance("x")
        processor.force_flush(3_000)
    ours = [r.getMessage() for r in caplog.records if r.name == "agentotel"]
    # (The SDK's own retry warning quotes the URL's path and query, as `requests` words it: its loggers are the
    # app's to configure.)
    assert any("lost" in line and "127.0.0.1" in line for line in ours), ours
    assert not [line for line in ours if "SECRET" in line], ours
