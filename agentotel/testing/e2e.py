"""End-to-end (browser) tests linked to the agent sessions they cause.

An `E2ETest` is one browser test's side of the link, whatever runs it (the pytest fixture `e2e`,
`_e2e_pytest.py`; Robot Framework's `agentotel.robot`):

- it starts a span of its own, `e2e_test {name}`, the root of a new trace (`agentotel.e2e.test.*` attributes). It
  is not a session: it counts in no session total, `agentotel check` or the pytest summary's session count;
- `headers()` are that span's W3C trace context (`traceparent`) and baggage (the test's name and run id), which
  `attach(context)` (Playwright) or `attach_selenium(driver)` (Chrome DevTools) set as extra HTTP headers on the
  browser, so every request the page makes carries them;
- the instrumented web app continues the trace with OpenTelemetry's propagators
  (`context.attach(propagate.extract(request.headers))`, or any server instrumentation), so each session it
  starts for the browser's requests is in the test's trace, a descendant of the test's span;
- `sessions()` gathers those sessions by trace id: live from this process's registry when the app runs in the
  test's process, and from a source (the session store this process writes to, or `source=`: a store path, an
  OTLP file, a backend URL) when it runs in another;
- `conclude(outcome, ...)` stamps the test (name, outcome, failure, screenshot) on its span and on the sessions
  it gathered, which their text and HTML replays show in their header; `report()` is the failed test's text: the
  sessions it caused, failed first, each with its first failing step and its replay command.

The baggage trust rule (`propagation.py`) is kept as it is: the test is no session, so no `session.id` is sent;
a session the app starts for a request is a session of its own, and its spans join it inside its trace as
everywhere. The two baggage entries (`agentotel.e2e.test.name`, `agentotel.test.run.id`) are plain W3C baggage for
the app's own use (a baggage span processor copies them onto its spans); agentotel never stamps a session from
them, since any caller can write baggage. The link from a session to its test is the trace: the test's span is
its trace's root. The headers go with every request the page makes, to every host: point E2E tests at test
deployments, not at third parties you would not send a trace id and a test name to.

Nothing here raises into the test for a tracing problem: the span, the headers and the gathering each degrade
to "no link" (logged at debug). Misuse (`attach` of something that is not a browser context) raises `TypeError`.
"""

from __future__ import annotations

import inspect
import logging
import shlex
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import baggage, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, format_trace_id

from .. import semconv as sc
from ..model import FAIL, Session

log = logging.getLogger("agentotel")

TRACER_NAME = "agentotel.e2e"
PASSED = sc.AGENTOTEL_E2E_TEST_OUTCOME_VALUE_PASSED
FAILED = sc.AGENTOTEL_E2E_TEST_OUTCOME_VALUE_FAILED
SKIPPED = sc.AGENTOTEL_E2E_TEST_OUTCOME_VALUE_SKIPPED
OUTCOMES = (PASSED, FAILED, SKIPPED)

MAX_NAME_LENGTH = 200
DEFAULT_TIMEOUT = 5.0
"""Seconds `sessions()` waits by default for the test's sessions to appear and end."""
REPORT_TIMEOUT = 3.0
"""Seconds a failed test's report waits for its sessions (a passed test's looks once, without waiting)."""
_SOURCE_POLL = 0.2
"""Seconds between two reads of a source while waiting (a live session's end wakes the wait at once)."""
_MAX_REPORTED = 5
_NO_TRACE = "0" * 32


@dataclass(frozen=True)
class _Found:
    """A session of the test's trace and where it was read: `None` live, else the source's location."""

    session: Session
    location: str | None


