"""Grafana Tempo as a source: `tempo+http://host:3200`.

- A trace by id: `GET /api/v2/traces/{id}` answers `{"trace": {"resourceSpans": [...]}}` (older Tempo: `batches`);
  a Tempo without the v2 route is asked `GET /api/traces/{id}`, which answers the trace itself
  (`{"batches": [...]}`). Both are OTLP JSON read by the OTLP JSON reader, with Tempo's quirks: base64 span and
  trace ids, enum names (`SPAN_KIND_CLIENT`, `STATUS_CODE_ERROR`), 64-bit integers as strings.
- A search: TraceQL, `GET /api/search?q={ span.session.id = "…" }&start=&end=&limit=` (unix seconds), answers
  `{"traces": [{"traceID", "rootServiceName", "startTimeUnixNano", ...}]}` with trace ids that may lack leading
  zeros; each trace found is then fetched by id.
- Lists and `check` (`window_page`): one TraceQL search per time window, `{ span.agentotel.step.kind = "session"
  ... } | select(span.session.id, span.agentotel.session.end_state, span.agentotel.session.cost.amount, ...)`:
  each trace's `spanSets[].spans[]` carry the session root spans' selected attributes (`{"key", "value":
  {"stringValue"|"intValue"|"doubleValue"|"boolValue"|"arrayValue"}}`), `startTimeUnixNano`, `durationNanos`,
  so a summary is read from the root span alone, no trace fetched. Tempo's search has no cursor and takes "the
  first N results" of a window (`limit`), so `_remote`'s window paging narrows windows (to a second, Tempo's
  resolution) until each answers fewer than `page_size` (1,000).
- Multi-tenant Tempo: the tenant goes in the `X-Scope-OrgID` header, from `?tenant=` in the location or the
  `AGENTOTEL_TEMPO_TENANT` variable. Basic auth (Grafana Cloud): `tempo+https://user:token@host`.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from typing import Any

from .. import semconv as sc
from ..records import SpanRecord
from . import SessionSummary, SourceError
from ._http import HttpClient, Reply
from ._remote import RemoteSource
from ._scan import WindowPage
from .otlp_json import records_from_otlp_json

__all__ = ["TempoSource", "open_source", "records_from_tempo_json", "traceql_equals"]

TENANT_HEADER = "X-Scope-OrgID"
_ID_FIELDS = (("traceId", 16), ("spanId", 8), ("parentSpanId", 8))
_HEX = frozenset("0123456789abcdefABCDEF")


def open_source(location: str) -> TempoSource:
    """The Tempo at `tempo+http://host:3200`. Raises `SourceError` for a malformed location."""
    return TempoSource(location)


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def traceql_equals(attributes: Mapping[str, str], *, resource: Mapping[str, str] | None = None) -> str:
    """A TraceQL spanset filter matching spans whose attributes have all these (string) values (and whose
    resource has these)."""
    terms = [f"span.{key} = {_quoted(value)}" for key, value in attributes.items()]
    terms += [f"resource.{key} = {_quoted(value)}" for key, value in (resource or {}).items()]
    return "{ " + " && ".join(terms) + " }"


SELECTED = (
    sc.SESSION_ID,
    sc.GEN_AI_AGENT_NAME,
    sc.AGENTOTEL_STEP_KIND,
    sc.AGENTOTEL_SESSION_TAGS,
    sc.AGENTOTEL_SESSION_PARENT_ID,
    sc.AGENTOTEL_SESSION_END_STATE,
    sc.AGENTOTEL_SESSION_END_STATE_REASON,
    sc.AGENTOTEL_SESSION_COST_AMOUNT,
    sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS,
    sc.AGENTOTEL_SESSION_USAGE_OUTPUT_TOKENS,
    sc.AGENTOTEL_SESSION_LLM_CALL_COUNT,
    sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT,
    sc.AGENTOTEL_SESSION_ERROR_COUNT,
)
"""The session root span's attributes a list search selects: what a `SessionSummary` is read from."""
_SELECTED_FIELDS = [*(f"span.{key}" for key in SELECTED), f"resource.{sc.SERVICE_NAME}", "status", "name"]
SELECT = "select(" + ", ".join(_SELECTED_FIELDS) + ")"
SPANS_PER_TRACE = 100
"""`spss`: the most session root spans one trace's result carries (nested sessions); more are said as missing."""
_SERVICE = sc.SERVICE_NAME


