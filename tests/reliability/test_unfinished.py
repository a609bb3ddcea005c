"""What was not finished when it was read or recorded (issue 13, item 18): a JSON Lines file whose last line a
Collector is still writing is read up to its last complete line, with one warning; a tool call cancelled (an
`asyncio.wait_for` timing out, a task cancelled) or interrupted is marked as such, not shown as a step that
completed, and is not blamed as the session's error."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

import agentotel
from agentotel import semconv as sc
from agentotel.replay import render_text
from agentotel.sources import SourceError, otlp_json
from agentotel.sources.otlp_json import OtlpJsonSource, read_otlp_json
from agentotel.testing import Capture

from .support import child_env, lookup_order

# --- item 18a: a JSON Lines file still being written -----------------------------------------------------------------


def otlp_line(spans: list[ReadableSpan]) -> str:
    """One line of a Collector `file` exporter's JSON Lines: the spans as an OTLP/JSON request."""
    document = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document)


@pytest.fixture(params=["typed", "general"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test runs with the typed reader (msgspec, when installed) and with the general one."""
    if request.param == "general":
        monkeypatch.setattr(otlp_json, "_read_typed", None)
    elif otlp_json._read_typed is None:
        pytest.skip("msgspec (the `fast` extra) is not installed")
    return str(request.param)


@pytest.fixture
def lines(cap: Capture) -> list[str]:
    """Four lines, a session each (`line-1` ... `line-4`)."""
    found = []
    for n in range(1, 5):
        cap.clear()
        with agentotel.session(f"line-{n}"):
            lookup_order(str(n))
        found.append(otlp_line(cap.spans))
    return found


def session_names(path: Path) -> list[str]:
    with OtlpJsonSource(path) as source:
        return sorted(s.name for s in source.sessions())


def test_a_last_line_still_being_written_is_skipped_with_one_warning(
    tmp_path: Path, lines: list[str], reader: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])  # cut mid-line, no line break
    with caplog.at_level(logging.WARNING, logger="agentotel"):
        assert session_names(path) == ["line-1", "line-2", "line-3"]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(path) in warning and "line 4" in warning and "incomplete" in warning, warning
    assert "\n" not in warning


def test_complete_lines_give_no_warning(
    tmp_path: Path, lines: list[str], reader: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(lines))  # the last line complete, with no line break after it
    with caplog.at_level(logging.WARNING, logger="agentotel"):
        assert session_names(path) == ["line-1", "line-2", "line-3", "line-4"]
    assert not caplog.records


@pytest.mark.parametrize(
    ("make", "where"),
    [
        (lambda ls: "\n".join([ls[0], ls[1][:40], ls[2], ls[3]]), "line 2"),  # a bad line in the middle
        (lambda ls: "\n".join([ls[0], ls[1][:40], ls[2], ls[3][:40]]), "line 2"),  # ... and a partial last one
        (lambda ls: "\n".join([ls[0], ls[1], ls[2][:40]]) + "\n", "line 3"),  # a bad last line, then a line break
        (lambda ls: ls[0][:40], "not valid JSON"),  # one line, cut: nothing complete to read
    ],
    ids=["middle", "middle-and-last", "last-then-line-break", "only-line"],
)
def test_only_the_last_line_may_be_incomplete(
    tmp_path: Path, lines: list[str], reader: str, make: Any, where: str
) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(make(lines))
    with pytest.raises(SourceError) as raised:
        read_otlp_json(path)
    message = str(raised.value)
    assert where in message and "\n" not in message, message


def test_the_cli_reads_a_file_still_being_written_and_says_so_in_one_line(tmp_path: Path, lines: list[str]) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(lines[:3]) + "\n" + lines[3][:100])
    done = subprocess.run(
        [sys.executable, "-m", "agentotel.cli", "sessions", "--source", str(path)],
        capture_output=True,
        text=True,
        env=child_env(tmp_path),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert all(f"line-{n}" in done.stdout for n in (1, 2, 3)) and "line-4" not in done.stdout
    assert done.stderr.count("\n") == 1 and "line 4" in done.stderr and "incomplete" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# --- item 18b: a cancelled tool ------------------------------------------------------------------------------------


@agentotel.tool
async def slow_search(query: str, started: asyncio.Event, never: asyncio.Event) -> str:
    """Ends only when cancelled: nothing sets `never`."""
    started.set()
    await never.wait()
    return query


@agentotel.tool
async def failing_lookup(order_id: str) -> str:
    raise KeyError(order_id)


def tool_span(cap: Capture, name: str) -> ReadableSpan:
    (span,) = [s for s in cap.spans if (s.attributes or {}).get(sc.GEN_AI_TOOL_NAME) == name]
    return span


def assert_cancelled(span: ReadableSpan) -> None:
    attributes = span.attributes or {}
    assert attributes.get(sc.AGENTOTEL_STEP_CANCELLED) is True, dict(attributes)
    assert span.status.status_code is StatusCode.UNSET  # not the tool's failure: no error status, no error.type
    assert sc.ERROR_TYPE not in attributes
    assert span.end_time is not None


async def test_a_tool_whose_task_is_cancelled_is_marked_cancelled(cap: Capture) -> None:
    started, never = asyncio.Event(), asyncio.Event()
    with agentotel.session("cancels") as session:
        task = asyncio.create_task(slow_search("q", started, never))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert_cancelled(tool_span(cap, "slow_search"))
    (event,) = session.tool_calls
    assert event.error is None and session.first_error is None and session.end_state == "Success"
    assert "Cancelled" in render_text(session)


async def test_a_tool_timed_out_by_wait_for_is_marked_and_the_real_error_is_blamed(cap: Capture) -> None:
    started, never = asyncio.Event(), asyncio.Event()
    with pytest.raises(KeyError), agentotel.session("times-out") as session:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(slow_search("q", started, never), timeout=0.05)
        await failing_lookup("4417")  # the real error, after the cancelled step ended
    assert_cancelled(tool_span(cap, "slow_search"))
    first = session.first_error
    assert first is not None and first.name == "failing_lookup", first
    assert [e.name for e in session.errors] == ["failing_lookup"]
    text = render_text(session)
    assert "Cancelled" in text and text.count("PROBLEM") == 1


def test_an_interrupted_tool_is_marked_and_the_interrupt_goes_on_unchanged(cap: Capture) -> None:
    interrupt = KeyboardInterrupt()

    @agentotel.tool
    def waits_for_input() -> str:
        raise interrupt

    with pytest.raises(KeyboardInterrupt) as raised:
        waits_for_input()
    assert raised.value is interrupt
    assert_cancelled(tool_span(cap, "waits_for_input"))


def test_a_generator_tool_closed_early_is_not_cancelled(cap: Capture) -> None:
    @agentotel.tool
    def pages() -> Iterator[int]:
        yield from range(10)

    for page in pages():
        if page == 2:
            break
    assert (tool_span(cap, "pages").attributes or {}).get(sc.AGENTOTEL_STEP_CANCELLED) is None
