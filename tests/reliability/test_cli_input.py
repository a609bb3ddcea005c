"""The command against input it cannot use and sessions it must not pass (issue 13, items 16 and 17): every value an
option cannot mean is one line (exit 2), never a traceback nor an "unexpected error"; `check` never passes a run
whose sessions crashed, nor a limit that can never be broken.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import agentotel
from agentotel import semconv as sc
from agentotel.cli import main
from agentotel.model import KIND_SESSION
from agentotel.records import SpanRecord, records_from_spans
from agentotel.store import Store
from agentotel.testing import Capture

HOUR_NS = 3600 * 1_000_000_000
HUGE = "1" + "0" * 23  # 1e23 written out, as a script computing a limit would


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and "unexpected error" not in err, err
    return lines[0]


@agentotel.tool
def lookup(order: str) -> str:
    return order.upper()


def sessions(cap: Capture, outcomes: str) -> list[SpanRecord]:
    """The records of one session per character: `s` Success, `f` Fail."""
    for n, outcome in enumerate(outcomes):
        agentotel.start_session(name=f"run{n}", tags=["ci"])
        lookup("a")
        agentotel.end_session("Success" if outcome == "s" else "Fail")
    records = records_from_spans(cap.spans)
    cap.clear()
    return records


def crashed(records: list[SpanRecord], hours_ago: float) -> list[SpanRecord]:
    """The same sessions as a crash leaves them in the store: the root as its process noted it when the session
    started (no end, no end state), `hours_ago` hours ago, and the steps that ended before the crash."""
    shift = int(hours_ago * HOUR_NS)
    running = []
    for record in records:
        moved = replace(record, start_ns=record.start_ns - shift, end_ns=(record.end_ns or 0) - shift)
        if record.attributes.get(sc.AGENTOTEL_STEP_KIND) == KIND_SESSION:
            attributes = {
                k: v
                for k, v in record.attributes.items()
                if k not in (sc.AGENTOTEL_SESSION_END_STATE, sc.AGENTOTEL_SESSION_END_STATE_REASON)
            }
            moved = replace(moved, end_ns=None, attributes=attributes, status_code="UNSET")
        running.append(moved)
    return running


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "sessions.db"
    monkeypatch.setenv("AGENTOTEL_STORE", str(path))
    return path


def save(path: Path, records: list[SpanRecord]) -> None:
    with Store(path, create=True) as store:
        store.write(records)


# --- item 17: values an option cannot mean ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["sessions", "--since", "99999999999999w"],
        ["sessions", "--since", "5000000w"],
        ["sessions", "--since", "9" * 400 + "w"],
        ["sessions", "--since", "0001-01-01"],
        ["check", "--since", "99999999999999w"],
        ["prune", "--older-than", "99999999999999w"],
        ["sessions", "--limit", HUGE],
        ["sessions", "--limit", str(2**63)],
        ["sessions", "--limit", "1e23"],
        ["prune", "--keep", HUGE],
        ["check", "--min-sessions", HUGE],
        ["check", "--max-cost", "nan"],
        ["check", "--max-cost", "inf"],
        ["check", "--max-cost", "-1"],
        ["check", "--max-cost", "1e400"],
        ["check", "--max-failure-rate", "nan"],
        ["check", "--max-failure-rate", "inf"],
        ["check", "--max-failure-rate", "-0.1"],
        ["check", "--max-failure-rate", "nan%"],
        ["check", "--running-grace", "-1h"],
        ["check", "--running-grace", "nan"],
        ["check", "--running-grace", "99999999999999w"],
        ["ui", "--port", "99999999"],
        ["ui", "--port", "-1"],
        ["ui", "--host", "no-such-host.invalid", "--port", "0"],
    ],
    ids=lambda argv: " ".join(a[:20] for a in argv),
)
def test_a_value_an_option_cannot_mean_is_one_line(
    argv: list[str], capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    save(store, sessions(cap, "ss"))  # a store with sessions: some overflows happen only when it has rows
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    line = one_line(err)
    assert line.startswith(f"agentotel {argv[0]}"), line


def test_the_largest_limit_still_works(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    save(store, sessions(cap, "ss"))
    code, out, _ = run(capsys, "sessions", "--limit", str(2**63 - 1), "--since", "5000w", "--json")
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = run(capsys, "prune", "--keep", str(2**63 - 1), "--older-than", "100000w")
    assert code == 0 and "Removed 0 sessions" in out


# --- item 16: check and crashed sessions ---------------------------------------------------------------------------


def test_check_counts_sessions_running_past_the_grace_period_as_failed(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    """Three sessions whose process was killed two hours ago: still Running, and the check must fail."""
    save(store, crashed(sessions(cap, "sss"), hours_ago=2))
    code, out, _ = run(capsys, "check", "--max-failure-rate", "0.05")
    assert code == 1, out
    assert "Sessions: 3 (0 ended, 3 crashed: still running after 1h00m, counted as failed)" in out
    assert "Failed: 3 | Failure rate: 100.0%" in out
    assert "Check passed" not in out and "Check failed: failure rate 100.0%" in out
    assert out.count("  crashed: agentotel replay ") == 3
    figures = json.loads(run(capsys, "check", "--max-failure-rate", "0.05", "--json")[1])
    assert (figures["sessions"], figures["ended"], figures["crashed"], figures["failed"]) == (3, 0, 3, 3)
    assert figures["ok"] is False and len(figures["crashed_sessions"]) == 3


def test_crashed_sessions_count_beside_ended_ones(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    save(store, sessions(cap, "sss") + crashed(sessions(cap, "s"), hours_ago=2))
    figures = json.loads(run(capsys, "check", "--json")[1])
    assert (figures["ended"], figures["crashed"], figures["failed"]) == (3, 1, 1)
    assert figures["failure_rate"] == pytest.approx(0.25)
    assert run(capsys, "check", "--max-failure-rate", "0.2")[0] == 1
    assert run(capsys, "check", "--max-failure-rate", "0.25")[0] == 0
    assert run(capsys, "check", "--max-failure-rate", "0.2", "--min-sessions", "4")[0] == 1


def test_the_grace_period_is_configurable(capsys: pytest.CaptureFixture[str], cap: Capture, store: Path) -> None:
    """Within the grace period a running session is not judged; with nothing else to judge, a failure-rate limit
    fails rather than pass on nothing."""
    save(store, crashed(sessions(cap, "ss"), hours_ago=2))
    code, out, _ = run(capsys, "check", "--max-failure-rate", "0.05", "--running-grace", "3h")
    assert code == 1, out
    assert "Sessions: 2 (0 ended, 2 running, not judged)" in out
    assert "Check failed: none of the 2 sessions has ended, so there is no failure rate to check" in out
    assert run(capsys, "check", "--running-grace", "3h")[0] == 0, "no limit given: nothing to break"
    assert run(capsys, "check", "--max-failure-rate", "0.05", "--running-grace", "90m")[0] == 1
    code, out, _ = run(capsys, "check", "--max-failure-rate", "1", "--running-grace", "7200")
    assert code == 0 and "2 crashed" in out, "7200 s is the grace period's edge: crashed, within the limit of 100%"


def test_a_session_started_just_now_is_running_not_crashed(
    capsys: pytest.CaptureFixture[str], cap: Capture, store: Path
) -> None:
    save(store, sessions(cap, "s") + crashed(sessions(cap, "s"), hours_ago=0))
    figures = json.loads(run(capsys, "check", "--max-failure-rate", "0", "--json")[1])
    assert (figures["ended"], figures["crashed"], figures["running"], figures["failed"]) == (1, 0, 1, 0)
    assert figures["ok"] is True
    figures = json.loads(run(capsys, "check", "--max-failure-rate", "0", "--running-grace", "0", "--json")[1])
    assert (figures["crashed"], figures["failed"], figures["ok"]) == (1, 1, False)
