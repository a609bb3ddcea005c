"""Loopback stand-ins for Jaeger, Tempo and Phoenix query APIs, serving the JSON those backends document, written
here from their formats (not recorded from a server), plus a server that misbehaves on purpose.

The backends hold SDK spans (`ReadableSpan`) and answer in each API's own encoding:
- Jaeger api_v3: `{"result": TracesData}` in the OTLP JSON encoding (hex ids, enum numbers); "No traces found" 404;
- Jaeger legacy: `{"data": [{"traceID", "spans", "processes"}]}`, times in µs, tags `{key, type, value}`, kind and
  status as tags, arrays as JSON text, 64-bit-style trace ids printed without leading zeros;
- Tempo: `{"trace": {"resourceSpans"}}` (v2) / `{"batches"}` (v1) in protobuf's generic JSON mapping (base64 ids,
  enum names, int64 as strings); TraceQL search answering trace ids without leading zeros;
- Phoenix: `/v1/projects`, `/v1/projects/{p}/spans` with cursor paging, `trace_id`/`attribute`/time filters.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

SERVICE_NAME = "service.name"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Response:
    status: int = 200
    body: bytes | str | Any = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def json_response(body: Any, status: int = 200) -> Response:
    return Response(status=status, body=body)


class FakeServer:
    """A threaded HTTP server on a free loopback port; `handle(request) -> Response` answers every GET."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def handle(self, request: Request) -> Response:
        return Response(404, "404 page not found", "text/plain")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                request = Request(
                    method="GET",
                    path=urllib.parse.unquote(split.path),
                    query=urllib.parse.parse_qs(split.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
                owner.requests.append(request)
                try:
                    response = owner.handle(request)
                except Exception as error:  # a bug in a fake shows as a 500 the test will see
                    response = Response(500, f"fake failed: {type(error).__name__}: {error}", "text/plain")
                if response is None:  # the handler took the connection over
                    return
                payload = response.payload()
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- span encodings -----------------------------------------------------------------------------------------------


def trace_hex(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


def span_hex(span: ReadableSpan) -> str:
    return f"{span.context.span_id:016x}"


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes.get(SERVICE_NAME, "unknown"))


def otlp_protobuf_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """TracesData in protobuf's generic JSON mapping: base64 ids, enum names, 64-bit integers as strings (what
    Tempo answers)."""
    return MessageToDict(encode_spans(list(spans))) if spans else {"resourceSpans": []}


_KIND_NUMBERS = {
    f"SPAN_KIND_{k}": n for n, k in enumerate(["UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER"])
}
_STATUS_NUMBERS = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def otlp_spec_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """TracesData in the OTLP JSON encoding of the specification: hex ids, enums as numbers (what Jaeger's api_v3
    answers)."""
    document = otlp_protobuf_json(spans)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
                span["kind"] = _KIND_NUMBERS[span.get("kind", "SPAN_KIND_UNSPECIFIED")]
                status = span.get("status")
                if status and "code" in status:
                    status["code"] = _STATUS_NUMBERS[status["code"]]
    return document


def _jaeger_tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, (list, tuple)):
        return {"key": key, "type": "string", "value": json.dumps(list(value))}
    return {"key": key, "type": "string", "value": str(value)}


def jaeger_legacy_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """`{"data": [trace...]}` as Jaeger's legacy `/api/traces` answers it."""
    traces: dict[str, dict[str, Any]] = {}
    for span in spans:
        trace_id = f"{span.context.trace_id:x}"  # Jaeger prints trace ids without leading zeros
        if len(trace_id) < 16:
            trace_id = trace_id.rjust(16, "0")
        trace = traces.setdefault(trace_id, {"traceID": trace_id, "spans": [], "processes": {}, "warnings": None})
        service = service_of(span)
        process_id = next((p for p, v in trace["processes"].items() if v["serviceName"] == service), None)
        if process_id is None:
            process_id = f"p{len(trace['processes']) + 1}"
            trace["processes"][process_id] = {
                "serviceName": service,
                "tags": [_jaeger_tag(k, v) for k, v in span.resource.attributes.items() if k != SERVICE_NAME],
            }
        tags = [_jaeger_tag(k, v) for k, v in (span.attributes or {}).items()]
        tags.append(
            _jaeger_tag("otel.scope.name", span.instrumentation_scope.name if span.instrumentation_scope else "")
        )
        if span.kind != SpanKind.INTERNAL:
            tags.append(_jaeger_tag("span.kind", span.kind.name.lower()))
        if span.status.status_code == StatusCode.ERROR:
            tags.append(_jaeger_tag("otel.status_code", "ERROR"))
            tags.append(_jaeger_tag("error", True))
            if span.status.description:
                tags.append(_jaeger_tag("otel.status_description", span.status.description))
        logs = [
            {
                "timestamp": event.timestamp // 1000,
                "fields": [_jaeger_tag("event", event.name)]
                + [_jaeger_tag(k, v) for k, v in (event.attributes or {}).items()],
            }
            for event in span.events
        ]
        references = []
        if span.parent is not None:
            references.append({"refType": "CHILD_OF", "traceID": trace_id, "spanID": f"{span.parent.span_id:016x}"})
        trace["spans"].append(
            {
                "traceID": trace_id,
                "spanID": span_hex(span),
                "flags": 1,
                "operationName": span.name,
                "references": references,
                "startTime": span.start_time // 1000,
                "duration": (span.end_time - span.start_time) // 1000,
                "tags": tags,
                "logs": logs,
                "processID": process_id,
                "warnings": None,
            }
        )
    return {"data": list(traces.values()), "total": 0, "limit": 0, "offset": 0, "errors": None}


# --- backends -----------------------------------------------------------------------------------------------------


class SpanStore:
    """The spans a fake backend holds, with the searches the backends run."""

    def __init__(self, spans: Iterable[ReadableSpan] = ()) -> None:
        self.spans: list[ReadableSpan] = list(spans)

    def trace(self, trace_id: str) -> list[ReadableSpan]:
        wanted = trace_id.lower().rjust(32, "0")
        if getattr(self, "_indexed", -1) != len(self.spans):  # an index, rebuilt when spans were added
            self._by_trace: dict[str, list[ReadableSpan]] = {}
            for span in self.spans:
                self._by_trace.setdefault(trace_hex(span), []).append(span)
            self._indexed = len(self.spans)
        return list(self._by_trace.get(wanted, []))

    def services(self) -> list[str]:
        return sorted({service_of(s) for s in self.spans})

    def matching_traces(
        self,
        attributes: dict[str, Any],
        start_ns: int | None = None,
        end_ns: int | None = None,
        service: str | None = None,
    ) -> list[str]:
        """Trace ids (newest first) holding a span with all these attribute values (compared as text) that
        started in the window, from `service` when given."""
        found: dict[str, int] = {}
        for span in self.spans:
            if service is not None and service_of(span) != service:
                continue
            if start_ns is not None and span.start_time < start_ns:
                continue
            if end_ns is not None and span.start_time > end_ns:
                continue
            span_attributes = span.attributes or {}
            if all(k in span_attributes and _equals(span_attributes[k], v) for k, v in attributes.items()):
                trace_id = trace_hex(span)
                found[trace_id] = max(found.get(trace_id, 0), span.start_time)
        return [t for t, _ in sorted(found.items(), key=lambda item: item[1], reverse=True)]


def _equals(value: Any, wanted: Any) -> bool:
    """An attribute compared with a search value as text; an array matches when an element does (TraceQL)."""
    if isinstance(value, (list, tuple)):
        return any(str(item) == str(wanted) for item in value)
    return str(value) == str(wanted)


def any_value(value: Any) -> dict[str, Any]:
    """An attribute value in protobuf's JSON mapping of OTLP's AnyValue (int64 as text), as Tempo answers it."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [any_value(v) for v in value]}}
    return {"stringValue": str(value)}


@dataclass
class RootSpan:
    """A session root span as a Tempo at volume holds it: only what a search with `select(...)` gives back."""

    trace_id: str
    span_id: str
    name: str
    start_ns: int
    duration_ns: int
    service: str
    status: str  # "error", "ok", "unset"
    attributes: dict[str, Any]


class RootTable:
    """Many sessions' root spans sorted by start, searched by window with bisect (a fake Tempo at volume)."""

    def __init__(self, roots: Iterable[RootSpan]) -> None:
        self.roots = sorted(roots, key=lambda r: r.start_ns)
        self.starts = [r.start_ns for r in self.roots]

    def window(self, start_ns: int, end_ns: int) -> list[RootSpan]:
        import bisect

        return self.roots[bisect.bisect_left(self.starts, start_ns) : bisect.bisect_right(self.starts, end_ns)]


def _rfc3339_ns(text: str) -> int:
    head, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction or "0").ljust(9, "0")[:9])


