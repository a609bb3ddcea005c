"""Turning user values into bounded JSON text for content attributes. Nothing here raises."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import json.encoder
import logging
import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger("agentotel")

TRUNCATION_MARK = "…[truncated]"


_MAX_REPR = 4096
"""Longest repr kept of an object JSON cannot hold (content is cut to its limit later anyway)."""


def _pydantic_model(value: object) -> bool:
    """Whether `value` is a pydantic model instance, by type (pydantic looked up only if the app imported it)."""
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None) if pydantic is not None else None
    return base is not None and isinstance(value, base)


def _fallback(value: object) -> object:
    """How JSON holds what it cannot: bytes by size, sets as lists, a pydantic model by its `model_dump`, a
    dataclass by its fields, anything else by its repr (which may fail).

    No other method of the app's objects is called: a `Mock` answers any attribute (and would be asked for
    `model_dump` forever), a remote proxy sends every call over the wire. Only real pydantic models and dataclass
    instances are converted, told by their type."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if _pydantic_model(value):
        try:
            return value.model_dump(mode="json")  # type: ignore[attr-defined]
        except Exception:
            pass
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        try:
            return {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        except Exception:
            pass
    try:
        text = repr(value)
        return text if len(text) <= _MAX_REPR else text[:_MAX_REPR] + TRUNCATION_MARK
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

_encode_str: Callable[[str], str] = json.encoder.encode_basestring
"""A string as JSON text, as `_encode` writes it (`ensure_ascii=False`): the C function when there is one."""

_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)


def _new_c_encoder() -> Any:
    """The C encoder `iterencode` makes for `_encode` (a fresh `markers` dict: circular references are found, not
    recursed into)."""
    return _make_encoder({}, _default, _encode_str, None, ":", ",", False, False, False)


_spare_encoders: list[Any] = []
"""C encoders not in use. A C encoder's `markers` dict is empty again after an encoding that succeeded, so it can be
used again; making one costs a quarter of encoding a short dict. Taken and put back by `list.pop`/`append`
(atomic): a thread, or a nested call from a value's `to_dict()`, that finds none makes its own."""


def _encode_c(value: object) -> str:
    """`value` as `_encode` writes it, by the C encoder called directly: `JSONEncoder.encode` spends as much in its
    Python layers (`iterencode` makes a closure and an encoder each call) as the C encoder spends encoding a short
    value."""
    try:
        encoder = _spare_encoders.pop()
    except IndexError:
        encoder = _new_c_encoder()
    text = "".join(encoder(value, 0))
    if not _spare_encoders:  # only after success: an encoding that raised may leave its markers behind
        _spare_encoders.append(encoder)
    return text


def _c_encoder_matches() -> bool:
    """Whether `_encode_c` writes what `_encode` writes on this Python (the C encoder's signature is not an API)."""
    sample: dict[str, Any] = {"a": [1, 2.5, None, True], "é": {"b": 'x\n"y'}, "c": b"z"}
    try:
        return _make_encoder is not None and _encode_c(sample) == _encode(sample)
    except Exception:
        return False


_encode_value: Callable[[object], str] = _encode_c if _c_encoder_matches() else _encode
"""How `to_json` encodes a value that is not a plain string, int, bool or None."""


def _exceeds(value: object, budget: int) -> bool:
    """Whether `value` may take more than `budget` characters as JSON: a walk that stops as soon as it can tell
    (a container longer than the budget answers at once), so that only a big value pays for more than a glance.
    Errs towards yes (many small items exceed it)."""
    stack = [value]
    seen: set[int] = set()  # a container met again (a cycle, or shared) is written as a short mark, or once
    size = 0
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            size += len(item)  # type: ignore[arg-type]
        elif kind is dict or kind is list or kind is tuple:
            if id(item) in seen:
                size += 16
                continue
            seen.add(id(item))
            size += len(item)  # type: ignore[arg-type]
            if size > budget:
                return True
            if kind is dict:
                for key, inner in item.items():  # type: ignore[attr-defined]
                    size += len(key) if type(key) is str else 8
                    stack.append(inner)
            else:
                stack.extend(item)  # type: ignore[arg-type]
        else:
            size += 8
        if size > budget:
            return True
    return False


def _maybe_big(value: Any, budget: int) -> bool:
    """`_exceeds`, at the cost of a glance for the usual value: a step's arguments (a dict of a few plain values)
    are looked at one level deep; only a long container, or a container inside one, is walked."""
    kind = type(value)
    if kind is not dict and kind is not list and kind is not tuple:
        return False
    if len(value) > budget // 2:
        return True  # two characters an item at the least
    if len(value) > 32:
        return _exceeds(value, budget)
    for inner in value.values() if kind is dict else value:
        inner_kind = type(inner)
        if inner_kind is str:
            if len(inner) > budget:
                return True
        elif (inner_kind is dict or inner_kind is list or inner_kind is tuple) and _exceeds(inner, budget):
            return True
    return False


