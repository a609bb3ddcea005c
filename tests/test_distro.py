"""Zero-code set-up: a real `opentelemetry-instrument` runs `examples/zero_code_app.py` with only environment
variables, against the scripted LLM server and a loopback OTLP receiver (or the embedded store)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from opentelemetry.semconv._incubating.attributes.deployment_attributes import DEPLOYMENT_ENVIRONMENT_NAME
from otlp_receiver import OTLPReceiver, ReceivedSpan
from test_cli_serve_llm import serve_llm

from agentotel import semconv as sc
from agentotel.distro import apply_env_defaults, superseded_by
from agentotel.testing.llm_server import LLMServer

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "examples" / "zero_code_app.py"
INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"
SERVICE = "support-bot"
RUN_TIMEOUT_S = 60
# For runs that check configuration only: the app makes no Anthropic call, and not importing that SDK to
# instrument it keeps each run short.
NO_ANTHROPIC = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "agentotel_anthropic"}
LLM_OPERATIONS = {
    sc.GEN_AI_OPERATION_NAME_VALUE_CHAT,
    sc.GEN_AI_OPERATION_NAME_VALUE_TEXT_COMPLETION,
    sc.GEN_AI_OPERATION_NAME_VALUE_GENERATE_CONTENT,
    sc.GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS,
}


def _openai_instrumentor_missing() -> str | None:
    """Why agentotel's OpenAI instrumentor cannot load under the wrapper yet, or None when it can."""
    if not (ROOT / "agentotel" / "instrumentation" / "openai.py").exists():
        return "agentotel/instrumentation/openai.py does not exist yet"
    if not list(entry_points(group="opentelemetry_instrumentor", name="agentotel_openai")):
        return "the agentotel_openai opentelemetry_instrumentor entry point is not installed (pip install -e .)"
    return None


def _upstream_openai_installed() -> bool:
    return any(
        not ep.value.startswith("agentotel.") for ep in entry_points(group="opentelemetry_instrumentor", name="openai")
    )


def _is_llm(span: ReceivedSpan) -> bool:
    return span.kind == "CLIENT" and span.attributes.get(sc.GEN_AI_OPERATION_NAME) in LLM_OPERATIONS


def _is_ours(span: ReceivedSpan) -> bool:
    return span.scope.startswith("agentotel")


@dataclass
class Run:
    """One run of the app under `opentelemetry-instrument`."""

    process: subprocess.CompletedProcess[str]
    session_id: str
    spans: list[ReceivedSpan]
    llm_requests: int

    def named(self, name: str) -> list[ReceivedSpan]:
        return [span for span in self.spans if span.name == name]


