"""Who may see and set a session id across processes (issue 13, item 4): the id goes in W3C baggage only to
internal hosts (or those `AGENTOTEL_SESSION_BAGGAGE_HOSTS` names), an incoming one can be ignored, a session started
here is not nested in one only baggage names, and a span joins a session only inside its trace."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import agentotel
from agentotel import build_sessions
from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.propagation import HostRule, SessionBaggagePropagator, is_internal_host
from agentotel.records import SpanRecord
from agentotel.testing import capture

requests = pytest.importorskip("requests")
requests_instrumentation = pytest.importorskip("opentelemetry.instrumentation.requests")


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        _Recorder.seen.append({k.lower(): v for k, v in self.headers.items()})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.seen.clear()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def instrumented_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    instrumentor = requests_instrumentation.RequestsInstrumentor()
    instrumentor.instrument()
    saved = propagate.get_global_textmap()
    try:

        def use(hosts: str | None) -> None:
            if hosts is None:
                monkeypatch.delenv("AGENTOTEL_SESSION_BAGGAGE_HOSTS", raising=False)
            else:
                monkeypatch.setenv("AGENTOTEL_SESSION_BAGGAGE_HOSTS", hosts)
            propagate.set_global_textmap(
                CompositePropagator([TraceContextTextMapPropagator(), SessionBaggagePropagator()])
            )

        yield use
    finally:
        instrumentor.uninstrument()
        propagate.set_global_textmap(saved)


def _call(url: str) -> dict[str, str]:
    ctx = baggage.set_baggage("tenant", "acme")
    token = context.attach(ctx)
    try:
        with agentotel.session("caller"):
            requests.get(url, timeout=30)
    finally:
        context.detach(token)
    return _Recorder.seen[-1]


def test_the_session_id_goes_to_internal_hosts_and_no_other(peer: str, instrumented_requests: Any) -> None:
    instrumented_requests(None)  # the default: internal hosts (127.0.0.1 is one)
    headers = _call(peer)
    assert "session.id=" in headers.get("baggage", "") and "tenant=acme" in headers["baggage"]
    instrumented_requests("tools.internal, *.example.org")  # 127.0.0.1 is not one of those
    headers = _call(peer)
    assert "session.id" not in headers.get("baggage", ""), headers
    assert "tenant=acme" in headers["baggage"], "other baggage is sent as before"
    assert "traceparent" in headers, "the trace context still travels"


def test_the_host_rule() -> None:
    default = HostRule(["internal"])
    for host in ("127.0.0.1", "::1", "10.2.3.4", "192.168.1.9", "localhost", "tool-service", "db.svc", "a.internal"):
        assert default.allows(host), host
    for host in ("api.openai.com", "8.8.8.8", "hooks.slack.com", "evil.example"):
        assert not default.allows(host), host
    listed = HostRule(["tools.acme.com", "*.corp.acme.com"])
    assert listed.allows("tools.acme.com") and listed.allows("a.corp.acme.com") and not listed.allows("127.0.0.1")
    assert HostRule(["*"]).allows("api.openai.com") and not is_internal_host("")


def test_an_incoming_session_id_can_be_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    carrier = {"baggage": "session.id=someone-elses-session"}
    tracer = trace.get_tracer("test.service")
    with capture() as cap:
        for mode in ("accept", "ignore"):
            monkeypatch.setattr(settings, "session_baggage", mode)
            token = context.attach(propagate.extract(carrier))
            try:
                with tracer.start_as_current_span(f"handle {mode}"):
                    pass
            finally:
                context.detach(token)
    by_name = {span.name: dict(span.attributes or {}) for span in cap.spans}
    assert by_name["handle accept"][sc.SESSION_ID] == "someone-elses-session"
    assert sc.SESSION_ID not in by_name["handle ignore"]


def test_a_session_id_outside_its_sessions_trace_joins_none() -> None:
    """Baggage naming a session, sent without that session's trace context (forged, or left over in a client),
    does not add steps to it, ended or not."""
    trace_id, root_id = "ef" * 16, "0" * 15 + "1"
    root = SpanRecord(
        trace_id,
        root_id,
        None,
        "invoke_agent victim",
        "INTERNAL",
        0,
        10_000_000_000,
        {sc.AGENTOTEL_STEP_KIND: "session", sc.SESSION_ID: "victim", sc.AGENTOTEL_SESSION_END_STATE: "Success"},
    )
    inside = SpanRecord(
        trace_id,
        "0" * 15 + "2",
        root_id,
        "execute_tool real",
        "INTERNAL",
        5,
        6,
        {sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "real", sc.SESSION_ID: "victim"},
    )
    forged = SpanRecord(
        "aa" * 16,
        "0" * 15 + "3",
        None,
        "execute_tool injected",
        "INTERNAL",
        20_000_000_000,
        21_000_000_000,
        {sc.AGENTOTEL_STEP_KIND: "tool", sc.GEN_AI_TOOL_NAME: "injected", sc.SESSION_ID: "victim"},
        "ERROR",
    )
    victim = next(s for s in build_sessions([root, inside, forged]) if s.id == "victim")
    assert [e.action_type for e in victim.tool_calls] == ["real"]
    assert victim.first_error is None and victim.end_state == "Success"


def test_agentotels_propagators_are_the_default() -> None:
    script = textwrap.dedent(
        """
        import agentotel
        from opentelemetry import propagate
        agentotel.init()
        print(sorted(type(p).__name__ for p in propagate.get_global_textmap()._propagators))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "OTEL_PROPAGATORS"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['SessionBaggagePropagator', 'TraceContextTextMapPropagator']"
    env["OTEL_PROPAGATORS"] = "tracecontext,baggage"  # the user's own choice is kept
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "['TraceContextTextMapPropagator', 'W3CBaggagePropagator']", out.stderr


def test_a_session_started_under_anothers_baggage_is_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request whose baggage names someone else's session: the service's own session does not nest in it (its
    failure counts for itself), and says whose call it answered; `nest` nests it, as a trusted caller may want."""
    carrier = {"baggage": "session.id=the-callers-session"}
    started: dict[str, Any] = {}
    with capture() as cap:
        for mode in ("accept", "nest"):
            monkeypatch.setattr(settings, "session_baggage", mode)
            token = context.attach(propagate.extract(carrier))
            try:
                with pytest.raises(RuntimeError), agentotel.session(f"service-{mode}") as own:
                    started[mode] = own
                    raise RuntimeError("the service failed")
            finally:
                context.detach(token)
    roots = {span.name: dict(span.attributes or {}) for span in cap.spans if span.name.startswith("invoke_agent")}
    accepted = roots["invoke_agent service-accept"]
    assert sc.AGENTOTEL_SESSION_PARENT_ID not in accepted and started["accept"].parent_id is None
    assert accepted[sc.AGENTOTEL_SESSION_CALLER_ID] == "the-callers-session"
    assert roots["invoke_agent service-nest"][sc.AGENTOTEL_SESSION_PARENT_ID] == "the-callers-session"
    service = next(s for s in cap.sessions if s.name == "service-accept")
    assert service.parent_id is None and service.end_state == "Fail", "its failure counts for itself"
