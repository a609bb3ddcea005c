"""OTLP JSON files as a source: `ExportTraceServiceRequest` / `TracesData` documents in the OTLP "JSON Protobuf
Encoding", one per file or one per line (the OpenTelemetry Collector `file` exporter's JSON Lines).

What the encoding says, and what is accepted beyond it because real files differ:
- trace and span ids are hex strings (base64, the generic protobuf JSON mapping, is accepted too);
- enums (span kind, status code) are integers (their names, `SPAN_KIND_CLIENT`, are accepted too);
- 64-bit integers (times, int attribute values) may be strings or numbers;
- field names are lowerCamelCase (`resourceSpans`; the proto names `resource_spans` are accepted too, and the
  old `instrumentationLibrarySpans`).

A JSON Lines file whose last line is incomplete (not JSON, no line break after it: a Collector still writing it) is
read without that line, with one warning; an incomplete line anywhere else is an error naming it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import semconv as sc
from .._gc import paused_gc
from ..conventions import is_content_event
from ..records import ExceptionInfo, SpanRecord, with_event_content
from . import RecordsSource, SourceError

__all__ = ["OtlpJsonSource", "read_otlp_json", "records_from_otlp_json"]

log = logging.getLogger("agentotel")

_KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR"}
_HEX = frozenset("0123456789abcdefABCDEF")
_LOWER_HEX = re.compile("[0-9a-f]+")
"""What the encoding writes; checked first, as it is ten times faster than the set of the id's characters."""
_ZEROS = {8: "0" * 16, 16: "0" * 32}
_MAX_NS = 2**63

_FAST_KINDS: dict[Any, str] = {None: "INTERNAL", **_KINDS}
_FAST_KINDS.update({f"SPAN_KIND_{name}": name for name in ("INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")})
_FAST_KINDS["SPAN_KIND_UNSPECIFIED"] = "INTERNAL"
"""What `_enum` answers for the values nearly every file holds (integers, their names, none): one dict lookup.
Only values `_enum` maps the same way are keys (`True` and `1.0` equal `1`, and `_enum` reads them as 1 too)."""
_FAST_STATUS: dict[Any, str] = {None: "UNSET", **_STATUS}
_FAST_STATUS.update({f"STATUS_CODE_{name}": name for name in ("UNSET", "OK", "ERROR")})

_KNOWN_STRINGS = {value: value for value in vars(sc).values() if type(value) is str}
_KNOWN_STRINGS["span"] = "span"
"""Attribute names and values agentotel reads, as the objects its code compares them with (see `_Memo`)."""


class _BadDocument(ValueError):
    """A document that is JSON but not OTLP traces; the message says what is wrong."""


def _field(obj: Mapping[str, Any], camel: str, snake: str | None = None) -> Any:
    if camel in obj:
        return obj[camel]
    return obj.get(snake) if snake is not None else None


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _BadDocument(f"{what} is not a list")
    return value


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _BadDocument(f"{what} is not an object")
    return value


def _time(value: Any, what: str) -> int:
    """A time in ns since the epoch, within what a 64-bit OTLP field holds."""
    ns = _int(value, what)
    if not 0 <= ns < 2**63:
        raise _BadDocument(f"{what} {value!r} is out of range")
    return ns


