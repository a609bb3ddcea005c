"""Numbers that agree (issue 15): an unknown cost is `unknown` everywhere and fails a cost limit; nested sessions
listed under their parents; the service of each session; TOOLS+ACTIONS named for what it counts; JSON costs
without float noise; `check` says when it checked nothing; `replay last` chooses among filtered sessions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import agentotel
from agentotel.cli import main
from agentotel.records import SpanRecord, records_from_spans
from agentotel.replay.html import page_data
from agentotel.store import Store
from agentotel.testing import Capture
from agentotel.ui import Filters, SessionRow, render_list

UNPRICED = "my-local-llama"


@agentotel.record_action("fetch_customer_data")
def fetch_customer(customer_id: str | None) -> dict[str, str]:
    if customer_id is None:
        raise ValueError("customer_id cannot be None")
    return {"id": customer_id}


@agentotel.tool
def lookup(order: str) -> str:
    return order.upper()


def llm(model: str = "gpt-4o", prompt_tokens: int = 1000, completion_tokens: int = 100) -> None:
    provider = None if model == UNPRICED else "openai"
    agentotel.record(
        agentotel.LLMEvent(
            model=model, provider=provider, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )
    )


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sessions.db"
    monkeypatch.setenv("AGENTOTEL_STORE", str(path))
    return path


def save(path: Path, records: list[SpanRecord]) -> None:
    with Store(path, create=True) as store:
        store.write(records)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "unexpected error" not in err, err
    return lines[0]


def table_rows(out: str) -> dict[str, list[str]]:
    """The sessions table's rows by session name (the cells split on runs of two spaces or more)."""
    import re

    header, *rows = [line for line in out.splitlines() if line.strip()]
    columns = re.split(r"\s{2,}", header.strip())
    found = {}
    for line in rows:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= len(columns) - 1:  # TAGS may be empty
            found[cells[1].lstrip("└ ").strip()] = cells
    return found


def column(out: str, name: str) -> int:
    import re

    header = out.splitlines()[0]
    return re.split(r"\s{2,}", header.strip()).index(name)


# --- 1. unknown cost, one rule ---------------------------------------------------------------------------------------


