"""Nested sessions shown under their parents: one ordering for `agentotel sessions` and `agentotel ui`'s list."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

MAX_NESTING = 64
"""Longest chain of parents followed (a guard against a cycle in damaged data)."""


class Nestable(Protocol):
    """What nesting reads of a session (a `Session`, a source's `SessionSummary`, a ui row)."""

    @property
    def id(self) -> str: ...

    @property
    def parent_id(self) -> str | None: ...

    @property
    def start_ns(self) -> int: ...


T = TypeVar("T", bound=Nestable)


def nest(chosen: list[T], every: Iterable[Nestable]) -> list[list[tuple[T, int]]]:
    """`chosen` (in the order a list shows them) as groups: an outermost session and, right after it, each session
    nested in it with its depth (0 for the first), depth first, siblings in the order they started, whatever
    `chosen`'s order. A session whose parent is not in `chosen` goes under its nearest ancestor that is, or stands
    on its own in the order (`every` gives the ancestry)."""
    parent_of = {item.id: item.parent_id for item in every}
    shown = {item.id for item in chosen}
    children: dict[str, list[T]] = {}
    roots: list[T] = []
    for item in chosen:
        ancestor = _shown_ancestor(item, parent_of, shown)
        if ancestor is None:
            roots.append(item)
        else:
            children.setdefault(ancestor, []).append(item)
    for siblings in children.values():
        siblings.sort(key=lambda s: s.start_ns)
    seen: set[str] = set()
    groups = [_flatten(root, children, seen) for root in roots]
    # Sessions that name each other as parents (damaged data) are reached from no root: each stands alone.
    groups.extend(_flatten(item, children, seen) for item in chosen if item.id not in seen)
    return [group for group in groups if group]


def _shown_ancestor(item: Nestable, parent_of: dict[str, str | None], shown: set[str]) -> str | None:
    parent, hops = item.parent_id, 0
    while parent is not None and hops < MAX_NESTING:
        if parent in shown:
            return parent
        parent, hops = parent_of.get(parent), hops + 1
    return None


def _flatten(root: T, children: dict[str, list[T]], seen: set[str]) -> list[tuple[T, int]]:
    """`root` and every session under it, depth first, each once across all groups (`seen`)."""
    group: list[tuple[T, int]] = []
    stack = [(root, 0)]
    while stack:
        item, depth = stack.pop()
        if item.id in seen:
            continue
        seen.add(item.id)
        group.append((item, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(item.id, [])))
    return group
