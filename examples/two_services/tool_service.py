"""A tool service: tools an agent calls over HTTP, traced with agentotel, in the agent's session.

    export OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318    # the collector of collector-config/
    python examples/two_services/tool_service.py --port 8808

`POST /tools/{name}` with a JSON object of arguments answers `{"result": ...}` (or `{"error": ...}` with status
500). The caller's trace context and W3C baggage arrive in the request headers (`traceparent`, `baggage`);
`propagate.extract` reads both, and with that context attached the tool's span is a child of the caller's span and
agentotel stamps it with the caller's `session.id` (carried in the baggage). So a backend gathers one session from
both services. `OTEL_PROPAGATORS`, if set, must keep `baggage` (the default is `tracecontext,baggage`).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import agentotel

CITIES = {"paris": (48.8566, 2.3522), "tokyo": (35.6762, 139.6503)}


@agentotel.tool
def geocode(city: str) -> dict[str, float]:
    """Coordinates of a city this service knows."""
    found = CITIES.get(city.strip().lower())
    if found is None:
        raise LookupError(f"unknown city {city!r}")
    return {"lat": found[0], "lon": found[1]}


TOOLS = {"geocode": geocode}
tracer = trace.get_tracer("examples.tool_service")


class ToolHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        name = self.path.rstrip("/").rsplit("/", 1)[-1]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        # The caller's trace context and baggage (session.id) become the current context while the tool runs.
        token = context.attach(propagate.extract({k.lower(): v for k, v in self.headers.items()}))
        try:
            with tracer.start_as_current_span(f"POST /tools/{name}", kind=SpanKind.SERVER) as span:
                status, answer = self._run(name, body)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
        finally:
            context.detach(token)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _run(self, name: str, body: bytes) -> tuple[int, dict[str, Any]]:
        tool = TOOLS.get(name)
        if tool is None:
            return 404, {"error": f"no tool {name!r}"}
        try:
            return 200, {"result": tool(**json.loads(body or b"{}"))}
        except Exception as error:  # the tool's span recorded it; the caller gets the message
            return 500, {"error": f"{type(error).__name__}: {error}"}


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(0)  # leaves serve_forever through the finally below, which flushes the spans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8808, help="0 picks a free port")
    args = parser.parse_args(argv)
    agentotel.init(service_name="tool-service")
    server = ThreadingHTTPServer((args.host, args.port), ToolHandler)
    signal.signal(signal.SIGTERM, _stop)
    print(f"listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
        agentotel.force_flush()  # what the batching exporter holds goes out before the process ends
    return 0


if __name__ == "__main__":
    sys.exit(main())
