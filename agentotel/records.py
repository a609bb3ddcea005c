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

log = logging.getLogger("agentotel")


@dataclass(frozen=True)
class ExceptionInfo:
    """An exception recorded on a span: its type, message and (when recorded) stack trace."""

    type: str
    message: str
    stacktrace: str | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass
class SpanRecord:
    """One span, as any source gives it. Ids are lowercase hex (32 digits for traces, 16 for spans)."""

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


def _exceptions(span: ReadableSpan) -> tuple[ExceptionInfo, ...]:
    found = []
    for event in span.events:
        if event.name != "exception":
            continue
        attrs = event.attributes or {}
        found.append(
            ExceptionInfo(
                type=str(attrs.get(sc.EXCEPTION_TYPE, "Exception")),
                message=str(attrs.get(sc.EXCEPTION_MESSAGE, "")),
                stacktrace=str(attrs[sc.EXCEPTION_STACKTRACE]) if sc.EXCEPTION_STACKTRACE in attrs else None,
            )
        )
    return tuple(found)


_KIND_NAMES = {kind: kind.name for kind in SpanKind}
_STATUS_NAMES = {code: code.name for code in StatusCode}


def record_from_span(span: ReadableSpan) -> SpanRecord:
    """The record of an SDK span. Keeps a reference to the span's (immutable) attributes rather than a copy."""
    context = span.context
    parent = span.parent
    resource = span.resource
    return SpanRecord(
        trace_id=format_trace_id(context.trace_id) if context else "0" * 32,
        span_id=format_span_id(context.span_id) if context else "0" * 16,
        parent_span_id=format_span_id(parent.span_id) if parent is not None else None,
        name=span.name,
        kind=_KIND_NAMES.get(span.kind, "INTERNAL"),
        start_ns=span.start_time or 0,
        end_ns=span.end_time,
        attributes=span.attributes or {},
        status_code=_STATUS_NAMES.get(span.status.status_code, "UNSET"),
        status_message=span.status.description,
        exceptions=_exceptions(span) if span.events else (),
        service_name=str(resource.attributes.get(sc.SERVICE_NAME)) if resource is not None else None,
    )


def records_from_spans(spans: Sequence[ReadableSpan]) -> list[SpanRecord]:
    """Records of SDK spans, such as an `InMemorySpanExporter` holds."""
    return [record_from_span(span) for span in spans]
