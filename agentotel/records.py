"""The normalised span record: what every source of spans (live processor, exporters, files, backends) turns
spans into, so that sessions are rebuilt from them by one code path."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from . import semconv as sc
from ._sdk import span_attributes as span_attributes  # the read side's name for it (the store imports it)
from ._sdk import span_fields
from .conventions import fold_events, is_content_event, kind_of

log = logging.getLogger("agentotel")


@dataclass(frozen=True)
class ExceptionInfo:
    """An exception recorded on a span: its type, message and (when recorded) stack trace."""

    type: str
    message: str
    stacktrace: str | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type

    @classmethod
    def from_attributes(cls, attributes: Mapping[str, Any]) -> ExceptionInfo:
        """The exception an `exception` event's attributes describe (`exception.type`, `.message`, `.stacktrace`)."""
        stacktrace = attributes.get(sc.EXCEPTION_STACKTRACE)
        return cls(
            type=str(attributes.get(sc.EXCEPTION_TYPE, "Exception")),
            message=str(attributes.get(sc.EXCEPTION_MESSAGE, "")),
            stacktrace=None if stacktrace is None else str(stacktrace),
        )


@dataclass(slots=True)
class SpanRecord:
    """One span, as any source gives it. Ids are lowercase hex (32 digits for traces, 16 for spans).

    Slotted: live sessions keep up to `max_ended_sessions` sessions of records, so a record's size is memory.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int | None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    status_code: str = "UNSET"
    status_message: str | None = None
    exceptions: Sequence[ExceptionInfo] = ()
    service_name: str | None = None

    @property
    def failed(self) -> bool:
        return self.status_code == "ERROR"


def format_trace_id(value: int) -> str:
    return f"{value:032x}"


def format_span_id(value: int) -> str:
    return f"{value:016x}"


def _exceptions(events: Sequence[Any]) -> tuple[ExceptionInfo, ...]:
    found = []
    for event in events:
        if event.name != "exception":
            continue
        found.append(ExceptionInfo.from_attributes(event.attributes or {}))
    return tuple(found)


def with_event_content(
    attributes: Mapping[str, Any], events: Sequence[tuple[str, Mapping[str, Any]]]
) -> Mapping[str, Any]:
    """A span's attributes with the content its GenAI message events hold folded in (`conventions.fold_events`),
    for spans of instrumentations that write content as events; `attributes` itself when there is none. Every
    source calls this with its span's `(name, attributes)` events, so that a session reads the same wherever its
    spans come from. Never raises."""
    content = [(name, attrs) for name, attrs in events if is_content_event(name)]
    if not content:
        return attributes
    try:
        return fold_events(attributes, content, kind_of(attributes))
    except Exception:
        log.debug("Could not read the content events of a span", exc_info=True)
        return attributes


_KIND_NAMES = {kind: kind.name for kind in SpanKind}
_STATUS_NAMES = {code: code.name for code in StatusCode}


_service_names: tuple[object, str | None] = (None, None)
"""The last resource seen and its service name: a provider's spans share one resource object."""


def _service_name(resource: Any) -> str | None:
    global _service_names
    seen, name = _service_names
    if seen is resource:
        return name
    name = str(resource.attributes.get(sc.SERVICE_NAME)) if resource is not None else None
    _service_names = (resource, name)
    return name


_last_trace: tuple[int, str] = (-1, "")
_last_parent: tuple[int, str] = (-1, "")
"""The last trace id and parent span id formatted, with their hex: a session's spans share its trace id and most
share a parent, and formatting an id costs a sixth of building a record. Each is one tuple, replaced whole, so a
thread reads a matching pair."""


def _trace_hex(value: int) -> str:
    global _last_trace
    seen, text = _last_trace
    if seen != value:
        text = f"{value:032x}"
        _last_trace = (value, text)
    return text


def _parent_hex(value: int) -> str:
    global _last_parent
    seen, text = _last_parent
    if seen != value:
        text = f"{value:016x}"
        _last_parent = (value, text)
    return text


def record_from_span(span: ReadableSpan) -> SpanRecord:
    """The record of an SDK span. Keeps a reference to the span's attributes (immutable once it has ended) rather
    than a copy."""
    context, parent, name, kind, status, start, end, events, resource = span_fields(span)
    attributes = span_attributes(span)
    exceptions: tuple[ExceptionInfo, ...] = ()
    if events:
        exceptions = _exceptions(events)
        if len(exceptions) < len(events):
            attributes = with_event_content(attributes, [(e.name, e.attributes or {}) for e in events])
    # Positional arguments: keywords would add a third to the cost of building the record.
    return SpanRecord(
        _trace_hex(context.trace_id) if context else "0" * 32,
        f"{context.span_id:016x}" if context else "0" * 16,
        _parent_hex(parent.span_id) if parent is not None else None,
        name,
        _KIND_NAMES.get(kind, "INTERNAL"),
        start or 0,
        end,
        attributes,
        _STATUS_NAMES.get(status.status_code, "UNSET"),
        status.description,
        exceptions,
        _service_name(resource),
    )


def records_from_spans(spans: Sequence[ReadableSpan]) -> list[SpanRecord]:
    """Records of SDK spans, such as an `InMemorySpanExporter` holds."""
    return [record_from_span(span) for span in spans]
