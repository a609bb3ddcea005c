"""Rule 6 (ARCHITECTURE.md): the OpenTelemetry SDK's private state is touched in `agentotel/_sdk.py` only. Every
other module of the package is parsed and fails on an SDK-private name read, written or deleted on another object
(`span._attributes`, `getattr(span, "_attributes")`, `processor._on_ending(...)`)."""

from __future__ import annotations

import ast
from pathlib import Path

import agentotel

PACKAGE = Path(agentotel.__file__).parent
BOUNDARY = PACKAGE / "_sdk.py"

SDK_PRIVATE = frozenset(
    {
        # The OpenTelemetry SDK's private vocabulary that agentotel relies on (`_sdk.py`'s contract) or might reach
        # for: span state, the attribute store, the event list, the readable span's fields, the provider's and the
        # processors' internals. `_lock` is left out: agentotel's own objects (sessions, the pipeline, the price
        # book) have locks by that name, and the SDK's span lock is only of use beside `_attributes` / `_status` /
        # `_events`, which are listed.
        "_attributes",
        "_dict",
        "_immutable",
        "_setitem_locked",
        "_extended_attributes",
        "_events",
        "_dq",
        "_links",
        "_status",
        "_context",
        "_parent",
        "_name",
        "_kind",
        "_start_time",
        "_end_time",
        "_resource",
        "_instrumentation_scope",
        "_instrumentation_info",
        "_limits",
        "_span_limits",
        "_span_processor",
        "_span_processors",
        "_active_span_processor",
        "_readable_span",
        "_on_ending",
        "_record_exception",
        "_set_status_on_exception",
        "_Span",
    }
)

_BY_NAME = frozenset({"getattr", "setattr", "hasattr", "delattr"})
_OWN = frozenset({"self", "cls"})
"""An object's own attributes (`self._events` of agentotel's `Session`) are not the SDK's."""


def sdk_private_uses(source: str) -> list[tuple[int, str]]:
    """(line, name) of each SDK-private name reached on an object other than `self` / `cls`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in SDK_PRIVATE:
            if not (isinstance(node.value, ast.Name) and node.value.id in _OWN):
                found.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in _BY_NAME
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in SDK_PRIVATE
        ):
            found.append((node.lineno, str(node.args[1].value)))
    return sorted(found)


def test_the_check_sees_each_form_of_access() -> None:
    source = (
        "span._attributes._dict['k'] = 1\n"
        "getattr(span, '_events', None)\n"
        "processor._on_ending(span)\n"
        "self._events = []\n"  # an object's own: not flagged
        "session._lock\n"  # not in the vocabulary: agentotel's own locks
    )
    assert sdk_private_uses(source) == [(1, "_attributes"), (1, "_dict"), (2, "_events"), (3, "_on_ending")]


def test_only_sdk_py_touches_the_sdk_s_private_state() -> None:
    modules = [path for path in sorted(PACKAGE.rglob("*.py")) if path != BOUNDARY]
    assert len(modules) > 50  # the whole package was read
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {name}"
        for path in modules
        for line, name in sdk_private_uses(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "SDK internals outside agentotel/_sdk.py (add a helper there):\n" + "\n".join(found)


def test_sdk_py_uses_the_vocabulary() -> None:
    """The boundary module is where the names are: the check is not vacuous."""
    names = {name for _, name in sdk_private_uses(BOUNDARY.read_text(encoding="utf-8"))}
    assert {"_attributes", "_dict", "_on_ending", "_context", "_events"} <= names
