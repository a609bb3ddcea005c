"""A session saved as a file (`Session.save`, `agentotel export`): OTLP JSON Lines that every reader reads back
exactly as `build_sessions` needs it, the content a re-run needs checked, and one-line errors for files that are
not sessions."""

from __future__ import annotations

import argparse
import json
import math
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import openai
import pytest

import agentotel
from agentotel import cli, cli_export
from agentotel import semconv as sc
from agentotel.demo import MESSAGES, run_demo
from agentotel.model import Session, build_sessions
from agentotel.records import ExceptionInfo, SpanRecord
from agentotel.sessions_file import (
    MissingContentError,
    MissingContentWarning,
    SessionFileError,
    content_problems,
    load_session,
    otlp_json_lines,
    session_records,
    write_records,
)
from agentotel.sources import open_source, otlp_json
from agentotel.testing import Capture, capture
from agentotel.testing.llm_server import LLMServer, Reply, ToolCall


@agentotel.tool
def lookup(city: str) -> dict[str, Any]:
    return {"city": city, "weather": "sunny"}


@agentotel.record_action("fetch_customer_data")
def fetch_customer(customer_id: str | None) -> dict[str, str]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}


def _normalised(record: SpanRecord) -> dict[str, Any]:
    """A record as plain data, sequences as lists and NaN as a marker (NaN equals nothing, itself included)."""

    def plain(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return "<nan>"
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    data = asdict(record)
    data["attributes"] = plain(dict(record.attributes))
    data["exceptions"] = [asdict(e) for e in record.exceptions]
    return data


@pytest.fixture(params=["general", "typed"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each file is read by both OTLP JSON readers: the general one, and the typed one of the `fast` extra."""
    if request.param == "general":
        monkeypatch.setattr(otlp_json, "_read_typed", None)
    else:
        assert otlp_json._read_typed is not None, "msgspec (the fast extra) is installed in the dev virtualenv"
    return str(request.param)


def _odd_records() -> list[SpanRecord]:
    """Spans with every kind of value a record can hold, two services, an unfinished span, an exception."""
    trace_id = "ab" * 16
    attributes: dict[str, Any] = {
        "text": "line one\nline two \u2028 and \x1b[31m",
        "count": 7,
        "big": 2**62,
        "negative": -3,
        "ratio": 0.25,
        "nan": float("nan"),
        "inf": float("inf"),
        "minus_inf": float("-inf"),
        "yes": True,
        "no": False,
        "tags": ("a", "b"),
        "numbers": [1, 2, 3],
        "mixed_floats": [0.5, 1.5],
        "flags": [True, False],
        "empty": [],
        "nested": {"k": "v", "n": 1},
        sc.SESSION_ID: "session-1",
    }
    root_attributes = {
        sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_SESSION,
        sc.GEN_AI_AGENT_NAME: "odd",
        sc.SESSION_ID: "session-1",
        sc.AGENTOTEL_SESSION_TAGS: ["x", "y"],
        sc.AGENTOTEL_SESSION_END_STATE: "Fail",
    }
    return [
        SpanRecord(
            trace_id,
            "01" * 8,
            None,
            "invoke_agent odd",
            "INTERNAL",
            1_000,
            9_000,
            root_attributes,
            "ERROR",
            "boom",
            (),
            "svc-a",
        ),
        SpanRecord(
            trace_id, "02" * 8, "01" * 8, "chat gpt-4o", "CLIENT", 2_000, 3_000, attributes, "OK", None, (), "svc-a"
        ),
        SpanRecord(
            trace_id,
            "03" * 8,
            "01" * 8,
            "execute_tool t",
            "INTERNAL",
            4_000,
            5_000,
            {sc.SESSION_ID: "session-1", sc.ERROR_TYPE: "mod.Err"},
            "ERROR",
            "Err: bad",
            (ExceptionInfo("Err", "bad", "Traceback ...\nErr: bad\n"), ExceptionInfo("Other", "")),
            "svc-b",
        ),
        SpanRecord(
            trace_id,
            "04" * 8,
            "01" * 8,
            "still running",
            "PRODUCER",
            6_000,
            None,
            {sc.SESSION_ID: "session-1"},
            "UNSET",
            None,
            (),
            None,
        ),
    ]


def test_records_round_trip_exactly_through_both_readers(tmp_path: Path, reader: str) -> None:
    records = _odd_records()
    path = write_records(records, tmp_path / "odd.jsonl")
    back = otlp_json.read_otlp_json(path)
    assert [_normalised(r) for r in back] == [_normalised(r) for r in records]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3, "one TracesData document a line, per service name"
    assert all(set(json.loads(line)) == {"resourceSpans"} for line in lines)


def test_a_thousand_spans_are_several_lines_read_back_in_order(tmp_path: Path) -> None:
    base = _odd_records()[1]
    records = [
        SpanRecord(base.trace_id, f"{i + 1:016x}", None, f"span {i}", "INTERNAL", i, i + 1, {"i": i})
        for i in range(1200)
    ]
    path = write_records(records, tmp_path / "many.jsonl")
    assert len(path.read_text(encoding="utf-8").splitlines()) == 3
    assert [r.attributes["i"] for r in otlp_json.read_otlp_json(path)] == list(range(1200))


def _captured_session(llm: LLMServer, *, capture_content: bool) -> Session:
    llm.script(
        Reply(tool_calls=[ToolCall("call_1", "lookup", {"city": "Paris"})], input_tokens=30, output_tokens=5),
        Reply("Sunny in Paris.", input_tokens=40, output_tokens=4, cached_tokens=10),
    )
    client = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-test", max_retries=0)
    with capture(capture_content=capture_content) as cap, agentotel.session("weather", tags=["t1"]):
        messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        call = first.choices[0].message.tool_calls[0]
        messages += [
            first.choices[0].message.model_dump(),
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps(lookup("Paris"))},
        ]
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        with agentotel.session("inner"):
            try:
                fetch_customer(None)
            except ValueError:
                pass
    return cap.session("weather")


def test_a_saved_session_reads_back_as_the_same_session(tmp_path: Path, llm: LLMServer, reader: str) -> None:
    session = _captured_session(llm, capture_content=True)
    path = tmp_path / "weather.jsonl"
    assert session.save(path) == []
    loaded = load_session(path)
    assert loaded.to_dict() == session.to_dict()
    assert loaded.replay() == session.replay()
    assert [_normalised(r) for r in session_records(loaded)] == [_normalised(r) for r in session_records(session)]
    assert session_records(session)[0].span_id == session.span_id, "the root span comes first"
    nested = [s for s in open_source(str(path)).all_sessions() if s.name == "inner"]  # type: ignore[attr-defined]
    assert len(nested) == 1 and nested[0].first_error is not None and nested[0].first_error.error is not None
    assert nested[0].first_error.error.type == "ValueError"


def test_the_file_is_private_written_whole_and_replaces_an_older_one(tmp_path: Path, llm: LLMServer) -> None:
    session = _captured_session(llm, capture_content=True)
    path = tmp_path / "weather.jsonl"
    path.write_text("old content", encoding="utf-8")
    os.chmod(path, 0o644)
    session.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600, "the file holds prompts: its owner's only"
    assert [p.name for p in tmp_path.iterdir()] == ["weather.jsonl"], "no temporary file is left behind"
    assert load_session(path).id == session.id
    with pytest.raises(SessionFileError, match="cannot write") as raised:
        session.save(tmp_path / "no" / "such" / "folder" / "x.jsonl")
    assert "\n" not in str(raised.value)


def test_a_live_session_is_saved_with_its_nested_sessions(tmp_path: Path, cap_content: Capture) -> None:
    with agentotel.session("outer") as outer:
        lookup("Rome")
        with agentotel.session("inner"):
            lookup("Oslo")
    path = tmp_path / "live.jsonl"
    outer.save(path)
    loaded = load_session(path)
    assert loaded.id == outer.id and loaded.end_state == "Success"
    assert [e.params for e in loaded.tool_calls] == [{"city": "Rome"}, {"city": "Oslo"}]
    assert loaded.to_dict() == cap_content.session("outer").to_dict()


def test_a_running_live_session_is_saved_as_far_as_it_went(tmp_path: Path, cap_content: Capture) -> None:
    with agentotel.session("unfinished") as running:
        lookup("Lima")
        path = tmp_path / "running.jsonl"
        with pytest.warns(MissingContentWarning, match="still running"):
            problems = running.save(path)
    assert problems == ["the session is still running: steps that have not ended are not in it"]
    loaded = load_session(path)
    assert loaded.id == running.id and loaded.end_state is None
    assert [e.action_type for e in loaded.tool_calls] == ["lookup"]


def test_a_session_without_content_is_saved_with_a_warning_naming_the_calls(tmp_path: Path, llm: LLMServer) -> None:
    session = _captured_session(llm, capture_content=False)
    expected = [
        "LLM call 1 of 2 (chat gpt-4o-mini) has no input or output messages",
        "LLM call 2 of 2 (chat gpt-4o-mini) has no input or output messages",
    ]
    assert content_problems(session) == expected
    path = tmp_path / "no_content.jsonl"
    with pytest.warns(MissingContentWarning, match=r"LLM call 1 of 2 \(chat gpt-4o-mini\) has no input or output"):
        assert session.save(path) == expected
    assert load_session(path).id == session.id, "saving still works"
    refused = tmp_path / "refused.jsonl"
    with pytest.raises(MissingContentError, match="content capture on") as raised:
        session.save(refused, require_content=True)
    assert not refused.exists() and "\n" not in str(raised.value)


def test_a_session_with_content_saves_without_a_warning(tmp_path: Path, llm: LLMServer) -> None:
    session = _captured_session(llm, capture_content=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert session.save(tmp_path / "ok.jsonl", require_content=True) == []


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("just some text\n", "neither an agentotel store"),
        ('{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}\n', "not an OTLP JSON traces file"),
        ('{"resourceSpans": []}\n', "holds no session"),
    ],
)
def test_a_file_that_is_not_a_session_is_one_clear_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "x.jsonl"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(SessionFileError, match=message) as raised:
        load_session(path)
    assert "\n" not in str(raised.value)


def test_a_file_of_several_sessions_says_which_and_loads_the_one_named(tmp_path: Path, cap_content: Capture) -> None:
    for name in ("first", "second"):
        with agentotel.session(name):
            lookup(name)
    path = write_records(
        session_records(cap_content.session("first")) + session_records(cap_content.session("second")),
        tmp_path / "two.jsonl",
    )
    with pytest.raises(SessionFileError, match=r"holds 2 sessions.*say which one"):
        load_session(path)
    second = cap_content.session("second")
    assert load_session(path, second.id).name == "second"
    with pytest.raises(SessionFileError, match="no session or trace with id 'nope'"):
        load_session(path, "nope")


def test_the_lines_are_otlp_traces_data_every_source_reads(
    tmp_path: Path, llm: LLMServer, capsys: pytest.CaptureFixture[str]
) -> None:
    session = _captured_session(llm, capture_content=True)
    path = tmp_path / "weather.jsonl"
    session.save(path)
    assert [s.id for s in open_source(str(path)).sessions() if s.parent_id is None] == [session.id]
    assert cli.main(["replay", session.id[:8], "--source", str(path)]) == 0
    out = capsys.readouterr().out
    assert "LLM Call (gpt-4o-mini)" in out and "Sunny in Paris." in out
    rebuilt = build_sessions(
        otlp_json.records_from_otlp_json(json.loads(next(otlp_json_lines(session_records(session)))))
    )
    assert session.id in {s.id for s in rebuilt}


# --- agentotel export ------------------------------------------------------------------------------------------------


@pytest.fixture
def agentotel_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """`agentotel ...` with the export command, whether or not `cli.py` registers it yet."""
    original = cli.build_parser

    def build() -> argparse.ArgumentParser:
        parser = original()
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "export" not in commands.choices:
            cli_export.register(commands)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    yield run


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The demo's sessions in a store of their own, and the id of the one that fails (content capture on)."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    run = run_demo(path)
    assert run.stored
    failing = [s.id for s in run.sessions if s.id in run.errors]
    assert (
        len(failing) == 1
        and run.messages[run.sessions.index(next(s for s in run.sessions if s.id == failing[0]))] == MESSAGES[2]
    )
    return path, failing[0]


def test_export_writes_the_demo_failing_session_from_the_store(
    tmp_path: Path, demo_store: tuple[Path, str], agentotel_cli: Any
) -> None:
    store, failing = demo_store
    path = tmp_path / "charged_twice.jsonl"
    code, out, err = agentotel_cli("export", failing[:8], "--source", str(store), "-o", str(path))
    assert code == 0, err
    assert err == "", "a session recorded with content needs no warning"
    assert out.startswith(f"Wrote session {failing[:8]}") and "(support_agent, Fail)" in out and "1 LLM calls" in out
    loaded = load_session(path)
    with open_source(str(store)) as source:
        stored = source.session(failing)
    assert loaded.to_dict() == stored.to_dict()
    code, out, _ = agentotel_cli(
        "export", failing, "--source", str(store), "-o", str(path), "--json", "--require-content"
    )
    assert code == 0 and json.loads(out)["problems"] == [] and json.loads(out)["spans"] == len(session_records(stored))


def test_export_warns_about_missing_content_and_can_refuse(tmp_path: Path, llm: LLMServer, agentotel_cli: Any) -> None:
    session = _captured_session(llm, capture_content=False)
    source = write_records(session_records(session), tmp_path / "source.jsonl")
    path = tmp_path / "out.jsonl"
    code, out, err = agentotel_cli("export", "last", "--source", str(source), "-o", str(path))
    assert code == 0 and path.exists() and out.startswith("Wrote session")
    assert "agentotel export: warning: LLM call 1 of 2 (chat gpt-4o-mini) has no input or output messages" in err
    refused = tmp_path / "refused.jsonl"
    code, _, err = agentotel_cli("export", "last", "--source", str(source), "-o", str(refused), "--require-content")
    assert code == 2 and not refused.exists()
    assert err.count("\n") == 1 and "lacks what a re-run needs" in err and "nothing written" in err


def test_export_errors_are_one_line(tmp_path: Path, demo_store: tuple[Path, str], agentotel_cli: Any) -> None:
    store, _ = demo_store
    code, _, err = agentotel_cli("export", "nope", "--source", str(store), "-o", str(tmp_path / "x.jsonl"))
    assert code == 2 and "no session or trace with id 'nope'" in err and err.count("\n") == 1
    code, _, err = agentotel_cli("export", "last", "--source", str(store))
    assert code == 2 and "-o/--output" in err and err.count("\n") == 1
    code, _, err = agentotel_cli("export", "last", "--source", str(tmp_path / "missing.db"), "-o", str(tmp_path / "x"))
    assert code == 2 and "no such file" in err
