"""How the `agentotel` command shows things: tables and replays in colour (with `rich`) on a terminal, plain text
when piped, and the small formatting helpers both use.

Everything written goes through `printable`: a session's name, tags, tool names, errors or a backend's message
may hold terminal control sequences (set by whoever wrote the spans), and they are shown escaped, never acted on.
JSON output escapes them too (`json_text`)."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import IO, Any

from ._nesting import nest
from .replay.text import PROBLEM_MARK, format_cost, printable
from .sources import SessionSummary

ID_WIDTH = 8
"""Ids are shown by their first 8 characters; `agentotel replay` takes any unique prefix."""

_STATE_STYLES = {"Success": "green", "Fail": "bold red", "Indeterminate": "yellow"}


def short_id(value: str) -> str:
    return value[:ID_WIDTH]


def format_when(start_ns: int) -> str:
    """Local time, to the second."""
    return datetime.fromtimestamp(start_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "running"
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


COLUMNS = (
    "ID",
    "NAME",
    "SERVICE",
    "STARTED",
    "DURATION",
    "STATE",
    "COST",
    "TOKENS IN/OUT",
    "LLM",
    "TOOLS+ACTIONS",
    "TAGS",
)
_RIGHT = {"DURATION", "COST", "TOKENS IN/OUT", "LLM", "TOOLS+ACTIONS"}
_DROP_ORDER = ("TOOLS+ACTIONS", "LLM", "SERVICE", "DURATION", "TOKENS IN/OUT", "TAGS")
"""On a terminal too narrow for every column, these go first (in this order); piped output keeps them all."""
_NAME_MIN = 12
NESTED_MARK = "└ "
"""Before the name of a session nested in the one above it (indented two spaces a level deeper)."""
NESTED_NOTE = (
    f"{NESTED_MARK}a session nested in the one above it; a session's cost, tokens and calls include those of the "
    "sessions nested in it"
)


def fit_columns(rows: Sequence[tuple[str, ...]], width: int, gap: int = 2) -> list[int]:
    """Indexes of the columns that fit in `width` characters (NAME may shrink to `_NAME_MIN` and wrap)."""
    widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]
    name = COLUMNS.index("NAME")
    kept = list(range(len(COLUMNS)))
    for column in _DROP_ORDER:
        needed = sum(min(widths[i], _NAME_MIN) if i == name else widths[i] for i in kept) + gap * (len(kept) - 1)
        if needed <= width:
            break
        kept.remove(COLUMNS.index(column))
    return kept


def session_row(summary: SessionSummary, depth: int = 0) -> tuple[str, ...]:
    """The table's cells for a session `depth` levels inside the outermost one shown, each one printable line."""
    cells = (
        short_id(summary.id),
        "  " * (depth - 1) + NESTED_MARK + summary.name if depth else summary.name,
        summary.service_name or "-",
        format_when(summary.start_ns),
        format_duration(summary.duration),
        summary.end_state or "Running",
        format_cost(summary.cost),
        f"{summary.input_tokens}/{summary.output_tokens}",
        str(summary.llm_calls),
        str(summary.tool_and_action_calls),
        ", ".join(summary.tags),
    )
    return tuple(printable(cell) for cell in cells)


def nested_rows(summaries: Sequence[SessionSummary]) -> list[tuple[SessionSummary, int]]:
    """`summaries` in their order, each nested session right under its parent, with its depth (`ui`'s order)."""
    chosen = list(summaries)
    return [entry for group in nest(chosen, chosen) for entry in group]


# JSON escapes C0 controls itself; with `ensure_ascii=False` it leaves DEL, C1 and the bidi controls as they are.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_text(data: Any) -> str:
    """`data` as indented JSON whose text holds no control character a terminal acts on (those JSON leaves raw are
    written as `\\uXXXX`, still the same JSON)."""
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


class Output:
    """Where the command writes: colour through `rich` when stdout is a terminal (and `NO_COLOR` is unset), plain
    text otherwise, so that piped output is stable for scripts and diffs."""

    def __init__(self, stream: IO[str] | None = None, *, color: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stdout
        if color is None:
            isatty = getattr(self.stream, "isatty", None)
            color = bool(isatty and isatty()) and not os.environ.get("NO_COLOR")
        self.color = color
        self._console: Any = None
        if color:
            from rich.console import Console

            self._console = Console(file=self.stream, force_terminal=True, highlight=False, soft_wrap=True)

    @property
    def width(self) -> int:
        """Width to lay text out in: the terminal's, or 100 when piped."""
        if self._console is not None:
            return max(60, int(self._console.width))
        return 100

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line, its control characters (line breaks too) shown escaped."""
        text = printable(text)
        if self._console is not None:
            from rich.text import Text

            self._console.print(Text(text, style=style or ""))
        else:
            self.stream.write(text + "\n")

    def json(self, data: Any) -> None:
        """`data` as JSON (see `json_text`)."""
        self.stream.write(json_text(data) + "\n")

    def table(self, summaries: Sequence[SessionSummary]) -> None:
        """The sessions as a table, newest first, each nested session indented right under its parent (and a
        note saying what that means when there is one)."""
        entries = nested_rows(summaries)
        rows = [session_row(summary, depth) for summary, depth in entries]
        self._table(rows)
        if any(depth for _, depth in entries):
            self.line(NESTED_NOTE, style="dim")

    def _table(self, rows: list[tuple[str, ...]]) -> None:
        if self._console is not None:
            from rich import box
            from rich.table import Table
            from rich.text import Text

            kept = fit_columns(rows, self.width, gap=3)  # rich pads each side of a column by one, plus a rule
            table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
            for i in kept:
                column = COLUMNS[i]
                wraps = column in ("NAME", "TAGS")
                table.add_column(
                    column,
                    justify="right" if column in _RIGHT else "left",
                    no_wrap=not wraps,
                    min_width=_NAME_MIN if column == "NAME" else None,
                    overflow="fold" if wraps else "ellipsis",
                )
            state = COLUMNS.index("STATE")
            for row in rows:
                # Text cells: a name or tag with [brackets] is shown as written, never read as rich markup.
                table.add_row(*(Text(row[i], style=_STATE_STYLES.get(row[i], "") if i == state else "") for i in kept))
            self._console.print(table)
            return
        widths = [max(len(column), *(len(row[i]) for row in rows)) for i, column in enumerate(COLUMNS)]
        for row in (COLUMNS, *rows):
            cells = [
                cell.rjust(widths[i]) if COLUMNS[i] in _RIGHT else cell.ljust(widths[i]) for i, cell in enumerate(row)
            ]
            self.stream.write("  ".join(cells).rstrip() + "\n")

    def replay(self, text: str) -> None:
        """A text replay, with the failing step and the end state coloured on a terminal."""
        text = printable(text, keep_newlines=True)
        if self._console is None:
            self.stream.write(text + "\n")
            return
        from rich.text import Text

        for number, line in enumerate(text.split("\n")):
            if number == 0:
                style = "bold"
            elif PROBLEM_MARK in line or "Error:" in line or "Exception:" in line:
                style = "bold red"
            elif "Session ended: Success" in line:
                style = "green"
            elif "Session ended:" in line:
                style = "yellow" if "Indeterminate" in line else "red"
            else:
                style = ""
            self._console.print(Text(line, style=style))
