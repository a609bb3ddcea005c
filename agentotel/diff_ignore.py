"""What a behaviour diff or a baseline leaves out: `ignore=[...]` rules, one small syntax for both.

    cost | tokens | duration | end_state     a figure of the session
    FIELD[.PATH]                             a field of every step, or a value inside it
    FIELD[.PATH]@NAME                        the same, in the steps named NAME only
    @NAME                                    the steps named NAME: left out of the sequence

FIELD is one of a step's compared fields: `arguments` and `result` (tools and actions), `input`, `output` and
`system` (model calls: messages and system instructions) and `error` (any failed step). PATH walks into the value:
dict keys after dots, list positions in brackets or after dots, `*` for any one key or position, a key that holds
a dot in quotes and brackets (`arguments.request_id`, `result.items[*].id`, `input[0].parts`, `result["a.b"]`): the
paths a diff prints can be pasted as they are. NAME is a tool's or action's name or a model call's model, and may
hold the wildcards `*` and `?` (`@get_*`). So `["arguments.request_id", "cost", "@current_time"]` compares everything
but each step's `request_id` argument, the session's cost and the calls of `current_time` (made or not). JSON text
that holds an object or a list (a tool result handed back to the model) is walked into like the value it holds.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._content import parse_json

FIGURES = ("cost", "tokens", "duration", "end_state")
"""The session figures a rule can name."""

FIELDS = ("arguments", "result", "input", "output", "system", "error")
"""The step fields a rule can name."""

WILDCARD = "*"

SYNTAX = (
    "an ignore rule is a figure (cost, tokens, duration, end_state), a step field with an optional path "
    "(arguments, result, input, output, system, error; e.g. arguments.request_id), either followed by @NAME to "
    "apply to the steps named NAME only, or @NAME alone to leave those steps out"
)


@dataclass(frozen=True, slots=True)
class _FieldRule:
    field: str
    path: tuple[str, ...]
    step: str | None  # a step name (glob), or None for every step


@dataclass(frozen=True, slots=True)
class IgnoreRules:
    """Parsed `ignore=` rules. Build with `IgnoreRules.parse`; an empty set ignores nothing."""

    rules: tuple[str, ...] = ()
    figures: frozenset[str] = frozenset()
    steps: tuple[str, ...] = ()
    fields: tuple[_FieldRule, ...] = ()

    @classmethod
    def parse(cls, rules: str | Iterable[str] | IgnoreRules | None) -> IgnoreRules:
        """The rules, checked. Raises `ValueError` naming the rule that is not in the syntax (`SYNTAX`)."""
        if isinstance(rules, IgnoreRules):
            return rules
        if rules is None:
            return cls()
        items = [rules] if isinstance(rules, str) else list(rules)
        figures: set[str] = set()
        steps: list[str] = []
        fields: list[_FieldRule] = []
        for item in items:
            if not isinstance(item, str):
                raise ValueError(f"ignore rule {item!r} is not text: {SYNTAX}")
            rule = item.strip()
            target, at, name = rule.rpartition("@") if "@" in rule else (rule, "", "")
            if at and not name:
                raise ValueError(f"ignore rule {item!r} names no step after @: {SYNTAX}")
            if at and not target:
                steps.append(name)
                continue
            if target in FIGURES and not at:
                figures.add(target)
                continue
            segments = parse_path(target)
            if not segments or segments[0] not in FIELDS:
                raise ValueError(f"ignore rule {item!r} is not one agentotel knows: {SYNTAX}")
            fields.append(_FieldRule(segments[0], segments[1:], name or None))
        return cls(tuple(items), frozenset(figures), tuple(steps), tuple(fields))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def ignores_figure(self, figure: str) -> bool:
        return figure in self.figures

    def leaves_out(self, name: str) -> bool:
        """Whether the steps named `name` are left out of the sequence."""
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.steps)

    def ignores_field_everywhere(self, field: str) -> bool:
        """Whether `field` is ignored whole in every step (so a comparison needs no content for it)."""
        return any(r.field == field and not r.path and r.step is None for r in self.fields)

    def apply(self, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The fields of a step named `name` without what the rules leave out (a new dict; the values given are
        never changed)."""
        result = dict(fields)
        for rule in self.fields:
            if rule.field not in result or (rule.step is not None and not fnmatch.fnmatchcase(name, rule.step)):
                continue
            if not rule.path:
                del result[rule.field]
            else:
                result[rule.field] = _without(result[rule.field], rule.path)
        return result


_SEGMENT = re.compile(r'\.?([^.\[\]"]+)|\[(\d+|\*)\]|\[("(?:[^"\\]|\\.)*")\]')
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$-]*")


def parse_path(text: str) -> tuple[str, ...]:
    """The segments of a path as `format_path` writes it (`arguments.items[0]["a.b"]` -> `arguments`, `items`,
    `0`, `a.b`); empty when `text` is no such path."""
    segments: list[str] = []
    position = 0
    while position < len(text):
        found = _SEGMENT.match(text, position)
        if found is None or (found.group(1) is not None and position > 0 and text[position] != "."):
            return ()
        word, index, quoted = found.groups()
        if quoted is not None:
            try:
                segments.append(str(json.loads(quoted)))
            except ValueError:
                return ()
        else:
            segments.append(word if word is not None else index)
        position = found.end()
    return tuple(segments)


def format_path(segments: Sequence[object]) -> str:
    """A path as a diff shows it: the field, then `.key` for plain keys, `[n]` for list positions, `["key"]` for
    keys that are no plain word."""
    text = ""
    for number, segment in enumerate(segments):
        if isinstance(segment, int) and not isinstance(segment, bool):
            text += f"[{segment}]"
        elif number == 0:
            text += str(segment)
        elif _IDENTIFIER.fullmatch(str(segment)) and not str(segment).isdigit():
            text += f".{segment}"
        else:
            text += f"[{json.dumps(str(segment), ensure_ascii=False)}]"
    return text


def _matches(segment: str, key: Any) -> bool:
    return segment == WILDCARD or segment == str(key)


def _without(value: Any, path: Sequence[str]) -> Any:
    """`value` with what `path` reaches removed: a copy of the dicts and lists along the way, the rest shared. JSON
    text holding an object or a list is walked into as the diff shows it (it is compared as that value then)."""
    segment, rest = path[0], path[1:]
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        parsed = parse_json(value)
        if isinstance(parsed, (dict, list)):
            value = parsed
    if isinstance(value, dict):
        result: dict[Any, Any] = {}
        for key, inner in value.items():
            if not _matches(segment, key):
                result[key] = inner
            elif rest:
                result[key] = _without(inner, rest)
        return result
    if isinstance(value, (list, tuple)):
        items: list[Any] = []
        for index, inner in enumerate(value):
            if not _matches(segment, index):
                items.append(inner)
            elif rest:
                items.append(_without(inner, rest))
        return items
    return value
