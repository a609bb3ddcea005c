"""Test runs: the sessions one pytest run recorded, grouped by test, and what changed between two runs.

agentotel's pytest plugin stamps every session a run records with the run's id (`agentotel.test.run.id`) and the
node id of the test it ran in (`agentotel.test.node_id`). `find_runs(source)` lists the runs a source holds,
`load_run(source, ref)` reads one (by id, unique prefix, `last` or `previous`), and `diff_runs(a, b)` tells, test by
test, whether its sessions behaved differently (`Session.diff`, session by session in the order they started) and
what its cost did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from . import semconv as sc
from .diff import SessionDiff, diff
from .diff_ignore import IgnoreRules
from .model import Session
from .sources import RecordsSource, SessionNotFound, SpanSource

__all__ = [
    "MAX_SCANNED_SESSIONS",
    "NO_TEST",
    "RunDiff",
    "RunSummary",
    "TestChange",
    "TestRun",
    "diff_runs",
    "find_runs",
    "load_run",
    "run_id_of",
    "test_of",
]

MAX_SCANNED_SESSIONS = 20_000
"""Sessions read, newest first, to find a source's runs (a store keeps 10,000 by default; each is read once)."""

NO_TEST = "(outside any test)"
"""What sessions of a run recorded outside a test (a session-scoped fixture's) are grouped under."""

LAST, PREVIOUS = "last", "previous"

SAME, CHANGED, ADDED, REMOVED = "same", "changed", "added", "removed"
"""What became of a test: behaved the same, changed, only in the second run, only in the first."""


def run_id_of(session: Session) -> str | None:
    """The id of the test run that recorded the session, if a run stamped it."""
    value = session.root_attributes.get(sc.AGENTOTEL_TEST_RUN_ID)
    return None if value in (None, "") else str(value)


def test_of(session: Session) -> str:
    """The node id of the test that recorded the session (`NO_TEST` for none)."""
    value = session.root_attributes.get(sc.AGENTOTEL_TEST_NODE_ID)
    return NO_TEST if value in (None, "") else str(value)


@dataclass
class TestRun:
    """The outermost sessions one test run recorded, in the order they started."""

    __test__ = False  # not a pytest test class, whatever its name

    id: str
    sessions: list[Session] = field(default_factory=list)

    @property
    def start_ns(self) -> int:
        return min((s.start_ns for s in self.sessions), default=0)

    @property
    def cost(self) -> float:
        return float(sum(s.cost for s in self.sessions))

    def by_test(self) -> dict[str, list[Session]]:
        """Each test's sessions, in the order they started; tests in the order they first started one."""
        found: dict[str, list[Session]] = {}
        for session in sorted(self.sessions, key=lambda s: s.start_ns):
            found.setdefault(test_of(session), []).append(session)
        return found


@dataclass(frozen=True)
class RunSummary:
    """A run as a list of runs shows it."""

    id: str
    start_ns: int
    sessions: int
    tests: int
    cost: float


@dataclass(frozen=True)
class _Entry:
    """What finding runs keeps of a session: enough to list runs and to read the session again."""

    id: str
    start_ns: int
    test: str
    cost: float
    session: Session | None
    """The session itself from a source held in memory; read again from any other."""


def _index(source: SpanSource, limit: int) -> dict[str, list[_Entry]]:
    """The sessions of each run among the newest `limit` sessions of `source` nested in no other. A source held
    in memory answers at once; any other reads each session once (a store: a fraction of a millisecond each) and
    keeps only a line of it, so memory stays flat however many sessions there are."""
    runs: dict[str, list[_Entry]] = {}

    def note(session: Session, keep: bool) -> None:
        run_id = run_id_of(session)
        if run_id is not None:
            entry = _Entry(session.id, session.start_ns, test_of(session), session.cost, session if keep else None)
            runs.setdefault(run_id, []).append(entry)

    if isinstance(source, RecordsSource):
        sessions = source.all_sessions()
        ids = {s.id for s in sessions}
        outermost = sorted((s for s in sessions if s.parent_id not in ids), key=lambda s: s.start_ns, reverse=True)
        for session in outermost[:limit]:
            note(session, True)
        return runs
    summaries = source.sessions(limit=None)
    ids = {s.id for s in summaries}
    seen = 0
    for summary in summaries:
        if summary.parent_id in ids:
            continue
        if seen >= limit:
            break
        seen += 1
        try:
            note(source.session(summary.id), False)
        except SessionNotFound:
            continue  # pruned while being read
    return runs


def _summary(run_id: str, entries: list[_Entry]) -> RunSummary:
    return RunSummary(
        run_id,
        min(e.start_ns for e in entries),
        len(entries),
        len({e.test for e in entries}),
        float(sum(e.cost for e in entries)),
    )


def find_runs(source: SpanSource, *, limit: int = MAX_SCANNED_SESSIONS) -> list[RunSummary]:
    """The test runs among the newest `limit` sessions of `source`, newest first. Raises `SourceError`."""
    runs = [_summary(run_id, entries) for run_id, entries in _index(source, limit).items()]
    return sorted(runs, key=lambda r: r.start_ns, reverse=True)


