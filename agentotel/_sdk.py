"""The one module that touches the OpenTelemetry SDK's private state: every other module goes through these
helpers (`tests/test_sdk_boundary.py` fails on an SDK-private name anywhere else).

Why there are any: the specification lets a processor's OnEnding change the span, but the Python SDK marks the span
ended before it calls `_on_ending`, so `set_attribute` there is dropped with a warning, and no public API removes an
attribute or an event at all. Between `_on_ending` and `on_end` the span is still private to its processors (no
exporter has seen it), so the `*_on_ending` functions write its attribute store and event list under the span's
lock, as the SDK itself does. The others are fast paths on what runs for every span, step and model call (README,
"Design notes"; benchmarks/README.md, tables 1b / 2b): reading a span's plain attribute dict instead of its mapping,
which answers a missing key by raising and catching a `KeyError`; writing attributes agentotel built itself without
the SDK's per-value checks; reading an ended span's fields without a property call each. Each checks that the
internals are what it expects and otherwise falls back to the public API (which may drop a change on an ended span,
logged at debug) — never raises.

Contract with the SDK, per version: the oldest allowed, 1.40.0 (`.ci/oldest-sdk.sh`), and the newest tested,
1.45.2 (the main suite). Each item: what is relied on; where 1.40 and 1.45 differ; what runs without it.
- `SpanProcessor._on_ending(span)`, called after the span is marked ended and before any `on_end`: both. It is the
  floor (older SDKs never call it: content would leave unredacted).
- `span._lock`, the lock the SDK takes to change a span: both. Without it: the public setters (a change to an ended
  span is then dropped, logged at debug).
- `span._attributes`, a `BoundedAttributes` with `_dict` (a plain `dict`), `_immutable` (set once the span ended),
  `maxlen`, `max_value_len`, item assignment and deletion: both (1.40 turns `_dict` into an `OrderedDict` once it
  evicts an attribute: then the public path). Without it: `span.attributes`, `set_attributes`.
- `BoundedAttributes._lock` and `_setitem_locked(key, value)`, its checked and counted insertion: 1.45 only (1.40
  has no `_setitem_locked`: `set_plain_attributes` takes `set_attributes` there, same result, slower).
- `span._events`, a `BoundedList` of `Event` with `_dq` (its deque) and `dropped`: both. Without it: `span.events`
  to read; events cannot be rewritten (the caller is told, and drops the content instead).
- `span._status`, `span._end_time`: both. Without them: `span.status`, `span.end_time`.
- `ReadableSpan`'s fields behind its properties (`_context`, `_parent`, `_name`, `_kind`, `_status`,
  `_start_time`, `_end_time`, `_events`, `_resource`): both, read only for a `ReadableSpan` itself; a subclass,
  and any other span, through the properties.
- `opentelemetry.sdk.trace._Span`, the class the SDK's tracer makes: both. Without it: `Span` only.

agentotel's own processors implement the hook as `on_ending` (`EndingProcessor` gives it the SDK's name); a
processor of someone else's is called through `forward_on_ending`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Event, ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import StatusCode

log = logging.getLogger("agentotel")


# --- the processor hook -----------------------------------------------------------------------------------------------


class EndingProcessor(SpanProcessor):
    """A span processor whose OnEnding hook is `on_ending(span)`: a subclass that defines `on_ending` has it called
    by the SDK too, under the SDK's private name `_on_ending` (the same function: no call in between)."""

    def on_ending(self, span: Span) -> None:
        """Called while the span ends: after the SDK marked it ended, before any processor's `on_end`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "on_ending" in cls.__dict__:
            setattr(cls, "_on_ending", cls.__dict__["on_ending"])  # noqa: B010 (a method of the SDK's, by name)


setattr(EndingProcessor, "_on_ending", EndingProcessor.on_ending)  # noqa: B010


def forward_on_ending(processors: Iterable[SpanProcessor], span: Span) -> None:
    """Calls each processor's OnEnding hook (the SDK's `_on_ending`), as the SDK's own multi-processor does; a
    processor that raises is logged at debug and the next one still runs. Never raises."""
    for processor in processors:
        try:
            processor._on_ending(span)
        except Exception:
            log.debug("An export processor failed while a span ended", exc_info=True)


# --- reading a span ---------------------------------------------------------------------------------------------------


def span_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """A span's attributes as a plain dict, without a copy when the SDK keeps them in one. Never raises.

    The SDK's mapping (`BoundedAttributes`, behind a `MappingProxyType` once the span has ended) answers a lookup
    of a missing key by raising and catching a `KeyError`: several microseconds per span in the processors, which
    look up keys most spans lack. Its plain dict answers in nanoseconds. Callers only read it; once the span has
    ended nothing writes to it.
    """
    sdk_span: Any = span
    try:
        try:
            inner = sdk_span._attributes._dict  # plain attribute reads: cheaper than `getattr` with a default
        except AttributeError:
            inner = None
        if type(inner) is dict:
            return inner
        attributes = span.attributes
        return dict(attributes) if attributes else {}
    except Exception:
        return {}


def span_fields(span: ReadableSpan) -> tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any]:
    """`(context, parent, name, kind, status, start_time, end_time, events, resource)` of a span, in one call.

    What the SDK hands processors and exporters (a `ReadableSpan` itself) is read through the fields its
    properties return: this runs for every span of every live session, and a property call each (`.events` copies
    its list) doubles the cost of building a record. A subclass may compute its properties, so it is read through
    them."""
    if type(span) is ReadableSpan:
        return (
            span._context,
            span._parent,
            span._name,
            span._kind,
            span._status,
            span._start_time,
            span._end_time,
            span._events,
            span._resource,
        )
    return (
        span.context,
        span.parent,
        span.name,
        span.kind,
        span.status,
        span.start_time,
        span.end_time,
        span.events,
        span.resource,
    )


# --- writing into a starting or recording span ------------------------------------------------------------------------


def set_attribute_on_start(span: Span, key: str, value: str) -> None:
    """Sets a text attribute on a span that is starting (from a processor's `on_start`).

    `on_start` runs inside `start_span`, before the span is handed to anyone: the span's lock and the attribute
    checks of `set_attribute` guard nothing yet, and cost a tenth of a bare span. So the value goes straight into the
    SDK's attribute dict when the span's limits (attribute count and value length) leave room for it, and through
    `set_attribute` otherwise (or when the SDK's internals are not what this expects).
    """
    bounded = getattr(span, "_attributes", None)
    inner = getattr(bounded, "_dict", None)
    if (
        type(inner) is dict
        and getattr(bounded, "_immutable", True) is False
        and (bounded.maxlen is None or len(inner) < bounded.maxlen)  # type: ignore[union-attr]
        and (bounded.max_value_len is None or len(value) <= bounded.max_value_len)  # type: ignore[union-attr]
    ):
        inner[key] = value
    else:
        span.set_attribute(key, value)


# --- changing an ending span ------------------------------------------------------------------------------------------


def set_attributes_on_ending(span: Span, attributes: Mapping[str, Any]) -> None:
    """Sets `attributes` on a span from a processor's `_on_ending` hook. Never raises."""
    try:
        if span.is_recording():
            span.set_attributes(attributes)
            return
        bounded: Any = span._attributes
        with span._lock:
            was_immutable = bounded._immutable
            bounded._immutable = False
            try:
                for key, value in attributes.items():
                    bounded[key] = value
            finally:
                bounded._immutable = was_immutable
    except Exception:
        log.debug("Could not set attributes on an ending span", exc_info=True)


def drop_attributes_on_ending(span: Span, keys: Iterable[str]) -> None:
    """Removes attributes from an ending span. Never raises."""
    try:
        bounded: Any = span._attributes
        with span._lock:
            was_immutable = bounded._immutable
            bounded._immutable = False
            try:
                for key in keys:
                    if key in bounded:
                        del bounded[key]
            finally:
                bounded._immutable = was_immutable
    except Exception:
        log.debug("Could not drop attributes from an ending span", exc_info=True)


def rewrite_events_on_ending(span: Span, rewrite: Callable[[Event], Event | None]) -> bool:
    """Replaces each of an ending span's events by `rewrite(event)` (`None` drops it). Returns whether it could;
    never raises. The span keeps its count of events dropped over its limit."""
    try:
        events: Any = span._events
        if not isinstance(events, BoundedList):
            return False
        queue: Any = events._dq  # type: ignore[attr-defined]
        with span._lock:
            kept = []
            for event in list(queue):
                replaced = rewrite(event)
                if replaced is not None:
                    kept.append(replaced)
            fresh: BoundedList[Event] = BoundedList(queue.maxlen)
            fresh.extend(kept)
            fresh.dropped = events.dropped
            span._events = fresh
        return True
    except Exception:
        log.debug("Could not rewrite the events of an ending span", exc_info=True)
        return False


def event_with(event: Event, attributes: Mapping[str, Any]) -> Event:
    """A copy of `event` with other attributes (events are immutable)."""
    return Event(event.name, attributes=dict(attributes), timestamp=event.timestamp)


def set_status_on_ending(span: Span, status: Any) -> None:
    """Replaces an ending span's status (a `Status`; the SDK refuses `set_status` once the span ended). Never
    raises."""
    try:
        if span.is_recording():
            span.set_status(status)
            return
        with span._lock:
            span._status = status
    except Exception:
        log.debug("Could not set the status of an ending span", exc_info=True)


_ERROR = StatusCode.ERROR


def may_hold_errors(span: Span) -> bool:
    """Whether a span has events or an ERROR status: where error text lives. Cheap (this is asked of every
    span); never raises (`True` when it cannot tell)."""
    try:
        sdk_span: Any = span
        return bool(sdk_span._events._dq) or sdk_span._status.status_code is _ERROR
    except AttributeError:
        return True


# --- attributes agentotel built itself, on the paths that run on every model call and step ---------------------------
#
# `Span.set_attributes` checks every value against every type an attribute may have (recursively, through a
# `Mapping` of them): a dozen function calls per attribute. The values agentotel builds are already of the plain
# kinds (text, numbers, flags, lists of them), so `set_plain_attributes` (a model call's response attributes, in one
# go) checks each with one type test and hands them to the SDK's own locked insertion, which keeps its count limit
# and drop-the-oldest rule; `set_text_attribute` writes one content text. Anything they do not recognise — another
# SDK's span, a value of another kind, text longer than the length limit (the SDK truncates it and says so) — goes
# through `set_attributes` / `set_attribute` as usual, so the span ends up exactly as the SDK would have left it.

_SCALARS = (str, bool, int, float)


def _plain(value: Any, max_length: int | None) -> Any:
    """`value` as the SDK would store it, or `None` when it needs the SDK's own checks."""
    kind = type(value)
    if kind is str:
        return value if max_length is None or len(value) <= max_length else None
    if kind is int or kind is float or kind is bool:
        return value
    if kind is list or kind is tuple:
        for item in value:
            if type(item) not in _SCALARS or (max_length is not None and type(item) is str and len(item) > max_length):
                return None
        return tuple(value)
    return None


def set_plain_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """Sets `attributes` on a recording SDK span with the same result as `span.set_attributes`. Never raises."""
    if not attributes:
        return
    try:
        bounded = span._attributes
        insert = bounded._setitem_locked
        max_length = bounded.max_value_len
        if type(bounded._dict) is not dict or bounded._immutable or bounded.maxlen == 0:
            raise LookupError("not the SDK's attribute store, or one that keeps nothing")
        cleaned = {}
        for key, value in attributes.items():
            found = _plain(value, max_length)
            if found is None or type(key) is not str or not key:
                raise LookupError("a value for the SDK's own checks")
            cleaned[key] = found
    except Exception:
        _set_attributes(span, attributes)
        return
    try:
        with span._lock:
            if span._end_time is not None:
                raise LookupError("ended: the SDK says so itself")
            with bounded._lock:
                for key, value in cleaned.items():
                    insert(key, value)
    except Exception:
        _set_attributes(span, attributes)


def _set_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    try:
        span.set_attributes(attributes)
    except Exception:
        log.debug("Could not set the attributes of a span", exc_info=True)


_SDK_SPANS = frozenset({sdk_trace.Span, getattr(sdk_trace, "_Span", sdk_trace.Span)})
"""The SDK's span classes (its tracer makes `_Span`s), whose attributes `set_text_attribute` may write directly. A
subclass may override `set_attribute`, so it is not one of them."""


def set_text_attribute(span: trace_api.Span, key: str, text: str) -> None:
    """`span.set_attribute(key, text)` for a text value, written straight into an SDK span's attributes when the
    SDK would write it unchanged: the span still recording, the key new, and its limits (attribute count and value
    length) leaving room. Otherwise, or on a span of another kind, through `set_attribute` (which cuts, evicts or
    warns as the SDK does).

    `set_attribute` takes the span's lock and then checks the key, the value's type and the limits again through
    four calls: a third of what recording a step's result costs. Written under the span's lock, as the SDK writes.
    """
    if type(span) in _SDK_SPANS:
        sdk_span: Any = span
        try:
            bounded = sdk_span._attributes
            inner = bounded._dict
            with sdk_span._lock:
                if (
                    sdk_span._end_time is None
                    and bounded._immutable is False
                    and type(inner) is dict
                    and key not in inner
                    and (bounded.maxlen is None or len(inner) < bounded.maxlen)
                    and (bounded.max_value_len is None or len(text) <= bounded.max_value_len)
                ):
                    inner[key] = text
                    return
        except AttributeError:  # not the SDK this was written for: its own method, below
            pass
    span.set_attribute(key, text)
