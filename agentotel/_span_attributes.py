"""Setting attributes that agentotel built itself on an SDK span, for the paths that run on every model call and
step: `set_plain_attributes` (a model call's response attributes, in one go) and `set_text_attribute` (one content
text).

`Span.set_attributes` checks every value against every type an attribute may have (recursively, through a
`Mapping` of them): a dozen function calls per attribute. The values agentotel builds are already of the plain
kinds (text, numbers, flags, lists of them), so `set_plain_attributes` checks each with one type test and hands
them to the SDK's own locked insertion, which keeps its count limit and drop-the-oldest rule. Anything it does not
recognise — another SDK's span, a value of another kind, text longer than the length limit (the SDK truncates it
and says so) — goes through `set_attributes` as usual, so the span ends up exactly as the SDK would have left it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import Span

log = logging.getLogger("agentotel")

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


def set_text_attribute(span: Span, key: str, text: str) -> None:
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
