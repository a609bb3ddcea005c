"""The benchmarks' smoke run (`benchmarks/run.py --smoke`): every scenario runs a few iterations and produces
well-formed rows whose correctness checks hold. No timing is asserted: CI machines are too noisy for that."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ROOT / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--smoke", "--quiet", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,  # a bound, not a speed test: the smoke run on a loaded machine takes minutes
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "### Targets" in done.stdout, done.stdout[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def test_records_the_machine_and_the_command(smoke: dict[str, Any]) -> None:
    assert smoke["smoke"] is True
    assert smoke["machine"]["nproc"] >= 1
    assert smoke["machine"]["python"].count(".") == 2
    assert smoke["command"].startswith("python benchmarks/run.py")


def test_llm_rows_trace_one_span_per_call_and_follow_content_capture(smoke: dict[str, Any]) -> None:
    rows = {(r["peer"], r["content"]): r for r in smoke["llm"]["rows"]}
    for content in ("off", "on"):
        row = rows[("agentotel", content)]
        if row["status"] != "ok" and str(row.get("reason", "")).startswith("pending"):
            pytest.skip(row["reason"])
        assert row["status"] == "ok", row
        assert row["spans_per_call"] == pytest.approx(1.0, abs=0.05)
        assert row["prompt_recorded"] is (content == "on")
        for kind in ("plain", "stream"):
            assert row[f"{kind}_base_us"] > 0
            assert isinstance(row[f"{kind}_added_us"], float)
            assert len(row[f"{kind}_added_per_round_us"]) == row["rounds"] == 1


def test_instruction_rows_count_a_traced_call_against_its_uninstrumented_twin(smoke: dict[str, Any]) -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (.ci/run installs it)")
    rows = {(r["peer"], r["content"]): r for r in smoke["instructions"]["rows"]}
    for content in ("off", "on"):
        row = rows[("agentotel", content)]
        assert row["status"] == "ok", row
        assert row["spans_per_call"] == pytest.approx(1.0, abs=0.05)
        assert row["prompt_recorded"] is (content == "on")
        for kind in ("plain", "stream"):
            # An uninstrumented call runs millions of instructions; tracing adds some, never removes any.
            assert row[f"{kind}_base"] > 1_000_000
            assert 0 < row[f"{kind}_added"] < row[f"{kind}_base"]
    # A stream of 20 chunks costs more to trace than a plain call, and capturing content costs more than not.
    off, on = rows[("agentotel", "off")], rows[("agentotel", "on")]
    assert off["stream_added"] > off["plain_added"]
    assert on["plain_added"] > off["plain_added"]


def test_step_instructions_compare_each_case_with_its_floor(smoke: dict[str, Any]) -> None:
    if shutil.which("valgrind") is None:
        pytest.skip("valgrind is not installed (.ci/run installs it)")
    part = smoke["instruction_steps"]
    assert part["status"] == "ok", part
    cases = part["cases"]
    # Each traced case does all its floor does and more; content costs more than none.
    assert cases["agentotel"] > cases["floor"] > 10_000
    assert cases["agentotel+content"] > cases["floor+content"] > cases["floor"]
    assert part["ratio_to_floor"]["agentotel"] == pytest.approx(cases["agentotel"] / cases["floor"], abs=1e-3)


def test_step_rows_compare_each_case_with_its_floor(smoke: dict[str, Any]) -> None:
    cases = {r["case"]: r for r in smoke["steps"]["rows"] if r["peer"] == "agentotel"}
    assert {"floor", "agentotel", "agentotel+content"} <= set(cases)
    assert cases["agentotel"]["floor"] == "floor"
    assert cases["agentotel+content"]["floor"] == "floor+content"
    for row in cases.values():
        assert row["status"] == "ok" and row["us"] > 0 and row["ratio_to_floor"] > 0


def test_processors_file_every_span_under_its_session_and_price_each_model_once(smoke: dict[str, Any]) -> None:
    part = smoke["processors"]
    assert part["status"] == "ok", part
    assert [r["sessions"] for r in part["rows"]] == [1, 10]
    for row in part["rows"]:
        assert row["all_spans_filed"] is True
        priced, seen = (int(n) for n in row["llm_calls_priced"].split("/"))
        assert seen > 0 and priced == seen
    assert part["prices_resolved"] == 1


def test_reconstruction_rebuilds_every_span_and_replays(smoke: dict[str, Any]) -> None:
    part = smoke["reconstruction"]
    assert part["status"] == "ok", part
    for key in ("otlp_json", "store"):
        section = part[key]
        if section["status"] == "pending":
            continue
        assert section["status"] == "ok", section
        assert section["events"] == part["spans"] - 1  # every span but the session's root is an event
    listing = part["sessions_list"]
    if listing["status"] != "pending":
        assert listing["status"] == "ok", listing
        assert listing["sessions_stored"] == 300
        assert listing["rows_listed"] == 20  # the default --limit
        assert listing["command_ok"] is True
    replay = part["replay"]
    assert replay["status"] == "ok", replay
    assert replay["events"] == 300 and replay["text_lines"] >= 300
    assert replay["html_status"] in ("ok", "pending")


def test_memory_curve_is_sampled_and_sessions_are_bounded(smoke: dict[str, Any]) -> None:
    part = smoke["memory"]
    assert part["status"] == "ok", part
    assert part["spans"] == 20_000
    assert [p["spans"] for p in part["curve"]] == [0, 5_000, 10_000, 15_000, 20_000]
    assert all(p["rss_mib"] > 0 for p in part["curve"])
    assert part["ended_sessions_kept"] <= part["settings"]["max_ended_sessions"]


MAIN_VENV_FRAMEWORKS = ("langchain", "openai-agents", "pydantic-ai")
"""The frameworks installed in the project's venv (CrewAI and Google ADK run in venvs of their own, not in smoke)."""


