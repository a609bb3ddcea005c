"""`agentotel serve-llm`, run as a user runs it: a subprocess whose first line says where it serves, called with the
real openai and anthropic SDKs through the variables it prints, stopped by a signal; its refusals; and the script
files it reads (`load_replies`, `reply_from_json`). The zero-code run against it is in test_distro.py."""

from __future__ import annotations

import json
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentotel.cli import main
from agentotel.testing.llm_server import SCRIPT_FORMAT, Reply, ScriptError, ToolCall, load_replies, reply_from_json

START_TIMEOUT_S = 30  # generous: a loaded machine can take seconds to import and bind
STOP_TIMEOUT_S = 60
COMMAND = [sys.executable, "-m", "agentotel", "serve-llm"]
MODULE = [sys.executable, "-m", "agentotel.testing.llm_server"]


@dataclass
class Stopped:
    """How a serve-llm process ended."""

    returncode: int
    stdout: str
    stderr: str


@dataclass
class ServeLLM:
    """A running `agentotel serve-llm` process and what its first line said."""

    process: subprocess.Popen[str]
    line: str
    env: dict[str, str] = field(default_factory=dict)
    """The variables the line exports (OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY)."""

    def stop(self, sig: int = signal.SIGTERM) -> Stopped:
        """Sends `sig` and waits for the process to end; the rest of its output."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            stdout, stderr = self.process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate(timeout=STOP_TIMEOUT_S)
            raise
        return Stopped(self.process.returncode, stdout, stderr)


def exported(line: str) -> dict[str, str]:
    """The variables an `export A=1 B=2  # comment` line sets, as a POSIX shell reads it."""
    words = shlex.split(line, comments=True)
    assert words and words[0] == "export", line
    return dict(word.split("=", 1) for word in words[1:])


def write_script(tmp_path: Path, replies: list[Any], name: str = "script.json") -> Path:
    """A script file listing `replies` (a JSON list; one reply a line for a `.jsonl` name)."""
    path = tmp_path / name
    if name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(reply) + "\n" for reply in replies), encoding="utf-8")
    else:
        path.write_text(json.dumps(replies), encoding="utf-8")
    return path


@contextmanager
def serve_llm(
    tmp_path: Path, *args: str, script: list[Any] | None = None, command: list[str] = COMMAND
) -> Iterator[ServeLLM]:
    """Starts `agentotel serve-llm --port 0 ARGS` (with `--script` listing `script`), waits (bounded) for its first
    line, and yields it running; it is stopped (SIGTERM) on the way out if the test did not stop it."""
    extra = list(args)
    if script is not None:
        extra += ["--script", str(write_script(tmp_path, script))]
    process = subprocess.Popen(
        [*command, "--port", "0", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    server: ServeLLM | None = None
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            pytest.fail(f"serve-llm printed nothing in {START_TIMEOUT_S} s")
        assert line, f"serve-llm ended before it served: {process.communicate(timeout=STOP_TIMEOUT_S)[1]}"
        server = ServeLLM(process, line.rstrip("\n"), exported(line))
        yield server
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.communicate(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate(timeout=STOP_TIMEOUT_S)


def run_command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`agentotel serve-llm ARGS` run to its end (for the refusals: it must not start)."""
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, cwd=tmp_path, timeout=STOP_TIMEOUT_S)


