"""A support chat web app: a chat page, and a `/chat` endpoint that runs the seed's support agent under agentotel.

    python examples/support_chat/app.py            # the app and a scripted model on free loopback ports

Standard library only (`http.server`), with the real `openai` SDK talking to the scripted `LLMServer` (no API key,
no network). The endpoint continues the trace of the request it serves: `propagate.extract(self.headers)` reads
the W3C `traceparent` (and `baggage`) a browser test sends, and the agent's session starts under that context, so
it is a child of the test's span, in the test's trace (`agentotel.testing.e2e`). A server instrumentation
(`opentelemetry-instrumentation-wsgi` / `-asgi`, a framework's) does the same for a real app.

`ChatApp` starts and stops the app in this process (the Playwright test's fixtures); `main()` runs it on its own
(the Robot test starts it so, exporting to the store the test reads).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import agentotel
from agentotel.demo import support_agent
from agentotel.testing.llm_server import LLMServer

PAGE = (Path(__file__).parent / "chat.html").read_bytes()
SORRY = "Sorry, something went wrong on our side. Please try again."
tracer = trace.get_tracer("examples.support_chat")


class _Handler(BaseHTTPRequestHandler):
    server_version = "support-chat/1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read their own output
        pass

    def do_GET(self) -> None:
        if self.path in ("/", "/index.html"):
            self._send(200, "text/html; charset=utf-8", PAGE)
        else:
            self._send(404, "application/json", b'{"error": "not found"}')

    def do_POST(self) -> None:
        if self.path != "/chat":
            self._send(404, "application/json", b'{"error": "not found"}')
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            message = str(json.loads(self.rfile.read(length) or b"{}").get("message", "")).strip()
        except (ValueError, AttributeError):
            self._send(400, "application/json", b'{"error": "send {\\"message\\": \\"...\\"}"}')
            return
        # The browser test's trace context (traceparent) and baggage: the agent's session continues that trace.
        # (Header names are case-insensitive; the propagators look them up in lower case.)
        token = context.attach(propagate.extract({name.lower(): value for name, value in self.headers.items()}))
        try:
            with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER) as span:
                try:
                    reply, status = support_agent.run_support_agent(message), 200
                except Exception:
                    span.set_status(Status(StatusCode.ERROR))
                    reply, status = SORRY, 500
                span.set_attribute("http.response.status_code", status)
        finally:
            context.detach(token)
        self._send(status, "application/json", json.dumps({"reply": reply}).encode())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ChatApp:
    """The app on `127.0.0.1` (a free port unless `port` is given), served from a thread, and the scripted model it
    talks to. A context manager: `with ChatApp() as app: ... app.url`."""

    def __init__(self, port: int = 0) -> None:
        self.llm = LLMServer(support_agent.scripted_model)
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "the app is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> ChatApp:
        import openai

        self.llm.start()
        support_agent.use_client(openai.OpenAI(base_url=self.llm.openai_base_url, api_key="sk-test", max_retries=0))
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="support-chat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.llm.stop()

    def __enter__(self) -> ChatApp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    """Runs the app until stdin closes or SIGINT; prints `URL` on its first line once it serves (a parent waits
    for that line). `--port N` picks the port (default: a free one)."""
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else 0
    agentotel.init(service_name="support-chat")
    with ChatApp(port) as app:
        print(app.url, flush=True)
        try:
            if os.environ.get("SUPPORT_CHAT_UNTIL_STDIN_CLOSES"):
                sys.stdin.read()
            else:
                threading.Event().wait()
        except KeyboardInterrupt:
            pass
    agentotel.force_flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