def test_framework_rows_trace_each_tool_call_once_and_follow_content_capture(smoke: dict[str, Any]) -> None:
    part = smoke["frameworks"]
    assert part["command"].startswith("python benchmarks/run.py --smoke") and part["elapsed_s"] > 0
    rows = {(r["framework"], r["content"]): r for r in part["rows"] if r["peer"] == "agentotel"}
    for framework in MAIN_VENV_FRAMEWORKS:
        for content in ("off", "on"):
            row = rows[(framework, content)]
            assert row["status"] == "ok", row
            # One tool call, one span of the tool (a Pydantic AI run's other spans cancel out in the difference).
            assert row["spans_per_tool_call"] == pytest.approx(1.0, abs=0.05), row
            assert any(name == "execute_tool lookup_customer" for name in row["span_names"]), row
            assert row["content_recorded"] is (content == "on"), row
            assert row["base_us"] > 0 and isinstance(row["added_us"], float)
            assert len(row["added_per_round_us"]) == row["rounds"] == 1
    # A Pydantic AI tool call is measured through whole agent runs: their own figures come along.
    pydantic = rows[("pydantic-ai", "off")]
    assert pydantic["call_case"] == "run, 1 tool call" and pydantic["call_base_us"] > pydantic["base_us"]
    # No OpenInference row in smoke, so no ratio (a ratio to a missing row would be made up).
    assert all(r.get("ratio_to_openinference") is None for r in rows.values())


def _report_module() -> Any:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import _report
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return _report


def test_framework_ratio_is_agentotel_added_over_openinference_added_median_over_rounds() -> None:
    report = _report_module()

    class Job:
        def __init__(self, peer: str) -> None:
            self.label = {"framework": "langchain", "peer": peer, "mode": "off"}

    def measured(added: float) -> dict[str, Any]:
        return {"status": "ok", "base_us": 200.0, "added_us": added, "tool_calls": {"tool": 1}}

    ours = [measured(a) for a in (40.0, 50.0, 90.0)]
    theirs = [measured(a) for a in (100.0, 120.0, 150.0)]
    missing = [{"framework": "crewai", "status": "not-run", "reason": "venv missing"}]
    rows = report.framework_rows([Job("agentotel"), Job("openinference")], [ours, theirs], missing)["rows"]
    by_peer = {(r["framework"], r["peer"], r["content"]): r for r in rows}
    assert by_peer[("langchain", "agentotel", "off")]["added_us"] == 50.0
    assert by_peer[("langchain", "agentotel", "off")]["ratio_to_openinference"] == pytest.approx(50 / 120, abs=0.01)
    assert by_peer[("langchain", "openinference", "off")]["ratio_to_openinference"] == 1.0
    # A framework that could not run says why, for both peers and both content modes.
    assert {(r["peer"], r["content"]) for r in rows if r["framework"] == "crewai"} == {
        (p, c) for p in ("agentotel", "openinference") for c in ("off", "on")
    }
    targets = {t["target"]: t for t in report.targets({"frameworks": {"rows": rows}})}
    verdict = targets["tool call (langchain), content off: added us / OpenInference's"]
    assert verdict["met"] is True and verdict["value"] == pytest.approx(0.42, abs=0.01)
    assert targets["tool call (crewai), content off: added us / OpenInference's"]["met"] is None


def test_targets_name_a_verdict_for_each_measured_target(smoke: dict[str, Any]) -> None:
    names = [t["target"] for t in smoke["targets"]]
    assert any(name.startswith("step overhead") for name in names)
    assert any(name.startswith("LLM call") for name in names)
    assert all(t["met"] in (True, False, None) for t in smoke["targets"])
