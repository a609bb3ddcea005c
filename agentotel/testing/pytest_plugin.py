"""agentotel's pytest plugin (registered by the `pytest11` entry point; disable with `-p no:agentotel`).

- Records each phase's report on the test item as `rep_setup`, `rep_call`, `rep_teardown`, so fixtures can read
  `request.node.rep_call.failed` (the seed guide's fixture works as written).
- `agentotel_session` fixture: wraps the test in a session named after it, ending `Success` or `Fail` by the
  test's outcome.
- A terminal summary of the sessions the run recorded: how many, how many failed (with their replays), and the
  total cost. Nothing is printed, and nothing is set up, for a run that records no session.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from ..model import FAIL, Session

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


def pytest_configure(config: pytest.Config) -> None:
    from ..live import registry

    registry.add_listener(_log)


def pytest_unconfigure(config: pytest.Config) -> None:
    from ..live import registry

    registry.remove_listener(_log)


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


def _where_to_find_them() -> str:
    """Where the failed sessions not shown can be listed: the store the run wrote to, if any."""
    from ..configure import store_in_use
    from ..store import default_store_path

    path = store_in_use()
    if path is None:
        return " (not stored: the session store is off in this run, or another exporter took its place)"
    source = "" if path == default_store_path() else f" --source {path}"
    return f": see `agentotel sessions --state Fail{source}`"