class FakeJaeger(FakeServer):
    """Jaeger's query service: api_v3 (`api="v3"`) or only the legacy API (`api="legacy"`, where api_v3 paths
    get the UI's HTML page, as an old Jaeger's catch-all static handler answers)."""

    def __init__(self, spans: Iterable[ReadableSpan] = (), *, api: str = "v3") -> None:
        super().__init__()
        self.store = SpanStore(spans)
        self.api = api

    def handle(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/api/v3/"):
            if self.api != "v3":
                return Response(200, "<!doctype html><html><body>Jaeger UI</body></html>", "text/html; charset=utf-8")
            return self._v3(request)
        if path == "/api/services":
            return json_response({"data": self.store.services(), "total": len(self.store.services())})
        if path == "/api/traces":
            return self._legacy_search(request)
        if path.startswith("/api/traces/"):
            spans = self.store.trace(path.rsplit("/", 1)[1])
            if not spans:
                return json_response({"data": None, "errors": [{"code": 404, "msg": "trace not found"}]}, 404)
            return json_response(jaeger_legacy_json(spans))
        return Response(200, "<!doctype html><html></html>", "text/html")

    def _v3_error(self, status: int, message: str) -> Response:
        return json_response({"error": {"httpCode": status, "message": message}}, status)

    def _v3(self, request: Request) -> Response:
        if request.path == "/api/v3/services":
            return json_response({"services": self.store.services()})
        if request.path.startswith("/api/v3/traces/"):
            trace_id = request.path.rsplit("/", 1)[1]
            if not re.fullmatch(r"[0-9a-f]{1,32}", trace_id):
                return self._v3_error(400, f"malformed parameter trace_id: {trace_id}")
            spans = self.store.trace(trace_id)
            if not spans:
                return self._v3_error(404, "No traces found")
            return json_response({"result": otlp_spec_json(spans)})
        if request.path == "/api/v3/traces":
            low, high = request.one("query.start_time_min"), request.one("query.start_time_max")
            if not low or not high:
                return self._v3_error(400, "query.start_time_min and query.start_time_max are required")
            service = request.one("query.service_name")
            if not service:
                return self._v3_error(400, "service name must be set")
            attributes = json.loads(request.one("query.attributes") or "{}")
            depth = int(request.one("query.num_traces") or request.one("query.search_depth") or 20)
            traces = self.store.matching_traces(attributes, _rfc3339_ns(low), _rfc3339_ns(high), service)[:depth]
            if not traces:
                return self._v3_error(404, "No traces found")
            spans = [s for t in traces for s in self.store.trace(t)]
            return json_response({"result": otlp_spec_json(spans)})
        return self._v3_error(404, "not found")

    def _legacy_search(self, request: Request) -> Response:
        service = request.one("service")
        if not service:
            return json_response(
                {"data": None, "errors": [{"code": 400, "msg": "parameter 'service' is required"}]}, 400
            )
        tags = json.loads(request.one("tags") or "{}")
        start = int(request.one("start") or 0) * 1000
        end = int(request.one("end") or time.time_ns() // 1000) * 1000
        limit = int(request.one("limit") or 20)
        traces = self.store.matching_traces(tags, start, end, service)[:limit]
        spans = [s for t in traces for s in self.store.trace(t)]
        document = jaeger_legacy_json(spans) if spans else {"data": [], "errors": None}
        return json_response(document)


_TRACEQL_TERM = re.compile(r'(span|resource)\.([A-Za-z0-9_.]+)\s*=\s*"((?:[^"\\]|\\.)*)"')
_TRACEQL_SELECT = re.compile(r"\|\s*select\(([^)]*)\)\s*$")


class FakeTempo(FakeServer):
    """Tempo's query frontend: trace by id (v2 unless `v2=False`) and TraceQL search of
    `{ span.k = "v" && resource.k = "v" ... } | select(span.a, resource.b, status, name)`, answering the first
    `limit` traces of the window with each trace's matched spans (at most `spss`, `matched` their number) and
    the selected attributes, as Tempo's API documents. With `tenant`, every request must carry
    `X-Scope-OrgID: tenant` (else 401, as a multi-tenant Tempo). At volume, `roots` (a `RootTable`) holds
    session root spans only, searched by bisect. `fail_after` searches answered, the next ones get HTTP 503."""

    def __init__(
        self,
        spans: Iterable[ReadableSpan] = (),
        *,
        v2: bool = True,
        tenant: str | None = None,
        roots: RootTable | None = None,
        fail_after: int | None = None,
    ) -> None:
        super().__init__()
        self.store = SpanStore(spans)
        self.v2 = v2
        self.tenant = tenant
        self.roots = roots
        self.fail_after = fail_after
        self.searches = 0

    def handle(self, request: Request) -> Response:
        if self.tenant is not None and request.headers.get("x-scope-orgid") != self.tenant:
            return Response(401, "no org id", "text/plain")
        if request.path.startswith("/api/v2/traces/"):
            if not self.v2:
                return Response(404, "404 page not found\n", "text/plain")
            spans = self.store.trace(request.path.rsplit("/", 1)[1])
            if not spans:
                return Response(404, "trace not found", "text/plain")
            return json_response({"trace": otlp_protobuf_json(spans), "metrics": {"inspectedBytes": "1"}})
        if request.path.startswith("/api/traces/"):
            spans = self.store.trace(request.path.rsplit("/", 1)[1])
            if not spans:
                return Response(404, "trace not found", "text/plain")
            return json_response({"batches": otlp_protobuf_json(spans)["resourceSpans"]})
        if request.path == "/api/search":
            self.searches += 1
            if self.fail_after is not None and self.searches > self.fail_after:
                return Response(503, "too many outstanding requests", "text/plain")
            return self._search(request)
        return Response(404, "404 page not found\n", "text/plain")

    def _search(self, request: Request) -> Response:
        query = request.one("q") or ""
        selected_match = _TRACEQL_SELECT.search(query)
        selected = [f.strip() for f in selected_match.group(1).split(",")] if selected_match else []
        terms: dict[tuple[str, str], str] = {}
        for scope, key, value in _TRACEQL_TERM.findall(query):
            terms[(scope, key)] = value.replace('\\"', '"').replace("\\\\", "\\")
        if not terms:
            return Response(400, f"invalid TraceQL query: {query}", "text/plain")
        start = int(request.one("start") or 0) * 1_000_000_000 or None
        end = int(request.one("end") or 0) * 1_000_000_000 or None
        limit = int(request.one("limit") or 20)
        spss = int(request.one("spss") or 3)
        if self.roots is not None:
            return json_response(self._search_roots(terms, selected, start or 0, end or 2**63, limit, spss))
        span_terms = {k: v for (scope, k), v in terms.items() if scope == "span"}
        service = terms.get(("resource", "service.name"))
        traces = self.store.matching_traces(span_terms, start, end, service)[:limit]
        results = []
        for trace_id in reversed(traces):  # Tempo answers in no particular order
            spans = self.store.trace(trace_id)
            root = min(spans, key=lambda s: (s.parent is not None, s.start_time))
            matched = [
                s
                for s in spans
                if all(k in (s.attributes or {}) and _equals((s.attributes or {})[k], v) for k, v in span_terms.items())
                and (service is None or service_of(s) == service)
            ]
            results.append(
                {
                    "traceID": trace_id.lstrip("0") or "0",  # Tempo drops leading zeros
                    "rootServiceName": service_of(root),
                    "rootTraceName": root.name,
                    "startTimeUnixNano": str(root.start_time),
                    "durationMs": (root.end_time - root.start_time) // 1_000_000,
                    "spanSets": [
                        {
                            "spans": [self._selected_span(s, selected) for s in matched[:spss]] if selected else [],
                            "matched": len(matched),
                        }
                    ],
                }
            )
        return json_response({"traces": results, "metrics": {"inspectedTraces": len(results)}})

    @staticmethod
    def _selected_span(span: ReadableSpan, selected: list[str]) -> dict[str, Any]:
        attributes = []
        for field_name in selected:
            if field_name == "status":
                attributes.append({"key": "status", "value": {"stringValue": span.status.status_code.name.lower()}})
            elif field_name.startswith("span."):
                key = field_name.removeprefix("span.")
                if key in (span.attributes or {}):
                    attributes.append({"key": key, "value": any_value((span.attributes or {})[key])})
            elif field_name == "resource.service.name":
                attributes.append({"key": "service.name", "value": {"stringValue": service_of(span)}})
        return {
            "spanID": span_hex(span),
            "name": span.name,
            "startTimeUnixNano": str(span.start_time),
            "durationNanos": str(span.end_time - span.start_time),
            "attributes": attributes,
        }

    def _search_roots(
        self, terms: dict[tuple[str, str], str], selected: list[str], start: int, end: int, limit: int, spss: int
    ) -> dict[str, Any]:
        assert self.roots is not None
        results: list[dict[str, Any]] = []
        by_trace: dict[str, dict[str, Any]] = {}
        for root in self.roots.window(start, end):
            if any(
                not (_equals(root.attributes.get(k), v) if scope == "span" else root.service == v)
                for (scope, k), v in terms.items()
            ):
                continue
            trace = by_trace.get(root.trace_id)
            if trace is None:
                if len(by_trace) >= limit:
                    continue
                trace = {
                    "traceID": root.trace_id.lstrip("0") or "0",
                    "rootServiceName": root.service,
                    "rootTraceName": root.name,
                    "startTimeUnixNano": str(root.start_ns),
                    "durationMs": root.duration_ns // 1_000_000,
                    "spanSets": [{"spans": [], "matched": 0}],
                }
                by_trace[root.trace_id] = trace
                results.append(trace)
            spanset = trace["spanSets"][0]
            spanset["matched"] += 1
            if len(spanset["spans"]) < spss:
                attributes = []
                for field_name in selected:
                    if field_name == "status":
                        attributes.append({"key": "status", "value": {"stringValue": root.status}})
                    elif field_name == "resource.service.name":
                        attributes.append({"key": "service.name", "value": {"stringValue": root.service}})
                    elif field_name.startswith("span.") and field_name[5:] in root.attributes:
                        attributes.append({"key": field_name[5:], "value": any_value(root.attributes[field_name[5:]])})
                spanset["spans"].append(
                    {
                        "spanID": root.span_id,
                        "name": root.name,
                        "startTimeUnixNano": str(root.start_ns),
                        "durationNanos": str(root.duration_ns),
                        "attributes": attributes,
                    }
                )
        return {"traces": results[::-1], "metrics": {"inspectedTraces": len(results), "totalBlocks": 1}}


class FakePhoenix(FakeServer):
    """Phoenix's REST API: one project (`default`), spans newest first in pages of `page_size`."""

    def __init__(self, spans: Iterable[ReadableSpan] = (), *, page_size: int = 3) -> None:
        super().__init__()
        self.store = SpanStore(spans)
        self.page_size = page_size

    def handle(self, request: Request) -> Response:
        if request.path == "/v1/projects":
            return json_response({"data": [{"name": "default", "id": "UHJvamVjdDox"}], "next_cursor": None})
        found = re.fullmatch(r"/v1/projects/([^/]+)/spans", request.path)
        if not found:
            return Response(200, "<!doctype html><html></html>", "text/html")
        if found.group(1) != "default":
            return Response(404, f"Project with name {found.group(1)} not found", "text/plain")
        spans = list(reversed(self.store.spans))  # newest first
        if request.query.get("trace_id"):
            wanted = set(request.query["trace_id"])
            spans = [s for s in spans if trace_hex(s) in wanted]
        for condition in request.query.get("attribute", []):
            key, _, raw = condition.partition(":")
            value = json.loads(raw)
            spans = [s for s in spans if (s.attributes or {}).get(key) == value]
        if request.one("start_time"):
            low = datetime.fromisoformat(request.one("start_time") or "").timestamp() * 1e9
            spans = [s for s in spans if s.start_time >= low - 1000]
        if request.one("end_time"):  # Phoenix's end_time is exclusive
            high = datetime.fromisoformat(request.one("end_time") or "").timestamp() * 1e9
            spans = [s for s in spans if s.start_time < high + 1000]
        limit = min(int(request.one("limit") or 100), self.page_size)
        offset = int(request.one("cursor") or 0)
        page = spans[offset : offset + limit]
        cursor = str(offset + limit) if offset + limit < len(spans) else None
        return json_response({"data": [_phoenix_span(s) for s in page], "next_cursor": cursor})


def _iso(ns: int | None) -> str | None:
    if ns is None:
        return None
    return datetime.fromtimestamp(ns // 1000 / 1e6, tz=UTC).isoformat()


def _phoenix_span(span: ReadableSpan) -> dict[str, Any]:
    return {
        "id": f"U3Bhbjo{span_hex(span)}",
        "name": span.name,
        "context": {"trace_id": trace_hex(span), "span_id": span_hex(span)},
        "span_kind": "UNKNOWN",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "start_time": _iso(span.start_time),
        "end_time": _iso(span.end_time),
        "status_code": span.status.status_code.name,
        "status_message": span.status.description or "",
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
        "events": [
            {"name": e.name, "timestamp": _iso(e.timestamp), "attributes": dict(e.attributes or {})}
            for e in span.events
        ],
    }


class FaultyServer(FakeServer):
    """A backend that fails in one way: `slow` (answers after `delay` s), `error` (HTTP 503), `malformed`
    (truncated JSON), `html` (a web page), `huge` (a body of `size` bytes)."""

    def __init__(self, fault: str, *, delay: float = 3.0, size: int = 4096) -> None:
        super().__init__()
        self.fault = fault
        self.delay = delay
        self.size = size
        self.release = threading.Event()

    def handle(self, request: Request) -> Response:
        if self.fault == "slow":
            self.release.wait(self.delay)
            return json_response({})
        if self.fault == "error":
            return Response(503, "upstream connect error or disconnect/reset before headers", "text/plain")
        if self.fault == "malformed":
            return Response(200, '{"result": {"resourceSpans": [', "application/json")
        if self.fault == "html":
            return Response(200, "<!doctype html><html><body>login</body></html>", "text/html")
        if self.fault == "huge":
            return Response(200, b'{"data": "' + b"x" * self.size + b'"}', "application/json")
        raise AssertionError(f"unknown fault {self.fault}")
