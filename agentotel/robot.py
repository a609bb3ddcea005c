"""Robot Framework tests linked to the agent sessions they cause: a library that is its own listener.

    *** Settings ***
    Library    SeleniumLibrary
    Library    agentotel.robot    source=${OUTPUT DIR}/sessions.db

    *** Test Cases ***
    Billing Question Is Answered
        Open Browser    ${URL}    headlesschrome    executable_path=/usr/bin/chromedriver
        Input Text    id:message    I was charged twice on account C-1001
        Click Button    Send
        Wait Until Page Contains    I have refunded the second payment    timeout=5s
        Agent Session Should Have Called Tool    fetch_customer_data
        Agent Session Cost Should Be Below    0.01

Each test is an `agentotel.testing.e2e.E2ETest` named by its full name (`Support Chat.Billing Question Is
Answered`): a span of its own, the root of a new trace, whose `traceparent` (and `baggage`) every request of the
browser carries, so the sessions the web app runs for them are in the test's trace. The headers are set:

- SeleniumLibrary (Chromium): on the open browser when a test starts, and on each browser `Open Browser` /
  `Create Webdriver` opens during a test, through Chrome DevTools (`Network.setExtraHTTPHeaders`);
- Browser (Playwright): `${headers}=    Agent Session Headers` then `New Context    extraHTTPHeaders=${headers}`;
- anything else: `Agent Session Headers` gives the dictionary to set.

The `Agent Session ...` keywords assert on the session the test caused (`session=` picks one by name or id when
there are several): gathered live when the app runs in Robot's process, else from `source` (a store path, an OTLP
JSON file, a backend URL; default: `AGENTOTEL_E2E_SOURCE`, else the store this process writes to). A failed
test's message gets the linked report: the sessions it caused, failed first, with the first failing step and the
replay command, and the screenshot saved to Robot's output folder; the sessions' replays name the test.
Instrumentation never fails a test by itself: a listener fault is logged at debug.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from . import semconv as sc
from .model import Session
from .testing import assertions
from .testing.e2e import DEFAULT_TIMEOUT, FAILED, PASSED, SKIPPED, E2ETest
from .testing.run_stamps import chosen_run_id

log = logging.getLogger("agentotel")

SOURCE_ENV = "AGENTOTEL_E2E_SOURCE"
_OUTCOMES = {"PASS": PASSED, "FAIL": FAILED, "SKIP": SKIPPED, "NOT RUN": SKIPPED}
_OPENERS = {"open browser", "create webdriver"}
_MAX_MESSAGE = 4000


class _Listener:
    """The library's listener (API 3): a separate object, so that its methods are no keywords. Each method hides
    its own faults: a listener never fails a test."""

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, library: robot) -> None:
        self.library = library

    def start_test(self, data: Any, result: Any) -> None:
        _guarded(self.library._start_test, data, result)

    def end_keyword(self, data: Any, result: Any) -> None:
        _guarded(self.library._end_keyword, data, result)

    def end_test(self, data: Any, result: Any) -> None:
        _guarded(self.library._end_test, data, result)


class robot:  # lower case: Robot Framework takes a module's library from the class named like the module
    """agentotel's Robot Framework library: E2E tests linked to the agent sessions they cause (see the module)."""

    ROBOT_LIBRARY_SCOPE = "GLOBAL"

    def __init__(self, source: str | None = None, timeout: float = DEFAULT_TIMEOUT, screenshots: bool = True) -> None:
        """`source`: where an app in another process exports its sessions; `timeout`: seconds a keyword waits for
        the test's sessions; `screenshots`: save one of the page when a test fails."""
        self.ROBOT_LIBRARY_LISTENER = _Listener(self)
        self.source = source or os.environ.get(SOURCE_ENV) or None
        self.timeout = float(timeout)
        self.screenshots = screenshots if isinstance(screenshots, bool) else str(screenshots).lower() != "false"
        self.run_id = chosen_run_id()
        self._test: E2ETest | None = None

    # --- the listener ----------------------------------------------------------------------------------------

    def _start_test(self, data: Any, result: Any) -> None:
        name = getattr(result, "full_name", None) or getattr(result, "longname", None) or str(data.name)
        self._test = E2ETest(
            name,
            framework=sc.AGENTOTEL_E2E_TEST_FRAMEWORK_VALUE_ROBOT,
            source=self.source,
            run_id=self.run_id,
            artifacts_dir=_output_dir(),
        )
        self._attach_open_browser(required=False)

    def _end_keyword(self, data: Any, result: Any) -> None:
        if self._test is None or str(getattr(result, "status", "")) != "PASS":
            return
        owner = str(getattr(result, "owner", None) or getattr(result, "libname", None) or "")
        name = str(getattr(result, "name", None) or getattr(data, "name", "")).lower()
        if owner == "SeleniumLibrary" and name in _OPENERS:
            self._attach_open_browser(required=False)

    def _end_test(self, data: Any, result: Any) -> None:
        test, self._test = self._test, None
        if test is None:
            return
        status = str(getattr(result, "status", "FAIL"))
        outcome = _OUTCOMES.get(status, FAILED)
        message = str(getattr(result, "message", "") or "")
        failure = message.strip().partition("\n")[0][:300] or None
        screenshot = None
        if outcome == FAILED and self.screenshots:
            safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", test.name)[:120]
            if test.artifacts_dir is not None:
                screenshot = test.take_screenshot(test.artifacts_dir / f"{safe}-agentotel-failure.png")
        test.conclude(outcome, failure=failure if outcome == FAILED else None, screenshot=screenshot)
        test.end()
        if outcome == FAILED:
            report = test.report()
            result.message = (message + "\n\n" + report)[:_MAX_MESSAGE] if message else report[:_MAX_MESSAGE]

    # --- keywords --------------------------------------------------------------------------------------------

    def agent_session_headers(self) -> dict[str, str]:
        """The headers that put a request in the running test's trace (`traceparent`, `baggage`), for
        `New Context    extraHTTPHeaders=${headers}` (Browser) or any client."""
        return self._running().headers()

    def attach_agent_session_headers(self) -> None:
        """Sets the running test's headers on SeleniumLibrary's current browser (Chromium, through DevTools). Done
        by itself when a test starts with a browser open and when `Open Browser` opens one; call it after a
        browser is opened another way."""
        self._attach_open_browser(required=True)

    def get_agent_sessions(self) -> list[Session]:
        """The sessions the running test caused, in the order they started (waits for them as `timeout` says)."""
        return self._running().sessions(timeout=self.timeout)

    def get_agent_session(self, session: str | None = None) -> Session:
        """The one session the running test caused, or the one `session` names (a session's name or id)."""
        return self._running().session(session, timeout=self.timeout)

    def agent_session_should_have_called_tool(
        self, name: str, times: int | None = None, session: str | None = None
    ) -> None:
        """The test's session called the tool or action `name` (exactly `times` times, when given)."""
        assertions.assert_tool_called(
            self.get_agent_session(session), name, times=None if times is None else int(times)
        )

    def agent_session_should_not_have_called_tool(self, name: str, session: str | None = None) -> None:
        """The test's session never called the tool or action `name`."""
        assertions.assert_tool_not_called(self.get_agent_session(session), name)

    def agent_session_should_have_called_in_order(self, *names: str) -> None:
        """The test's session called these tools or actions in this order (others may come between them)."""
        assertions.assert_call_order(self.get_agent_session(), list(names))

    def agent_session_cost_should_be_below(self, limit: float, session: str | None = None) -> None:
        """The test's session cost less than `limit` US dollars (an unknown cost fails)."""
        assertions.assert_cost_below(self.get_agent_session(session), float(limit))

    def agent_session_should_have_no_errors(self, session: str | None = None) -> None:
        """No step of the test's session failed."""
        assertions.assert_no_errors(self.get_agent_session(session))

    def agent_session_should_have_ended(self, state: str = "Success", session: str | None = None) -> None:
        """The test's session ended in `state` (`Success`, `Fail` or `Indeterminate`)."""
        found = self.get_agent_session(session)
        if found.end_state != state:
            reason = f" ({found.end_state_reason})" if found.end_state_reason else ""
            raise AssertionError(f"expected the session to end {state}, it ended {found.end_state}{reason}")

    # --- helpers ---------------------------------------------------------------------------------------------

    def _running(self) -> E2ETest:
        if self._test is None:
            raise RuntimeError(
                "no test is running: agentotel.robot's keywords work inside a test of a suite that imports the library"
            )
        return self._test

    def _attach_open_browser(self, *, required: bool) -> None:
        """Sets the test's headers on SeleniumLibrary's current browser, if it has one."""
        test = self._running() if required else self._test
        if test is None:
            return
        driver = _selenium_driver()
        if driver is None:
            if required:
                raise RuntimeError("SeleniumLibrary has no open browser: open one with Open Browser first")
            return
        test.attach_selenium(driver)


def _guarded(method: Any, *args: Any) -> None:
    try:
        method(*args)
    except Exception:
        log.debug("agentotel.robot: a listener method failed", exc_info=True)


def _selenium_driver() -> Any:
    """SeleniumLibrary's current WebDriver, or `None` (no SeleniumLibrary in the suite, or no browser open)."""
    try:
        from robot.libraries.BuiltIn import BuiltIn

        library: Any = BuiltIn().get_library_instance("SeleniumLibrary")
    except Exception:
        return None
    try:
        return library.driver
    except Exception:  # SeleniumLibrary raises when no browser is open
        return None


def _output_dir() -> Path | None:
    """Robot's `${OUTPUT DIR}`, where a failed test's screenshot and HTML replays go."""
    try:
        from robot.libraries.BuiltIn import BuiltIn

        value = BuiltIn().get_variable_value("${OUTPUT DIR}")
    except Exception:
        return None
    return Path(str(value)) if value else None
