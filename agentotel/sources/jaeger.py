"""Jaeger as a source: `jaeger+http://host:16686` (the query service, where the UI is).

Two APIs, told apart by asking the server (the user names no version):
- **api_v3** (Jaeger v2, and v1 since 1.35): `GET /api/v3/traces/{trace_id}` and
  `GET /api/v3/traces?query.service_name=&query.attributes={json}&query.start_time_min=&query.start_time_max=`
  (RFC 3339 times) answer `{"result": <OTLP JSON TracesData>}` — read by the OTLP JSON reader — and a 404 with
  "No traces found" when nothing matches. Older gateways stream one `{"result": ...}` per line.
- the **legacy** UI API (`/api/traces/{id}`, `/api/traces?service=&tags={json}&start=&end=` in µs):
  `{"data": [{"traceID", "spans": [...], "processes": {...}}]}`, spans with `references`, `tags` as
  `{key, type, value}`, `logs`, `startTime` and `duration` in µs, the span kind and status as the tags
  `span.kind`, `otel.status_code`, `otel.status_description`, `error`, and array attributes as JSON strings.

An api_v3 gateway too old to take `query.attributes` ignores it and answers the service's latest traces: the
sessions are still picked out of those here, but only among them (raise `?limit=`).

Jaeger searches one service at a time: a search runs over the services named by `?service=a,b` (or
`AGENTOTEL_JAEGER_SERVICE`), else over every service the server knows (at most 50). Trace ids without leading
zeros (Jaeger prints a 64-bit id as 16 digits) are padded to 32 digits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from .. import semconv as sc
from ..conventions import is_content_event
from ..records import ExceptionInfo, SpanRecord, with_event_content
from . import SourceError
from ._http import HttpClient, Reply
from ._remote import RemoteSource
from .otlp_json import records_from_otlp_json

__all__ = ["JaegerSource", "open_source", "records_from_jaeger_json", "records_from_jaeger_v3"]

MAX_SERVICES = 50

# Attributes that are arrays in OTLP: the legacy API shows them as JSON text, which is turned back into lists.
_ARRAY_ATTRIBUTES = frozenset(
    {
        sc.AGENTOTEL_SESSION_TAGS,
        sc.AGENTOTEL_RESPONSE_TOOL_CALL_IDS,
        sc.AGENTOTEL_RESPONSE_TOOL_CALL_NAMES,
        sc.GEN_AI_REQUEST_ENCODING_FORMATS,
        sc.GEN_AI_REQUEST_STOP_SEQUENCES,
        sc.GEN_AI_RESPONSE_FINISH_REASONS,
    }
)
# Tags the OTLP -> Jaeger translation adds for what OTLP keeps outside the attributes (kind, status, scope).
_SPAN_KIND_TAG = "span.kind"
_STATUS_CODE_TAG = "otel.status_code"
_STATUS_MESSAGE_TAG = "otel.status_description"
_ERROR_TAG = "error"
_DROPPED_TAGS = frozenset(
    {"otel.scope.name", "otel.scope.version", "otel.library.name", "otel.library.version", "internal.span.format"}
)


def open_source(location: str) -> JaegerSource:
    """The Jaeger at `jaeger+http://host:16686`. Raises `SourceError` for a malformed location."""
    return JaegerSource(location)


class JaegerSource(RemoteSource):
    """Sessions in a Jaeger query service (api_v3 or the legacy API, found out on first use). Jaeger cannot
    aggregate nor give root spans alone: a list or `check` fetches every trace of the window, `page_size` (100)
    at a time, by time windows; exact unless one µs holds more than a page."""

    what = "Jaeger"
    scheme = "jaeger"
    page_size_default = 100
    counted_by = "every trace of the window fetched from Jaeger, paged by time"

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.client = HttpClient(self.where, what=self.what)
        services = self.where.option("service", "AGENTOTEL_JAEGER_SERVICE")
        self._services = [s.strip() for s in services.split(",") if s.strip()] if services else None
        self._api: Literal["v3", "legacy"] | None = None
        self._most_answered = 0

    @property
    def api(self) -> Literal["v3", "legacy"]:
        """Which API the server has: asked once, on first use. Raises `SourceError`."""
        if self._api is None:
            self._api = self._detect()
        return self._api

    def _detect(self) -> Literal["v3", "legacy"]:
        # A Jaeger without api_v3 answers 404, or (its UI catching every path) an HTML page.
        v3 = self.client.get("/api/v3/services")
        if v3.ok and not v3.is_html() and isinstance(self.client.parse(v3), dict):
            return "v3"
        legacy = self.client.get("/api/services")
        if legacy.ok and not legacy.is_html() and isinstance(self.client.parse(legacy), dict):
            return "legacy"
        for reply in (v3, legacy):
            if reply.status in (401, 403):
                self.client.check(reply)
        if v3.is_html() and legacy.is_html():
            raise SourceError(
                f"{self.client.where} answers with HTML pages, not Jaeger's API; is this the Jaeger query address "
                "(port 16686)?"
            )
        raise SourceError(
            f"{self.client.where} has neither Jaeger's api_v3 (/api/v3/services: HTTP {v3.status}) nor its legacy API "
            f"(/api/services: HTTP {legacy.status}); is this the Jaeger query address (port 16686)?"
        )

    def services(self) -> list[str]:
        """The services searched: those named in the location, else the server's (at most `MAX_SERVICES`)."""
        if self._services is not None:
            return list(self._services)
        if self.api == "v3":
            document = self.client.get_json("/api/v3/services")
            names = document.get("services") if isinstance(document, dict) else None
        else:
            document = self.client.get_json("/api/services")
            names = document.get("data") if isinstance(document, dict) else None
        if names is not None and not isinstance(names, list):
            raise SourceError(f"{self.client.where} answered its service list with something that is not a list")
        return sorted(str(n) for n in names or [])[:MAX_SERVICES]

    def trace_records(self, trace_id: str) -> list[SpanRecord] | None:
        path = f"/api/v3/traces/{trace_id}" if self.api == "v3" else f"/api/traces/{trace_id}"
        reply = self.client.get(path)
        if reply.status == 404:
            return None
        records = self._records(reply)
        return records or None

    def find_records(
        self, attributes: Mapping[str, str], *, start_ns: int, end_ns: int, limit: int
    ) -> list[SpanRecord]:
        records: list[SpanRecord] = []
        traces: set[str] = set()
        self._most_answered = 0
        for service in self.services():
            if len(traces) >= limit:
                break
            if self.api == "v3":
                params: dict[str, str | int] = {
                    "query.service_name": service,
                    "query.attributes": json.dumps(dict(attributes), separators=(",", ":")),
                    "query.start_time_min": _rfc3339(start_ns),
                    "query.start_time_max": _rfc3339(end_ns),
                    # `query.num_traces` is what every api_v3 gateway takes (Jaeger v2 calls it search_depth and
                    # keeps this name as an alias).
                    "query.num_traces": limit,
                }
                reply = self.client.get("/api/v3/traces", params)
            else:
                params = {
                    "service": service,
                    "tags": json.dumps(dict(attributes), separators=(",", ":")),
                    "start": start_ns // 1000,
                    "end": end_ns // 1000,
                    "limit": limit,
                }
                reply = self.client.get("/api/traces", params)
            if reply.status == 404:  # "No traces found"
                continue
            answered: set[str] = set()
            for record in self._records(reply):
                answered.add(record.trace_id)
                traces.add(record.trace_id)
                records.append(record)
            self._most_answered = max(self._most_answered, len(answered))
        return records

    def _answered(self, traces: int) -> int:
        # The limit is per service: a search is full when one service's answer is.
        return self._most_answered

    def _records(self, reply: Reply) -> list[SpanRecord]:
        self.client.check(reply)
        document = self.client.parse(reply, json_lines=True)
        try:
            if self.api == "v3":
                return records_from_jaeger_v3(document)
            return records_from_jaeger_json(document)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise SourceError(
                f"{self.client.where} answered {reply.request} with spans that cannot be read: {error}"
            ) from None


