"""The pytest side of end-to-end tests (`e2e.py`): the `e2e` fixture and a failed E2E test's linked report.

- `e2e`: an `E2ETest` for the test, named by its node id. With `pytest-playwright` installed and the test using
  its `page` or `context` fixture, the context is attached at once (every request of the page carries the test's
  `traceparent` and `baggage`); with plain `playwright.sync_api`, call `e2e.attach(context)` on the context you
  made. `e2e.sessions()` / `e2e.session()` are the sessions the app ran in the test's trace.
- When an E2E test fails (in its body or set-up), before its fixtures are torn down (the page is still open): a
  screenshot of the page is saved beside the test's artifacts (pytest-playwright's `output_path`, else the test's
  `tmp_path`), the sessions are gathered and stamped with the test, their HTML replays written there too, and
  the test's report gets a section naming the sessions, failed first, each with its first failing step and its
  replay command.
- `--agentotel-e2e-source LOCATION` (or `AGENTOTEL_E2E_SOURCE`): where an app running in another process exports
  its sessions (a store path, an OTLP JSON file, `jaeger+http://...`); by default the store this run writes to.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from .. import semconv as sc
from .._session_stamps import session_stamps
from .e2e import FAILED, PASSED, SKIPPED, E2ETest

SOURCE_ENV = "AGENTOTEL_E2E_SOURCE"
REPORT_SECTION = "agentotel: agent sessions this E2E test caused"

_E2E = pytest.StashKey[E2ETest]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("agentotel").addoption(
        "--agentotel-e2e-source",
        default=None,
        metavar="LOCATION",
        help=f"where the app under an E2E test exports its sessions when it runs in another process (a store path, "
        f"an OTLP JSON file, a backend URL; default: ${SOURCE_ENV}, else the store this run writes to)",
    )


def _artifacts_dir(request: pytest.FixtureRequest) -> Any:
    """pytest-playwright's folder for the test's artifacts when it is installed, else the test's `tmp_path`."""
    if request.config.pluginmanager.hasplugin("playwright"):
        try:
            return request.getfixturevalue("output_path")
        except pytest.FixtureLookupError:
            pass
    return request.getfixturevalue("tmp_path")


@pytest.fixture
def e2e(request: pytest.FixtureRequest) -> Iterator[E2ETest]:
    """The test as an E2E test: a span of its own whose trace the browser's requests carry to the app, and the
    agent sessions the app ran in it (`e2e.sessions()`, `e2e.session()`). Attaches pytest-playwright's `context`
    when the test uses it; else `e2e.attach(context)`. A failed test's report names the sessions it caused."""
    source = request.config.getoption("--agentotel-e2e-source", None) or os.environ.get(SOURCE_ENV) or None
    test = E2ETest(
        request.node.nodeid,
        framework=sc.AGENTOTEL_E2E_TEST_FRAMEWORK_VALUE_PYTEST,
        source=source,
        run_id=session_stamps().get(sc.AGENTOTEL_TEST_RUN_ID),
        artifacts_dir=_artifacts_dir(request),
    )
    request.node.stash[_E2E] = test
    try:
        if "context" in request.fixturenames and request.config.pluginmanager.hasplugin("playwright"):
            try:
                test.attach(request.getfixturevalue("context"))
            except TypeError:
                pass  # a `context` fixture of the project's own, not a browser context: attach by hand
        yield test
    finally:
        if test.outcome is None:
            call = getattr(request.node, "rep_call", None)
            test.conclude(SKIPPED if call is not None and call.skipped else PASSED)
        test.end()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    test = item.stash.get(_E2E, None)
    if test is None or test.outcome is not None or report.when == "teardown":
        return report
    if report.failed:
        from .pytest_plugin import _failure_of

        screenshot = test.take_screenshot()
        test.conclude(FAILED, failure=_failure_of(report, call), screenshot=screenshot)
        report.sections.append((REPORT_SECTION, test.report()))
    elif report.when == "call":
        test.conclude(SKIPPED if report.skipped else PASSED)
    return report