def _id(value: Any, size: int, what: str) -> str | None:
    """An id as lowercase hex of `size` bytes, from hex or base64 text; `None` for an empty or all-zero id."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _BadDocument(f"{what} {value!r} is not a string")
    if len(value) == size * 2 and (_LOWER_HEX.fullmatch(value) or set(value) <= _HEX):
        text = value.lower()
    else:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != size:
            raise _BadDocument(f"{what} {value!r} is not {size * 2} hex digits")
        text = raw.hex()
    return None if text == _ZEROS[size] else text


def _int(value: Any, what: str) -> int:
    if type(value) is str and value.isdigit() and value.isascii():  # what the encoding writes for 64-bit ints
        return int(value)
    if isinstance(value, bool):
        raise _BadDocument(f"{what} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _BadDocument(f"{what} {value!r} is not an integer")


def _enum(value: Any, names: Mapping[int, str], prefix: str, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        name = value.upper().removeprefix(prefix)
        return "INTERNAL" if name == "UNSPECIFIED" and prefix == "SPAN_KIND_" else name
    try:
        return names.get(int(value), default)
    except (TypeError, ValueError):
        return default


def _value(any_value: Any) -> Any:
    """The Python value of an OTLP `AnyValue`."""
    if not isinstance(any_value, Mapping):
        return any_value
    if "stringValue" in any_value or "string_value" in any_value:
        return str(_field(any_value, "stringValue", "string_value"))
    if "boolValue" in any_value or "bool_value" in any_value:
        return bool(_field(any_value, "boolValue", "bool_value"))
    if "intValue" in any_value or "int_value" in any_value:
        return _int(_field(any_value, "intValue", "int_value"), "intValue")
    if "doubleValue" in any_value or "double_value" in any_value:
        raw = _field(any_value, "doubleValue", "double_value")
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
            raise _BadDocument(f"doubleValue {raw!r} is not a number")
        return float(raw)  # "NaN" and "Infinity" arrive as strings
    if "arrayValue" in any_value or "array_value" in any_value:
        array = _object(_field(any_value, "arrayValue", "array_value"), "arrayValue")
        return [_value(v) for v in _list(array.get("values"), "arrayValue.values")]
    if "kvlistValue" in any_value or "kvlist_value" in any_value:
        kvlist = _object(_field(any_value, "kvlistValue", "kvlist_value"), "kvlistValue")
        return _attributes(kvlist.get("values"))
    if "bytesValue" in any_value or "bytes_value" in any_value:
        return str(_field(any_value, "bytesValue", "bytes_value"))
    return None


def _attributes(values: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for item in _list(values, "attributes"):
        # Fast path for what nearly every attribute is, `{"key": "...", "value": {"stringValue"|"intValue": ...}}`:
        # it runs for every attribute of every span (a million for a session of 100,000 spans).
        if type(item) is dict:
            key = item.get("key")
            value = item.get("value")
            if type(key) is str and type(value) is dict and len(value) == 1:
                text = value.get("stringValue")
                if type(text) is str:
                    result[key] = text
                    continue
                number = value.get("intValue")
                if type(number) is str and number.isdigit() and number.isascii():
                    result[key] = int(number)
                    continue
        if not isinstance(item, Mapping) or "key" not in item:
            raise _BadDocument("an attribute has no key")
        value = _value(item.get("value"))
        if value is not None:
            result[str(item["key"])] = value
    return result


def _exceptions(events: Any) -> tuple[ExceptionInfo, ...]:
    found = []
    for event in _list(events, "events"):
        if not isinstance(event, Mapping) or event.get("name") != "exception":
            continue
        found.append(ExceptionInfo.from_attributes(_attributes(event.get("attributes"))))
    return tuple(found)


def _content_events(events: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """A span's GenAI content events, as `(name, attributes)` (see `records.with_event_content`)."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for event in events if isinstance(events, list) else ():
        if isinstance(event, Mapping) and is_content_event(str(event.get("name"))):
            try:
                found.append((str(event["name"]), _attributes(event.get("attributes"))))
            except _BadDocument:
                continue
    return found


def _span(span: Mapping[str, Any], service_name: str | None) -> SpanRecord:
    trace_id = _id(_field(span, "traceId", "trace_id"), 16, "traceId")
    span_id = _id(_field(span, "spanId", "span_id"), 8, "spanId")
    if trace_id is None or span_id is None:
        raise _BadDocument("a span has no traceId or spanId")
    status = _field(span, "status") or {}
    if not isinstance(status, Mapping):
        raise _BadDocument("a span's status is not an object")
    end = _field(span, "endTimeUnixNano", "end_time_unix_nano")
    end_ns = None if end in (None, "", 0, "0") else _time(end, "endTimeUnixNano")
    message = status.get("message")
    events = span.get("events")
    attributes: Mapping[str, Any] = _attributes(span.get("attributes"))
    if events:
        attributes = with_event_content(attributes, _content_events(events))
    # Positional: keywords add a third to the cost of building a record, and this runs for every span.
    return SpanRecord(
        trace_id,
        span_id,
        _id(_field(span, "parentSpanId", "parent_span_id"), 8, "parentSpanId"),
        str(span.get("name", "")),
        _enum(span.get("kind"), _KINDS, "SPAN_KIND_", "INTERNAL"),
        _time(_field(span, "startTimeUnixNano", "start_time_unix_nano") or 0, "startTimeUnixNano"),
        end_ns,
        attributes,
        _enum(status.get("code"), _STATUS, "STATUS_CODE_", "UNSET"),
        str(message) if message not in (None, "") else None,
        _exceptions(events) if events else (),
        service_name,
    )


