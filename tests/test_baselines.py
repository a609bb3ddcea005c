"""Baselines: `assert_matches_baseline` compares a session with a stored, reviewable snapshot of its behaviour and
fails with the behaviour diff; `pytest --agentotel-update-baselines` writes the snapshots."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from diff_support import Recorder, weather_recorder

import agentotel
from agentotel.testing import BaselineError, SessionAssertionError, assert_matches_baseline, capture
from agentotel.testing import baselines as baselines_module
from agentotel.testing.baselines import SUMMARY_KEY, baseline_data, set_updating


@pytest.fixture
def record() -> Iterator[Recorder]:
    with weather_recorder() as recorder:
        yield recorder


@pytest.fixture
def updating() -> Iterator[None]:
    """Baselines are written, as under `pytest --agentotel-update-baselines`."""
    set_updating(True)
    try:
        yield
    finally:
        set_updating(None)


def write(session: agentotel.Session, path: Path, **options: object) -> None:
    set_updating(True)
    try:
        assert assert_matches_baseline(session, path, **options) is None  # type: ignore[arg-type]
    finally:
        set_updating(None)


def test_a_baseline_is_small_reviewable_json_of_the_steps_end_state_tokens_and_cost(
    record: Recorder, tmp_path: Path, updating: None
) -> None:
    session = record("Weather in Paris?")
    path = tmp_path / "baselines" / "paris.json"
    assert_matches_baseline(session, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == {
        "agentotel_baseline": 1,
        "session": "weather-agent",
        "end_state": "Success",
        "tokens": {"input": session.input_tokens, "output": session.output_tokens},
        "cost": pytest.approx(session.cost),
        "steps": [
            {"kind": "llm", "name": "gpt-4o-mini"},
            {
                "kind": "tool",
                "name": "get_weather",
                "arguments": {"city": "Paris", "units": "metric"},
                "result": {"city": "Paris", "temp": 21, "units": "metric", "sky": "sunny"},
            },
            {"kind": "llm", "name": "gpt-4o-mini"},
        ],
    }
    assert path.read_text(encoding="utf-8").count("\n") > 10  # indented: one line per value, for review


def test_a_matching_session_passes_and_returns_the_diff(record: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "paris.json"
    write(record("Weather in Paris?"), path)
    found = assert_matches_baseline(record("Weather in Paris?"), path)
    assert found is not None and not found.changed


def test_a_changed_behaviour_fails_with_the_behaviour_diff_and_how_to_update(record: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "paris.json"
    write(record("Weather in Paris?"), path)
    changed = record("Weather in Paris?", units="imperial", audit=True)
    with pytest.raises(SessionAssertionError) as failure:
        assert_matches_baseline(changed, path)
    message = str(failure.value)
    assert message.startswith(f"session 'weather-agent' does not match its baseline {path}:\n")
    assert "  - the steps differ (1 changed, 1 added); first at step 2: tool get_weather changed" in message
    assert "update the baseline: pytest --agentotel-update-baselines" in message
    assert "Behaviour diff" in message and 'arguments.units: "metric" → "imperial"' in message
    assert "result.temp: 21 → 70" in message
    assert "+         3  tool audit_log  added" in message
    assert f"({path})" in message  # the diff names the baseline it compared with
    assert "Session: " in message  # and the session's replay follows
    assert not isinstance(failure.value, BaselineError)


def test_end_state_cost_and_tokens_are_checked_within_their_tolerance(record: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "paris.json"
    session = record("Weather in Paris?")
    write(session, path)
    data = json.loads(path.read_text())
    data["cost"] = session.cost * 1.05  # 5% off: within the default 10%
    path.write_text(json.dumps(data))
    assert assert_matches_baseline(session, path) is not None
    with pytest.raises(SessionAssertionError, match=r"cost \$0\.\d+ is -4\.8% off the baseline's .*tolerance 1%"):
        assert_matches_baseline(session, path, cost_tolerance=0.01)
    assert assert_matches_baseline(session, path, cost_tolerance=0.01, ignore=["cost"]) is not None
    data["tokens"]["input"] = session.input_tokens * 2
    data["end_state"] = "Fail"
    path.write_text(json.dumps(data))
    with pytest.raises(SessionAssertionError) as failure:
        assert_matches_baseline(session, path)
    message = str(failure.value)
    assert "  - end state Success (the baseline's: Fail)" in message
    assert "  - input tokens" in message and "-50.0% off the baseline's" in message
    assert "output tokens" not in message.split("\n\n")[0]
    assert assert_matches_baseline(session, path, ignore=["tokens", "end_state"]) is not None
    with pytest.raises(ValueError, match="cost_tolerance must be a finite number"):
        assert_matches_baseline(session, path, cost_tolerance=float("nan"))


def test_ignored_values_are_neither_written_nor_compared(record: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "any-city.json"
    rules = ["arguments.city", "result.city", "@audit_log"]
    write(record("Weather in Paris?"), path, ignore=rules)
    text = path.read_text()
    assert "Paris" not in text and "audit_log" not in text
    assert json.loads(text)["steps"][1]["arguments"] == {"units": "metric"}
    assert assert_matches_baseline(record("Weather in Rome?", audit=True), path, ignore=rules) is not None
    with pytest.raises(SessionAssertionError, match=r"arguments\.city"):
        assert_matches_baseline(record("Weather in Rome?"), path, ignore=["result.city"])


def test_a_long_value_is_kept_as_a_summary_and_still_compared(tmp_path: Path) -> None:
    @agentotel.tool
    def fetch_document(doc_id: str) -> dict[str, str]:
        return {"id": doc_id, "body": ("lorem ipsum " * 100) + doc_id[-1]}

    def run(doc_id: str) -> agentotel.Session:
        with capture(capture_content=True) as cap, agentotel.session("reader"):
            fetch_document(doc_id)
        return cap.session("reader")

    path = tmp_path / "reader.json"
    write(run("doc-1"), path)
    step = json.loads(path.read_text())["steps"][0]
    assert step["result"]["id"] == "doc-1"
    summary = step["result"]["body"][SUMMARY_KEY]
    assert summary["chars"] > 1000 and len(summary["sha256"]) == 32 and summary["start"].startswith('"lorem ipsum')
    assert len(path.read_text()) < 1000
    assert assert_matches_baseline(run("doc-1"), path) is not None
    with pytest.raises(SessionAssertionError, match=r"result\.body\.\$summary\.sha256"):
        assert_matches_baseline(run("doc-2"), path, ignore=["arguments", "result.id"])


def test_a_missing_baseline_fails_and_says_how_to_write_it(record: Recorder, tmp_path: Path) -> None:
    path = tmp_path / "none.json"
    with pytest.raises(BaselineError) as failure:
        assert_matches_baseline(record("Weather in Paris?"), path)
    assert str(failure.value) == (
        f"no baseline at {path}: write it with pytest --agentotel-update-baselines "
        "(or AGENTOTEL_UPDATE_BASELINES=1), then review and commit it"
    )
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "it is not JSON (line 1, column 2: Expecting property name enclosed in double quotes)"),
        ("[1, 2]", "it holds no JSON object"),
        ('{"steps": []}', 'it has no "agentotel_baseline" version'),
        ('{"agentotel_baseline": 99, "steps": []}', "its version 99 is not one this agentotel reads (it reads 1)"),
        ('{"agentotel_baseline": 1, "steps": {}}', '"steps" is not a list'),
        ('{"agentotel_baseline": 1, "steps": [{"kind": "tool"}]}', "step 1 is not an object with a text kind and name"),
        ('{"agentotel_baseline": 1, "steps": [], "cost": "cheap"}', '"cost" is not a number'),
        ('{"agentotel_baseline": 1, "steps": [], "tokens": {"input": -1}}', '"tokens.input" is not a whole number'),
    ],
)
def test_a_corrupt_baseline_fails_with_one_clear_message(
    record: Recorder, tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(BaselineError) as failure:
        assert_matches_baseline(record("Weather in Paris?"), path)
    assert str(failure.value) == (
        f"{path} is not a baseline agentotel can read: {problem}; write it again with "
        "pytest --agentotel-update-baselines (or AGENTOTEL_UPDATE_BASELINES=1)"
    )


def test_updating_rewrites_a_corrupt_or_outdated_baseline_and_leaves_a_matching_one(
    record: Recorder, tmp_path: Path, updating: None
) -> None:
    path = tmp_path / "paris.json"
    path.write_text("{not json")
    session = record("Weather in Paris?")
    assert_matches_baseline(session, path)
    written = path.read_text()
    assert json.loads(written)["steps"][1]["arguments"]["city"] == "Paris"
    data = json.loads(written)
    data["cost"] = session.cost * 1.05  # within tolerance: a reviewed file is not churned
    path.write_text(json.dumps(data))
    assert_matches_baseline(session, path)
    assert json.loads(path.read_text())["cost"] == pytest.approx(session.cost * 1.05)
    assert_matches_baseline(record("Weather in Rome?"), path)
    assert json.loads(path.read_text())["steps"][1]["arguments"]["city"] == "Rome"
    count, paths = baselines_module.written_baselines()
    assert count >= 2 and str(path) in paths


def test_a_session_without_content_cannot_be_compared_and_says_why(record: Recorder, tmp_path: Path) -> None:
    session = record("Weather in Paris?", content_capture=False)
    path = tmp_path / "paris.json"
    with pytest.raises(BaselineError, match=r"holds no arguments or results: .*capture_content=True"):
        assert_matches_baseline(session, path)
    # Unless arguments and results are left out: the sequence, end state and cost are still compared.
    write(session, path, ignore=["arguments", "result"])
    assert assert_matches_baseline(session, path, ignore=["arguments", "result"]) is not None


def test_the_environment_variable_turns_updating_on(
    record: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTOTEL_UPDATE_BASELINES", "1")
    path = tmp_path / "env.json"
    assert assert_matches_baseline(record("Weather in Paris?"), path) is None
    assert path.exists()


def test_baseline_data_of_a_failed_step_keeps_its_error(record: Recorder) -> None:
    data = baseline_data(record("Weather in Atlantis?"))
    assert data["end_state"] == "Fail"
    assert data["steps"][1] == {
        "kind": "tool",
        "name": "get_weather",
        "arguments": {"city": "Atlantis", "units": "metric"},
        "error": "diff_support.UnknownCity: no weather for Atlantis",
    }


BASELINE_TEST = """
import os
import agentotel
from agentotel.testing import assert_matches_baseline, capture