class E2ETest:
    """One end-to-end test's span, the headers that carry it to the app, and the sessions the app ran in its trace.

    Start it when the test starts, `attach` the browser, run the test, `conclude` with the outcome, `end`. Thread-
    safe; every method but `attach` never raises."""

    def __init__(
        self,
        name: str,
        *,
        framework: str = sc.AGENTOTEL_E2E_TEST_FRAMEWORK_VALUE_PYTEST,
        source: str | None = None,
        run_id: str | None = None,
        artifacts_dir: str | Path | None = None,
    ) -> None:
        """Starts the test's span (a new trace) and listens for the sessions that end in it.

        `source`: where another process's sessions are read from (a store path, an OTLP file, a backend URL);
        by default the store this process writes to, if any. `artifacts_dir`: where a failed test's screenshot and
        HTML replays go (none are written without it)."""
        self.name = " ".join(str(name).split())[:MAX_NAME_LENGTH] or "e2e test"
        self.framework = framework
        self.source = source
        self.run_id = run_id
        self.artifacts_dir = Path(artifacts_dir) if artifacts_dir is not None else None
        self.outcome: str | None = None
        self.failure: str | None = None
        self.screenshot: str | None = None
        self.start_ns = time.time_ns()
        self._lock = threading.Condition()
        self._live: dict[str, Session] = {}
        self._ended_count = 0
        self._found: list[_Found] = []
        self._html: dict[str, str] = {}
        self._contexts: list[Any] = []
        self._drivers: list[Any] = []
        self._ended = False
        self._span: Any = trace.INVALID_SPAN
        self.trace_id = _NO_TRACE
        try:
            from ..configure import ensure_initialized
            from ..live import registry

            ensure_initialized()
            attributes: dict[str, Any] = {
                sc.AGENTOTEL_E2E_TEST_NAME: self.name,
                sc.AGENTOTEL_E2E_TEST_FRAMEWORK: framework,
            }
            if run_id:
                attributes[sc.AGENTOTEL_TEST_RUN_ID] = run_id
            # A root of its own (an empty parent context): never stamped into a session the test may be inside.
            self._span = trace.get_tracer(TRACER_NAME).start_span(
                f"e2e_test {self.name}", context=Context(), kind=SpanKind.INTERNAL, attributes=attributes
            )
            self.trace_id = format_trace_id(self._span.get_span_context().trace_id)
            registry.add_listener(self._session_ended)
        except Exception:
            log.debug("Could not start the span of an E2E test; its sessions are not linked", exc_info=True)

    # --- the browser's side ----------------------------------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """The HTTP headers that make a request part of the test's trace: `traceparent` (and `baggage` with the
        test's name and run id), as the global propagators write them. Empty when tracing could not start."""
        carrier: dict[str, str] = {}
        if self.trace_id == _NO_TRACE:
            return carrier
        try:
            ctx = trace.set_span_in_context(self._span, Context())
            ctx = baggage.set_baggage(sc.AGENTOTEL_E2E_TEST_NAME, self.name, ctx)
            if self.run_id:
                ctx = baggage.set_baggage(sc.AGENTOTEL_TEST_RUN_ID, self.run_id, ctx)
            propagate.inject(carrier, ctx)
        except Exception:
            log.debug("Could not write the trace headers of an E2E test", exc_info=True)
        return carrier

    def attach(self, context: Any) -> None:
        """Sets `headers()` as extra HTTP headers on a Playwright `BrowserContext` of the sync API (every page of
        the context sends them with every request) and remembers it, to screenshot its pages when the test fails.
        Replaces the extra headers set on the context before (`set_extra_http_headers` keeps one set). Raises
        `TypeError` for anything that is not a sync browser context (with the async API:
        `await context.set_extra_http_headers(e2e.headers())`)."""
        setter = getattr(context, "set_extra_http_headers", None)
        if not callable(setter) or not hasattr(context, "pages") or inspect.iscoroutinefunction(setter):
            raise TypeError(
                f"attach() takes a Playwright BrowserContext of the sync API, not {type(context).__name__} "
                "(async API: await context.set_extra_http_headers(e2e.headers()))"
            )
        headers = self.headers()
        if headers:
            setter(headers)
        with self._lock:
            if context not in self._contexts:
                self._contexts.append(context)

    def attach_selenium(self, driver: Any) -> None:
        """Sets `headers()` on a Chromium WebDriver through Chrome DevTools (`Network.setExtraHTTPHeaders`:
        chromedriver's `execute_cdp_cmd`), and remembers it for a failure screenshot. Raises `TypeError` for a
        driver without DevTools commands (Firefox's, a remote one)."""
        execute = getattr(driver, "execute_cdp_cmd", None)
        if not callable(execute):
            raise TypeError(f"attach_selenium() takes a Chromium WebDriver, not {type(driver).__name__}")
        headers = self.headers()
        if headers:
            execute("Network.enable", {})
            execute("Network.setExtraHTTPHeaders", {"headers": headers})
        with self._lock:
            if driver not in self._drivers:
                self._drivers.append(driver)

    def take_screenshot(self, path: str | Path | None = None) -> str | None:
        """Saves a screenshot of the first open page of the attached browsers (`path`, else `failure.png` in
        `artifacts_dir`); returns its path, `None` when there was nothing to save or no place to save it. Never
        raises."""
        target = Path(path) if path is not None else None
        if target is None and self.artifacts_dir is not None:
            target = self.artifacts_dir / "agentotel-e2e-failure.png"
        if target is None:
            return None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            for context in list(self._contexts):
                pages = [p for p in context.pages if not p.is_closed()]
                if pages:
                    pages[-1].screenshot(path=str(target))
                    return str(target)
            for driver in list(self._drivers):
                if driver.save_screenshot(str(target)):
                    return str(target)
        except Exception:
            log.debug("Could not save a screenshot of the E2E test's page", exc_info=True)
        return None

    # --- the sessions ----------------------------------------------------------------------------------------

    def _session_ended(self, session: Session) -> None:
        """The live registry's listener: keeps the top-level sessions that end in the test's trace."""
        if session.trace_id != self.trace_id:
            return
        with self._lock:
            self._live[session.id] = session
            self._ended_count += 1
            self._lock.notify_all()

    def sessions(self, *, timeout: float = DEFAULT_TIMEOUT) -> list[Session]:
        """The top-level sessions in the test's trace (those the app ran for the browser's requests), in the order
        they started, each stamped with the test (`agentotel.e2e.test.*` on its root attributes).

        Waits up to `timeout` seconds until at least one is found and none of them is still running (a live
        session's end wakes the wait; a source is read again every 0.2 s), then gives what it has: a session still
        running then is given as it is. `timeout=0` looks once. Never raises: an unreadable source is skipped."""
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            with self._lock:
                seen = self._ended_count
            found, running = self._gather()
            remaining = deadline - time.monotonic()
            if (found and not running) or remaining <= 0:
                break
            with self._lock:
                if self._source_location() is None:
                    self._lock.wait_for(lambda seen=seen: self._ended_count != seen, remaining)  # type: ignore[misc]
                else:
                    self._lock.wait(min(remaining, _SOURCE_POLL))
        with self._lock:
            self._found = found
        for one in found:
            self._stamp(one.session)
        return [one.session for one in found]

    def session(self, name: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> Session:
        """The one session the test caused, or the one `name` picks (a session's name or id). Raises `LookupError`
        naming what was found when there is none, or several and nothing picks one."""
        found = self.sessions(timeout=timeout)
        candidates = [s for s in found if name is None or name in (s.name, s.id)]
        if len(candidates) == 1:
            return candidates[0]
        wanted = "" if name is None else f" named {name!r}"
        listed = ", ".join(f"{s.name!r} ({s.id})" for s in found) or "none"
        if not candidates:
            raise LookupError(
                f"no session{wanted} in the E2E test's trace {self.trace_id} (sessions found: {listed}). "
                f"{_NOT_FOUND_HINT}"
            )
        raise LookupError(
            f"{len(candidates)} sessions{wanted} in the E2E test's trace: {listed}; pick one with "
            "e2e.session(name or id), or read e2e.sessions()"
        )

    def _source_location(self) -> str | None:
        """Where other processes' sessions are read: `source`, else the store this process writes to."""
        if self.source:
            return self.source
        try:
            from ..configure import store_in_use

            path = store_in_use()
        except Exception:
            return None
        return None if path is None else str(path)

    def _gather(self) -> tuple[list[_Found], bool]:
        """(the ended top-level sessions of the trace, live and from the source; whether any is still running)."""
        if self.trace_id == _NO_TRACE:
            return [], False
        with self._lock:
            found = {s.id: _Found(s, None) for s in self._live.values()}
        running = self._running_live()
        location = self._source_location()
        if location is not None:
            running = self._read_source(location, found) or running
        ordered = sorted(found.values(), key=lambda one: one.session.start_ns)
        ids = {one.session.id for one in ordered}
        return [one for one in ordered if one.session.parent_id not in ids], running

    def _running_live(self) -> bool:
        """Whether a session of the test's trace is running in this process."""
        try:
            from ..live import registry

            return any(s.trace_id == self.trace_id for s in registry.active())
        except Exception:
            return False

    def _read_source(self, location: str, found: dict[str, _Found]) -> bool:
        """Adds the sessions of the trace that `location` holds and `found` does not; whether one of them is still
        running there. Never raises."""
        running = False
        try:
            from ..sources import open_source

            with open_source(location) as source:
                for summary in source.sessions(since=self.start_ns - 60 * 10**9):
                    if summary.trace_id != self.trace_id or summary.id in found:
                        continue
                    if summary.end_ns is None:
                        running = True
                        continue
                    found[summary.id] = _Found(source.session(summary.id), location)
        except Exception:
            log.debug("Could not read the E2E test's sessions from %s", location, exc_info=True)
        return running

    def _stamp(self, session: Session) -> None:
        """Puts the test's identity and outcome on the session's root attributes, for its replays."""
        try:
            stamps: dict[str, Any] = {
                sc.AGENTOTEL_E2E_TEST_NAME: self.name,
                sc.AGENTOTEL_E2E_TEST_FRAMEWORK: self.framework,
            }
            if self.outcome:
                stamps[sc.AGENTOTEL_E2E_TEST_OUTCOME] = self.outcome
            if self.failure:
                stamps[sc.AGENTOTEL_E2E_TEST_FAILURE] = self.failure
            if self.screenshot:
                stamps[sc.AGENTOTEL_E2E_TEST_SCREENSHOT] = self.screenshot
            session.root_attributes = {**session.root_attributes, **stamps}
        except Exception:
            log.debug("Could not stamp a session with its E2E test", exc_info=True)

    # --- the end ---------------------------------------------------------------------------------------------

    def conclude(
        self,
        outcome: str,
        *,
        failure: str | None = None,
        screenshot: str | None = None,
        timeout: float | None = None,
    ) -> list[Session]:
        """Records how the test ended (`passed`, `failed` or `skipped`; why it failed; a screenshot's path) on its
        span and on the sessions it caused, gathered again (waiting up to `timeout`: by default `REPORT_TIMEOUT`
        for a failed test while a session of its trace runs here or a source is read, else none). A failed test's
        HTML replays are written to `artifacts_dir`. Returns the sessions. Never raises."""
        try:
            self.outcome = outcome if outcome in OUTCOMES else FAILED
            self.failure = failure
            self.screenshot = screenshot or self.screenshot
            attributes: dict[str, Any] = {sc.AGENTOTEL_E2E_TEST_OUTCOME: self.outcome}
            if failure:
                attributes[sc.AGENTOTEL_E2E_TEST_FAILURE] = failure
            if self.screenshot:
                attributes[sc.AGENTOTEL_E2E_TEST_SCREENSHOT] = self.screenshot
            self._span.set_attributes(attributes)
            wait = timeout if timeout is not None else (REPORT_TIMEOUT if self.outcome == FAILED else 0.0)
            if timeout is None and self._source_location() is None and not self._running_live():
                wait = 0.0  # nothing runs in the trace here and nothing else is read: nothing more can come
            sessions = self.sessions(timeout=wait)
            if self.outcome == FAILED and self.artifacts_dir is not None:
                self._write_html(sessions)
            return sessions
        except Exception:
            log.debug("Could not conclude an E2E test", exc_info=True)
            return []

    def _write_html(self, sessions: Iterable[Session]) -> None:
        from ..replay.html import write_html

        assert self.artifacts_dir is not None
        for session in list(sessions)[:_MAX_REPORTED]:
            try:
                path = self.artifacts_dir / f"agentotel-session-{session.id}.html"
                self._html[session.id] = str(write_html(session, path))
            except Exception:
                log.debug("Could not write the HTML replay of %s", session.id, exc_info=True)

    def end(self) -> None:
        """Ends the test's span and stops listening for sessions. Idempotent; never raises."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            from ..live import registry

            registry.remove_listener(self._session_ended)
            self._span.end()
        except Exception:
            log.debug("Could not end the span of an E2E test", exc_info=True)

    # --- the report ------------------------------------------------------------------------------------------

    def report(self) -> str:
        """What a failed test's report shows: the test's outcome and screenshot, then the sessions it caused
        (failed ones first), each with its first failing step and the command that replays it, and the text
        replay of the first failed one read from a source (a live one's is in the pytest summary). Uses the
        sessions last gathered (`sessions()` / `conclude()`)."""
        with self._lock:
            found = list(self._found)
        outcome = self.outcome or "running"
        lines = [f"E2E test {self.name} {outcome}" + (f": {self.failure}" if self.failure else "")]
        if self.screenshot:
            lines.append(f"Screenshot: {self.screenshot}")
        if not found:
            lines.append(
                f"No agent session was found in the test's trace {self.trace_id} "
                f"(read: live sessions{_source_text(self._source_location())}). {_NOT_FOUND_HINT}"
            )
            return "\n".join(lines)
        found.sort(key=lambda one: 0 if _failed(one.session) else 1)
        failed = sum(1 for one in found if _failed(one.session))
        lines.append(
            f"Agent sessions this test caused (trace {self.trace_id}): {len(found)}, {failed} failed"
            + (", failed first:" if failed else ":")
        )
        for number, one in enumerate(found[:_MAX_REPORTED], start=1):
            session = one.session
            state = session.end_state or "Running"
            reason = f": {session.end_state_reason}" if session.end_state_reason else ""
            lines.append(f"{number}. {session.name} ({session.id}) ended {state}{reason}")
            first = session.first_error
            if first is not None:
                lines.append(f"   first failing step: {first.action_type or first.name}: {first.error}")
            lines.append(f"   replay: {self._replay_command(one)}")
            html = self._html.get(session.id)
            if html:
                lines.append(f"   HTML replay: {html}")
        if len(found) > _MAX_REPORTED:
            lines.append(f"... and {len(found) - _MAX_REPORTED} more")
        first_failed = next((one for one in found if _failed(one.session)), None)
        if first_failed is not None and first_failed.location is not None:
            # A live session's replay is in the pytest summary (it ran in the test's process); another process's
            # is not: the first failed one is shown here.
            lines.append("")
            lines.append(first_failed.session.replay())
        return "\n".join(lines)

    def _replay_command(self, found: _Found) -> str:
        """`agentotel replay ID` with the `--source` that holds the session; says so when nothing stores it."""
        location = found.location
        if location is None:
            try:
                from ..configure import store_in_use

                path = store_in_use()
            except Exception:
                path = None
            if path is None:
                return (
                    f"agentotel replay {found.session.id} needs a store, and this run stores no sessions "
                    "(AGENTOTEL_STORE=off or another exporter): see the HTML replay, or session.replay()"
                )
            location = str(path)
        try:
            from ..store import default_store_path

            if Path(location) == default_store_path():
                return f"agentotel replay {found.session.id}"
        except Exception:
            pass
        return f"agentotel replay {found.session.id} --source {shlex.quote(location)}"


_NOT_FOUND_HINT = (
    "Does the app continue the browser's trace? It must start its sessions under the context of the request's "
    "traceparent header (opentelemetry.propagate.extract), and export where the test reads (--agentotel-e2e-source)."
)


def _failed(session: Session) -> bool:
    return session.end_state == FAIL or session.first_error is not None


def _source_text(location: str | None) -> str:
    return "" if location is None else f" and {location}"


def caused_by(attributes: Mapping[str, Any]) -> str | None:
    """The line a replay's header shows for a session an E2E test caused (`E2E test NAME failed: why ·
    screenshot PATH`), from its root attributes; `None` for any other session."""
    name = attributes.get(sc.AGENTOTEL_E2E_TEST_NAME)
    if not name:
        return None
    text = str(name)
    outcome = attributes.get(sc.AGENTOTEL_E2E_TEST_OUTCOME)
    if outcome:
        text += f" {outcome}"
    failure = attributes.get(sc.AGENTOTEL_E2E_TEST_FAILURE)
    if failure:
        text += f": {failure}"
    screenshot = attributes.get(sc.AGENTOTEL_E2E_TEST_SCREENSHOT)
    if screenshot:
        text += f" · screenshot {screenshot}"
    return text
