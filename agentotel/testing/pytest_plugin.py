"""agentotel's pytest plugin (registered by the `pytest11` entry point; disable with `-p no:agentotel`).

- Records each phase's report on the test item as `rep_setup`, `rep_call`, `rep_teardown`, so fixtures can read
  `request.node.rep_call.failed` (the seed guide's fixture works as written).
- `agentotel_session` fixture: wraps the test in a session named after it, ending `Success`, or `Fail` with the
  test's failure as its reason (`AssertionError: expected 3 refunds`).
- A terminal summary of the sessions the run recorded: how many, how many failed (the first ones with their test
  and replay), and the total cost. Each session is tied to the test it ran in by the node id stamped on it; a
  session counts as failed when it ended `Fail`, or when its test failed and none of that test's sessions ended
  `Fail` (the test's assertions judged it: a session recorded with `capture()` that ended `Success` and failed
  `assert_tool_called`). A failed step that shows no arguments because content capture is off gets a one-line
  hint (`assertions.CONTENT_HINT`). Nothing is printed for a run that records no session.
- Every session the run records is stamped with the run's id and the test's node id (`run_stamps.py`), so that
  `agentotel diff --run A --run B` can tell which tests changed behaviour between two runs.
- `--agentotel-update-baselines`: `assert_matches_baseline` writes baselines instead of comparing with them.
- `@pytest.mark.agentotel_rerun(path)` and the `agentotel_rerun` fixture: the test re-runs the agent against a
  recorded session (`_rerun_pytest.py`).
- The `e2e` fixture: a browser (Playwright) test linked to the agent sessions the web app ran for its requests,
  and a failed E2E test's report naming them (`_e2e_pytest.py`, `e2e.py`).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from .. import semconv as sc
from ..model import FAIL, Session
from . import run_stamps
from .assertions import content_hint

pytest_plugins = ["agentotel.testing._rerun_pytest", "agentotel.testing._e2e_pytest"]

_MAX_REPLAYS = 5
_MAX_REASON = 300


@dataclass
class _Shown:
    """A failed session the summary shows, and the line above its replay: the test it ran in, and how that test
    ended."""

    session: Session
    heading: str


@dataclass
class _TestSessions:
    """The sessions of a running test that have ended, until the test's outcome says which of them failed. Counts
    all of them; keeps only as many of each kind as the summary may show."""

    ended_fail: list[Session] = field(default_factory=list)
    """The first sessions that ended `Fail`; `others`: the first that did not."""
    others: list[Session] = field(default_factory=list)
    ended_fail_count: int = 0
    others_count: int = 0

    def add(self, session: Session) -> None:
        if session.end_state == FAIL:
            self.ended_fail_count += 1
            if len(self.ended_fail) < _MAX_REPLAYS:
                self.ended_fail.append(session)
        else:
            self.others_count += 1
            if len(self.others) < _MAX_REPLAYS:
                self.others.append(session)


class _SessionLog:
    """Top-level sessions that ended during the run, each tied to the test it ran in (bounded: counts everything,
    keeps the first failures). Fed from any thread by the live registry, settled by the test hooks.

    A session ends before its test's outcome is known, so a running test's sessions wait until the test ends. One
    that outlives the test it started in (a module-scoped fixture's, stamped with the first test that used it)
    belongs to no one test: it counts as failed by its end state alone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0
        self.failed = 0
        self.cost = 0.0
        self.shown: list[_Shown] = []
        self._running: dict[str, _TestSessions] = {}

    def __call__(self, session: Session) -> None:
        test = _test_of(session)
        with self._lock:
            self.count += 1
            self.cost += session.cost
            running = self._running.get(test) if test is not None else None
            if running is not None:
                running.add(session)
            elif session.end_state == FAIL:
                self.failed += 1
                where = "Outside any test" if test is None else f"Started in test {test}, ended after it"
                self._show([session], f"{where}: the session ended Fail")

    def test_started(self, test: str) -> None:
        with self._lock:
            self._running[test] = _TestSessions()

    def test_ended(self, test: str, failure: str | None) -> None:
        """Settles the test's sessions: `failure` is why the test failed (`None`: it did not). Those that ended
        `Fail` count as failed; when the test failed and none of them did, every one does (the test's assertions
        judged them)."""
        with self._lock:
            sessions = self._running.pop(test, None) or _TestSessions()
            failed, self.failed = sessions.ended_fail, self.failed + sessions.ended_fail_count
            if failure is not None and sessions.ended_fail_count == 0:
                failed, self.failed = sessions.others, self.failed + sessions.others_count
            heading = (
                f"Test {test} passed; the session ended Fail" if failure is None else f"Test {test} failed: {failure}"
            )
            self._show(failed, heading)

    def _show(self, sessions: list[Session], heading: str) -> None:
        """Keeps the first failed sessions for the summary (call holding `_lock`)."""
        for session in sessions[: max(0, _MAX_REPLAYS - len(self.shown))]:
            self.shown.append(_Shown(session, heading))


def _test_of(session: Session) -> str | None:
    """The node id of the test the session ran in, stamped on its root span (`run_stamps.py`); `None` outside a
    test."""
    attributes = session.root_attributes
    if not attributes:
        # A live session keeps no root attributes; the root span it ended with has them.
        attributes = getattr(getattr(session, "_root", None), "attributes", None) or {}
    value = attributes.get(sc.AGENTOTEL_TEST_NODE_ID)
    return None if value in (None, "") else str(value)


def _failure_of(report: pytest.TestReport, call: pytest.CallInfo[None]) -> str:
    """Why a test phase failed, in one line: the exception's short type name and its message's first line (an
    assertion's own message, without the replay a session assertion adds below it)."""
    if call.excinfo is not None:
        value = call.excinfo.value
        try:
            first = str(value).strip().partition("\n")[0].strip()
        except Exception:  # an exception whose message cannot be made: its type says enough
            first = ""
        text = f"{type(value).__name__}: {first}" if first else type(value).__name__
    else:
        text = report.longreprtext.strip().partition("\n")[0].strip() or f"the test failed ({report.when})"
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 3] + "..."


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agentotel")
    group.addoption(
        "--agentotel-no-summary", action="store_true", default=False, help="do not print agentotel's session summary"
    )
    group.addoption(
        "--agentotel-update-baselines",
        action="store_true",
        default=False,
        help="write the baselines assert_matches_baseline compares sessions with, instead of comparing",
    )
    group.addoption(
        "--agentotel-run-id",
        default=None,
        metavar="ID",
        help=f"the id stamped on every session of this run (default: ${run_stamps.RUN_ID_ENV}, else a new one); "
        "agentotel diff --run A --run B compares two runs",
    )


