"""`agentotel check` counted where the data is, and honest about how much of the window it covers.

The store counts in SQL (`Store.tally`): its figures must be exactly those of the Python rule (`check_figures`
over the summaries `sessions()` lists) for every filter, nested, running, crashed and unknown-cost sessions
included. Every check prints a coverage line and `--json` carries it; `--require-complete` passes on a store
(counted whole)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from agentotel import semconv as sc
from agentotel.cli import check_figures, main, tally_figures
from agentotel.records import SpanRecord
from agentotel.sources import SessionSummary, open_source
from agentotel.sources._scan import LISTED_IDS, Coverage, SessionTally
from agentotel.store import Store

HOUR_NS = 3600 * 1_000_000_000


def root_span(
    index: int,
    *,
    start_ns: int,
    state: str | None,
    cost: float | None = None,
    llm_calls: int = 0,
    parent: str | None = None,
    trace: int | None = None,
    tags: tuple[str, ...] = (),
    service: str = "agent",
) -> SpanRecord:
    """A session's root span as agentotel writes it: the session's totals on it when it has ended."""
    attributes: dict[str, Any] = {
        sc.AGENTOTEL_STEP_KIND: "session",
        sc.SESSION_ID: f"s{index:07d}",
        sc.GEN_AI_AGENT_NAME: f"agent-{index % 3}",
        sc.GEN_AI_OPERATION_NAME: "invoke_agent",
    }
    if tags:
        attributes[sc.AGENTOTEL_SESSION_TAGS] = list(tags)
    if parent is not None:
        attributes[sc.AGENTOTEL_SESSION_PARENT_ID] = parent
    if state is not None:
        attributes[sc.AGENTOTEL_SESSION_END_STATE] = state
        attributes[sc.AGENTOTEL_SESSION_LLM_CALL_COUNT] = llm_calls
        if cost is not None:
            attributes[sc.AGENTOTEL_SESSION_COST_AMOUNT] = cost
    return SpanRecord(
        trace_id=f"{(trace if trace is not None else index) + 1:032x}",
        span_id=f"{index + 1:016x}",
        parent_span_id=None,
        name=f"invoke_agent agent-{index % 3}",
        kind="INTERNAL",
        start_ns=start_ns,
        end_ns=None if state is None else start_ns + 1_000_000,
        attributes=attributes,
        status_code="ERROR" if state == "Fail" else "UNSET",
        service_name=service,
    )


def mixed_sessions(count: int, now_ns: int, seed: int = 7) -> Iterator[SpanRecord]:
    """`count` sessions over the last 48 h: failed, succeeded, running (some past any grace), priced, unpriced,
    tagged, from two services, one in ten nested in the session before it (same trace)."""
    rng = random.Random(seed)
    for index in range(count):
        start = now_ns - rng.randrange(48 * HOUR_NS)
        roll = rng.random()
        state = None if roll < 0.04 else "Fail" if roll < 0.14 else "Indeterminate" if roll < 0.17 else "Success"
        llm_calls = rng.randrange(3)
        cost = None if llm_calls and rng.random() < 0.05 else round(rng.random() * 0.02 * llm_calls, 6)
        nested = index > 0 and index % 10 == 0
        yield root_span(
            index,
            start_ns=start,
            state=state,
            cost=cost,
            llm_calls=llm_calls,
            parent=f"s{index - 1:07d}" if nested else None,
            trace=index - 1 if nested else None,
            tags=("support",) if index % 4 == 0 else ("billing", "eu") if index % 4 == 1 else (),
            service="agent" if index % 5 else "worker",
        )


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A store of 3,000 mixed sessions, and the moment they were made relative to."""
    path = tmp_path_factory.mktemp("check") / "sessions.db"
    now = time.time_ns()
    with Store(path, create=True) as store:
        store.write(list(mixed_sessions(3_000, now)))
    return path, now


FILTERS: list[dict[str, Any]] = [
    {},
    {"since": timedelta(hours=24)},
    {"tag": "support"},
    {"tag": ["billing", "eu"]},
    {"state": "Fail"},
    {"service": "worker"},
    {"since": timedelta(hours=30), "tag": "support", "service": "agent"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f, default=str) for f in FILTERS])
