"""Arize Phoenix as a source: `phoenix+http://host:6006` (the address of its UI, which serves the REST API too).

Read through Phoenix's REST API (checked against arize-phoenix 20.26): `GET /v1/projects` lists the projects
(`{"data": [{"name", "id"}], "next_cursor"}`), and `GET /v1/projects/{project}/spans` lists spans newest first,
`limit` at a time (1000 at most) with `next_cursor` paging, filtered by `start_time`/`end_time` (ISO 8601, on the
span's start), repeated `trace_id=`, and repeated `attribute=key:value` (the value JSON, so strings are sent
quoted). A span comes as `{"context": {"trace_id", "span_id"}, "parent_id", "name", "start_time", "end_time",
"status_code", "status_message", "attributes": {flat dotted keys}, "events": [{"name", "attributes"}]}`.

What Phoenix does not keep, and so does not come back: the OpenTelemetry span kind (Phoenix keeps its own
OpenInference kind instead; spans read back are INTERNAL), the resource (no service name), and time below the
microsecond. Phoenix adds OpenInference attributes it derives from `gen_ai.*` ones (`tool.name`, `llm.*`,
`input.value`...); they come back with the span's own.

The project is `?project=NAME` in the location or `PHOENIX_PROJECT_NAME`; without either, every project is read.
`PHOENIX_API_KEY`, when set, is sent as a bearer token (Phoenix with authentication on).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .. import semconv as sc
from ..conventions import is_content_event
from ..records import ExceptionInfo, SpanRecord, with_event_content
from . import SessionSummary, SourceError
from ._http import HttpClient, Params
from ._remote import RemoteSource
from ._scan import WindowPage

__all__ = ["PhoenixSource", "open_source", "record_from_phoenix_span"]

PAGE_SIZE = 1000
"""Phoenix's largest page."""
MAX_SPANS = 200_000
"""The most spans one question reads, bounding memory."""
_TRACES_PER_REQUEST = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def open_source(location: str) -> PhoenixSource:
    """The Phoenix at `phoenix+http://host:6006`. Raises `SourceError` for a malformed location."""
    return PhoenixSource(location)