_INTERNED_LENGTH = 64
"""Text values up to this length are shared (`_Memo`): names, kinds, models, session ids. Longer ones (content,
stack traces) are mostly unique, and hashing them would cost more than sharing them saves."""


class _Memo:
    """What the records of one read share: each attribute name, span name and short text value as one object (the
    names and values agentotel compares them with as the very objects it compares them with), and each trace id's
    and parent span id's normalised text.

    Building sessions looks these strings up over and over (attribute names, session ids, kinds, models): a lookup
    of the same object is settled by identity, and a few shared objects stay in the CPU's caches where a fresh
    string per span does not (building a 100,000-span session: 0.49 s with a string per attribute, 0.33 s shared).
    """

    __slots__ = ("span_ids", "strings", "trace_ids")

    def __init__(self) -> None:
        self.strings: dict[str, str] = dict(_KNOWN_STRINGS)
        self.trace_ids: dict[Any, str] = {}
        self.span_ids: dict[Any, str] = {}

    def trace_id(self, raw: Any) -> str:
        """`_id` of a trace id, worked out once per distinct value; raises `_Unusual` for none (`_span` explains)."""
        found = self.trace_ids.get(raw)
        if found is None:
            found = _id(raw, 16, "traceId")
            if found is None:
                raise _Unusual
            self.trace_ids[raw] = found
        return found

    def parent_id(self, raw: Any) -> str | None:
        """`_id` of a parent span id (many spans share a parent), worked out once per distinct value."""
        found = self.span_ids.get(raw)
        if found is None:
            found = _id(raw, 8, "parentSpanId")
            if found is not None:
                self.span_ids[raw] = found
        return found


def _span_id(raw: Any) -> str:
    """`_id` of a span id, tested first for lowercase hex of the right length by a round trip through bytes (what
    `_id` returns as it is); raises `_Unusual` for none."""
    if type(raw) is str and len(raw) == 16 and _fromhex(raw).hex() == raw and raw != _ZEROS[8]:
        return raw
    found = _id(raw, 8, "spanId")
    if found is None:
        raise _Unusual
    return found


class _Unusual(Exception):
    """A span `_fast_span` leaves to `_span`."""


_fromhex = bytes.fromhex