def _shrink(value: Any, budget: list[int], seen: set[int], depth: int) -> Any:
    """`value` as plain JSON data of about `budget[0]` characters at most: what does not fit is left out and
    counted (`"…": "N more"`), so that encoding a huge value costs what its kept part costs."""
    if budget[0] <= 0:
        return "…"
    if value is None or isinstance(value, (bool, int, float)):
        budget[0] -= 8
        return value if not isinstance(value, float) or math.isfinite(value) else str(value)
    if isinstance(value, str):
        kept = value[: max(0, budget[0])]
        budget[0] -= len(kept) + 2
        return kept
    if depth > _MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, (dict, list, tuple)):
        if id(value) in seen:
            return "<recursive>"
        seen.add(id(value))
        try:
            if isinstance(value, dict):
                kept_items: dict[str, Any] = {}
                for key, inner in value.items():
                    if budget[0] <= 0:
                        kept_items["…"] = f"{len(value) - len(kept_items)} more"
                        break
                    name = str(key)
                    budget[0] -= len(name) + 4
                    kept_items[name] = _shrink(inner, budget, seen, depth + 1)
                return kept_items
            kept_list: list[Any] = []
            for inner in value:
                if budget[0] <= 0:
                    kept_list.append(f"… {len(value) - len(kept_list)} more")
                    break
                budget[0] -= 1
                kept_list.append(_shrink(inner, budget, seen, depth + 1))
            return kept_list
        finally:
            seen.discard(id(value))
    return _shrink(_fallback(value), budget, seen, depth + 1)


def to_json(value: object, limit: int) -> tuple[str, bool]:
    """`value` as compact JSON text of at most `limit` characters, and whether it was cut.

    Never raises: recursive structures, values JSON cannot hold and values whose `repr` raises all give text. A
    value much bigger than `limit` is cut before it is encoded (a million-key dict costs what its first `limit`
    characters cost), and marked as cut.
    """
    if _maybe_big(value, limit):
        try:
            text = json.dumps(_shrink(value, [limit], set(), 0), ensure_ascii=False, separators=(",", ":"))
        except Exception:
            text = json.dumps(f"<unrepresentable {type(value).__name__}>")
        return truncate(text, limit)[0], True
    try:
        if type(value) is str:
            # Cut before encoding: escaping never shortens text, so the first `limit` characters give the same cut
            # text as the whole string would, without encoding (and copying) the rest of a long one.
            text = _encode_str(value if len(value) <= limit else value[:limit])
        elif type(value) is dict:
            text = _encode_value(value)
        elif type(value) is int:
            text = int.__repr__(value)  # as the encoder writes it; raises past int's digit limit, as it does
        elif value is None:
            text = "null"
        elif type(value) is bool:
            text = "true" if value else "false"
        else:
            text = _encode_value(value)
    except Exception:
        try:
            text = json.dumps(_sanitize(value, set(), 0), ensure_ascii=False, separators=(",", ":"))
        except Exception:
            text = json.dumps(f"<unrepresentable {type(value).__name__}>")
    if len(text) <= limit:
        return text, False
    return truncate(text, limit)


def truncate(text: str, limit: int) -> tuple[str, bool]:
    """`text` cut to `limit` characters with a visible mark, and whether it was cut."""
    if len(text) <= limit:
        return text, False
    keep = max(0, limit - len(TRUNCATION_MARK))
    return text[:keep] + TRUNCATION_MARK, True


_SELF_CLS = ("self", "cls")


@functools.lru_cache(maxsize=4096)
def _signature(func: Callable[..., Any]) -> tuple[inspect.Signature, tuple[str, ...] | None, tuple[str, ...]]:
    """A function's signature, computed once (`inspect.signature` costs more than the rest of a traced step), its
    parameter names when they are all plain positional-or-keyword ones (then binding is a `zip`), and which of
    `self`/`cls` those names hold (the ones a positional binding has to drop)."""
    signature = inspect.signature(func)
    kinds = {parameter.kind for parameter in signature.parameters.values()}
    simple = kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD}
    names = tuple(signature.parameters) if simple else None
    return signature, names, tuple(name for name in _SELF_CLS if name in signature.parameters)


def bind_arguments(func: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The call's arguments by parameter name, without `self`/`cls`. Never raises: falls back to args/kwargs."""
    try:
        signature, names, bound_self = _signature(func)
        if names is not None and len(args) <= len(names):
            arguments = dict(zip(names, args))  # noqa: B905  # fewer args than names: the rest are defaults or kwargs
            if kwargs:
                arguments.update(kwargs)
                bound_self = _SELF_CLS
        else:
            arguments = dict(signature.bind_partial(*args, **kwargs).arguments)
            bound_self = _SELF_CLS
        for first in bound_self:
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