class PhoenixSource(RemoteSource):
    """Sessions in an Arize Phoenix server."""

    what = "Phoenix"
    scheme = "phoenix"
    counted_by = "root spans of the window from Phoenix's span query, paged"
    page_size_default = 1000

    def __init__(self, location: str) -> None:
        super().__init__(location)
        key = os.environ.get("PHOENIX_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = HttpClient(self.where, what=self.what, headers=headers)
        project = self.where.option("project", "PHOENIX_PROJECT_NAME")
        self._projects = [project] if project else None

    def projects(self) -> list[str]:
        """The projects read: the one named, else every project of the server."""
        if self._projects is not None:
            return list(self._projects)
        names: list[str] = []
        cursor: str | None = None
        while True:
            document = self.client.get_json("/v1/projects", {"limit": 100, "cursor": cursor})
            data, cursor = _page(document, self.client.where, "GET /v1/projects")
            names.extend(str(p["name"]) for p in data if isinstance(p, Mapping) and p.get("name"))
            if not cursor:
                return names

    def trace_records(self, trace_id: str) -> list[SpanRecord] | None:
        records = self._spans_of_traces([trace_id])
        return records or None

    def find_records(
        self, attributes: Mapping[str, str], *, start_ns: int, end_ns: int, limit: int
    ) -> list[SpanRecord]:
        filters = [f"{key}:{json.dumps(value)}" for key, value in attributes.items()]
        window: Params = {"start_time": _iso(start_ns), "end_time": _iso(end_ns), "attribute": filters}
        trace_ids: list[str] = []
        for project in self.projects():
            for span in self._spans(project, window):
                try:
                    trace_id = _trace_id(span)
                except ValueError as error:
                    raise SourceError(f"{self.client.where} gave a span that cannot be read: {error}") from None
                if trace_id not in trace_ids:
                    trace_ids.append(trace_id)  # newest first, as Phoenix lists spans
                if len(trace_ids) >= limit:
                    break
            if len(trace_ids) >= limit:
                break
        return self._spans_of_traces(trace_ids)

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
        """The session root spans of the window (Phoenix's span query filtered by attribute: no trace fetched),
        cursor-paged up to `limit` traces; each one's summary read from its root span's totals."""
        filters = [f"{key}:{json.dumps(value)}" for key, value in query.items()]
        window: Params = {"start_time": _iso(start_ns), "end_time": _iso(end_ns), "attribute": filters}
        by_trace: dict[str, list[SessionSummary]] = {}
        for project in self.projects():
            for span in self._spans(project, window):
                try:
                    record = record_from_phoenix_span(span)
                except (ValueError, TypeError, KeyError) as error:
                    raise SourceError(f"{self.client.where} gave a span that cannot be read: {error}") from None
                if record.trace_id not in by_trace and len(by_trace) >= limit:
                    break
                by_trace.setdefault(record.trace_id, []).append(SessionSummary.from_root(record))
            if len(by_trace) >= limit:
                break
        traces = [(min(s.start_ns for s in found), found) for found in by_trace.values()]
        return WindowPage(raw=len(by_trace), traces=traces)

    # internals ---------------------------------------------------------------------------------------------------

    def _spans_of_traces(self, trace_ids: Sequence[str]) -> list[SpanRecord]:
        records: list[SpanRecord] = []
        for project in self.projects():
            for first in range(0, len(trace_ids), _TRACES_PER_REQUEST):
                chunk = list(trace_ids[first : first + _TRACES_PER_REQUEST])
                for span in self._spans(project, {"trace_id": chunk}):
                    try:
                        records.append(record_from_phoenix_span(span))
                    except (ValueError, TypeError, KeyError) as error:
                        raise SourceError(f"{self.client.where} gave a span that cannot be read: {error}") from None
        return records

    def _spans(self, project: str, params: Params) -> Iterator[Mapping[str, Any]]:
        """Every span of `project` that matches `params`, page after page, newest first. Raises `SourceError`."""
        path = f"/v1/projects/{urllib.parse.quote(project, safe='')}/spans"
        cursor: str | None = None
        count = 0
        while True:
            reply = self.client.get(path, {**params, "limit": PAGE_SIZE, "cursor": cursor})
            if reply.status == 404 and reply.body.lstrip()[:1] != b"<":
                if self._projects is not None:
                    raise SourceError(f"{self.client.where} has no project {project!r} ({reply.excerpt()})")
                return  # a project deleted since it was listed
            self.client.check(reply)
            data, cursor = _page(self.client.parse(reply), self.client.where, reply.request)
            for span in data:
                if isinstance(span, Mapping):
                    yield span
            count += len(data)
            if count > MAX_SPANS:
                raise SourceError(
                    f"{self.client.where}: more than {MAX_SPANS} spans match; narrow the window (?lookback=) or "
                    "the number of traces (?limit=)"
                )
            if not cursor:
                return


def _page(document: Any, where: str, request: str) -> tuple[list[Any], str | None]:
    if not isinstance(document, Mapping) or not isinstance(document.get("data"), list):
        raise SourceError(f"{where} answered {request} with something that is not a page of data")
    cursor = document.get("next_cursor")
    return document["data"], str(cursor) if cursor else None


def _iso(ns: int) -> str:
    return (_EPOCH + timedelta(microseconds=ns // 1000)).isoformat()


def _ns(text: Any) -> int | None:
    """ns since the epoch of an ISO 8601 time (naive times are UTC, as Phoenix stores them)."""
    if text in (None, ""):
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _hex(value: Any, digits: int, what: str) -> str:
    text = str(value or "").strip().lower()
    if not text or len(text) > digits or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{what} {value!r} is not a hex id")
    return text.rjust(digits, "0")


def _trace_id(span: Mapping[str, Any]) -> str:
    context = span.get("context") or {}
    return _hex(context.get("trace_id") if isinstance(context, Mapping) else None, 32, "trace_id")


def _exceptions(events: Any) -> tuple[ExceptionInfo, ...]:
    found = []
    for event in events or []:
        if not isinstance(event, Mapping) or event.get("name") != "exception":
            continue
        attributes = event.get("attributes") or {}
        stacktrace = attributes.get(sc.EXCEPTION_STACKTRACE)
        found.append(
            ExceptionInfo(
                type=str(attributes.get(sc.EXCEPTION_TYPE) or "Exception"),
                message=str(attributes.get(sc.EXCEPTION_MESSAGE) or ""),
                stacktrace=None if stacktrace is None else str(stacktrace),
            )
        )
    return tuple(found)


def _content_events(events: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """A span's GenAI content events, as `(name, attributes)` (see `records.with_event_content`)."""
    return [
        (str(event["name"]), event.get("attributes") or {})
        for event in events or []
        if isinstance(event, Mapping)
        and is_content_event(str(event.get("name")))
        and isinstance(event.get("attributes") or {}, Mapping)
    ]


def record_from_phoenix_span(span: Mapping[str, Any]) -> SpanRecord:
    """The record of one span as Phoenix's REST API gives it. Raises `ValueError` for a malformed span."""
    context = span.get("context") or {}
    if not isinstance(context, Mapping):
        raise ValueError("a span's context is not an object")
    parent = span.get("parent_id")
    attributes = span.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise ValueError("a span's attributes are not an object")
    status = str(span.get("status_code") or "UNSET").upper()
    return SpanRecord(
        trace_id=_trace_id(span),
        span_id=_hex(context.get("span_id"), 16, "span_id"),
        parent_span_id=_hex(parent, 16, "parent_id") if parent else None,
        name=str(span.get("name", "")),
        kind="INTERNAL",
        start_ns=_ns(span.get("start_time")) or 0,
        end_ns=_ns(span.get("end_time")),
        attributes=with_event_content(dict(attributes), _content_events(span.get("events"))),
        status_code=status if status in ("OK", "ERROR") else "UNSET",
        status_message=str(span.get("status_message") or "") or None,
        exceptions=_exceptions(span.get("events")),
        service_name=None,
    )