def _fast_span(span: Any, service_name: str | None, memo: _Memo) -> SpanRecord:
    """`_span` for spans as the OTLP JSON encoding writes them, parsed by `json.loads` (camelCase fields, lowercase
    hex ids, integer enums, 64-bit integers as decimal text, attributes of the usual value types): the same record
    with fewer tests and calls (callgrind, spans of the benchmark's session: 75,000 -> 45,000 instructions a span,
    the sharing of strings through `memo` included).

    Raises (anything) for a span it does not take: the caller then reads that span with `_span`, which says what is
    wrong with it, if anything. Every record it returns equals the one `_span` returns for the span
    (`tests/test_sources_file.py` compares them on odd spans); `memo` only ever holds what `_id` returns for an id
    and strings equal to their keys."""
    intern = memo.strings.setdefault
    trace_id = memo.trace_id(span["traceId"])
    span_id = _span_id(span["spanId"])
    raw = span.get("parentSpanId")
    if raw is None or raw == "":
        if "parentSpanId" not in span and "parent_span_id" in span:
            raise _Unusual
        parent_id = None
    else:
        parent_id = memo.parent_id(raw)
    name = span.get("name", "")
    if type(name) is not str:
        name = str(name)
    name = intern(name, name)
    raw = span.get("kind")
    kind = _FAST_KINDS.get(raw) or _enum(raw, _KINDS, "SPAN_KIND_", "INTERNAL")
    raw = span.get("startTimeUnixNano")
    if type(raw) is str:
        start_ns = int(raw)  # what `_int` returns for any text it takes
        if not 0 <= start_ns < _MAX_NS:
            raise _Unusual
    else:
        start_ns = _time(_field(span, "startTimeUnixNano", "start_time_unix_nano") or 0, "startTimeUnixNano")
    raw = span.get("endTimeUnixNano")
    end_ns: int | None
    if type(raw) is str and raw != "0" and raw != "":
        end_ns = int(raw)
        if not 0 <= end_ns < _MAX_NS:
            raise _Unusual
    else:
        raw = _field(span, "endTimeUnixNano", "end_time_unix_nano")
        end_ns = None if raw in (None, "", 0, "0") else _time(raw, "endTimeUnixNano")
    status = span.get("status")
    if status:
        if type(status) is not dict:
            raise _Unusual
        raw = status.get("code")
        status_code = _FAST_STATUS.get(raw) or _enum(raw, _STATUS, "STATUS_CODE_", "UNSET")
        raw = status.get("message")
        status_message = str(raw) if raw not in (None, "") else None
    else:
        status_code, status_message = "UNSET", None
    attributes: dict[str, Any] = {}
    items = span.get("attributes")
    if items is not None:
        if type(items) is not list:
            raise _Unusual
        for item in items:
            key = item["key"]
            value = item["value"]
            key = intern(key, key) if type(key) is str else str(key)
            # `_value`'s answers for the usual cases, without its tests for the field names of the other cases:
            # a text `stringValue` wins over any other field there, the others are read only when alone.
            raw = value.get("stringValue")
            if type(raw) is str:
                attributes[key] = intern(raw, raw) if len(raw) <= _INTERNED_LENGTH else raw
                continue
            if len(value) == 1:
                raw = value.get("intValue")
                if type(raw) is str:
                    attributes[key] = int(raw)  # what `_int` returns for any text it takes
                    continue
                raw = value.get("arrayValue")
                if type(raw) is dict:
                    values = raw.get("values")
                    if type(values) is list:
                        array: list[Any] = []
                        for element in values:
                            text = element.get("stringValue") if type(element) is dict else None
                            if type(text) is str:
                                array.append(intern(text, text) if len(text) <= _INTERNED_LENGTH else text)
                            else:
                                array.append(_value(element))
                        attributes[key] = array
                        continue
            raw = _value(value)
            if raw is not None:
                attributes[key] = raw
    events = span.get("events")
    folded: Mapping[str, Any] = with_event_content(attributes, _content_events(events)) if events else attributes
    # Positional: keywords add a third to the cost of building a record, and this runs for every span.
    return SpanRecord(
        trace_id,
        span_id,
        parent_id,
        name,
        kind,
        start_ns,
        end_ns,
        folded,
        status_code,
        status_message,
        _exceptions(events) if events else (),
        service_name,
    )


def _resource_spans(document: Any) -> Iterator[Any]:
    """The `resourceSpans` of a document, or of each document in a JSON array."""
    if isinstance(document, list):
        for item in document:
            yield from _resource_spans(item)
        return
    if not isinstance(document, Mapping):
        raise _BadDocument("not an OTLP traces document (expected an object with resourceSpans)")
    if "resourceSpans" not in document and "resource_spans" not in document:
        if "resourceMetrics" in document or "resourceLogs" in document:
            raise _BadDocument("holds metrics or logs, not traces")
        raise _BadDocument("not an OTLP traces document (no resourceSpans)")
    yield from _list(_field(document, "resourceSpans", "resource_spans"), "resourceSpans")


