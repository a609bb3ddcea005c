"""Changing a span while it ends: the one place agentotel writes into the OpenTelemetry SDK's private span state.

The specification lets a processor's OnEnding change the span, but the Python SDK (1.45) marks the span ended
before it calls `_on_ending`, so `set_attribute` there is dropped with a warning, and no public API removes an
attribute or an event at all. Between `_on_ending` and `on_end` the span is still private to its processors (no
exporter has seen it), so these functions write its attribute store and event list under the span's lock, as the
SDK itself does. Each checks that the internals are what it expects and otherwise falls back to the public API
(which may drop the change, logged at debug) — never raises.

Contract with the SDK (checked by tests on the oldest and newest SDK the project allows):
- `span._lock`: the lock the SDK takes to change a span;
- `span._attributes`: a `BoundedAttributes` with `_immutable` (set once the span ended) and item assignment /
  deletion;
- `span._events`: a `BoundedList` of `opentelemetry.sdk.trace.Event`, with `_dq` (its deque) and `dropped`;
- `span._status`: the span's `Status`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.sdk.trace import Event, Span
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import StatusCode

log = logging.getLogger("agentotel")


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