def run_app(
    tmp_path: Path,
    env: dict[str, str],
    *,
    receiver: OTLPReceiver | None = None,
    script: Path = APP,
    llm_env: dict[str, str] | None = None,
) -> Run:
    """Runs `opentelemetry-instrument python <script>` with only `env` on top of a clean environment (no
    OTEL_*, AGENTOTEL_* or OPENAI_* variables of the test run), and gathers what the receiver got. The app talks to
    an LLMServer of the run's own, or to the one `llm_env` names (what `agentotel serve-llm` prints; then
    `Run.llm_requests` is 0: that server counts its own)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOTEL_", "OPENAI_"))}
    clean["XDG_DATA_HOME"] = str(tmp_path / "data")  # the default store, if anything opens it, stays in tmp
    clean["OTEL_SERVICE_NAME"] = SERVICE
    if any(ep.name != "agentotel" for ep in entry_points(group="opentelemetry_distro")):
        # Another distro (opentelemetry-distro) is installed: `opentelemetry-instrument` would take whichever
        # entry point comes first, so name ours, as the README tells users to.
        clean["OTEL_PYTHON_DISTRO"] = "agentotel"
    with LLMServer() if llm_env is None else nullcontext() as llm:
        if llm is not None:
            clean.update(OPENAI_BASE_URL=llm.openai_base_url, OPENAI_API_KEY="test-key")
        clean.update(llm_env or {})
        clean.update(env)
        process = subprocess.run(
            [str(INSTRUMENT), sys.executable, str(script)],
            env=clean,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        llm_requests = len(llm.requests) if llm is not None else 0
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    found = re.search(r"^session (\S+)$", process.stdout, re.MULTILINE)
    assert found, process.stdout
    # No wait needed: the receiver files a request before it answers, and the exporter in the app waited for the
    # answer when it flushed at exit.
    spans = receiver.spans if receiver is not None else []
    return Run(process, found.group(1), spans, llm_requests)


def _assert_each_exported_once(run: Run) -> None:
    ids = Counter(span.span_id for span in run.spans)
    assert all(n == 1 for n in ids.values()), f"spans exported more than once: {ids}"
    names = Counter(span.name for span in run.spans)
    assert all(n == 1 for n in names.values()), f"span names repeated: {names}"


# --- exported over OTLP, both protocols ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["http/protobuf", "grpc"])
def otlp_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    protocol = request.param
    if protocol == "grpc":
        pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc", reason="agentotel[grpc] is not installed")
    tmp_path = tmp_path_factory.mktemp("otlp")
    with OTLPReceiver(protocol) as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-team=agents",
            "OTEL_RESOURCE_ATTRIBUTES": f"{DEPLOYMENT_ENVIRONMENT_NAME}=ci",
            "AGENTOTEL_STORE": "off",
        }
        run = run_app(tmp_path, env, receiver=receiver)
        assert not receiver.errors, receiver.errors
        assert receiver.requests and all(r.headers.get("x-team") == "agents" for r in receiver.requests)
        yield run


def test_session_and_tool_spans_reach_the_otlp_receiver(otlp_run: Run) -> None:
    [root] = otlp_run.named("invoke_agent support")
    [tool] = otlp_run.named("execute_tool lookup_order")
    assert root.attributes[sc.SESSION_ID] == otlp_run.session_id
    assert root.attributes[sc.GEN_AI_AGENT_NAME] == "support"
    assert root.parent_span_id is None
    assert tool.attributes[sc.SESSION_ID] == otlp_run.session_id
    assert tool.attributes[sc.GEN_AI_TOOL_NAME] == "lookup_order"
    assert (tool.trace_id, tool.parent_span_id) == (root.trace_id, root.span_id)
    for span in otlp_run.spans:
        assert span.resource[sc.SERVICE_NAME] == SERVICE  # OTEL_SERVICE_NAME
        assert span.resource[DEPLOYMENT_ENVIRONMENT_NAME] == "ci"  # OTEL_RESOURCE_ATTRIBUTES
        assert span.resource[sc.TELEMETRY_DISTRO_NAME] == "agentotel"
    _assert_each_exported_once(otlp_run)


def test_llm_span_reaches_the_otlp_receiver_in_the_session(otlp_run: Run) -> None:
    missing = _openai_instrumentor_missing()
    if missing:
        pytest.skip(f"no LLM span to check: {missing}")
    [root] = otlp_run.named("invoke_agent support")
    llm = [span for span in otlp_run.spans if _is_llm(span)]
    # Exactly one, and agentotel's: another OpenAI instrumentor installed beside it is not loaded as well.
    assert [(s.name, _is_ours(s)) for s in llm] == [("chat gpt-4o-mini", True)]
    assert llm[0].attributes[sc.SESSION_ID] == otlp_run.session_id
    assert llm[0].trace_id == root.trace_id
    assert llm[0].resource[sc.SERVICE_NAME] == SERVICE
    assert otlp_run.llm_requests == 1


# --- agentotel.init() in the app as well ----------------------------------------------------------------------------

_APP_CALLING_INIT = """
import json, runpy, sys
from opentelemetry import trace
import agentotel

provider = trace.get_tracer_provider()
def processors():
    return list(provider._active_span_processor._span_processors)
