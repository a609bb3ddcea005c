"""Grafana Tempo as a source: `tempo+http://host:3200`.

- A trace by id: `GET /api/v2/traces/{id}` answers `{"trace": {"resourceSpans": [...]}}` (older Tempo: `batches`);
  a Tempo without the v2 route is asked `GET /api/traces/{id}`, which answers the trace itself
  (`{"batches": [...]}`). Both are OTLP JSON read by the OTLP JSON reader, with Tempo's quirks: base64 span and
  trace ids, enum names (`SPAN_KIND_CLIENT`, `STATUS_CODE_ERROR`), 64-bit integers as strings.
- A search: TraceQL, `GET /api/search?q={ span.session.id = "…" }&start=&end=&limit=` (unix seconds), answers
  `{"traces": [{"traceID", "rootServiceName", "startTimeUnixNano", ...}]}` with trace ids that may lack leading
  zeros; each trace found is then fetched by id.
- Multi-tenant Tempo: the tenant goes in the `X-Scope-OrgID` header, from `?tenant=` in the location or the
  `AGENTOTEL_TEMPO_TENANT` variable. Basic auth (Grafana Cloud): `tempo+https://user:token@host`.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from typing import Any

from ..records import SpanRecord
from . import SourceError
from ._http import HttpClient, Reply
from ._remote import RemoteSource
from .otlp_json import records_from_otlp_json

__all__ = ["TempoSource", "open_source", "records_from_tempo_json", "traceql_equals"]

TENANT_HEADER = "X-Scope-OrgID"
_ID_FIELDS = (("traceId", 16), ("spanId", 8), ("parentSpanId", 8))
_HEX = frozenset("0123456789abcdefABCDEF")


def open_source(location: str) -> TempoSource:
    """The Tempo at `tempo+http://host:3200`. Raises `SourceError` for a malformed location."""
    return TempoSource(location)


def traceql_equals(attributes: Mapping[str, str]) -> str:
    """A TraceQL spanset filter matching spans whose attributes have all these (string) values."""
    terms = []
    for key, value in attributes.items():
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        terms.append(f'span.{key} = "{escaped}"')
    return "{ " + " && ".join(terms) + " }"


class TempoSource(RemoteSource):
    """Sessions in a Tempo (query frontend, or a monolithic Tempo)."""

    what = "Tempo"
    scheme = "tempo"

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

    def _records(self, reply: Reply) -> list[SpanRecord]:
        self.client.check(reply)
        document = self.client.parse(reply)
        try:
            return records_from_tempo_json(document)
        except (ValueError, TypeError) as error:
            raise SourceError(
                f"{self.client.where} answered {reply.request} with a trace that cannot be read: {error}"
            ) from None


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