def _rfc3339(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


# --- api_v3 -------------------------------------------------------------------------------------------------------


def records_from_jaeger_v3(document: Any) -> list[SpanRecord]:
    """Span records of an api_v3 answer: `{"result": TracesData}`, or a list of them (a streamed answer).
    Raises `ValueError` for anything else."""
    documents = document if isinstance(document, list) else [document]
    records: list[SpanRecord] = []
    for item in documents:
        if not isinstance(item, Mapping):
            raise ValueError("an answer that is not a JSON object")
        if "error" in item and "result" not in item:
            error = item["error"]
            message = error.get("message") if isinstance(error, Mapping) else error
            raise ValueError(f"Jaeger reported an error: {message}")
        result = item.get("result", item)
        if result in (None, {}):
            continue
        records.extend(records_from_otlp_json(result))
    return records


# --- legacy JSON --------------------------------------------------------------------------------------------------


def records_from_jaeger_json(document: Any) -> list[SpanRecord]:
    """Span records of a legacy Jaeger answer (`{"data": [trace, ...]}`, or one trace object).
    Raises `ValueError` for anything else."""
    if isinstance(document, list):
        return [record for item in document for record in records_from_jaeger_json(item)]
    if not isinstance(document, Mapping):
        raise ValueError("an answer that is not a JSON object")
    if "data" in document:
        traces = document["data"] or []
    elif "spans" in document:
        traces = [document]
    else:
        errors = document.get("errors")
        raise ValueError(f"no traces in the answer{f' (errors: {errors})' if errors else ''}")
    if not isinstance(traces, list):
        raise ValueError("data is not a list of traces")
    records: list[SpanRecord] = []
    for trace in traces:
        if not isinstance(trace, Mapping):
            raise ValueError("a trace is not a JSON object")
        processes = trace.get("processes") or {}
        for span in trace.get("spans") or []:
            if not isinstance(span, Mapping):
                raise ValueError("a span is not a JSON object")
            records.append(_legacy_span(span, processes))
    return records


def _hex_id(value: Any, digits: int, what: str) -> str:
    text = str(value or "").strip().lower()
    if not text or len(text) > digits or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{what} {value!r} is not a hex id")
    return text.rjust(digits, "0")


def _tag_value(tag: Mapping[str, Any]) -> Any:
    kind = str(tag.get("type", "string")).lower()
    value: Any = tag.get("value")
    if kind == "bool":
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if kind == "int64":
        return int(value)
    if kind == "float64":
        return float(value)
    return value if isinstance(value, str) else str(value)


def _tags(tags: Iterable[Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for tag in tags or []:
        if isinstance(tag, Mapping) and "key" in tag:
            result[str(tag["key"])] = _tag_value(tag)
    return result


def _parent(span: Mapping[str, Any], trace_id: str) -> str | None:
    references = span.get("references") or []
    for wanted in ("CHILD_OF", "FOLLOWS_FROM"):
        for reference in references:
            if not isinstance(reference, Mapping) or reference.get("refType") != wanted:
                continue
            if _hex_id(reference.get("traceID"), 32, "traceID") == trace_id:
                return _hex_id(reference.get("spanID"), 16, "spanID")
    parent = span.get("parentSpanID")
    if parent and str(parent).strip("0"):
        return _hex_id(parent, 16, "parentSpanID")
    return None


def _exceptions(logs: Iterable[Any]) -> tuple[ExceptionInfo, ...]:
    found = []
    for log in logs or []:
        fields = _tags(log.get("fields") or []) if isinstance(log, Mapping) else {}
        if fields.get("event") != "exception":
            continue
        found.append(ExceptionInfo.from_attributes(fields))
    return tuple(found)


def _content_events(logs: Iterable[Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """A span's GenAI content events (Jaeger logs named by their `event` field), as `(name, fields)`."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for log in logs or []:
        fields = _tags(log.get("fields") or []) if isinstance(log, Mapping) else {}
        name = str(fields.pop("event", ""))
        if is_content_event(name):
            found.append((name, fields))
    return found


def _legacy_span(span: Mapping[str, Any], processes: Mapping[str, Any]) -> SpanRecord:
    trace_id = _hex_id(span.get("traceID"), 32, "traceID")
    tags = _tags(span.get("tags") or [])
    kind = str(tags.pop(_SPAN_KIND_TAG, "internal")).upper() or "INTERNAL"
    status = str(tags.pop(_STATUS_CODE_TAG, "UNSET")).upper()
    status_message = tags.pop(_STATUS_MESSAGE_TAG, None)
    if tags.get(_ERROR_TAG) is True:
        del tags[_ERROR_TAG]
        status = "ERROR"
    for key in _DROPPED_TAGS & tags.keys():
        del tags[key]
    for key in _ARRAY_ATTRIBUTES & tags.keys():
        value = tags[key]
        if isinstance(value, str) and value.startswith("["):
            try:
                tags[key] = json.loads(value)
            except ValueError:
                pass
    process = span.get("process")
    if not isinstance(process, Mapping):
        process = processes.get(str(span.get("processID"))) or {}
    service = process.get("serviceName") if isinstance(process, Mapping) else None
    start_us = int(span.get("startTime") or 0)
    duration = span.get("duration")
    return SpanRecord(
        trace_id=trace_id,
        span_id=_hex_id(span.get("spanID"), 16, "spanID"),
        parent_span_id=_parent(span, trace_id),
        name=str(span.get("operationName", "")),
        kind=kind if kind in ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER") else "INTERNAL",
        start_ns=start_us * 1000,
        end_ns=None if duration is None else (start_us + int(duration)) * 1000,
        attributes=with_event_content(tags, _content_events(span.get("logs") or [])),
        status_code=status if status in ("OK", "ERROR") else "UNSET",
        status_message=str(status_message) if status_message else None,
        exceptions=_exceptions(span.get("logs") or []),
        service_name=None if service is None else str(service),
    )