def pytest_configure(config: pytest.Config) -> None:
    from ..live import registry

    config.stash[_LOG] = _SessionLog()  # one per run: a pytest run inside a test (pytester) keeps its own
    registry.add_listener(config.stash[_LOG])
    worker: dict[str, Any] = getattr(config, "workerinput", {})  # a pytest-xdist worker: the controller's run
    config.stash[_RUN_ID] = worker.get(_WORKER_KEY) or run_stamps.chosen_run_id(config.getoption("--agentotel-run-id"))
    config.stash[_OUTER_STAMPS] = run_stamps.start_run(config.stash[_RUN_ID])
    config.stash[_WRITTEN_BEFORE] = _written_baselines()[0]
    if config.getoption("--agentotel-update-baselines"):
        from . import baselines

        config.stash[_OUTER_UPDATING] = baselines.updating_flag()
        baselines.set_updating(True)


def pytest_unconfigure(config: pytest.Config) -> None:
    from ..live import registry

    if _LOG in config.stash:
        registry.remove_listener(config.stash[_LOG])
    # What a pytest run around this one (pytester, in process) had set is put back.
    run_stamps.end_run(config.stash.get(_OUTER_STAMPS, None))
    if _OUTER_UPDATING in config.stash:
        from . import baselines

        baselines.set_updating(config.stash[_OUTER_UPDATING])