@pytest.mark.parametrize("grace_h", [1, 0, 100])
@pytest.mark.parametrize("max_cost", [None, 0.01])
def test_sql_tally_equals_the_python_rule(
    populated: tuple[Path, int], filters: dict[str, Any], grace_h: int, max_cost: float | None
) -> None:
    path, now = populated
    grace = timedelta(hours=grace_h)
    with Store(path) as store:
        tally = store.tally(**filters, now_ns=now, grace_ns=grace.total_seconds() * 1e9, max_cost=max_cost)
        summaries = store.sessions(**filters)
    by_sql = tally_figures(tally, max_failure_rate=0.05, max_cost=max_cost, running_grace=grace)
    by_python = check_figures(summaries, max_failure_rate=0.05, max_cost=max_cost, running_grace=grace, now_ns=now)
    assert tally.coverage.complete and tally.coverage.examined == len(summaries)
    for key in ("coverage", "require_complete"):
        by_sql.pop(key), by_python.pop(key)
    assert by_sql == by_python
    assert by_sql["sessions"] > 0


def test_the_figures_hold_counts_whole_and_ids_capped() -> None:
    now = time.time_ns()
    tally = SessionTally(now_ns=now, grace_ns=0)
    summaries = [
        SessionSummary(id=f"f{i}", name="x", trace_id=f"{i:032x}", start_ns=now - 10, end_ns=now, end_state="Fail")
        for i in range(LISTED_IDS + 500)
    ]
    tally.add_batch(summaries)
    tally.coverage = Coverage(examined=len(summaries), in_window=len(summaries))
    figures = tally_figures(tally, max_failure_rate=0.5)
    assert figures["failed"] == LISTED_IDS + 500 and len(figures["failed_sessions"]) == LISTED_IDS
    assert figures["failure_rate"] == 1.0 and not figures["ok"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_prints_its_coverage_and_json_carries_it(
    populated: tuple[Path, int], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = populated
    code, out, err = run(capsys, "check", "--source", str(path), "--since", "24h", "--require-complete")
    assert err == ""
    with Store(path) as store:
        selected = len(store.sessions(since=timedelta(hours=24)))
    assert f"Coverage: examined all {selected:,} sessions in the window (counted in SQL by the store)" in out
    assert code == 0 and "Check passed." in out
    figures = json.loads(run(capsys, "check", "--source", str(path), "--json", "--require-complete")[1])
    assert figures["coverage"] == {
        "examined": 3_000,
        "in_window": 3_000,
        "in_window_at_least": False,
        "complete": True,
        "limited_by": None,
        "counted_by": "counted in SQL by the store",
    }
    assert figures["checked"] is True and figures["require_complete"] is True


def test_require_complete_fails_on_figures_over_part_of_the_window() -> None:
    tally = SessionTally(now_ns=time.time_ns(), grace_ns=0)
    tally.coverage = Coverage(examined=100, in_window=5_000, at_least=True, limited_by="Jaeger's search limit")
    figures = tally_figures(tally, require_complete=True)
    assert not figures["ok"] and figures["checked"]
    assert figures["problems"] == [
        "--require-complete: the figures cover 100 of at least 5,000 sessions in the window (Jaeger's search limit)"
    ]
    assert tally.coverage.line() == (
        "Coverage: examined 100 of at least 5,000 sessions in the window (Jaeger's search limit)"
    )
    assert tally_figures(tally)["ok"]  # without the flag the sample is said, not failed


def test_a_file_source_is_read_whole(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agentotel.sessions_file import write_records

    now = time.time_ns()
    path = tmp_path / "sessions.jsonl"
    write_records(list(mixed_sessions(50, now)), path)
    with open_source(str(path)) as source:
        tally = source.tally(now_ns=now, grace_ns=0)
    assert tally.coverage.complete and tally.coverage.examined == 50
    code, out, _ = run(capsys, "check", "--source", str(path), "--require-complete")
    assert code == 0 and "Coverage: examined all 50 sessions in the window" in out


def test_an_empty_store_covers_nothing_completely(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "none.db"
    with Store(missing, create=True):
        pass
    code, out, _ = run(capsys, "check", "--source", str(missing), "--require-complete", "--min-sessions", "1")
    assert code == 1
    assert "Coverage: examined all 0 sessions in the window" in out
