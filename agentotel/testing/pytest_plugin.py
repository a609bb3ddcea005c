"""agentotel's pytest plugin (registered by the `pytest11` entry point; disable with `-p no:agentotel`).

- Records each phase's report on the test item as `rep_setup`, `rep_call`, `rep_teardown`, so fixtures can read
  `request.node.rep_call.failed` (the seed guide's fixture works as written).
- `agentotel_session` fixture: wraps the test in a session named after it, ending `Success` or `Fail` by the
  test's outcome.
- A terminal summary of the sessions the run recorded: how many, how many failed (with their replays), and the
  total cost. Nothing is printed, and nothing is set up, for a run that records no session.
- Every session the run records is stamped with the run's id and the test's node id (`run_stamps.py`), so that
  `agentotel diff --run A --run B` can tell which tests changed behaviour between two runs.
- `--agentotel-update-baselines`: `assert_matches_baseline` writes baselines instead of comparing with them.
- `@pytest.mark.agentotel_rerun(path)` and the `agentotel_rerun` fixture: the test re-runs the agent against a
  recorded session (`_rerun_pytest.py`).
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator, Mapping
from typing import Any

import pytest

from ..model import FAIL, Session
from . import run_stamps

pytest_plugins = ["agentotel.testing._rerun_pytest"]

_MAX_REPLAYS = 5


class _SessionLog:
    """Top-level sessions that ended during the run (bounded: counts everything, keeps the first failures)."""

    def __init__(self) -> None:
        self.count = 0
        self.failed = 0
        self.cost = 0.0
        self.failures: list[Session] = []

    def __call__(self, session: Session) -> None:
        self.count += 1
        self.cost += session.cost
        if session.end_state == FAIL:
            self.failed += 1
            if len(self.failures) < _MAX_REPLAYS:
                self.failures.append(session)


_log = _SessionLog()


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

    registry.add_listener(_log)
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

    registry.remove_listener(_log)
    # What a pytest run around this one (pytester, in process) had set is put back.
    run_stamps.end_run(config.stash.get(_OUTER_STAMPS, None))
    if _OUTER_UPDATING in config.stash:
        from . import baselines

        baselines.set_updating(config.stash[_OUTER_UPDATING])


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
    with run_stamps.in_test(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def agentotel_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The test wrapped in a session named after it, tagged `test`; it ends `Fail` when the test failed."""
    from ..sessions import start_session

    running = start_session(["test"], name=request.node.name)
    try:
        yield running
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            running.end("Fail", "the test failed")
        elif report is not None and report.skipped:
            running.end("Indeterminate", "the test was skipped")
        else:
            running.end("Success")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if _log.count == 0 or config.getoption("--agentotel-no-summary"):
        return
    write = terminalreporter.write_line
    terminalreporter.section("agentotel sessions")
    write(f"{_log.count} session(s), {_log.failed} failed, total cost ${_log.cost:.6f}")
    for session in _log.failures:
        write("")
        write(session.replay())
    hidden = _log.failed - len(_log.failures)
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