before = processors()
agentotel.init()
agentotel.init(capture_content=False)
print("probe " + json.dumps({{
    "provider": type(provider).__module__ + "." + type(provider).__name__,
    "same_provider": trace.get_tracer_provider() is provider,
    "same_processors": processors() == before,
}}))
sys.argv = [{app!r}]
runpy.run_path({app!r}, run_name="__main__")
"""


def test_init_in_the_app_under_the_wrapper_configures_nothing_twice(tmp_path: Path) -> None:
    script = tmp_path / "app_calling_init.py"
    script.write_text(_APP_CALLING_INIT.format(app=str(APP)))
    with OTLPReceiver("http/protobuf") as receiver:
        # No OTEL_EXPORTER_OTLP_PROTOCOL: this also checks the distro's http/protobuf default (the SDK's is grpc).
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "AGENTOTEL_STORE": "off"}
        if _openai_instrumentor_missing() and _upstream_openai_installed():
            # Without agentotel's entry point the wrapper loads the other OpenAI instrumentor and init() then
            # adds agentotel's: an incomplete install, not the double configuration this test is about.
            env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "openai"
        run = run_app(tmp_path, env, receiver=receiver, script=script)
    probe = json.loads(re.search(r"^probe (.*)$", run.process.stdout, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert probe == {
        "provider": "opentelemetry.sdk.trace.TracerProvider",
        "same_provider": True,
        "same_processors": True,
    }
    _assert_each_exported_once(run)
    expected = {"invoke_agent support", "execute_tool lookup_order"}
    assert expected <= {span.name for span in run.spans}
    if not _openai_instrumentor_missing():
        assert len([s for s in run.spans if _is_llm(s)]) == 1


# --- no exporter variables: the embedded store ----------------------------------------------------------------------


def test_without_exporter_variables_sessions_land_in_the_store(tmp_path: Path) -> None:
    store_module = pytest.importorskip("agentotel.store", reason="agentotel/store.py does not exist yet")
    path = tmp_path / "sessions.db"
    run = run_app(tmp_path, {"AGENTOTEL_STORE": str(path)})
    with store_module.Store(path) as store:
        summary = store.summary(run.session_id)
        records = store.records_for(run.session_id)
    assert summary is not None, f"session {run.session_id} not in the store {path}"
    assert (summary.name, summary.end_state, summary.service_name) == ("support", "Success", SERVICE)
    names = Counter(record.name for record in records)
    assert names["invoke_agent support"] == 1 and names["execute_tool lookup_order"] == 1, names
    if not _openai_instrumentor_missing():
        assert names["chat gpt-4o-mini"] == 1, names


def test_with_no_variables_at_all_the_store_is_the_default(tmp_path: Path) -> None:
    store_module = pytest.importorskip("agentotel.store", reason="agentotel/store.py does not exist yet")
    run = run_app(tmp_path, NO_ANTHROPIC)  # no AGENTOTEL_STORE: the default path, under XDG_DATA_HOME (tmp_path/data)
    with store_module.Store(tmp_path / "data" / "agentotel" / "sessions.db") as store:
        assert store.summary(run.session_id) is not None


def test_traces_exporter_none_keeps_the_store_off_unless_it_is_named(tmp_path: Path) -> None:
    pytest.importorskip("agentotel.store", reason="agentotel/store.py does not exist yet")
    run_app(tmp_path, {"OTEL_TRACES_EXPORTER": "none", **NO_ANTHROPIC})
    assert not (tmp_path / "data" / "agentotel" / "sessions.db").exists()


def test_the_readmes_zero_code_sequence_against_agentotel_serve_llm(tmp_path: Path) -> None:
    """`agentotel serve-llm` in one shell; in another the variables it prints, the app under
    `opentelemetry-instrument`, then `agentotel sessions` / `agentotel replay last` show the session."""
    store = tmp_path / "sessions.db"
    answer = "Your order A-1001 has shipped with UPS."
    with serve_llm(tmp_path, script=[answer]) as server:
        run = run_app(tmp_path, {"AGENTOTEL_STORE": str(store), **NO_ANTHROPIC}, llm_env=server.env)
        stopped = server.stop()
    assert answer in run.process.stdout
    assert stopped.returncode == 0, stopped.stderr
    assert "answered 1 request: 1 scripted reply, 0 from the default responder" in stopped.stdout

    shell = {**os.environ, "AGENTOTEL_STORE": str(store)}
    listed = subprocess.run(
        [sys.executable, "-m", "agentotel", "sessions", "--json"],
        env=shell,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert listed.returncode == 0, listed.stderr
    [session] = json.loads(listed.stdout)
    assert (session["id"], session["name"], session["end_state"]) == (run.session_id, "support", "Success")
    replay = subprocess.run(
        [sys.executable, "-m", "agentotel", "replay", "last"],
        env=shell,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )
    assert replay.returncode == 0, replay.stderr
    assert "lookup_order" in replay.stdout
    if not _openai_instrumentor_missing():
        assert session["llm_calls"] == 1
        assert "gpt-4o-mini" in replay.stdout


# --- OTEL_PYTHON_DISABLED_INSTRUMENTATIONS --------------------------------------------------------------------------


def test_disabled_openai_instrumentation_records_no_llm_span_of_ours(tmp_path: Path) -> None:
    missing = _openai_instrumentor_missing()
    if missing:
        pytest.skip(f"nothing to disable: {missing}")
    with OTLPReceiver("http/protobuf") as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "agentotel_openai",
            "AGENTOTEL_STORE": "off",
        }
        run = run_app(tmp_path, env, receiver=receiver)
    assert run.llm_requests == 1  # the call was made ...
    assert [s.name for s in run.spans if _is_llm(s) and _is_ours(s)] == []  # ... and agentotel did not record it
    assert run.named("invoke_agent support") and run.named("execute_tool lookup_order")
    if _upstream_openai_installed():
        # With agentotel's disabled, the other OpenAI instrumentor installed here is no longer held back.
        assert len([s for s in run.spans if _is_llm(s) and not _is_ours(s)]) == 1


# --- a variable the SDK rejects -------------------------------------------------------------------------------------


def test_an_unknown_exporter_is_one_warning_and_the_app_still_runs(tmp_path: Path) -> None:
    run = run_app(tmp_path, {"OTEL_TRACES_EXPORTER": "no_such_exporter", "AGENTOTEL_STORE": "off", **NO_ANTHROPIC})
    warnings = [line for line in run.process.stderr.splitlines() if "could not be configured" in line]
    assert len(warnings) == 1 and "no_such_exporter" in warnings[0], run.process.stderr
    assert "Failed to auto initialize" not in run.process.stderr


# --- in-process: the distro's decisions ------------------------------------------------------------------------------


def test_env_defaults_turn_otlp_on_only_for_an_endpoint_and_never_override() -> None:
    bare: dict[str, str] = {}
    apply_env_defaults(bare)
    assert bare == {"OTEL_PYTHON_CONFIGURATOR": "agentotel", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}

    endpoint = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}
    apply_env_defaults(endpoint)
    assert endpoint["OTEL_TRACES_EXPORTER"] == "otlp"

    chosen = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_PYTHON_CONFIGURATOR": "configurator",
    }
    before = dict(chosen)
    apply_env_defaults(chosen)
    assert chosen == before


def test_another_openai_instrumentor_is_held_back_only_while_ours_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    missing = _openai_instrumentor_missing()
    if missing:
        pytest.skip(missing)
    [ours] = entry_points(group="opentelemetry_instrumentor", name="agentotel_openai")
    other = type(ours)("openai", "opentelemetry.instrumentation.openai_v2:OpenAIInstrumentor", ours.group)
    unrelated = type(ours)("requests", "opentelemetry.instrumentation.requests:RequestsInstrumentor", ours.group)
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    assert superseded_by(other) == "agentotel_openai"
    assert superseded_by(ours) is None
    assert superseded_by(unrelated) is None
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "requests, agentotel_openai")
    assert superseded_by(other) is None
