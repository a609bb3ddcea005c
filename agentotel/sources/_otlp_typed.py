"""OTLP JSON read straight into span records by `msgspec` (the `fast` extra), for files as exporters write them.

The general reader (`otlp_json.py`) parses with the standard library into dicts and lists (about five million
objects for a session of 100,000 spans), then walks them. `msgspec` decodes into typed structs instead, skipping
those objects: a 100,000-span file is read in about a third of the time.

Only the usual shape is taken: every field a known OTLP JSON field in camelCase, every value of the type the
encoding writes (ids as text, 64-bit integers as text or numbers, enums as numbers or names). Anything else — an
unknown or snake_case field, a `null`, an odd id or time — makes `read_typed` answer `None`, and the caller reads the
file with the general reader, which gives the same records for what both take (`tests/test_sources_file.py`
compares them) and the error messages for what is not OTLP.
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from .. import semconv as sc
from ..conventions import is_content_event
from ..records import ExceptionInfo, SpanRecord, with_event_content
from .otlp_json import (
    _FAST_KINDS,
    _FAST_STATUS,
    _INTERNED_LENGTH,
    _KINDS,
    _MAX_NS,
    _STATUS,
    _enum,
    _Memo,
    _span_id,
    _Unusual,
)

__all__ = ["read_typed"]


class AnyValue(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    string_value: str | UnsetType = UNSET
    bool_value: bool | UnsetType = UNSET
    int_value: int | str | UnsetType = UNSET
    double_value: float | int | str | UnsetType = UNSET
    array_value: ArrayValue | UnsetType = UNSET
    kvlist_value: KeyValueList | UnsetType = UNSET
    bytes_value: str | UnsetType = UNSET


class ArrayValue(Struct, forbid_unknown_fields=True, gc=False):
    values: list[AnyValue] = []


class KeyValue(Struct, forbid_unknown_fields=True, gc=False):
    key: str
    value: AnyValue | UnsetType = UNSET


class KeyValueList(Struct, forbid_unknown_fields=True, gc=False):
    values: list[KeyValue] = []


class Status(Struct, forbid_unknown_fields=True, gc=False):
    code: int | str | UnsetType = UNSET
    message: str | UnsetType = UNSET


class Event(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    name: str | UnsetType = UNSET
    time_unix_nano: int | str | UnsetType = UNSET
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0


class Span(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    trace_id: str
    span_id: str
    trace_state: str = ""
    parent_span_id: str | UnsetType = UNSET
    flags: int = 0
    name: str = ""
    kind: int | str | UnsetType = UNSET
    start_time_unix_nano: int | str | UnsetType = UNSET
    end_time_unix_nano: int | str | UnsetType = UNSET
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0
    events: list[Event] = []
    dropped_events_count: int = 0
    links: list[Any] = []
    dropped_links_count: int = 0
    status: Status | UnsetType = UNSET


class Scope(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    name: str = ""
    version: str = ""
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0


class ScopeSpans(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    scope: Scope | UnsetType = UNSET
    spans: list[Span] = []
    schema_url: str = ""


class Resource(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    attributes: list[KeyValue] = []
    dropped_attributes_count: int = 0
    entity_refs: list[Any] = []


class ResourceSpans(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    resource: Resource | UnsetType = UNSET
    scope_spans: list[ScopeSpans] = []
    schema_url: str = ""


class TracesDocument(Struct, rename="camel", forbid_unknown_fields=True, gc=False):
    resource_spans: list[ResourceSpans]


_decoder = msgspec.json.Decoder(TracesDocument)


def _integer(value: int | str) -> int:
    """What `otlp_json._int` answers for the integers the encoding writes (a number, or decimal digits)."""
    if type(value) is int:
        return value
    if type(value) is str and value.isdigit() and value.isascii():
        return int(value)
    raise _Unusual


def _value(value: AnyValue, memo: _Memo) -> Any:
    """`otlp_json._value` of an `AnyValue` (the same precedence of its fields)."""
    raw: Any = value.string_value
    if raw is not UNSET:
        return memo.strings.setdefault(raw, raw) if len(raw) <= _INTERNED_LENGTH else raw
    if value.bool_value is not UNSET:
        return value.bool_value
    raw = value.int_value
    if raw is not UNSET:
        return _integer(raw)
    raw = value.double_value
    if raw is not UNSET:
        try:
            return float(raw)
        except ValueError:
            raise _Unusual from None
    array = value.array_value
    if isinstance(array, ArrayValue):
        return [_value(element, memo) for element in array.values]
    kvlist = value.kvlist_value
    if isinstance(kvlist, KeyValueList):
        return _attributes(kvlist.values, memo)
    if value.bytes_value is not UNSET:
        return value.bytes_value
    return None


def _attributes(items: list[KeyValue], memo: _Memo) -> dict[str, Any]:
    """`otlp_json._attributes`: the text and integer values nearly every attribute holds are read here, inline
    (this runs for every attribute of every span), the others by `_value`."""
    attributes: dict[str, Any] = {}
    intern = memo.strings.setdefault
    unset = UNSET
    for item in items:
        value = item.value
        if value is unset:
            continue
        key = item.key
        raw: Any = value.string_value
        if raw is not unset:
            attributes[intern(key, key)] = intern(raw, raw) if len(raw) <= _INTERNED_LENGTH else raw
            continue
        raw = value.int_value
        if type(raw) is str and value.bool_value is unset and raw.isdigit() and raw.isascii():
            attributes[intern(key, key)] = int(raw)
            continue
        found = _value(value, memo)
        if found is not None:
            attributes[intern(key, key)] = found
    return attributes


def _time(value: int | str | UnsetType) -> int:
    ns = 0 if value is UNSET else _integer(value)
    if not 0 <= ns < _MAX_NS:
        raise _Unusual
    return ns


def _exceptions(events: list[Event], memo: _Memo) -> tuple[ExceptionInfo, ...]:
    found = []
    for event in events:
        if event.name != "exception":
            continue
        found.append(ExceptionInfo.from_attributes(_attributes(event.attributes, memo)))
    return tuple(found)


def _record(span: Span, service_name: str | None, memo: _Memo) -> SpanRecord:
    trace_id = memo.trace_id(span.trace_id)
    span_id = _span_id(span.span_id)
    parent: Any = span.parent_span_id
    parent_id = None if parent is UNSET or parent == "" else memo.parent_id(parent)
    kind: Any = span.kind
    kind = None if kind is UNSET else kind
    end: Any = span.end_time_unix_nano
    status = span.status
    if status is UNSET:
        status_code, status_message = "UNSET", None
    else:
        code = None if status.code is UNSET else status.code
        status_code = _FAST_STATUS.get(code) or _enum(code, _STATUS, "STATUS_CODE_", "UNSET")
        message = status.message
        status_message = None if message is UNSET or message == "" else message
    start: Any = span.start_time_unix_nano
    if type(start) is str and start.isdigit() and start.isascii() and len(start) < 19:  # below 2**63: in range
        start = int(start)
    else:
        start = _time(start)
    if end is UNSET or end in ("", 0, "0"):
        end = None
    elif type(end) is str and end.isdigit() and end.isascii() and len(end) < 19:
        end = int(end)
    else:
        end = _time(end)
    attributes: Any = _attributes(span.attributes, memo)
    if span.events:
        content: list[tuple[str, Any]] = [
            (e.name, _attributes(e.attributes, memo))
            for e in span.events
            if isinstance(e.name, str) and is_content_event(e.name)
        ]
        if content:
            attributes = with_event_content(attributes, content)
    return SpanRecord(
        trace_id,
        span_id,
        parent_id,
        memo.strings.setdefault(span.name, span.name),
        _FAST_KINDS.get(kind) or _enum(kind, _KINDS, "SPAN_KIND_", "INTERNAL"),
        start,
        end,
        attributes,
        status_code,
        status_message,
        _exceptions(span.events, memo) if span.events else (),
        service_name,
    )


def _documents(data: bytes) -> tuple[list[TracesDocument], int | None]:
    """The file as one document, else as one document per line (JSON Lines); and the number of its last line when
    that one was left out as incomplete (not JSON, no line break after it), as `otlp_json` does."""
    try:
        return ([_decoder.decode(data)], None)
    except msgspec.DecodeError:
        lines = data.splitlines()
        numbered = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
        if len(numbered) <= 1:
            raise
        skipped = None
        if data[-1:] not in (b"\n", b"\r") and numbered[-1][0] == len(lines) and not _is_json(numbered[-1][1]):
            skipped = numbered.pop()[0]
        return ([_decoder.decode(line) for _, line in numbered], skipped)


def _is_json(line: bytes) -> bool:
    """Whether the line is JSON, as the general reader decides it (`json`, not `msgspec`: `NaN` is JSON to it).
    Raises `RecursionError` for one nested too deeply to tell."""
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def read_typed(data: bytes) -> list[SpanRecord] | None:
    """The span records of an OTLP JSON or JSON Lines file's bytes, or `None` when the file is not of the usual
    shape (the general reader then reads it, and explains what is wrong with it). Never raises."""
    read = read_typed_lines(data)
    return None if read is None else read[0]


def read_typed_lines(data: bytes) -> tuple[list[SpanRecord], int | None] | None:
    """`read_typed`, and the number of the last line when it was left out as incomplete. Never raises."""
    try:
        documents, skipped = _documents(data.removeprefix(b"\xef\xbb\xbf"))
        memo = _Memo()
        records: list[SpanRecord] = []
        append = records.append
        for document in documents:
            for resource_spans in document.resource_spans:
                resource = resource_spans.resource
                service = None if resource is UNSET else _attributes(resource.attributes, memo).get(sc.SERVICE_NAME)
                service_name = None if service is None else str(service)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        append(_record(span, service_name, memo))
        return (records, skipped)
    except Exception:  # not the usual shape (or a fault here): the general reader reads it, or says what is wrong
        return None
