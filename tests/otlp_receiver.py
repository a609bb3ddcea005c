"""Loopback OTLP trace receivers for tests: what an exporter really sent, decoded with `opentelemetry-proto`.

`OTLPReceiver("http/protobuf")` serves `POST /v1/traces` (protobuf bodies, plain, gzip or deflate);
`OTLPReceiver("grpc")` serves the gRPC `TraceService/Export` method. Both listen on a free 127.0.0.1 port, start
in `__enter__` (or `start()`) and stop in `__exit__` (or `stop()`)::

    with OTLPReceiver("grpc") as receiver:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": receiver.protocol}
        ...  # run the exporting code
        spans = receiver.wait_for_spans(lambda spans: len(spans) >= 3)

Each exported span becomes a `ReceivedSpan` (lowercase hex ids, plain-Python attribute values, its resource's
attributes); `requests` keeps every export request with the headers (HTTP) or metadata (gRPC) it came with.
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import (
    TraceServiceServicer,
    add_TraceServiceServicer_to_server,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

Protocol = Literal["http/protobuf", "grpc"]

_KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}


def any_value(value: AnyValue) -> Any:
    """An OTLP `AnyValue` as a plain Python value (arrays as lists, key-value lists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    return getattr(value, kind)


def attributes_of(pairs: Any) -> dict[str, Any]:
    """OTLP `KeyValue`s as a dict."""
    result: dict[str, Any] = {}
    pair: KeyValue
    for pair in pairs:
        result[pair.key] = any_value(pair.value)
    return result


@dataclass
class ReceivedSpan:
    """One span as the receiver got it."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: str
    status: str
    attributes: dict[str, Any]
    resource: dict[str, Any]
    scope: str


@dataclass
class ReceivedRequest:
    """One export request: its headers (HTTP, names lowercased) or metadata (gRPC), and the decoded message."""

    headers: dict[str, str]
    message: ExportTraceServiceRequest
    spans: list[ReceivedSpan] = field(default_factory=list)


def spans_of(message: ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """The spans of an export request, flattened with their resource and scope."""
    spans: list[ReceivedSpan] = []
    for resource_spans in message.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        kind=_KINDS.get(span.kind, str(span.kind)),
                        status=_STATUS.get(span.status.code, str(span.status.code)),
                        attributes=attributes_of(span.attributes),
                        resource=resource,
                        scope=scope_spans.scope.name,
                    )
                )
    return spans


class OTLPReceiver:
    """An OTLP trace receiver on a free loopback port, speaking `http/protobuf` or `grpc`."""

    def __init__(self, protocol: Protocol = "http/protobuf") -> None:
        if protocol not in ("http/protobuf", "grpc"):
            raise ValueError(f"unsupported OTLP protocol {protocol!r}; use 'http/protobuf' or 'grpc'")
        self.protocol: Protocol = protocol
        self.requests: list[ReceivedRequest] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._http: ThreadingHTTPServer | None = None
        self._http_thread: threading.Thread | None = None
        self._grpc: grpc.Server | None = None
        self.port = 0

    # lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> OTLPReceiver:
        if self.protocol == "grpc":
            server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
            add_TraceServiceServicer_to_server(_TraceService(self), server)
            self.port = server.add_insecure_port("127.0.0.1:0")
            server.start()
            self._grpc = server
        else:
            http = _HTTPServer(("127.0.0.1", 0), self)
            self.port = http.server_address[1]
            self._http = http
            self._http_thread = threading.Thread(target=http.serve_forever, name="otlp-http-receiver", daemon=True)
            self._http_thread.start()
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None).wait(5)
            self._grpc = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            if self._http_thread is not None:
                self._http_thread.join(5)
            self._http = None

    def __enter__(self) -> OTLPReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # what arrived ------------------------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        """The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (the HTTP exporter appends `/v1/traces` itself)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far, in arrival order (a span exported twice appears twice)."""
        with self._lock:
            return [span for request in self.requests for span in request.spans]

    def wait_for_spans(
        self, done: Callable[[list[ReceivedSpan]], bool] = bool, timeout: float = 10.0
    ) -> list[ReceivedSpan]:
        """Waits until `done(spans)` holds (default: any span arrived) or `timeout` passes; returns the spans."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                spans = [span for request in self.requests for span in request.spans]
                remaining = deadline - time.monotonic()
                if done(spans) or remaining <= 0:
                    return spans
                self._arrived.wait(remaining)

    def _receive(self, headers: dict[str, str], message: ExportTraceServiceRequest) -> None:
        request = ReceivedRequest(headers=headers, message=message, spans=spans_of(message))
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()

    def _error(self, text: str) -> None:
        with self._lock:
            self.errors.append(text)


class _TraceService(TraceServiceServicer):
    def __init__(self, owner: OTLPReceiver) -> None:
        self._owner = owner

    # The method's name is the gRPC service's.
    def Export(self, request: ExportTraceServiceRequest, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        metadata = {key.lower(): str(value) for key, value in context.invocation_metadata()}
        self._owner._receive(metadata, request)
        return ExportTraceServiceResponse()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], owner: OTLPReceiver) -> None:
        self.owner = owner
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is not the place for access logs."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if self.path.split("?")[0].rstrip("/") != "/v1/traces":
            self.server.owner._error(f"POST to unexpected path {self.path}")
            self._reply(404, b"")
            return
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            message = ExportTraceServiceRequest()
            message.ParseFromString(body)
        except Exception as error:  # a malformed body is a finding for the test, not a crash of the server
            self.server.owner._error(f"undecodable export request: {type(error).__name__}: {error}")
            self._reply(400, b"")
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server.owner._receive(headers, message)
        self._reply(200, ExportTraceServiceResponse().SerializeToString())

    def _reply(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
