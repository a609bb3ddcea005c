"""`check` and `sessions` over a backend's whole window, at volume, against loopback servers answering with the
backends' documented shapes: exact figures where the backend's search can be paged to the end (Tempo's TraceQL
search with `select`, narrowed by time; Jaeger's trace search by time windows; Phoenix's span query), the
coverage line where a search hits its limit, `--require-complete` failing then, a backend failing mid-scan
failing the gate (exit 2, one line), and the Tempo path holding one page at a time."""

from __future__ import annotations

import json
import random
import time
import tracemalloc
from typing import Any

import pytest
from fake_backends import FakeJaeger, FakePhoenix, FakeTempo, RootSpan, RootTable
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from agentotel import semconv as sc
from agentotel.cli import check_figures, main, tally_figures
from agentotel.sources import SessionSummary, open_source
from agentotel.sources._scan import WindowScan

SECOND = 1_000_000_000
WINDOW_S = 6 * 3600  # the sessions' spread: the last 6 h, inside the source's default 24 h lookback


def session_attributes(index: int, rng: random.Random) -> tuple[dict[str, Any], str]:
    """A session root span's attributes (as agentotel writes them at its end) and its status."""
    roll = rng.random()
    state = "Fail" if roll < 0.07 else "Indeterminate" if roll < 0.1 else "Success"
    llm_calls = rng.randrange(4)
    attributes: dict[str, Any] = {
        sc.AGENTOTEL_STEP_KIND: "session",
        sc.SESSION_ID: f"sess-{index:06d}",
        sc.GEN_AI_AGENT_NAME: "support" if index % 2 else "triage",
        sc.AGENTOTEL_SESSION_END_STATE: state,
        sc.AGENTOTEL_SESSION_LLM_CALL_COUNT: llm_calls,
        sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS: 100 * llm_calls,
        sc.AGENTOTEL_SESSION_ERROR_COUNT: int(state == "Fail"),
        sc.AGENTOTEL_SESSION_TAGS: ["prod", "eu"] if index % 3 == 0 else ["prod"],
    }
    if llm_calls:
        attributes[sc.AGENTOTEL_SESSION_COST_AMOUNT] = round(0.001 * llm_calls + rng.random() * 1e-4, 7)
    return attributes, "error" if state == "Fail" else "unset"