def assert_refused(result: subprocess.CompletedProcess[str], *phrases: str) -> None:
    """Exit 2, nothing on stdout (nothing served), one line on stderr saying each of `phrases`."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("agentotel serve-llm: ")
    for phrase in phrases:
        assert phrase in lines[0]


# --- serving -------------------------------------------------------------------------------------------------------


def test_the_sdks_get_the_scripted_replies_in_order_then_the_default_responder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anthropic
    import openai

    script = [
        "First.",
        {"text": "Streamed in three parts", "chunks": 3},
        {"text": "From Anthropic.", "output_tokens": 3},
        {"tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]},
    ]
    with serve_llm(tmp_path, script=script) as server:
        assert set(server.env) == {"OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"}
        assert server.env["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
        assert server.env["OPENAI_BASE_URL"] == server.env["ANTHROPIC_BASE_URL"] + "/v1"
        assert "4 scripted replies" in server.line
        for name, value in server.env.items():  # the clients below read them, as an app's would
            monkeypatch.setenv(name, value)
        client = openai.OpenAI(max_retries=0)
        messages: Any = [{"role": "user", "content": "Hi"}]

        first = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        assert first.choices[0].message.content == "First."
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
        parts = [chunk.choices[0].delta.content for chunk in stream if chunk.choices and chunk.choices[0].delta.content]
        assert "".join(parts) == "Streamed in three parts"
        assert len(parts) == 3
        message = anthropic.Anthropic(max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "Hi"}]
        )
        assert [block.text for block in message.content if block.type == "text"] == ["From Anthropic."]
        assert message.usage.output_tokens == 3
        tool = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        calls = tool.choices[0].message.tool_calls or []
        assert [(call.id, call.function.name, call.function.arguments) for call in calls] == [
            ("call_1", "get_weather", '{"city": "Paris"}')
        ]
        default = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Bye"}])
        assert default.choices[0].message.content == "You said: Bye"

        stopped = server.stop(signal.SIGTERM)
    assert stopped.returncode == 0, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert stopped.stdout.strip().splitlines() == [
        "agentotel serve-llm: stopped; answered 5 requests: 4 scripted replies, 1 from the default responder"
    ]


def test_the_module_form_serves_a_json_lines_script_and_ctrl_c_stops_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai

    script = write_script(tmp_path, ["One.", "Two."], name="replies.jsonl")
    with serve_llm(tmp_path, "--script", str(script), command=MODULE) as server:
        client = openai.OpenAI(base_url=server.env["OPENAI_BASE_URL"], api_key=server.env["OPENAI_API_KEY"])
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
        assert reply.choices[0].message.content == "One."
        stopped = server.stop(signal.SIGINT)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr == ""
    assert (
        "answered 1 request: 1 scripted reply, 0 from the default responder; 1 scripted reply left unused"
        in stopped.stdout
    )


def test_requests_it_cannot_answer_are_counted_as_refused(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    with serve_llm(tmp_path) as server:
        assert "scripted" not in server.line
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(server.env["OPENAI_BASE_URL"] + "/models", timeout=30)
        assert error.value.code == 404
        stopped = server.stop()
    assert stopped.returncode == 0
    assert "answered 1 request: 0 from the default responder, 1 refused" in stopped.stdout


# --- refusals: exit 2, one line, nothing started -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "phrases"),
    [
        ("bad.json", "{not json", ["bad.json is not JSON: ", "at line 1, column 2"]),
        ("bad.json", '["fine", {"txt": "typo"}]', ["bad.json reply 2: unknown field 'txt'"]),
        (
            "bad.json",
            '[{"input_tokens": "ten"}]',
            ["bad.json reply 1: input_tokens must be a whole number, not a string"],
        ),
        ("bad.jsonl", '"one"\n\n{"text": 3}\n', ["bad.jsonl line 3: text must be a string, not a number"]),
        ("bad.jsonl", '"one"\n{"text": \n', ["bad.jsonl line 2 is not JSON: Expecting value at column 10"]),
        ("bad.txt", '"one"\n{"text": \n', ["neither JSON (", "nor JSON Lines (line 2: "]),
    ],
)
def test_a_bad_script_names_the_file_and_the_reply_or_line(
    tmp_path: Path, name: str, text: str, phrases: list[str]
) -> None:
    (tmp_path / name).write_text(text, encoding="utf-8")
    assert_refused(run_command(tmp_path, "--port", "0", "--script", name), *phrases, "nothing started")


def test_a_missing_script_is_refused(tmp_path: Path) -> None:
    assert_refused(run_command(tmp_path, "--port", "0", "--script", "absent.json"), "absent.json", "cannot read")


def test_an_address_that_is_not_loopback_needs_expose(tmp_path: Path) -> None:
    assert_refused(
        run_command(tmp_path, "--port", "0", "--host", "0.0.0.0"),
        "0.0.0.0 is not a loopback address",
        "no authentication",
        "--expose",
    )


def test_a_port_in_use_is_refused(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_command(tmp_path, "--port", str(port))
    assert_refused(result, f"cannot listen on 127.0.0.1:{port}", "in use", "--port 0")


def test_help_shows_the_script_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve-llm", "--help"]) == 0
    shown = capsys.readouterr().out
    assert SCRIPT_FORMAT in shown
    assert "--expose" in shown and "8766" in shown


def test_help_of_other_commands_does_not_import_the_server() -> None:
    code = "import sys; from agentotel.cli import build_parser; build_parser(); print('llm_server' in str(sys.modules))"
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=STOP_TIMEOUT_S)
    assert shown.stdout.strip() == "False", shown.stderr


# --- script files ----------------------------------------------------------------------------------------------------


def test_load_replies_reads_a_json_list_a_single_reply_and_json_lines(tmp_path: Path) -> None:
    listed = write_script(tmp_path, ["Hi", {"text": "Sunny.", "output_tokens": 3, "model": None}])
    assert load_replies(listed) == [Reply("Hi"), Reply("Sunny.", output_tokens=3)]
    one = tmp_path / "one.json"
    one.write_text('{"status": 429, "headers": {"retry-after": "0"}}', encoding="utf-8")
    assert load_replies(one) == [Reply(status=429, headers={"retry-after": "0"})]
    lines = tmp_path / "lines.txt"  # not one JSON document: JSON Lines, whatever its name
    lines.write_text('"a"\n\n{"text": "b", "delay": 0.5}\n', encoding="utf-8")
    assert load_replies(lines) == [Reply("a"), Reply("b", delay=0.5)]
    empty = tmp_path / "empty.json"
    empty.write_text("  \n", encoding="utf-8")
    assert load_replies(empty) == []


def test_a_jsonl_file_is_read_line_by_line_even_when_it_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text('["a", "b"]\n', encoding="utf-8")
    with pytest.raises(ScriptError, match=r"one\.jsonl line 1: a reply is a string or an object, not a list"):
        load_replies(path)


def test_reply_from_json_builds_tool_calls_with_default_ids() -> None:
    reply = reply_from_json(
        {"tool_calls": [{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": '{"y": 2}', "id": "c9"}]}
    )
    assert reply.tool_calls == [ToolCall("call_1", "a", {"x": 1}), ToolCall("c9", "b", '{"y": 2}')]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (3, "a reply is a string or an object, not a number"),
        ({"output_tokens": True}, "output_tokens must be a whole number, not true/false"),
        ({"delay": "1"}, "delay must be a number, not a string"),
        ({"delay": float("inf")}, "delay must be a finite number of seconds"),
        ({"delay": -1}, "Reply.delay must not be negative"),
        ({"status": 302}, "Reply.status must be 200 or an error status"),
        ({"headers": {"x": 1}}, "headers must map names to strings"),
        ({"tool_calls": ["f"]}, "tool call 1 is a string, not an object"),
        ({"tool_calls": [{"name": "f", "args": {}}]}, "tool call 1 has an unknown field 'args'"),
        ({"tool_calls": [{"arguments": {}}]}, "tool call 1 needs a name"),
        ({"tool_calls": [{"name": "f", "arguments": 3}]}, "arguments must be an object or JSON text, not a number"),
    ],
)
def test_reply_from_json_says_what_is_wrong(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as error:
        reply_from_json(value)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_json_errors_are_worded_by_the_projects_one_helper(tmp_path: Path) -> None:
    path = tmp_path / "control.json"
    path.write_text('["a\x01b"]', encoding="utf-8")
    with pytest.raises(ScriptError) as error:
        load_replies(path)
    # json says "Invalid control character at": json_error_text does not say "at" twice.
    assert str(error.value) == f"{path} is not JSON: Invalid control character at line 1, column 4"


@pytest.mark.parametrize(
    ("text", "message"),
    [("[" * 100_000, "cannot be read: nested too deeply"), ("[" + "1" * 5000 + "]", "cannot be read: ")],
)
def test_json_that_python_cannot_hold_is_a_script_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "huge.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScriptError, match=message):
        load_replies(path)


def test_a_script_that_is_not_utf8_is_a_script_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('["caf\xe9"]'.encode("latin-1"))
    with pytest.raises(ScriptError, match="is not UTF-8 text"):
        load_replies(path)
