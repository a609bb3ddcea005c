"""Hostile backends on loopback for the source tests: one that records every request it gets (and answers as told),
one that redirects every request elsewhere, one that trickles its answer a byte at a time.

Two servers on 127.0.0.1 with different ports are different origins, as two hosts are.
"""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, dict[str, str], bytes]
"""Status, headers, body."""


def json_answer(document: Any, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(document).encode()


def empty_backend(path: str) -> Answer:
    """What an empty Jaeger (api_v3), Tempo or Phoenix answers: no services, no traces, no projects."""
    if path.startswith("/api/v3/services") or path.startswith("/api/services"):
        return json_answer({"services": [], "data": []})
    if path.startswith("/api/search"):
        return json_answer({"traces": []})
    if path.startswith("/v1/projects"):
        return json_answer({"data": [], "next_cursor": None})
    return json_answer({"error": {"message": "No traces found"}}, 404)


@dataclass
class Seen:
    """One request as a server saw it."""

    path: str
    headers: dict[str, str] = field(default_factory=dict)


class RecordingServer:
    """An HTTP server on a free loopback port: every request is recorded, and answered by `answer(path)`."""

    def __init__(self, answer: Callable[[str], Answer] = empty_backend) -> None:
        self.answer = answer
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with outer._lock:
                    outer.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
                status, headers, body = outer.answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def header_values(self, name: str) -> list[str]:
        with self._lock:
            return [seen.headers[name] for seen in self.seen if name in seen.headers]

    def __enter__(self) -> RecordingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def redirecting_to(target: Callable[[], str], status: int = 302) -> Callable[[str], Answer]:
    """An answer that sends every request to the same path on `target()`."""
    return lambda path: (status, {"Location": target() + path}, b"")


class TricklingServer:
    """A TCP server on a free loopback port that answers every request slowly, one byte every `interval` seconds:
    `where="headers"` trickles the status line and headers (forever), `where="body"` sends the headers at once and
    trickles a body that would take hours."""

    def __init__(self, where: str, interval: float = 0.2) -> None:
        self.where = where
        self.interval = interval
        self.stop = threading.Event()
        self.connections = 0
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                sock: socket.socket = self.request
                try:
                    sock.recv(65536)  # the request
                    if outer.where == "body":
                        sock.sendall(
                            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                        )
                        filler = b" "
                    else:
                        sock.sendall(b"HTTP/1.1 200 OK\r\n")
                        filler = b"X"
                    # Paced sends from the server's side: the client under test is what must give up in time.
                    while not outer.stop.wait(outer.interval):
                        sock.sendall(filler)
                except OSError:
                    pass  # the client gave up and closed: what the tests want

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> TricklingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._server.shutdown()
        self._server.server_close()
