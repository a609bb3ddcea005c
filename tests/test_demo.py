"""`agentotel demo` and its support agent: runs with no API key and no network, stores its sessions (one failing as
in the guide) and shows their replay."""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import openai
import pytest

import agentotel
from agentotel.cli import main
from agentotel.demo import MESSAGES, support_agent
from agentotel.store import Store
from agentotel.testing import Capture
from agentotel.testing.llm_server import LLMServer

LLM_SPANS = importlib.util.find_spec("agentotel.instrumentation.openai") is not None
"""LLM calls become spans once agentotel's OpenAI instrumentation exists (it is written alongside the demo)."""


def demo_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOTEL_", "OPENAI_"))}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "xdg"), PYTHONUNBUFFERED="1")
    # A proxy in the environment must not capture the demo's loopback calls.
    env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", ALL_PROXY="http://127.0.0.1:9")
    env.update(extra)
    return env


def run_demo_process(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentotel.cli", "demo", *args],
        env=demo_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def agentotel_command(line: str) -> list[str]:
    """The command a line of the demo's output suggests (`...: agentotel replay 1a2b --source PATH`), as argv."""
    words = shlex.split(line.split(": ", 1)[1])
    assert words[0] == "agentotel", line
    return [sys.executable, "-m", "agentotel.cli", *words[1:]]


def suggested(out: str, prefix: str) -> list[str]:
    return agentotel_command(next(line for line in out.splitlines() if line.startswith(prefix)))


def test_demo_runs_stores_its_sessions_and_shows_the_problem(tmp_path: Path) -> None:
    result = run_demo_process(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out = result.stdout
    store_path = tmp_path / "xdg" / "agentotel" / "demo.db"  # the demo's own store, beside the default one
    assert f"stored in {store_path}, the demo's own store" in out

    with Store(store_path) as store:
        sessions = sorted(store.sessions(tag="demo"), key=lambda s: s.start_ns)
    assert [s.end_state for s in sessions] == ["Success", "Success", "Fail"]
    assert all(s.tags == ["support", "v2.1", "demo"] for s in sessions)
    failing = sessions[2]
    assert failing.end_state_reason == "customer_id cannot be None"
    assert [s.tool_calls for s in sessions] == [2, 3, 2]  # classify, (fetch), session_complete / classify, fetch

    # The table, then one replay per session; the failing step is marked once.
    assert out.count("← PROBLEM") == 1
    problem = next(line for line in out.splitlines() if "← PROBLEM" in line)
    assert "Action: fetch_customer_data" in problem
    assert "Input: customer_id=None" in out and "Error: ValueError: customer_id cannot be None" in out
    for session in sessions:
        assert session.id[:8] in out
        assert f"Session: {session.id}" in out
    assert f"agentotel replay {failing.id[:8]} --source {store_path}\n" in out

    if LLM_SPANS:
        assert [s.llm_calls for s in sessions] == [2, 2, 1]
        assert all(s.input_tokens > 0 and s.output_tokens > 0 for s in sessions)
        assert "LLM Call (gpt-4o" in out

    # What the hints say works as printed, pasted into a shell that has no AGENTOTEL_STORE.
    env = demo_env(tmp_path)
    replay = subprocess.run(
        suggested(out, "See the failing session again:"), env=env, capture_output=True, text=True, timeout=120
    )
    assert replay.returncode == 0, replay.stderr
    assert "← PROBLEM" in replay.stdout and f"Session: {failing.id}" in replay.stdout
    listed = subprocess.run(suggested(out, "List sessions:"), env=env, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert all(s.id[:8] in listed.stdout for s in sessions)
    assert suggested(out, "Browse them:")[3:] == ["ui", "--source", str(store_path)]


def test_check_after_the_demo_is_not_failed_by_the_demo(tmp_path: Path) -> None:
    """The demo fails one session on purpose: it must not land in the store `agentotel check` reads by default."""
    result = run_demo_process(tmp_path)
    assert result.returncode == 0, result.stderr
    env = demo_env(tmp_path)
    check = subprocess.run(
        [sys.executable, "-m", "agentotel.cli", "check", "--max-failure-rate", "0.05"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    default_store = tmp_path / "xdg" / "agentotel" / "sessions.db"
    if default_store.exists():
        with Store(default_store) as store:
            assert store.sessions(tag="demo") == []
    # The demo's own store still holds its failure, for whoever asks for it.
    demo_store = tmp_path / "xdg" / "agentotel" / "demo.db"
    demo_check = subprocess.run(
        [sys.executable, "-m", "agentotel.cli", "check", "--max-failure-rate", "0.05", "--source", str(demo_store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo_check.returncode == 1, demo_check.stdout + demo_check.stderr


def test_demo_honours_an_agentotel_store_you_set(tmp_path: Path) -> None:
    """CI runs `AGENTOTEL_STORE=$tmp agentotel demo`: the sessions go there, and the hints still name it."""
    target = tmp_path / "ci" / "sessions.db"
    result = run_demo_process(tmp_path, AGENTOTEL_STORE=str(target))
    assert result.returncode == 0, result.stderr
    assert f"stored in {target}, as AGENTOTEL_STORE says" in result.stdout
    with Store(target) as store:
        assert [s.end_state for s in sorted(store.sessions(tag="demo"), key=lambda s: s.start_ns)] == [
            "Success",
            "Success",
            "Fail",
        ]
    assert f"agentotel sessions --tag demo --source {target}\n" in result.stdout
    assert not (tmp_path / "xdg").exists(), "neither the default store nor demo.db was touched"


def test_demo_store_paths_with_spaces_are_quoted_in_the_hints(tmp_path: Path) -> None:
    target = tmp_path / "my demo" / "demo.db"
    result = run_demo_process(tmp_path, "--store", str(target))
    assert result.returncode == 0, result.stderr
    command = suggested(result.stdout, "List sessions:")
    assert command[-2:] == ["--source", str(target)]


def test_demo_store_option_and_json_beside_other_export_settings(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "demo.db"
    result = run_demo_process(tmp_path, "--store", str(target), "--json", OTEL_TRACES_EXPORTER="none")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [d["end_state"] for d in data] == ["Success", "Success", "Fail"]
    failing = data[2]
    assert [e["name"] for e in failing["events"] if e["kind"] == "action"] == ["classify_intent", "fetch_customer_data"]
    assert failing["first_error"] == next(e["span_id"] for e in failing["events"] if e["name"] == "fetch_customer_data")
    with Store(target) as store:
        assert len(store.sessions()) == 3
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()


def test_demo_with_the_store_off_still_shows_the_replay_and_keeps_nothing(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.mkdir()
    result = run_demo_process(tmp_path, AGENTOTEL_STORE="off", TMPDIR=str(temp))
    assert result.returncode == 0, result.stderr
    assert "← PROBLEM" in result.stdout and "temporary store" in result.stdout
    assert "agentotel replay" not in result.stdout, "no hint to a store that is gone"
    assert not (tmp_path / "xdg").exists() and not (tmp_path / "home").exists()
    assert list(temp.iterdir()) == []


# --- the agent itself, in process -------------------------------------------------------------------------------------


@pytest.fixture
def agent_server() -> LLMServer:
    with LLMServer(support_agent.scripted_model) as server:
        client = openai.OpenAI(
            base_url=server.openai_base_url,
            api_key="test",
            max_retries=0,
            http_client=openai.DefaultHttpx2Client(trust_env=False),
        )
        support_agent.use_client(client)
        yield server
        client.close()


def test_the_agent_routes_billing_and_fails_as_the_guide_describes(
    agent_server: LLMServer, cap_content: Capture
) -> None:
    answer = support_agent.run_support_agent("My account C-1001 was charged twice")
    assert "duplicate charge" in answer and "Ada Lovelace" in answer
    ok = agentotel.get_session()
    assert ok is not None and ok.end_state == "Success"
    action_types = [e.action_type for e in ok.action_events]
    assert action_types == ["classify_intent", "fetch_customer_data", "session_complete"]

    with pytest.raises(ValueError, match="customer_id cannot be None"):
        support_agent.run_support_agent(MESSAGES[2])
    failed = agentotel.get_session()
    assert failed is not None and failed.end_state == "Fail"
    assert failed.first_error is not None and failed.first_error.action_type == "fetch_customer_data"
    assert failed.first_error.params == {"customer_id": None}

    general = support_agent.run_support_agent(MESSAGES[0])
    assert "support team" in general
    bodies = [r.body["messages"][0]["content"] for r in agent_server.requests]
    assert bodies[0].startswith("Classify: My account C-1001") and bodies[1].startswith("Reply to Ada Lovelace")
    if LLM_SPANS:
        assert len(ok.llm_calls) == 2 and ok.llm_calls[0].model == "gpt-4o"
        assert ok.cost > 0


def test_extract_customer_id() -> None:
    assert support_agent.extract_customer_id("account c-1042 please") == "C-1042"
    assert support_agent.extract_customer_id("I was charged twice") is None


def test_demo_without_openai_installed_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openai" else real_find_spec(name, *a)
    )
    assert main(["demo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'agentotel[demo]'" in err