def volume(count: int, now_ns: int, *, seed: int = 17, burst: int = 0) -> list[RootSpan]:
    """`count` sessions over the last `WINDOW_S` seconds, two services; `burst` more in one second."""
    rng = random.Random(seed)
    roots = []
    for index in range(count + burst):
        attributes, status = session_attributes(index, rng)
        if index < count:
            start = now_ns - 120 * SECOND - rng.randrange(WINDOW_S * SECOND)
        else:
            start = (now_ns // SECOND - 3600) * SECOND + index  # all in one second, an hour ago
        roots.append(
            RootSpan(
                trace_id=f"{index + 1:032x}",
                span_id=f"{index + 1:016x}",
                name=f"invoke_agent {attributes[sc.GEN_AI_AGENT_NAME]}",
                start_ns=start,
                duration_ns=rng.randrange(1, 30) * SECOND,
                service="agent" if index % 4 else "batch",
                status=status,
                attributes=attributes,
            )
        )
    return roots


def expected(roots: list[RootSpan], now_ns: int, **filters: Any) -> dict[str, Any]:
    """The figures the Python rule gives over the same sessions read whole."""
    summaries = []
    for root in sorted(roots, key=lambda r: r.start_ns, reverse=True):
        if filters.get("service") and root.service != filters["service"]:
            continue
        if filters.get("state") and root.attributes[sc.AGENTOTEL_SESSION_END_STATE] != filters["state"]:
            continue
        if filters.get("tag") and filters["tag"] not in root.attributes[sc.AGENTOTEL_SESSION_TAGS]:
            continue
        cost = root.attributes.get(sc.AGENTOTEL_SESSION_COST_AMOUNT)
        summaries.append(
            SessionSummary(
                id=root.attributes[sc.SESSION_ID],
                name="x",
                trace_id=root.trace_id,
                start_ns=root.start_ns,
                end_ns=root.start_ns + root.duration_ns,
                end_state=root.attributes[sc.AGENTOTEL_SESSION_END_STATE],
                cost=0.0 if cost is None else cost,
            )
        )
    figures = check_figures(summaries, max_failure_rate=0.05, max_cost=0.0035, now_ns=now_ns)
    figures.pop("coverage"), figures.pop("require_complete")
    return figures


@pytest.fixture(scope="module")
def tempo_at_volume() -> Any:
    """A Tempo holding 20,000 sessions' root spans, served for the module."""
    now = time.time_ns()
    roots = volume(20_000, now)
    with FakeTempo(roots=RootTable(roots)) as tempo:
        yield tempo, roots, now


@pytest.mark.parametrize(
    "filters", [{}, {"service": "batch"}, {"state": "Fail"}, {"tag": "eu"}], ids=["all", "service", "state", "tag"]
)
def test_tempo_check_is_exact_over_20000_sessions(tempo_at_volume: Any, filters: dict[str, Any]) -> None:
    tempo, roots, now = tempo_at_volume
    before = tempo.searches
    with open_source(f"tempo+{tempo.url}") as source:
        tally = source.tally(**filters, now_ns=now, grace_ns=3600e9, max_cost=0.0035)
    figures = tally_figures(tally, max_failure_rate=0.05, max_cost=0.0035, require_complete=True)
    coverage = figures.pop("coverage")
    figures.pop("require_complete")
    want = expected(roots, now, **filters)
    assert coverage["complete"] and coverage["examined"] == coverage["in_window"] == want["sessions"]
    assert figures["problems"] == [p for p in want["problems"]]
    assert figures == want
    searches = tempo.searches - before
    assert searches <= 3 * want["sessions"] / 1000 + 12, searches  # pages of 1,000, few asked twice
    if filters:
        last = tempo.requests[-1].one("q") or ""
        pushed = {"service": 'resource.service.name = "batch"', "state": 'end_state = "Fail"', "tag": 'tags = "eu"'}
        assert pushed[next(iter(filters))] in last  # the filter is in the TraceQL query, not applied after


def test_tempo_sessions_are_newest_first_and_a_short_list_reads_little(tempo_at_volume: Any) -> None:
    tempo, roots, _ = tempo_at_volume
    before = tempo.searches
    with open_source(f"tempo+{tempo.url}") as source:
        listed = source.sessions(limit=20)
    newest = sorted(roots, key=lambda r: r.start_ns, reverse=True)[:20]
    assert [s.id for s in listed] == [r.attributes[sc.SESSION_ID] for r in newest]
    assert tempo.searches - before <= 6
    assert not [r for r in tempo.requests if "/traces/" in r.path]  # no trace fetched: the totals were selected


def test_tempo_path_holds_one_page_at_a_time(tempo_at_volume: Any) -> None:
    """The scan is a stream: the tally has counted the newest pages before the older ones are asked for, and its
    peak memory does not grow with the window (5,000 sessions vs 500 of the same density)."""
    tempo, _, now = tempo_at_volume

    def peak(since_s: int) -> tuple[int, int]:
        with open_source(f"tempo+{tempo.url}?page_size=200") as source:  # both windows hold many pages
            tracemalloc.start()
            try:
                tally = source.tally(since=now - since_s * SECOND, now_ns=now, grace_ns=0)
                return tracemalloc.get_traced_memory()[1], tally.sessions
            finally:
                tracemalloc.stop()

    small, small_count = peak(WINDOW_S // 40)
    large, large_count = peak(WINDOW_S // 4)
    assert large_count > 8 * small_count > 0
    assert large < 1.5 * small + 2_000_000, (small, large)  # holding the summaries would be 10 times

    with open_source(f"tempo+{tempo.url}") as source:
        scan = source.scan()
        before = tempo.searches
        first = next(iter(scan))
        assert len(first) > 0 and tempo.searches - before <= 8  # a window narrowed to a page, not the 20 pages


def test_a_truncated_tempo_search_says_at_least_and_fails_require_complete(
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = time.time_ns()
    roots = volume(1_000, now, burst=1_500)  # 1,500 sessions in one second: more than a page of 1,000
    with FakeTempo(roots=RootTable(roots)) as tempo:
        location = f"tempo+{tempo.url}"
        code = main(["check", "--source", location, "--max-failure-rate", "0.5", "--require-complete"])
        out = capsys.readouterr().out
        code_json = main(["check", "--source", location, "--json", "--require-complete"])
        figures = json.loads(capsys.readouterr().out)
        sample_passes = main(["check", "--source", location, "--max-failure-rate", "0.5"])
    assert code == 1 and code_json == 1 and sample_passes == 0
    assert "Coverage: examined 2,000 of at least 2,000 sessions in the window (Tempo's search limit" in out
    assert "Check failed: --require-complete: the figures cover 2,000 of at least 2,000 sessions" in out
    assert figures["coverage"]["in_window_at_least"] is True and figures["coverage"]["complete"] is False


def test_a_tempo_failing_mid_scan_fails_the_gate_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time_ns()
    with FakeTempo(roots=RootTable(volume(5_000, now)), fail_after=3) as tempo:
        code = main(["check", "--source", f"tempo+{tempo.url}", "--max-failure-rate", "0.5"])
    captured = capsys.readouterr()
    assert code == 2 and "Check passed" not in captured.out
    assert captured.err.count("\n") == 1 and "HTTP 503" in captured.err and "Traceback" not in captured.err


def test_the_scan_stops_at_max_sessions_and_says_so() -> None:
    now = time.time_ns()
    with (
        FakeTempo(roots=RootTable(volume(5_000, now))) as tempo,
        open_source(f"tempo+{tempo.url}?max_sessions=1200") as source,
    ):
        tally = source.tally(now_ns=now, grace_ns=0)
    coverage = tally.coverage
    assert not coverage.complete and 1_000 <= coverage.examined <= 1_200 and tally.sessions == coverage.examined
    assert coverage.at_least and "max_sessions=1,200" in (coverage.limited_by or "")


# --- Jaeger and Phoenix: the traces or root spans themselves --------------------------------------------------------


def readable_roots(count: int, now_ns: int, *, same_microsecond: int = 0) -> list[ReadableSpan]:
    """Session root spans as SDK spans (what the fake Jaeger and Phoenix serve)."""
    rng = random.Random(5)
    spans = []
    for index in range(count + same_microsecond):
        attributes, status = session_attributes(index, rng)
        start = (
            now_ns - 60 * SECOND - rng.randrange(WINDOW_S * SECOND)
            if index < count
            else (now_ns // SECOND - 600) * SECOND
        )
        spans.append(
            ReadableSpan(
                name=f"invoke_agent {attributes[sc.GEN_AI_AGENT_NAME]}",
                context=SpanContext(index + 1, index + 1, is_remote=False, trace_flags=TraceFlags(1)),
                parent=None,
                resource=Resource.create({"service.name": "agent"}),
                attributes=attributes,
                kind=SpanKind.INTERNAL,
                status=Status(StatusCode.ERROR if status == "error" else StatusCode.UNSET),
                start_time=start,
                end_time=start + SECOND,
            )
        )
    return spans


def test_jaeger_is_paged_by_time_to_exact_figures() -> None:
    now = time.time_ns()
    spans = readable_roots(600, now)
    with FakeJaeger(spans) as jaeger, open_source(f"jaeger+{jaeger.url}?page_size=50") as source:
        tally = source.tally(now_ns=now, grace_ns=0)
        listed = source.sessions(limit=5)
    assert tally.coverage.complete and tally.sessions == tally.coverage.in_window == 600
    assert tally.failed == sum(s.attributes[sc.AGENTOTEL_SESSION_END_STATE] == "Fail" for s in spans)
    newest = sorted(spans, key=lambda s: s.start_time, reverse=True)[:5]
    assert [s.id for s in listed] == [s.attributes[sc.SESSION_ID] for s in newest]


def test_jaeger_over_its_limit_in_one_microsecond_says_at_least(capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time_ns()
    with FakeJaeger(readable_roots(100, now, same_microsecond=80)) as jaeger:
        location = f"jaeger+{jaeger.url}?page_size=50"
        code = main(["check", "--source", location, "--max-failure-rate", "0.5", "--require-complete"])
    out = capsys.readouterr().out
    assert code == 1
    assert "Coverage: examined 150 of at least 150 sessions in the window (Jaeger's search limit" in out
    assert "--require-complete" in out


def test_phoenix_counts_root_spans_only_paged() -> None:
    now = time.time_ns()
    spans = readable_roots(1_500, now)
    with FakePhoenix(spans, page_size=1000) as phoenix, open_source(f"phoenix+{phoenix.url}") as source:
        tally = source.tally(now_ns=now, grace_ns=0)
    assert tally.coverage.complete and tally.sessions == 1_500
    assert tally.failed == sum(s.attributes[sc.AGENTOTEL_SESSION_END_STATE] == "Fail" for s in spans)
    asked = [r for r in phoenix.requests if r.path.endswith("/spans")]
    assert asked and all(r.query.get("attribute") for r in asked)  # root spans by attribute, no trace fetched


def test_window_scan_narrows_and_then_widens() -> None:
    """The pager on its own: a window answering a full page is narrowed; the next follows the density."""
    from agentotel.sources._scan import WindowPage

    rng = random.Random(3)
    starts = sorted(rng.randrange(10_000_000) for _ in range(5_000))
    asked: list[tuple[int, int]] = []

    def search(low: int, high: int, limit: int) -> WindowPage:
        asked.append((low, high))
        inside = [t for t in starts if low <= t < high]
        shown = inside[:limit]
        traces = [
            (t, [SessionSummary(id=f"s{t}-{i}", name="x", trace_id="0" * 32, start_ns=t)]) for i, t in enumerate(shown)
        ]
        return WindowPage(raw=len(shown), traces=traces)

    scan = WindowScan(
        search, start_ns=0, end_ns=10_000_000, page=200, resolution_ns=1, what="X", counted_by="", max_sessions=10**6
    ).scan()
    total = sum(len(b) for b in scan)
    assert total == 5_000 and scan.coverage.complete and len(asked) < 80