_LOG = pytest.StashKey[_SessionLog]()
_FAILURE = pytest.StashKey[str]()
"""Why the test failed: its first failed phase's exception (`_failure_of`)."""
_RUN_ID = pytest.StashKey[str]()
_OUTER_STAMPS = pytest.StashKey[Mapping[str, str]]()
_OUTER_UPDATING = pytest.StashKey["bool | None"]()
_WRITTEN_BEFORE = pytest.StashKey[int]()
_WORKER_KEY = "agentotel_run_id"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: each worker stamps the controller's run id."""
    node.workerinput[_WORKER_KEY] = node.config.stash[_RUN_ID]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    log = item.config.stash.get(_LOG, None)
    if log is not None:
        log.test_started(item.nodeid)
    try:
        with run_stamps.in_test(item.nodeid):
            return (yield)
    finally:
        if log is not None:
            log.test_ended(item.nodeid, item.stash.get(_FAILURE, None))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    if report.failed and _FAILURE not in item.stash:
        item.stash[_FAILURE] = _failure_of(report, call)
    return report


@pytest.fixture
def agentotel_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The test wrapped in a session named after it, tagged `test`; it ends `Fail` when the test failed, with the
    failure as its reason (`AssertionError: expected 3 refunds`)."""
    from ..sessions import start_session

    running = start_session(["test"], name=request.node.name)
    try:
        yield running
    finally:
        report = getattr(request.node, "rep_call", None)
        failure = request.node.stash.get(_FAILURE, None)
        if failure is not None:
            running.end("Fail", failure)
        elif report is not None and report.skipped:
            running.end("Indeterminate", "the test was skipped")
        else:
            running.end("Success")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    log = config.stash.get(_LOG, None)
    if log is None or log.count == 0 or config.getoption("--agentotel-no-summary"):
        return
    write = terminalreporter.write_line
    terminalreporter.section("agentotel sessions")
    write(f"{log.count} session(s), {log.failed} failed, total cost ${log.cost:.6f}")
    for shown in log.shown:
        write("")
        write(shown.heading)
        write(shown.session.replay())
    hint = next((h for shown in log.shown if (h := content_hint(shown.session))), None)
    if hint:
        write("")
        write(hint)
    hidden = log.failed - len(log.shown)
    if hidden > 0:
        write(f"... and {hidden} more failed session(s){_where_to_find_them()}")
    _write_run_lines(write, config)


def _write_run_lines(write: Any, config: pytest.Config) -> None:
    """The run's id (how to compare it with the run before) and the baselines the run wrote."""
    from ..configure import store_in_use
    from ..store import default_store_path

    path = store_in_use()
    source = "" if path is None or path == default_store_path() else f" --source {path}"
    run_id = config.stash.get(_RUN_ID, None)
    if run_id is not None and path is not None:
        write(f"Test run {run_id}; compare it with the run before: agentotel diff --run previous --run last{source}")
    before = config.stash.get(_WRITTEN_BEFORE, 0)  # written by a run around this one (pytester, in process)
    count, written = _written_baselines()
    count, written = count - before, written[before:]
    if count > 0:
        write(f"Wrote {count} baseline(s): review and commit them")
        for one in written:
            write(f"  {one}")
        if count > len(written):
            write(f"  ... and {count - len(written)} more")


def _written_baselines() -> tuple[int, list[str]]:
    baselines = sys.modules.get(f"{__package__}.baselines")  # imported only by a run that uses baselines
    return baselines.written_baselines() if baselines is not None else (0, [])


def _where_to_find_them() -> str:
    """Where the failed sessions not shown can be listed: the store the run wrote to, if any."""
    from ..configure import store_in_use
    from ..store import default_store_path

    path = store_in_use()
    if path is None:
        return " (not stored: the session store is off in this run, or another exporter took its place)"
    source = "" if path == default_store_path() else f" --source {path}"
    return f": see `agentotel sessions --state Fail{source}`"
