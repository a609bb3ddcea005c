"""Setting attributes that agentotel built itself on an SDK span, for the paths that run on every model call.

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