@agentotel.tool
def lookup(city: str) -> dict:
    return {"city": city, "temp": 21}

def test_agent():
    with capture(capture_content=True) as cap, agentotel.session("weather"):
        lookup(os.environ.get("CITY", "Paris"))
    assert_matches_baseline(cap.session("weather"), "baselines/weather.json")
"""


def test_pytest_writes_baselines_with_the_update_option_and_compares_without_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTOTEL_UPDATE_BASELINES", raising=False)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_weather=BASELINE_TEST)
    missing = pytester.runpytest("-p", "no:cacheprovider")
    missing.assert_outcomes(failed=1)
    missing.stdout.fnmatch_lines(["*BaselineError: no baseline at baselines/weather.json: write it with pytest*"])
    written = pytester.runpytest("-p", "no:cacheprovider", "--agentotel-update-baselines")
    written.assert_outcomes(passed=1)
    written.stdout.fnmatch_lines(["Wrote 1 baseline(s): review and commit them", "  baselines/weather.json"])
    assert json.loads((pytester.path / "baselines" / "weather.json").read_text())["steps"][0]["name"] == "lookup"
    assert not baselines_module.updating()  # the option lasts for its run only
    same = pytester.runpytest("-p", "no:cacheprovider")
    same.assert_outcomes(passed=1)
    assert "baseline(s)" not in same.stdout.str()
    monkeypatch.setenv("CITY", "Rome")
    changed = pytester.runpytest("-p", "no:cacheprovider")
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(
        [
            "*session 'weather' does not match its baseline baselines/weather.json:",
            "*  - the steps differ (1 changed); first at step 1: tool lookup changed",
            '*arguments.city: "Paris" → "Rome"',
        ]
    )