def test_an_unpriced_model_makes_the_cost_unknown_everywhere(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    """Before: `$0.000000` in the replay's header, `n/a` on the step, `-` in the list, 0 in JSON."""
    with agentotel.session("local") as local:
        llm(UNPRICED, 10, 1)
    with agentotel.session("priced") as priced:
        llm("gpt-4o")
    assert (local.cost_known, local.known_cost) == (False, None)
    assert priced.cost_known and priced.known_cost == pytest.approx(priced.cost)
    save(store, records_from_spans(cap.spans))

    code, out, _ = run(capsys, "replay", local.id)
    assert code == 0
    assert "| Cost: unknown (1 unpriced model call) |" in out.splitlines()[0]
    assert "Tokens: 10 in / 1 out | Cost: unknown" in out
    assert "$0.000000" not in out and "n/a" not in out

    data = json.loads(run(capsys, "replay", local.id, "--json")[1])
    assert (data["cost"], data["cost_known"]) == (None, False)
    assert data["events"][0]["cost"] is None
    assert json.loads(run(capsys, "replay", priced.id, "--json")[1])["cost_known"] is True

    code, out, _ = run(capsys, "sessions")
    rows = table_rows(out)
    assert rows["local"][column(out, "COST")] == "unknown"
    assert rows["priced"][column(out, "COST")].startswith("$")
    listed = {s["name"]: s for s in json.loads(run(capsys, "sessions", "--json")[1])}
    assert (listed["local"]["cost"], listed["local"]["cost_known"]) == (None, False)
    assert listed["priced"]["cost_known"] is True and listed["priced"]["cost"] > 0

    page = page_data(local)
    assert (page["session"]["cost"], page["session"]["cost_text"]) == (None, "unknown")
    assert dict(page["session"]["stats"])["Cost"] == "unknown (1 unpriced model call)"
    [step] = page["events"]
    assert (step["cost_text"], step["cost_so_far"], step["cost_so_far_text"]) == ("unknown", None, "unknown")

    with Store(store) as reader:
        summaries = reader.sessions()
    html = render_list(summaries, Filters())
    assert '<td class="num" data-label="Cost">unknown</td>' in html
    assert SessionRow.of(local).cost is None, "a live session's row follows the same rule"


def test_a_nested_session_with_an_unpriced_call_makes_its_parent_unknown(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    """The parent's totals add the nested session's as it ended: a known sum of the two needs both known."""
    with agentotel.session("outer") as outer:
        llm("gpt-4o")
        with agentotel.session("inner"):
            llm(UNPRICED, 10, 1)
    save(store, records_from_spans(cap.spans))
    listed = {s["name"]: s for s in json.loads(run(capsys, "sessions", "--json")[1])}
    assert listed["outer"]["cost"] is None and listed["inner"]["cost"] is None
    assert outer.known_cost is None


def test_a_session_without_model_calls_costs_nothing(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    with agentotel.session("tools-only"):
        lookup("a")
    save(store, records_from_spans(cap.spans))
    [listed] = json.loads(run(capsys, "sessions", "--json")[1])
    assert (listed["cost"], listed["cost_known"]) == (0.0, True)


def test_check_max_cost_fails_on_an_unknown_cost_and_names_the_session(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    with agentotel.session("priced"):
        llm("gpt-4o")
    with agentotel.session("local") as local:
        llm(UNPRICED, 10, 1)
    save(store, records_from_spans(cap.spans))
    code, out, _ = run(capsys, "check", "--max-cost", "1")
    assert code == 1, out
    assert "Check passed" not in out
    failure = next(line for line in out.splitlines() if line.startswith("Check failed:"))
    assert "cost of 1 session is unknown" in failure and f"agentotel replay {local.id[:8]}" in failure
    assert "a model call has no known price" in failure
    assert "Cost: unknown (1 session with an unknown cost)" in out
    figures = json.loads(run(capsys, "check", "--max-cost", "1", "--json")[1])
    assert figures["ok"] is False and figures["cost_known"] is False
    assert figures["unknown_cost_sessions"] == [local.id]
    assert figures["total_cost"] is None and figures["max_cost"] is None
    assert run(capsys, "check", "--max-cost", "1", "--tag", "nope")[0] == 0, "no session with an unknown cost left"


# --- 2. nesting, service, limits, empty ids ----------------------------------------------------------------------


def test_nested_sessions_are_listed_under_their_parent_with_a_note(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    with agentotel.session("first"):
        llm()
    with agentotel.session("parent"):
        llm()
        with agentotel.session("child"):
            llm()
            with agentotel.session("grandchild"):
                llm()
    with agentotel.session("last"):
        llm()
    save(store, records_from_spans(cap.spans))
    code, out, _ = run(capsys, "sessions")
    assert code == 0
    lines = out.splitlines()
    name_at, service_at = lines[0].index("NAME"), lines[0].index("SERVICE")
    names = [line[name_at:service_at].rstrip() for line in lines[1:6]]
    assert names == ["last", "parent", "└ child", "  └ grandchild", "first"]
    assert lines[-1].startswith("└ a session nested in the one above it")
    assert "include those of the sessions nested in it" in lines[-1]
    rows = table_rows(out)
    llm_calls = column(out, "LLM")
    assert [rows[n][llm_calls] for n in ("parent", "child", "grandchild")] == ["3", "2", "1"]


def test_sessions_show_and_filter_by_service(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    with agentotel.session("billing-run"):
        llm()
    billing = records_from_spans(cap.spans)
    cap.clear()
    with agentotel.session("search-run"):
        llm()
    search = records_from_spans(cap.spans)
    save(
        store,
        [replace(r, service_name="billing") for r in billing] + [replace(r, service_name="search") for r in search],
    )
    code, out, _ = run(capsys, "sessions")
    rows = table_rows(out)
    assert rows["billing-run"][column(out, "SERVICE")] == "billing"
    assert rows["search-run"][column(out, "SERVICE")] == "search"
    code, out, _ = run(capsys, "sessions", "--service", "billing", "--json")
    assert code == 0 and [s["name"] for s in json.loads(out)] == ["billing-run"]
    assert json.loads(out)[0]["service_name"] == "billing"
    code, out, _ = run(capsys, "sessions", "--service", "nope")
    assert code == 0 and "No sessions match" in out
    figures = json.loads(run(capsys, "check", "--service", "search", "--json")[1])
    assert figures["sessions"] == 1


def test_sessions_from_a_file_show_their_service(
    capsys: pytest.CaptureFixture[str], cap: Capture, tmp_path: Path
) -> None:
    from agentotel.sessions_file import save_session

    with agentotel.session("exported") as session:
        llm()
    path = tmp_path / "one.jsonl"
    [recorded] = cap.sessions
    save_session(recorded, path, warn=False)
    [listed] = json.loads(run(capsys, "sessions", "--source", str(path), "--json")[1])
    assert listed["id"] == session.id and listed["service_name"] == recorded.service_name is not None
    assert json.loads(run(capsys, "sessions", "--source", str(path), "--service", "x", "--json")[1]) == []


@pytest.mark.parametrize("limit", ["0", "-0"])
def test_a_limit_below_one_is_refused(capsys: pytest.CaptureFixture[str], store: Path, limit: str) -> None:
    """Before: `--limit 0` printed "No sessions in ... yet"."""
    code, out, err = run(capsys, "sessions", "--limit", limit)
    assert code == 2 and out == ""
    line = one_line(err)
    assert line.startswith("agentotel sessions: argument --limit:") and "at least 1" in line


@pytest.mark.parametrize("ref", ["", "   "])
def test_an_empty_session_id_is_refused(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path, ref: str
) -> None:
    """Before: `agentotel replay ''` replayed the only session (an empty prefix matches every id)."""
    with agentotel.session("only"):
        llm()
    save(store, records_from_spans(cap.spans))
    code, out, err = run(capsys, "replay", ref)
    assert code == 2 and out == ""
    assert "an empty session id names no session" in one_line(err)
    from agentotel.sessions_file import save_session

    path = Path(str(store) + ".jsonl")
    [recorded] = cap.sessions
    save_session(recorded, path, warn=False)
    code, _, err = run(capsys, "replay", ref, "--source", str(path))
    assert code == 2 and "an empty session id names no session" in one_line(err)


# --- 3. what TOOLS counts --------------------------------------------------------------------------------------------


def test_the_tools_column_is_named_for_tools_and_actions(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    with agentotel.session("both"):
        lookup("a")
        fetch_customer("c1")
    save(store, records_from_spans(cap.spans))
    out = run(capsys, "sessions")[1]
    assert "TOOLS+ACTIONS" in out.splitlines()[0] and " TOOLS " not in out.splitlines()[0]
    assert table_rows(out)["both"][column(out, "TOOLS+ACTIONS")] == "2"
    [listed] = json.loads(run(capsys, "sessions", "--json")[1])
    assert listed["tool_and_action_calls"] == 2 and "tool_calls" not in listed


# --- 4. JSON: costs without float noise, a URL only when there is one ---------------------------------------------


def test_json_costs_are_rounded_and_the_replay_command_has_its_own_field(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with agentotel.session("noisy") as session:
        llm("gpt-4o", 1, 3)  # 1 * 2.5e-6 + 3 * 1e-5 is 3.2500000000000004e-05 in floats
    assert repr(session.cost) == "3.2500000000000004e-05", "the float sum this test is about"
    save(store, records_from_spans(cap.spans))
    for argv in (["replay", session.id, "--json"], ["sessions", "--json"], ["check", "--json"]):
        out = run(capsys, *argv)[1]
        assert "3.2500000000000004e-05" not in out and "3.25e-05" in out, argv
    data = json.loads(run(capsys, "replay", session.id, "--json")[1])
    assert data["cost"] == data["events"][0]["cost"] == 3.25e-05
    assert data["replay_command"] == f"agentotel replay {session.id}"
    assert data["url"] is None, "no AGENTOTEL_SESSION_URL: no URL"
    monkeypatch.setattr("agentotel._config.settings.session_url_template", "https://traces.example/s/{session_id}")
    data = json.loads(run(capsys, "replay", session.id, "--json")[1])
    assert data["url"] == f"https://traces.example/s/{session.id}"
    assert data["replay_command"] == f"agentotel replay {session.id}"


# --- 5. check with no limit ------------------------------------------------------------------------------------------


def test_check_with_no_limit_says_nothing_was_checked(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    """Before: `Check passed.` at a 100% failure rate."""
    for _ in range(2):
        with pytest.raises(ValueError), agentotel.session("failing"):
            fetch_customer(None)
    save(store, records_from_spans(cap.spans))
    code, out, _ = run(capsys, "check")
    assert code == 0
    assert "Failure rate: 100.0%" in out
    assert "Check passed" not in out
    assert out.splitlines()[-1] == (
        "No limit given (--max-failure-rate, --max-cost or --min-sessions), so nothing was checked."
    )
    figures = json.loads(run(capsys, "check", "--json")[1])
    assert figures["checked"] is False and figures["ok"] is True
    assert json.loads(run(capsys, "check", "--min-sessions", "1", "--json")[1])["checked"] is True
    help_text = " ".join(run(capsys, "check", "--help")[1].split())
    assert "With no limit given" in help_text and "nothing was checked" in help_text


# --- 7. replay last among filtered sessions ------------------------------------------------------------------------


def test_replay_last_takes_state_tag_and_service(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    with pytest.raises(ValueError), agentotel.session("old-failure", tags=["billing"]):
        fetch_customer(None)
    old_failure = records_from_spans(cap.spans)
    cap.clear()
    with pytest.raises(ValueError), agentotel.session("new-failure", tags=["search"]):
        fetch_customer(None)
    with agentotel.session("newest-success", tags=["billing"]):
        lookup("a")
    others = records_from_spans(cap.spans)
    save(store, [replace(r, service_name="billing-svc") for r in old_failure] + others)

    def replayed(*argv: str) -> str:
        code, out, err = run(capsys, "replay", *argv)
        assert code == 0, err
        return out.splitlines()[0].split(" | ")[1]

    assert replayed("last") == "newest-success"
    assert replayed("last", "--state", "Fail") == "new-failure"
    assert replayed("--state", "fail") == "new-failure", "`last` is the default"
    assert replayed("last", "--tag", "billing") == "newest-success"
    assert replayed("last", "--state", "Fail", "--tag", "billing") == "old-failure"
    assert replayed("last", "--service", "billing-svc") == "old-failure"
    data = json.loads(run(capsys, "replay", "last", "--state", "Fail", "--json")[1])
    assert data["name"] == "new-failure"

    code, out, err = run(capsys, "replay", "last", "--state", "Indeterminate")
    assert code == 2 and out == ""
    assert one_line(err) == f"agentotel replay: no session matches --state Indeterminate in {store}"
    code, _, err = run(capsys, "replay", "last", "--tag", "billing", "--tag", "search")
    assert code == 2 and "no session matches --tag billing --tag search" in one_line(err)
    code, _, err = run(capsys, "replay", "abc", "--state", "Fail")
    assert code == 2 and "choose among sessions for `last`" in one_line(err)
