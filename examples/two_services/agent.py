"""An agent whose tool runs in another service: one session across two processes.

    python examples/two_services/tool_service.py --port 8808 &
    python examples/two_services/agent.py http://127.0.0.1:8808

Inside `agentotel.session(...)` the session id is in the W3C baggage of the current context;
`propagate.inject(headers)` writes it (`baggage: session.id=...`) beside the trace context (`traceparent`) into the
request, and the tool service reads both back. With `OTEL_EXPORTER_OTLP_ENDPOINT` set in both processes, the
backend holds one trace, one session, both services' spans: `agentotel replay --source jaeger+http://localhost:16686
<session id>` shows the remote tool call in it.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import agentotel

tracer = trace.get_tracer("examples.agent")


def call_tool(base_url: str, name: str, **arguments: Any) -> Any:
    """Calls a tool of the tool service; raises `RuntimeError` with the service's message when the tool fails."""
    with tracer.start_as_current_span(f"POST /tools/{name}", kind=SpanKind.CLIENT) as span:
        headers = {"Content-Type": "application/json"}
        propagate.inject(headers)  # traceparent + baggage (session.id) of the current context
        request = urllib.request.Request(
            f"{base_url}/tools/{name}", data=json.dumps(arguments).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())["result"]
        except urllib.error.HTTPError as error:
            span.set_status(Status(StatusCode.ERROR))
            raise RuntimeError(json.loads(error.read() or b"{}").get("error", str(error))) from None


def plan_trip(base_url: str, cities: list[str]) -> agentotel.Session:
    """The agent: geocodes each city through the tool service, in one session (it fails if a city is unknown)."""
    with agentotel.session("trip-planner", tags=["two-services"]) as session:
        for city in cities:
            call_tool(base_url, "geocode", city=city)
    return session


def main(argv: list[str]) -> int:
    agentotel.init(service_name="trip-agent")
    base_url = argv[1] if len(argv) > 1 else "http://127.0.0.1:8808"
    try:
        session = plan_trip(base_url, argv[2:] or ["Paris", "Tokyo"])
    except RuntimeError as error:
        print(f"the trip failed: {error}")
        session = agentotel.get_session()
    if session is not None:
        print(session.replay())
        print(f"session {session.id} in trace {session.trace_id}")
    agentotel.force_flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
