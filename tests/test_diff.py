"""Behaviour diffs: `Session.diff`, its text / JSON renderings, `agentotel diff A B` and `agentotel diff --run A
--run B` over sessions the pytest plugin stamped. Sessions are recorded with the real openai SDK against a scripted
model on loopback (`diff_support.py`) or by the demo agent."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from diff_support import SESSION, Recorder, weather_recorder

import agentotel
from agentotel import diff as diff_module
from agentotel._session_stamps import session_stamps, set_session_stamps, stamped
from agentotel.cli import main
from agentotel.demo import run_demo
from agentotel.diff import ADDED, CHANGED, MISSING, REMOVED, SAME, Behaviour, Step, diff
from agentotel.diff_ignore import IgnoreRules, format_path, parse_path
from agentotel.records import records_from_spans
from agentotel.runs import NO_TEST, TestRun, diff_runs, find_runs, load_run
from agentotel.semconv import AGENTOTEL_TEST_NODE_ID, AGENTOTEL_TEST_RUN_ID, GEN_AI_AGENT_NAME
from agentotel.sources import SessionNotFound, open_source
from agentotel.store import Store
from agentotel.testing import capture

CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.fixture
def record() -> Iterator[Recorder]:
    with weather_recorder() as recorder:
        yield recorder


def statuses(found: diff_module.SessionDiff) -> list[tuple[str, str]]:
    return [(row.status, row.step.label) for row in found.steps]


# --- Session.diff --------------------------------------------------------------------------------------------------


def test_two_runs_that_behave_alike_have_no_behaviour_change(record: Recorder) -> None:
    first, second = record("Weather in Paris?"), record("Weather in Paris?")
    found = first.diff(second)
    assert not found.changed and not found
    assert found.first_divergence is None
    assert statuses(found) == [
        (SAME, "llm gpt-4o-mini"),
        (SAME, "tool get_weather"),
        (SAME, "llm gpt-4o-mini"),
    ]
    assert found.figure("end_state") == diff_module.Change("end_state", "Success", "Success")
    assert found.figure("cost") is not None and found.figure("cost").before == first.cost > 0  # type: ignore[union-attr]
    assert "No behaviour change" in found.render_text()


def test_a_changed_argument_and_result_are_named_by_their_paths_and_the_first_divergence_is_marked(
    record: Recorder,
) -> None:
    found = record("Weather in Paris?").diff(record("Weather in Paris?", units="imperial"))
    assert found.changed
    assert statuses(found) == [
        (SAME, "llm gpt-4o-mini"),
        (CHANGED, "tool get_weather"),
        (CHANGED, "llm gpt-4o-mini"),
    ]
    assert found.first_divergence == 1
    tool = found.steps[1]
    assert {(c.path, c.before, c.after) for c in tool.changes} == {
        ("arguments.units", "metric", "imperial"),
        ("result.temp", 21, 70),
        ("result.units", "metric", "imperial"),
    }
    # The model was handed the tool's result as JSON text: the diff walks into it.
    answer = {c.path: (c.before, c.after) for c in found.steps[2].changes}
    assert answer["input[2].parts[0].response.temp"] == (21, 70)
    assert answer["output[0].parts[0].content"] == (
        "It is 21 degrees and sunny in Paris.",
        "It is 70 degrees and sunny in Paris.",
    )
    text = found.render_text()
    marked = [line for line in text.splitlines() if "← FIRST DIVERGENCE" in line]
    assert len(marked) == 1 and "tool get_weather" in marked[0] and marked[0].startswith("~")
    assert 'arguments.units: "metric" → "imperial"' in text
    assert "result.temp: 21 → 70" in text


def test_an_inserted_step_shows_as_added_and_leaves_the_rest_aligned(record: Recorder) -> None:
    plain, audited = record("Weather in Oslo?"), record("Weather in Oslo?", audit=True)
    found = plain.diff(audited)
    assert statuses(found) == [
        (SAME, "llm gpt-4o-mini"),
        (SAME, "tool get_weather"),
        (ADDED, "tool audit_log"),
        (SAME, "llm gpt-4o-mini"),
    ]
    assert found.first_divergence == 2
    added = found.steps[2]
    assert (
        added.before is None
        and added.after is not None
        and added.after.fields["arguments"] == {"event": "weather looked up"}
    )
    back = audited.diff(plain)
    assert [row.status for row in back.steps] == [SAME, SAME, REMOVED, SAME]
    assert "-    3       tool audit_log  removed" in back.render_text()


def test_a_failing_run_shows_the_end_state_the_error_and_the_missing_steps(record: Recorder) -> None:
    good, bad = record("Weather in Paris?"), record("Weather in Atlantis?")
    assert bad.end_state == "Fail"
    found = good.diff(bad)
    assert statuses(found) == [
        (CHANGED, "llm gpt-4o-mini"),
        (CHANGED, "tool get_weather"),
        (REMOVED, "llm gpt-4o-mini"),
    ]
    changes = {c.path: (c.before, c.after) for c in found.steps[1].changes}
    assert changes["arguments.city"] == ("Paris", "Atlantis")
    assert changes["error"] == (MISSING, "diff_support.UnknownCity: no weather for Atlantis")
    assert changes["result"][1] is MISSING
    end = found.figure("end_state")
    assert end is not None and (end.before, end.after) == ("Success", "Fail")
    cost = found.figure("cost")
    assert cost is not None and cost.delta is not None and cost.delta < 0
    tokens = found.figure("input_tokens")
    assert tokens is not None and tokens.after < tokens.before
    text = found.render_text()
    assert "end state  Success → Fail: diff_support.UnknownCity: no weather for Atlantis" in text
    assert "steps      3 → 2: 2 changed, 1 removed" in text


def test_only_the_end_state_can_differ(record: Recorder) -> None:
    first = Behaviour.of(record("Weather in Paris?"))
    failed = Behaviour(name=first.name, steps=first.steps, end_state="Fail", end_state_reason="judged wrong")
    found = diff(first, failed)
    assert found.changed and found.first_divergence is None
    assert "The same steps; the end state differs." in found.render_text()


def test_ignore_rules_leave_out_figures_fields_values_and_steps(record: Recorder) -> None:
    plain = record("Weather in Paris?")
    other = record("Weather in Paris?", units="imperial", audit=True)
    assert plain.diff(other).changed
    found = plain.diff(
        other,
        ignore=[
            "arguments.units",
            "result.temp",
            "result.units",
            "input[*].parts[*].response.temp",
            "input.2.parts.0.response.units",  # positions after dots, as well as in brackets
            "output@gpt-4o-mini",
            "@audit_*",
            "cost",
        ],
    )
    assert not found.changed, found.render_text()
    assert [row.status for row in found.steps] == [SAME, SAME, SAME]
    assert found.figure("cost") is None and found.figure("end_state") is not None
    # A rule scoped to another step's name leaves this one compared.
    scoped = plain.diff(other, ignore=["arguments.units@audit_log", "@audit_log"])
    assert scoped.changed and scoped.steps[1].changes[0].path == "arguments.units"


@pytest.mark.parametrize("rule", ["nonsense", "cost@get_weather", "arguments@", "arguments..x", "result[x]", ""])
def test_an_ignore_rule_not_in_the_syntax_is_refused_with_the_syntax(rule: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(rule)) + ".*an ignore rule is a figure"):
        IgnoreRules.parse([rule])


def test_paths_the_diff_prints_parse_back_to_the_same_segments() -> None:
    for segments in (["arguments", "city"], ["input", 2, "parts", 0, "response"], ["result", "a.b", 'q"x', "3"]):
        text = format_path(segments)
        assert parse_path(text) == tuple(str(s) for s in segments), text


def test_json_is_every_row_and_difference(record: Recorder) -> None:
    found = record("Weather in Paris?").diff(record("Weather in Rome?"))
    data = json.loads(json.dumps(found.to_dict()))
    assert data["changed"] is True and data["first_divergence"] == 0
    assert data["counts"] == {"same": 0, "changed": 3, "removed": 0, "added": 0}
    assert [row["status"] for row in data["steps"]] == ["changed"] * 3
    tool = data["steps"][1]
    assert tool["before"]["name"] == tool["after"]["name"] == "get_weather"
    assert {"path": "arguments.city", "before": "Paris", "after": "Rome"} in tool["changes"]
    assert tool["after"]["fields"]["result"]["city"] == "Rome"
    figures = {f["path"]: f for f in data["figures"]}
    assert set(figures) == {"end_state", "cost", "input_tokens", "output_tokens", "duration"}
    assert figures["cost"]["delta"] == pytest.approx(figures["cost"]["after"] - figures["cost"]["before"])
    assert data["before"]["name"] == data["after"]["name"] == SESSION


def test_a_session_without_content_is_compared_by_its_steps_and_says_so(record: Recorder) -> None:
    with_content = record("Weather in Paris?")
    without = record("Weather in Rome?", content_capture=False)
    found = with_content.diff(without)
    assert not Behaviour.of(without).has_content
    assert [row.status for row in found.steps] == [SAME, SAME, SAME]  # another city, but nothing to compare it by
    assert any("the second session holds no content" in note for note in found.notes)
    assert "note: the second session holds no content" in found.render_text()
    # The sequence still counts: a missing step shows.
    failed = record("Weather in Atlantis?", content_capture=False)
    assert [row.status for row in without.diff(failed).steps] == [SAME, CHANGED, REMOVED]


def test_text_shows_control_characters_from_the_agent_escaped() -> None:
    hostile = "evil\x1b]0;pwned\x07\rname\u202e"
    before = Behaviour(name="a", steps=(Step(1, "tool", hostile, {"arguments": {"q": "x\x1b[2J"}}),))
    after = Behaviour(name="b", steps=(Step(1, "tool", hostile, {"arguments": {"q": "y\x1b[2J"}}),))
    text = diff(before, after).render_text()
    assert not CONTROL.search(text.replace("\n", "")) and "\u202e" not in text
    assert "\\x1b]0;pwned\\x07\\rname\\u202e" in text


def test_long_sessions_fold_same_steps_and_align_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    def steps(names: list[str]) -> tuple[Step, ...]:
        return tuple(Step(i, "tool", name, {"arguments": {"i": 0}}) for i, name in enumerate(names, start=1))

    names = [f"t{i % 3}" for i in range(3000)]
    inserted = [*names[:1500], "extra", *names[1500:]]
    found = diff(Behaviour("a", steps(names)), Behaviour("b", steps(inserted)))
    assert found.counts() == {SAME: 3000, CHANGED: 0, REMOVED: 0, ADDED: 1}
    assert found.steps[1500].status == ADDED
    text = found.render_text()
    assert "… 1498 same step(s) …" in text and len(text.splitlines()) < 40
    # Past the bound on alignment work the middle is paired by position, and the diff says so.
    monkeypatch.setattr(diff_module, "MAX_ALIGNMENT_WORK", 10)
    shuffled = [*names[:10], "x", *names[10:-1], "y"]
    positional = diff(Behaviour("a", steps(names)), Behaviour("b", steps(shuffled)))
    assert any("compared by position" in note for note in positional.notes)
    assert len([r for r in positional.steps if r.status != SAME]) > 3


def test_many_differences_in_one_step_are_counted_past_the_limit() -> None:
    before = Behaviour("a", (Step(1, "tool", "t", {"arguments": {f"k{i}": i for i in range(50)}}),))
    after = Behaviour("b", (Step(1, "tool", "t", {"arguments": {f"k{i}": -i for i in range(50)}}),))
    row = diff(before, after).steps[0]
    assert len(row.changes) == diff_module.MAX_CHANGES_PER_STEP
    assert len(row.changes) + row.more_changes == 49  # k0 is 0 both ways
    assert f"… and {row.more_changes} more difference(s)" in diff(before, after).render_text()


def test_values_compare_as_json_does() -> None:
    assert diff_module.same(1, 1.0) and diff_module.same([1, {"a": (2,)}], [1, {"a": [2]}])
    assert not diff_module.same(True, 1) and not diff_module.same(0, False) and not diff_module.same("1", 1)


def test_rich_prints_the_diff_in_colour(record: Recorder) -> None:
    from rich.console import Console

    console = Console(record=True, force_terminal=True, width=100)
    console.print(record("Weather in Paris?").diff(record("Weather in Atlantis?")))
    assert "FIRST DIVERGENCE" in console.export_text(clear=False)
    assert "\x1b[" in console.export_text(styles=True)


# --- agentotel diff A B ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """The demo's three sessions (two succeed, the third fails) in a store of their own, in the order they ran."""
    path = tmp_path_factory.mktemp("demo") / "demo.db"
    run = run_demo(path)
    assert run.stored
    return path, [s.id for s in run.sessions]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["diff", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_diff_of_two_demo_sessions_prints_what_differs(
    demo_store: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, (_, billing, failing) = demo_store
    code, out, err = cli(capsys, billing[:8], failing, "--source", str(path))
    assert code == 0, err
    assert "end state  Success → Fail: customer_id cannot be None" in out
    assert "~    1    1  action classify_intent  changed   ← FIRST DIVERGENCE" in out
    assert 'arguments.customer_id: "C-1042" → null' in out
    assert '"ValueError: customer_id cannot be None"' in out
    assert "-    5       action session_complete  removed" in out
    code, out, _ = cli(capsys, billing, failing, "--source", str(path), "--json")
    data = json.loads(out)
    assert data["changed"] is True and data["after"]["end_state"] == "Fail"
    assert cli(capsys, billing, billing, "--source", str(path), "--exit-code")[0] == 0
    assert cli(capsys, billing, failing, "--source", str(path), "--exit-code")[0] == 1
    code, out, _ = cli(capsys, billing, failing, "--source", str(path), "--ignore", "@*", "--ignore", "end_state")
    assert code == 0 and "No steps in either session." in out


def test_cli_diff_html_writes_a_private_page(
    demo_store: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, (_, billing, failing) = demo_store
    page = tmp_path / "diff.html"
    code, out, err = cli(capsys, billing, failing, "--source", str(path), "--html", str(page))
    assert code == 0, err
    assert f"Wrote {page}" in out
    assert page.stat().st_mode & 0o777 == 0o600
    text = page.read_text(encoding="utf-8")
    assert text.count("<script") == 2 and "customer_id cannot be None" in text


def test_cli_diff_reads_each_session_from_its_own_source(
    demo_store: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path, record: Recorder
) -> None:
    path, (hours, _, _) = demo_store
    weather = record("Weather in Paris?")
    other = tmp_path / "other.db"
    with capture(capture_content=True) as cap, agentotel.session("copy"):
        pass
    with Store(other, create=True) as store:
        store.write(records_from_spans(cap.spans))
    copy_id = cap.session("copy").id
    code, out, err = cli(capsys, hours, copy_id, "--source", str(path), "--source", str(other))
    assert code == 0, err
    assert f"({path})" in out and f"({other})" in out
    # With one source, the second session is looked for there, and the message says how to read it elsewhere.
    code, out, err = cli(capsys, hours, copy_id, "--source", str(path))
    assert code == 2 and out == ""
    assert err.strip() == (
        f"agentotel: B: no session or trace with id {copy_id!r} in {path}; to read A and B from two sources, "
        "give --source twice"
    )
    assert weather.id  # the recorder's session is in neither source
    code, _, err = cli(capsys, hours, weather.id, "--source", str(path), "--source", str(other))
    assert code == 2 and err.startswith("agentotel: B: no session or trace with id") and "give --source" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["only-one"], "agentotel diff: give two sessions (A before, B after), or --run twice"),
        (["a", "b", "--run", "x", "--run", "y"], "agentotel diff: give two sessions or two --run, not both"),
        (["--run", "x"], "agentotel diff: give --run twice (the run before, then the run after)"),
        (["a", "b", "--json", "--html", "x.html"], "agentotel diff: give --json or --html, not both"),
        (["a", "b", "--source", "1", "--source", "2", "--source", "3"], "agentotel diff: give --source once"),
        (["a", "b", "--ignore", "bogus"], "agentotel diff: ignore rule 'bogus' is not one agentotel knows"),
    ],
)
def test_cli_diff_usage_errors_are_one_line(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1


def test_cli_diff_of_an_unknown_id_or_a_bad_file_is_one_line(
    demo_store: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path, (hours, _, _) = demo_store
    code, _, err = cli(capsys, "nope", hours, "--source", str(path))
    assert code == 2 and err.startswith(f"agentotel: A: no session or trace with id 'nope' in {path}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    code, _, err = cli(capsys, "last", "last", "--source", str(bad))
    assert code == 2 and err.startswith("agentotel: ") and err.count("\n") == 1 and "Traceback" not in err
    code, _, err = cli(capsys, "last", "last", "--source", str(tmp_path / "missing.db"))
    assert code == 2 and err.strip() == f"agentotel: no such file: {tmp_path / 'missing.db'}"


# --- test runs -------------------------------------------------------------------------------------------------------


def test_stamps_reach_the_session_root_span_and_the_session_s_own_attributes_win() -> None:
    outer = dict(session_stamps())  # this very run's, stamped by the plugin
    with (
        capture() as cap,
        stamped({AGENTOTEL_TEST_RUN_ID: "r1", AGENTOTEL_TEST_NODE_ID: "t::a"}),
        agentotel.session("stamped"),
    ):
        assert session_stamps()[AGENTOTEL_TEST_RUN_ID] == "r1"
    assert session_stamps() == outer  # put back after the block
    session = cap.session("stamped")
    assert session.root_attributes[AGENTOTEL_TEST_RUN_ID] == "r1"
    assert session.root_attributes[AGENTOTEL_TEST_NODE_ID] == "t::a"
    with capture() as cap, stamped({GEN_AI_AGENT_NAME: "forged"}), agentotel.session("own"):
        pass
    assert cap.session("own").name == "own"


def _store_of_runs(tmp_path: Path, record: Recorder, runs: dict[str, dict[str, dict[str, Any]]]) -> Path:
    """A store holding, for each run id, each test's weather-agent session recorded with the options given."""
    path = tmp_path / "runs.db"
    with capture(capture_content=True) as cap:
        for run_id, tests in runs.items():
            for test, given in tests.items():
                options = dict(given)
                with stamped({AGENTOTEL_TEST_RUN_ID: run_id, AGENTOTEL_TEST_NODE_ID: test}):
                    record(options.pop("question", "Weather in Paris?"), **options)
    with Store(path, create=True) as store:
        store.write(records_from_spans(cap.spans))
    return path


def test_two_runs_are_compared_test_by_test(tmp_path: Path, record: Recorder) -> None:
    path = _store_of_runs(
        tmp_path,
        record,
        {
            "20260101T000000-aaaaaa": {"t.py::test_same": {}, "t.py::test_units": {}, "t.py::test_gone": {}},
            "20260102T000000-bbbbbb": {
                "t.py::test_same": {},
                "t.py::test_units": {"units": "imperial"},
                "t.py::test_new": {"question": "Weather in Atlantis?"},
            },
        },
    )
    with open_source(str(path)) as source:
        runs = find_runs(source)
        assert [r.id for r in runs] == ["20260102T000000-bbbbbb", "20260101T000000-aaaaaa"]
        assert (runs[0].sessions, runs[0].tests) == (3, 3)
        before, after = load_run(source, "previous"), load_run(source, "last")
        assert load_run(source, "20260101").id == before.id  # a unique prefix
        with pytest.raises(SessionNotFound, match="matches 2 test runs"):
            load_run(source, "2026010")
        with pytest.raises(SessionNotFound, match=r"no test run 'nope' in .*20260102T000000-bbbbbb, 20260101"):
            load_run(source, "nope")
    found = diff_runs(before, after)
    by_test = {t.test: t for t in found.tests}
    assert {t: c.status for t, c in by_test.items()} == {
        "t.py::test_same": "same",
        "t.py::test_units": "changed",
        "t.py::test_gone": "removed",
        "t.py::test_new": "added",
    }
    assert [t.test for t in found.changed] == ["t.py::test_units", "t.py::test_gone", "t.py::test_new"]
    assert by_test["t.py::test_same"].cost_delta == 0
    assert by_test["t.py::test_gone"].cost_delta == pytest.approx(-by_test["t.py::test_gone"].cost_before)
    assert by_test["t.py::test_new"].cost_after > 0
    text = found.render_text()
    assert "~ t.py::test_units" in text and "+ t.py::test_new" in text and "- t.py::test_gone" in text
    assert "first divergence at step 2 (tool get_weather)" in text
    assert json.loads(json.dumps(found.to_dict()))["changed"] == [t.test for t in found.changed]


def test_cli_diff_of_two_runs_lists_the_tests_that_changed_and_their_cost(
    tmp_path: Path, record: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _store_of_runs(
        tmp_path,
        record,
        {"run-a": {"t.py::test_one": {}, "t.py::test_two": {}}, "run-b": {"t.py::test_one": {"audit": True}}},
    )
    code, out, err = cli(capsys, "--run", "run-a", "--run", "run-b", "--source", str(path))
    assert code == 0, err
    assert re.search(r"^~ t\.py::test_one +\$\d\.\d+ → \$\d\.\d+  \+\$0\.000000$", out, re.M), out
    assert re.search(r"^- t\.py::test_two +\$\d\.\d+ → —  -\$\d\.\d+$", out, re.M), out
    assert "1 added" in out and "see: agentotel diff " in out and f"--source {path}" in out
    code, out, _ = cli(capsys, "--run", "previous", "--run", "last", "--source", str(path), "--json")
    assert json.loads(out)["changed"] == ["t.py::test_one", "t.py::test_two"]
    assert cli(capsys, "--run", "run-a", "--run", "run-b", "--source", str(path), "--exit-code")[0] == 1
    code, _, err = cli(capsys, "--run", "last", "--run", "run-b", "--source", str(path))
    assert code == 2 and "are the same run (run-b)" in err
    code, _, err = cli(capsys, "--run", "run-a", "--run", "run-c", "--source", str(path))
    assert (
        code == 2 and err.strip() == f"agentotel: no test run 'run-c' in {path}; its runs, newest first: run-b, run-a"
    )


@contextmanager
def unstamped() -> Iterator[None]:
    """Sessions started in the block carry no run (this test run's plugin stamps every other)."""
    outer = dict(session_stamps())
    set_session_stamps({})
    try:
        yield
    finally:
        set_session_stamps(outer)


def test_a_source_without_runs_says_how_to_make_one(
    tmp_path: Path, record: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.db"
    with capture(capture_content=True) as cap, unstamped():
        record("Weather in Paris?")
    with Store(path, create=True) as store:
        store.write(records_from_spans(cap.spans))
    code, _, err = cli(capsys, "--run", "previous", "--run", "last", "--source", str(path))
    assert code == 2 and err.startswith(f"agentotel: no test runs in {path}: run pytest with agentotel's plugin")


def test_sessions_outside_any_test_are_grouped_apart(record: Recorder) -> None:
    with capture(capture_content=True) as cap, unstamped(), stamped({AGENTOTEL_TEST_RUN_ID: "r"}):
        record("Weather in Paris?")
    assert list(TestRun("r", cap.sessions).by_test()) == [NO_TEST]


RUN_TEST = """
import os
import agentotel

@agentotel.tool
def lookup(city: str) -> dict:
    return {"city": city, "temp": 21}

@agentotel.tool
def audit(event: str) -> str:
    return "ok"

def test_weather():
    with agentotel.session("weather"):
        lookup(os.environ.get("CITY", "Paris"))
        if os.environ.get("AUDIT"):
            audit("looked up")

def test_stable(agentotel_session):
    lookup("Oslo")
"""


def test_the_pytest_plugin_stamps_each_session_and_two_runs_diff_by_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = pytester.path / "runs.db"
    monkeypatch.setenv("AGENTOTEL_STORE", str(store))
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    monkeypatch.delenv("AGENTOTEL_TEST_RUN_ID", raising=False)
    for name in [k for k in os.environ if k.startswith("OTEL_") and "CAPTURE" not in k]:
        monkeypatch.delenv(name)
    pytester.makepyfile(test_agent=RUN_TEST)
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--agentotel-run-id", "before-change")
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(
        [f"Test run before-change; compare it with the run before: agentotel diff --run previous --run last *{store}"]
    )
    monkeypatch.setenv("CITY", "Rome")
    monkeypatch.setenv("AUDIT", "1")
    second = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    second.assert_outcomes(passed=2)
    generated = re.search(r"Test run (\d{8}T\d{6}-[0-9a-f]{6});", second.stdout.str())
    assert generated is not None, second.stdout.str()
    with open_source(str(store)) as source:
        runs = {r.id: r for r in find_runs(source)}
        assert set(runs) == {"before-change", generated.group(1)}
        stable = [s for s in load_run(source, "before-change").sessions if s.name == "test_stable"]
        assert len(stable) == 1 and stable[0].root_attributes[AGENTOTEL_TEST_NODE_ID] == "test_agent.py::test_stable"
    code, out, err = cli(capsys, "--run", "previous", "--run", "last", "--source", str(store))
    assert code == 0, err
    assert "~ test_agent.py::test_weather" in out and "1 changed, 1 same" in out
    assert "first divergence at step 1 (tool lookup)" in out