def records_from_otlp_json(document: Any) -> list[SpanRecord]:
    """Span records of one parsed OTLP JSON document (`ExportTraceServiceRequest` or `TracesData`), or of a list
    of them. Raises `ValueError` naming what is not OTLP, and nothing else."""
    records: list[SpanRecord] = []
    _records_into(records, document, _Memo())
    return records


def _records_into(records: list[SpanRecord], document: Any, memo: _Memo) -> None:
    """Appends the records of `document` (see `records_from_otlp_json`) to `records`, sharing `memo` with the other
    documents of a file."""
    try:
        _records(records, document, memo)
    except _BadDocument:
        raise
    except RecursionError:
        raise _BadDocument("nested too deeply") from None
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError, ValueError) as error:
        # A shape the checks above did not foresee: still a document that is not OTLP, said in one line.
        raise _BadDocument(f"malformed ({type(error).__name__}: {' '.join(str(error).split())[:200]})") from None


def _records(records: list[SpanRecord], document: Any, memo: _Memo) -> None:
    append = records.append
    for resource_spans in _resource_spans(document):
        if not isinstance(resource_spans, Mapping):
            raise _BadDocument("a resourceSpans entry is not an object")
        resource = resource_spans.get("resource") or {}
        resource_attributes = _attributes(resource.get("attributes")) if isinstance(resource, Mapping) else {}
        service = resource_attributes.get(sc.SERVICE_NAME)
        service_name = None if service is None else str(service)
        scopes = _field(resource_spans, "scopeSpans", "scope_spans")
        if scopes is None:
            scopes = _field(resource_spans, "instrumentationLibrarySpans", "instrumentation_library_spans")
        for scope_spans in _list(scopes, "scopeSpans"):
            if not isinstance(scope_spans, Mapping):
                raise _BadDocument("a scopeSpans entry is not an object")
            for span in _list(scope_spans.get("spans"), "spans"):
                try:
                    append(_fast_span(span, service_name, memo))
                except Exception:
                    if not isinstance(span, Mapping):
                        raise _BadDocument("a span is not an object") from None
                    append(_span(span, service_name))


_decoder = json.JSONDecoder()
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
"""What `json.loads` skips around a document."""


def _after_space(text: str, index: int) -> int:
    match = _JSON_SPACE.match(text, index)
    return index if match is None else match.end()


def json_error_text(error: json.JSONDecodeError, *, line: bool = True) -> str:
    """What is wrong and where, in a phrase: `Expecting value at line 1, column 2`. Some of `json`'s messages end
    in "at" already (`Invalid control character at`): it is not said twice. `line=False` leaves the line out (the
    message names it)."""
    where = f"line {error.lineno}, column {error.colno}" if line else f"column {error.colno}"
    return f"{error.msg.removesuffix(' at')} at {where}"


def _documents(text: str) -> list[tuple[int | None, Any]]:
    """(line number or None, parsed document): the whole text as one JSON document, else one per line."""
    first: Any = None
    first_text: str | None = None
    try:
        if text.startswith("\ufeff"):
            return [(None, json.loads(text))]  # which refuses it, in its own words
        # What `json.loads(text)` does, keeping its first document when more follow (JSON Lines): that one is
        # not parsed again below if it is the first line.
        start = _after_space(text, 0)
        first, end = _decoder.raw_decode(text, start)
        after = _after_space(text, end)
        if after == len(text):
            return [(None, first)]
        first_text = text[start:end]
        whole_error = json.JSONDecodeError("Extra data", text, after)
    except RecursionError:
        raise _BadDocument("nested too deeply to be an OTLP document") from None
    except json.JSONDecodeError as error:
        whole_error = error
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if len(lines) <= 1:
        raise _BadDocument(f"not valid JSON ({json_error_text(whole_error)})") from None
    documents: list[tuple[int | None, Any]] = []
    for number, line in lines:
        if first_text is not None:
            # The first line is the document parsed above between JSON white space: the same document.
            reuse = line.strip(" \t\n\r") == first_text
            first_text = None
            if reuse:
                documents.append((number, first))
                continue
        try:
            documents.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise _BadDocument(f"line {number} is not valid JSON ({json_error_text(error, line=False)})") from None
        except RecursionError:
            raise _BadDocument(f"line {number} is nested too deeply to be an OTLP document") from None
    return documents


