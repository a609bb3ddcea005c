"""Turning user values into bounded JSON text for content attributes. Nothing here raises."""

from __future__ import annotations

import functools
import inspect
import json
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("agentotel")

TRUNCATION_MARK = "…[truncated]"


def _fallback(value: object) -> object:
    """How JSON holds what it cannot: bytes by size, sets as lists, anything else by a repr that may fail."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    to_dict = getattr(value, "model_dump", None) or getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            return to_dict()
        except Exception:
            pass
    try:
        return repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__name__}>"


_MAX_DEPTH = 32
_MAX_ITEMS = 10_000


def _sanitize(value: Any, seen: set[int], depth: int) -> Any:
    """`value` as plain JSON data: cycles, depth and size cut, NaN/infinity as text, other objects by `_fallback`."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in seen:
            return "<recursive>"
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                items = list(value.items())[:_MAX_ITEMS]
                return {str(k): _sanitize(v, seen, depth + 1) for k, v in items}
            return [_sanitize(v, seen, depth + 1) for v in list(value)[:_MAX_ITEMS]]
        finally:
            seen.discard(id(value))
    converted = _fallback(value)
    if isinstance(converted, str):
        return converted
    return _sanitize(converted, seen, depth + 1)


def _default(value: object) -> object:
    return _fallback(value)  # looked up when called, so `_fallback` stays replaceable (the fault-injection tests)


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_default, allow_nan=False).encode
"""One encoder for every content value: `json.dumps` with options builds a new encoder on each call, a fifth of
the cost of encoding a short message. An encoder keeps no state between calls, so threads may share it."""


def to_json(value: object, limit: int) -> tuple[str, bool]:
    """`value` as compact JSON text of at most `limit` characters, and whether it was cut.

    Never raises: recursive structures, values JSON cannot hold and values whose `repr` raises all give text.
    """
    try:
        text = _encode(value)
    except Exception:
        try:
            text = json.dumps(_sanitize(value, set(), 0), ensure_ascii=False, separators=(",", ":"))
        except Exception:
            text = json.dumps(f"<unrepresentable {type(value).__name__}>")
    return truncate(text, limit)


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to `limit` characters with a visible mark, and whether it was cut."""
    if len(text) <= limit:
        return text, False
    keep = max(0, limit - len(TRUNCATION_MARK))
    return text[:keep] + TRUNCATION_MARK, True


@functools.lru_cache(maxsize=4096)
def _signature(func: Callable[..., Any]) -> tuple[inspect.Signature, tuple[str, ...] | None]:
    """A function's signature, computed once (`inspect.signature` costs more than the rest of a traced step), and
    its parameter names when they are all plain positional-or-keyword ones (then binding is a `zip`)."""
    signature = inspect.signature(func)
    kinds = {parameter.kind for parameter in signature.parameters.values()}
    simple = kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD}
    return signature, tuple(signature.parameters) if simple else None


def bind_arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, without `self`/`cls`. Never raises: falls back to args/kwargs."""
    try:
        signature, names = _signature(func)
        if names is not None and len(args) <= len(names):
            arguments = dict(zip(names, args, strict=False))
            arguments.update(kwargs)
        else:
            arguments = dict(signature.bind_partial(*args, **kwargs).arguments)
        for first in ("self", "cls"):
            arguments.pop(first, None)
        return arguments
    except Exception:
        result: dict[str, Any] = dict(kwargs)
        if args:
            result["args"] = list(args)
        return result


def parse_json(text: object) -> Any:
    """The value JSON `text` holds, or the text itself when it is not JSON. Never raises."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except Exception:
        return text