def load_run(source: SpanSource, ref: str, *, limit: int = MAX_SCANNED_SESSIONS) -> TestRun:
    """The run `ref` names: its id, a unique prefix of it, `last` (the newest run) or `previous` (the one before).
    Raises `SessionNotFound` (naming the runs there are) when none or several match, `SourceError` otherwise."""
    return load_runs(source, [ref], limit=limit)[0]


def load_runs(source: SpanSource, refs: Iterable[str], *, limit: int = MAX_SCANNED_SESSIONS) -> list[TestRun]:
    """`load_run` of each ref, the source searched once."""
    index = _index(source, limit)
    ordered = sorted((_summary(run_id, entries) for run_id, entries in index.items()), key=lambda r: -r.start_ns)
    chosen = [_pick(ordered, ref.strip(), source.location) for ref in refs]
    runs = []
    for summary in chosen:
        entries = sorted(index[summary.id], key=lambda e: e.start_ns)
        sessions = [e.session if e.session is not None else source.session(e.id) for e in entries]
        runs.append(TestRun(summary.id, sessions))
    return runs


def _pick(ordered: list[RunSummary], ref: str, location: str) -> RunSummary:
    if not ordered:
        raise SessionNotFound(
            f"no test runs in {location}: run pytest with agentotel's plugin (installed with agentotel) and the "
            "session store on, or give --source"
        )
    if ref == LAST:
        return ordered[0]
    if ref == PREVIOUS:
        if len(ordered) < 2:
            raise SessionNotFound(f"only one test run in {location} ({ordered[0].id}): there is no previous one")
        return ordered[1]
    exact = [r for r in ordered if r.id == ref]
    if exact:
        return exact[0]
    prefixed = [r for r in ordered if r.id.startswith(ref)] if ref else []
    if len(prefixed) == 1:
        return prefixed[0]
    known = ", ".join(r.id for r in ordered[:5]) + (f" and {len(ordered) - 5} more" if len(ordered) > 5 else "")
    if prefixed:
        raise SessionNotFound(f"{ref!r} matches {len(prefixed)} test runs in {location}: {known}; give more of it")
    raise SessionNotFound(f"no test run {ref!r} in {location}; its runs, newest first: {known}")


@dataclass(frozen=True)
class TestChange:
    """One test across two runs: its sessions in each, whether they behaved differently, their cost."""

    __test__ = False

    test: str
    status: str
    """`same`, `changed`, `added` (only in the second run) or `removed` (only in the first)."""
    before: tuple[Session, ...]
    after: tuple[Session, ...]
    diffs: tuple[SessionDiff, ...] = ()
    """The sessions paired in the order they started, each pair's diff."""

    @property
    def cost_before(self) -> float:
        return float(sum(s.cost for s in self.before))

    @property
    def cost_after(self) -> float:
        return float(sum(s.cost for s in self.after))

    @property
    def cost_delta(self) -> float:
        return self.cost_after - self.cost_before

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "status": self.status,
            "sessions_before": [s.id for s in self.before],
            "sessions_after": [s.id for s in self.after],
            "cost_before": self.cost_before,
            "cost_after": self.cost_after,
            "cost_delta": self.cost_delta,
            "diffs": [d.to_dict() for d in self.diffs],
        }


@dataclass(frozen=True)
class RunDiff:
    """Two test runs compared test by test."""

    before: TestRun
    after: TestRun
    tests: tuple[TestChange, ...]

    @property
    def changed(self) -> list[TestChange]:
        """The tests whose behaviour changed, or that only one run has."""
        return [t for t in self.tests if t.status != SAME]

    def __bool__(self) -> bool:
        return bool(self.changed)

    def render_text(self, *, width: int = 100) -> str:
        """Which tests changed behaviour (and how their first session diverged), which only one run has, and
        each test's cost before → after."""
        from .replay.run_diff_text import run_diff_lines
        from .replay.text import printable

        return "\n".join(printable(text) for text, _ in run_diff_lines(self, width=width))

    def __str__(self) -> str:
        return self.render_text()

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": {"run": self.before.id, "sessions": len(self.before.sessions), "cost": self.before.cost},
            "after": {"run": self.after.id, "sessions": len(self.after.sessions), "cost": self.after.cost},
            "changed": [t.test for t in self.changed],
            "cost_delta": self.after.cost - self.before.cost,
            "tests": [t.to_dict() for t in self.tests],
        }


def diff_runs(before: TestRun, after: TestRun, *, ignore: str | Iterable[str] | IgnoreRules | None = None) -> RunDiff:
    """Each test of either run: its sessions paired in the order they started and diffed (`Session.diff`); a test
    changed when a pair's behaviour differs or one run has more sessions of it."""
    rules = IgnoreRules.parse(ignore)
    first, second = before.by_test(), after.by_test()
    tests: list[TestChange] = []
    for test in [*first, *(t for t in second if t not in first)]:
        old, new = tuple(first.get(test, ())), tuple(second.get(test, ()))
        if not old:
            tests.append(TestChange(test, ADDED, old, new))
            continue
        if not new:
            tests.append(TestChange(test, REMOVED, old, new))
            continue
        diffs = tuple(diff(a, b, ignore=rules) for a, b in zip(old, new, strict=False))
        moved = len(old) != len(new) or any(d.changed for d in diffs)
        tests.append(TestChange(test, CHANGED if moved else SAME, old, new, diffs))
    return RunDiff(before, after, tuple(tests))