_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
"""Where `str.splitlines` (and so `_documents`) splits lines."""


def _without_incomplete_last_line(text: str) -> tuple[str, int] | None:
    """(the text before its last line, that line's number) when the last line is incomplete, as a writer still
    writing it leaves it: not JSON, no line break after it, a line with something in it before it. `None` for any
    other text."""
    if not text or text[-1] in _LINE_BREAKS:
        return None
    cut = max(text.rfind(mark) for mark in _LINE_BREAKS)
    if cut < 0:
        return None
    head, last = text[: cut + 1], text[cut + 1 :]
    if not head.strip() or not last.strip():
        return None
    try:
        json.loads(last)
    except RecursionError:
        return None  # too deep to tell: left to the error it makes
    except ValueError:
        return (head, len(head.splitlines()) + 1)
    return None


def _complete_documents(text: str, error: _BadDocument) -> tuple[list[tuple[int | None, Any]], int]:
    """The documents of every line but the last, and the last line's number, when `_documents(text)` failed on an
    incomplete last line only (`_without_incomplete_last_line`); otherwise raises `error`, what it failed with."""
    trimmed = _without_incomplete_last_line(text)
    if trimmed is None:
        raise error
    try:
        return (_documents(trimmed[0]), trimmed[1])
    except _BadDocument:
        raise error from None


def _warn_incomplete(path: Path, line: int) -> None:
    log.warning(
        "agentotel read %s without its last line (line %d), which is incomplete: a writer may still be writing it",
        path,
        line,
    )


def read_otlp_json(path: str | Path) -> list[SpanRecord]:
    """Span records of an OTLP JSON or JSON Lines file. Raises `SourceError` with a one-line message. An incomplete
    last line of JSON Lines is left out, with one warning (see the module's docstring)."""
    path = Path(path)
    if _read_typed is not None:  # the `fast` extra: typed decoding of files of the usual shape
        try:
            data = path.read_bytes()
        except OSError as error:
            raise SourceError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
        with paused_gc():
            typed = _read_typed(data)
        if typed is not None:
            if typed[1] is not None:
                _warn_incomplete(path, typed[1])
            return typed[0]
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise SourceError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    records: list[SpanRecord] = []
    memo = _Memo()
    skipped: int | None = None
    try:
        with paused_gc():  # millions of small acyclic objects: no collection while they are made (`_gc.py`)
            try:
                documents = _documents(text)
            except _BadDocument as error:
                documents, skipped = _complete_documents(text, error)
            for number, document in documents:
                try:
                    _records_into(records, document, memo)
                except (ValueError, TypeError) as error:
                    where = f" line {number}" if number is not None else ""
                    raise _BadDocument(f"{where.strip()}: {error}" if where else str(error)) from None
            # Freed before the collector is back on: its first collection then walks the records, not the
            # millions of objects of the parsed documents too.
            del documents
            document = None
    except _BadDocument as error:
        raise SourceError(f"{path} is not an OTLP JSON traces file: {error}") from None
    if skipped is not None:
        _warn_incomplete(path, skipped)
    return records


def _typed_reader() -> Callable[[bytes], tuple[list[SpanRecord], int | None] | None] | None:
    """`_otlp_typed.read_typed_lines` when `msgspec` (the `fast` extra) is installed, else `None`. Only a missing
    msgspec turns the fast path off: any other import failure (`_otlp_typed` imports this module's helpers, defined
    above this point) raises, so a broken import cycle cannot switch it off unnoticed."""
    try:
        import msgspec  # noqa: F401  # the extra's one package
    except ImportError:
        return None
    from ._otlp_typed import read_typed_lines

    return read_typed_lines


_read_typed = _typed_reader()


class OtlpJsonSource(RecordsSource):
    """Sessions in an OTLP JSON file, read whole when first asked."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(str(path))
        self.path = Path(path)

    def records(self) -> list[SpanRecord]:
        return read_otlp_json(self.path)