class TempoSource(RemoteSource):
    """Sessions in a Tempo (query frontend, or a monolithic Tempo)."""

    what = "Tempo"
    scheme = "tempo"
    page_size_default = 1000
    resolution_ns = 1_000_000_000  # search windows are whole unix seconds
    counted_by = "root spans' attributes selected by TraceQL search, paged by time"

    def __init__(self, location: str) -> None:
        super().__init__(location)
        tenant = self.where.option("tenant", "AGENTOTEL_TEMPO_TENANT")
        headers = {TENANT_HEADER: tenant} if tenant else {}
        self.client = HttpClient(self.where, what=self.what, headers=headers)
        self._has_v2: bool | None = None

    def trace_records(self, trace_id: str) -> list[SpanRecord] | None:
        if self._has_v2 is not False:
            reply = self.client.get(f"/api/v2/traces/{trace_id}")
            if reply.ok:
                self._has_v2 = True
                return self._records(reply) or None
            if reply.status != 404:
                self.client.check(reply)
            if self._has_v2:
                return None  # the v2 route answered before: this 404 is a missing trace
        reply = self.client.get(f"/api/traces/{trace_id}")
        if reply.status == 404:
            return None
        if reply.ok and self._has_v2 is None:
            self._has_v2 = False
        return self._records(reply) or None

    def find_records(
        self, attributes: Mapping[str, str], *, start_ns: int, end_ns: int, limit: int
    ) -> list[SpanRecord]:
        params: dict[str, str | int] = {
            "q": traceql_equals(attributes),
            "start": start_ns // 1_000_000_000,
            "end": math.ceil(end_ns / 1_000_000_000),
            "limit": limit,
            "spss": 1,
        }
        document = self.client.get_json("/api/search", params)
        traces = document.get("traces") if isinstance(document, Mapping) else None
        if traces is None:
            return []
        if not isinstance(traces, list):
            raise SourceError(f"{self.client.where} answered GET /api/search with traces that are not a list")
        found: list[tuple[int, str]] = []
        for trace in traces:
            if not isinstance(trace, Mapping):
                continue
            trace_id = _hex_trace_id(trace.get("traceID"))
            if trace_id is None:
                continue
            try:
                start = int(trace.get("startTimeUnixNano") or 0)
            except (TypeError, ValueError):
                start = 0
            found.append((start, trace_id))
        found.sort(reverse=True)  # Tempo answers in no particular order; the newest are kept
        records: list[SpanRecord] = []
        seen: set[str] = set()
        for _, trace_id in found:
            if trace_id in seen or len(seen) >= limit:
                continue
            seen.add(trace_id)
            records.extend(self.trace_records(trace_id) or [])
        return records

    def window_page(
        self,
        query: Mapping[str, str],
        *,
        start_ns: int,
        end_ns: int,
        limit: int,
        tags: Sequence[str] = (),
        service: str | None = None,
    ) -> WindowPage:
        """One TraceQL search of the window with the root spans' attributes selected (see the module's
        docstring): the tags and service pushed down into the query. Raises `SourceError`."""
        terms = dict(query)
        traceql = traceql_equals(terms, resource={_SERVICE: service} if service is not None else None)
        for tag in tags:  # TraceQL's = on an array attribute matches an element
            traceql = traceql[:-2] + f" && span.{sc.AGENTOTEL_SESSION_TAGS} = {_quoted(tag)} }}"
        params: dict[str, str | int] = {
            "q": f"{traceql} | {SELECT}",
            "start": start_ns // 1_000_000_000,
            "end": max(start_ns // 1_000_000_000 + 1, math.ceil(end_ns / 1_000_000_000)),
            "limit": limit,
            "spss": SPANS_PER_TRACE,
        }
        document = self.client.get_json("/api/search", params)
        traces = document.get("traces") if isinstance(document, Mapping) else None
        if traces is None:
            return WindowPage(raw=0, traces=[])
        if not isinstance(traces, list):
            raise SourceError(f"{self.client.where} answered GET /api/search with traces that are not a list")
        found: dict[str, list[SessionSummary]] = {}
        missing = 0
        for trace in traces:
            if not isinstance(trace, Mapping):
                continue
            trace_id = _hex_trace_id(trace.get("traceID"))
            if trace_id is None:
                continue
            summaries = found.setdefault(trace_id, [])
            seen = {s.span_id for s in summaries}
            sets = trace.get("spanSets") or ([trace["spanSet"]] if isinstance(trace.get("spanSet"), Mapping) else [])
            for spanset in sets if isinstance(sets, list) else []:
                if not isinstance(spanset, Mapping):
                    continue
                spans = spanset.get("spans") or []
                matched = spanset.get("matched")
                if isinstance(matched, int) and isinstance(spans, list) and matched > len(spans):
                    missing += matched - len(spans)
                for span in spans if isinstance(spans, list) else []:
                    record = _selected_record(trace_id, span)
                    if record is None or record.span_id in seen:
                        continue
                    seen.add(record.span_id)
                    summaries.append(SessionSummary.from_root(record))
        pages = [(min(s.start_ns for s in summaries), summaries) for summaries in found.values() if summaries]
        return WindowPage(raw=len(found), traces=pages, missing=missing)

    def _records(self, reply: Reply) -> list[SpanRecord]:
        self.client.check(reply)
        document = self.client.parse(reply)
        try:
            return records_from_tempo_json(document)
        except (ValueError, TypeError) as error:
            raise SourceError(
                f"{self.client.where} answered {reply.request} with a trace that cannot be read: {error}"
            ) from None


def _any_value(value: Any) -> Any:
    """The value of an OTLP JSON `AnyValue` (`{"stringValue": ...}`, 64-bit integers as text, arrays)."""
    if not isinstance(value, Mapping):
        return None
    if "stringValue" in value:
        return str(value["stringValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return None
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        items = value["arrayValue"].get("values") if isinstance(value["arrayValue"], Mapping) else None
        return [_any_value(item) for item in items or []]
    return None


def _selected_record(trace_id: str, span: Any) -> SpanRecord | None:
    """A session root span as a search result gives it (`spanID`, times, the selected attributes) as a record
    of that span alone; `None` for one that is not a session's or cannot be read."""
    if not isinstance(span, Mapping):
        return None
    span_id = _normal_id(span.get("spanID"), 8)
    if not isinstance(span_id, str) or len(span_id) != 16 or not set(span_id) <= _HEX:
        return None
    attributes: dict[str, Any] = {}
    for item in span.get("attributes") or []:
        if isinstance(item, Mapping) and isinstance(item.get("key"), str):
            key = item["key"].removeprefix("span.").removeprefix("resource.")
            attributes[key] = _any_value(item.get("value"))
    try:
        start = int(span.get("startTimeUnixNano") or 0)
        duration = span.get("durationNanos")
        end = None if duration is None else start + int(duration)
    except (TypeError, ValueError):
        return None
    service = attributes.pop(_SERVICE, None)
    status = str(attributes.pop("status", "") or "").lower()
    name = span.get("name") or attributes.pop("name", None) or ""
    attributes.pop("name", None)
    if attributes.get(sc.SESSION_ID) is None:
        return None
    attributes.setdefault(sc.AGENTOTEL_STEP_KIND, "session")
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=None,
        name=str(name),
        kind="INTERNAL",
        start_ns=start,
        end_ns=end,
        attributes={k: v for k, v in attributes.items() if v is not None},
        status_code="ERROR" if status == "error" else "OK" if status == "ok" else "UNSET",
        service_name=None if service is None else str(service),
    )


def _hex_trace_id(value: Any) -> str | None:
    """A search result's trace id (hex, maybe without leading zeros) as 32 digits; `None` if it is not one."""
    text = str(value or "").strip()
    if not text or len(text) > 32 or not set(text) <= _HEX:
        return None
    return text.lower().rjust(32, "0")


def _normal_id(value: Any, size: int) -> Any:
    """An id as `size` bytes of lowercase hex, from hex (maybe without leading zeros) or base64 (maybe of fewer
    bytes, a 64-bit trace id). Anything else is left for the OTLP reader to reject with its message."""
    if not isinstance(value, str) or not value:
        return value
    if len(value) <= size * 2 and set(value) <= _HEX:
        # Padded base64 of 8 or 16 bytes always ends in "=", so text of hex digits only is hex.
        return value.lower().rjust(size * 2, "0")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return value
    if not raw or len(raw) > size:
        return value
    return raw.hex().rjust(size * 2, "0")


def _with_normal_ids(trace: Mapping[str, Any]) -> dict[str, Any]:
    """The trace (`{"resourceSpans"|"batches": [...]}`) as OTLP JSON with hex ids."""
    batches = trace.get("resourceSpans", trace.get("batches")) or []
    if not isinstance(batches, list):
        raise ValueError("resourceSpans is not a list")
    normal: list[Any] = []
    for batch in batches:
        if not isinstance(batch, Mapping):
            normal.append(batch)
            continue
        scopes_key = "scopeSpans" if "scopeSpans" in batch else "instrumentationLibrarySpans"
        scopes = []
        for scope in batch.get(scopes_key) or []:
            if not isinstance(scope, Mapping):
                scopes.append(scope)
                continue
            spans = []
            for span in scope.get("spans") or []:
                if isinstance(span, Mapping):
                    span = dict(span)
                    for key, size in _ID_FIELDS:
                        if key in span:
                            span[key] = _normal_id(span[key], size)
                spans.append(span)
            scopes.append({**scope, "spans": spans})
        normal.append({**batch, scopes_key: scopes})
    return {"resourceSpans": normal}


def records_from_tempo_json(document: Any) -> list[SpanRecord]:
    """Span records of a Tempo trace answer: `{"trace": {...}}` (v2) or the trace itself (v1), the trace being
    `{"resourceSpans": [...]}` or `{"batches": [...]}`. An empty trace gives no records. Raises `ValueError`."""
    if not isinstance(document, Mapping):
        raise ValueError("the answer is not a JSON object")
    trace = document.get("trace", document) if "trace" in document else document
    if trace is None:
        return []
    if not isinstance(trace, Mapping):
        raise ValueError("trace is not a JSON object")
    if "resourceSpans" not in trace and "batches" not in trace:
        if not trace or set(trace) <= {"status", "message", "metrics"}:
            return []  # Tempo answers an empty object (or only a status) for a trace it does not have
        raise ValueError("no resourceSpans or batches in the trace")
    return records_from_otlp_json(_with_normal_ids(trace))
