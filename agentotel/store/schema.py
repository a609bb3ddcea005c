"""The store's tables and the rows in them: the schema (`SCHEMA_VERSION`), the SQL fragments the queries and
pruning share, span records and session roots made into rows, and rows read back into span records and session
summaries (every value checked: a row agentotel never wrote is a `_DamagedRow`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from .. import semconv as sc
from ..listing import SessionSummary, normalise_state, since_ns, tags_of
from ..model import KIND_SESSION, Session, recorded_cost
from ..records import ExceptionInfo, SpanRecord

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    status_code TEXT NOT NULL,
    status_message TEXT,
    attributes TEXT NOT NULL,
    exceptions TEXT NOT NULL,
    service_name TEXT,
    session_id TEXT,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_session_id ON spans (session_id);
CREATE INDEX IF NOT EXISTS spans_start_ns ON spans (start_ns);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    trace_id TEXT NOT NULL,
    span_id TEXT,
    name TEXT NOT NULL,
    tags TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER,
    end_state TEXT,
    end_state_reason TEXT,
    cost REAL,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    llm_calls INTEGER NOT NULL DEFAULT 0,
    tool_calls INTEGER NOT NULL DEFAULT 0,
    error_count INTEGER NOT NULL DEFAULT 0,
    parent_id TEXT,
    service_name TEXT
);
CREATE INDEX IF NOT EXISTS sessions_trace_id ON sessions (trace_id);
CREATE INDEX IF NOT EXISTS sessions_start_ns ON sessions (start_ns);
CREATE INDEX IF NOT EXISTS sessions_end_ns ON sessions (end_ns);
CREATE INDEX IF NOT EXISTS sessions_end_state ON sessions (end_state);
CREATE INDEX IF NOT EXISTS sessions_parent_id ON sessions (parent_id);
"""

_OUTERMOST = "(parent_id IS NULL OR parent_id NOT IN (SELECT session_id FROM sessions))"
"""SQL: a session row nested in no stored session."""
_BY_COUNT = "(end_ns IS NOT NULL OR start_ns < ?)"
"""SQL: a session row pruning by count may remove: ended, or running since before the parameter (`_stale_before`)."""
_DOOMED_BY_COUNT = (
    f"INSERT INTO doomed SELECT session_id FROM sessions WHERE {_OUTERMOST} AND {_BY_COUNT} AND start_ns <= ? "
    "AND (start_ns, rowid) <= (?, ?) ORDER BY start_ns, rowid LIMIT ?"
)
"""SQL: the oldest outermost sessions up to the boundary (`Store._keep_boundary`) that pruning by count removes, in
the order of the start index (start, then rowid: no sort)."""
_DOOMED_BY_AGE = (
    f"INSERT INTO doomed SELECT session_id FROM sessions WHERE {_OUTERMOST} "
    "AND (end_ns < ? OR (end_ns IS NULL AND start_ns < ?)) LIMIT ?"
)
"""SQL: outermost sessions that ended before the parameter, or still running that started before it."""
_NO_SESSION = "session_id IS NULL AND end_ns < ?"
_NO_SESSION_ROW = "end_ns < ? AND session_id IS NOT NULL AND session_id NOT IN (SELECT session_id FROM sessions)"
_SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns, status_code, status_message, attributes, "
    "exceptions, service_name, session_id"
)
_SESSION_COLUMNS = (
    "session_id, trace_id, span_id, name, tags, start_ns, end_ns, end_state, end_state_reason, cost, input_tokens, "
    "output_tokens, llm_calls, tool_calls, error_count, parent_id, service_name"
)


def _json_default(value: object) -> object:
    return list(value) if isinstance(value, (tuple, set, frozenset)) else str(value)


def _span_row(record: SpanRecord) -> tuple[Any, ...]:
    session_id = record.attributes.get(sc.SESSION_ID)
    exceptions = [{"type": e.type, "message": e.message, "stacktrace": e.stacktrace} for e in record.exceptions]
    return (
        record.trace_id,
        record.span_id,
        record.parent_span_id,
        record.name,
        record.kind,
        int(record.start_ns),
        None if record.end_ns is None else int(record.end_ns),
        record.status_code,
        record.status_message,
        json.dumps(dict(record.attributes), default=_json_default, ensure_ascii=False),
        json.dumps(exceptions, ensure_ascii=False),
        record.service_name,
        None if session_id is None else str(session_id),
    )


def _int_attr(attributes: Mapping[str, Any], key: str) -> int:
    value = attributes.get(key)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _session_row(record: SpanRecord) -> tuple[Any, ...] | None:
    """The `sessions` row of a session root span (`None` for any other span): a running session's (its root not
    ended: no end, no state, no totals yet) is replaced by the ended one's when that arrives."""
    attributes = record.attributes
    if attributes.get(sc.AGENTOTEL_STEP_KIND) != KIND_SESSION:
        return None
    session = Session.from_root(record)  # the same reading of the root span as everywhere else
    cost = attributes.get(sc.AGENTOTEL_SESSION_COST_AMOUNT)
    return (
        session.id,
        session.trace_id,
        session.span_id,
        session.name,
        json.dumps(session.tags, ensure_ascii=False),
        session.start_ns,
        session.end_ns,
        session.end_state,
        session.end_state_reason,
        float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
        _int_attr(attributes, sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS),
        _int_attr(attributes, sc.AGENTOTEL_SESSION_USAGE_OUTPUT_TOKENS),
        _int_attr(attributes, sc.AGENTOTEL_SESSION_LLM_CALL_COUNT),
        _int_attr(attributes, sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT),
        _int_attr(attributes, sc.AGENTOTEL_SESSION_ERROR_COUNT),
        session.parent_id,
        record.service_name,
    )


class _DamagedRow(ValueError):
    """A row whose values are not what agentotel writes (the file was changed by something else)."""


def _text(value: Any, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, str):
        return value
    raise _DamagedRow(f"{what} is not text")


def _integer(value: Any, what: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    raise _DamagedRow(f"{what} is not a whole number")


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _DamagedRow(f"{what} is not a number")


def _json(value: Any, what: str, default: str) -> Any:
    try:
        return json.loads(_text(value, what, optional=True) or default)
    except (ValueError, RecursionError):
        raise _DamagedRow(f"{what} is not JSON") from None


_loads = json.loads


def _start_of(record: SpanRecord) -> int:
    return record.start_ns


def _records(rows: list[tuple[Any, ...]]) -> list[SpanRecord]:
    """The span records of `spans` rows, in the order they started. Raises `_DamagedRow` for values agentotel
    never writes.

    Runs for every span a session is rebuilt from (100,000 for a big one). A row as agentotel writes it (every value
    of its column's type, no exception recorded) is read by type checks alone, and the attributes of all such rows
    are parsed by ONE `json.loads` of their texts joined into an array: a call per row made parsing a third of the
    read. Any other row goes through the checks that name what is wrong with it (`_checked_record`). The rows come
    unsorted and are sorted here: SQLite's `ORDER BY` copied every row through a temporary B-tree (a third of the
    query), while rows stored in insertion order are nearly sorted already, which Python's sort takes in one pass.
    """
    records: list[SpanRecord] = []
    fast: list[SpanRecord] = []
    texts: list[str] = []
    for row in rows:
        trace_id, span_id, parent, name, kind, start, end, status, message, attributes, exceptions, service = row[:12]
        if (
            exceptions == "[]"
            and type(attributes) is str
            and type(trace_id) is str
            and type(span_id) is str
            and type(name) is str
            and type(kind) is str
            and type(status) is str
            and type(start) is int  # SQLite holds 64-bit integers: no range to check
            and (parent is None or type(parent) is str)
            and (end is None or type(end) is int)
            and (message is None or type(message) is str)
            and (service is None or type(service) is str)
        ):
            record = SpanRecord(trace_id, span_id, parent, name, kind, start, end, {}, status, message, (), service)
            fast.append(record)
            texts.append(attributes or "{}")
        else:
            record = _checked_record(row)
        records.append(record)
    if texts:
        values = None
        try:
            values = _loads("[" + ",".join(texts) + "]")
        except (ValueError, RecursionError):
            pass
        if type(values) is not list or len(values) != len(texts):
            values = [_json(text, "attributes", "{}") for text in texts]  # names the damaged row
        for record, value in zip(fast, values, strict=True):
            record.attributes = value if type(value) is dict else {}
    records.sort(key=_start_of)
    return records


def _checked_record(row: sqlite3.Row | tuple[Any, ...]) -> SpanRecord:
    """The record of any `spans` row, each value checked."""
    exceptions = tuple(
        ExceptionInfo(
            type=str(e.get("type", "Exception")),
            message=str(e.get("message", "")),
            stacktrace=None if e.get("stacktrace") is None else str(e.get("stacktrace")),
        )
        for e in _list_of(_json(row[10], "exceptions", "[]"))
        if isinstance(e, dict)
    )
    attributes = _json(row[9], "attributes", "{}")
    return SpanRecord(
        trace_id=_text(row[0], "trace_id"),
        span_id=_text(row[1], "span_id"),
        parent_span_id=_text(row[2], "parent_span_id", optional=True),
        name=_text(row[3], "name"),
        kind=_text(row[4], "kind"),
        start_ns=_integer(row[5], "start_ns"),
        end_ns=_integer(row[6], "end_ns", optional=True),
        attributes=attributes if isinstance(attributes, dict) else {},
        status_code=_text(row[7], "status_code"),
        status_message=_text(row[8], "status_message", optional=True),
        exceptions=exceptions,
        service_name=_text(row[11], "service_name", optional=True),
    )


def _selection(
    since: datetime | timedelta | int | None,
    tag: str | Sequence[str] | None,
    state: str | None,
    service: str | None,
) -> tuple[str, list[Any]]:
    """The SQL condition on `sessions` rows (and its parameters) that the list filters make."""
    where: list[str] = ["1 = 1"]
    params: list[Any] = []
    bound = since_ns(since)
    if bound is not None:
        where.append("start_ns >= ?")
        params.append(bound)
    wanted = normalise_state(state)
    if wanted is not None:
        where.append("end_state = ?")
        params.append(wanted)
    for one in tags_of(tag):
        where.append("EXISTS (SELECT 1 FROM json_each(sessions.tags) WHERE json_each.value = ?)")
        params.append(one)
    if service is not None:
        where.append("service_name = ?")
        params.append(service)
    return " AND ".join(where), params


def _list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _summary(row: sqlite3.Row | tuple[Any, ...]) -> SessionSummary:
    """The summary of a `sessions` row. Raises `_DamagedRow` for values agentotel never writes.

    The row's cost is the root span's `agentotel.session.cost.amount`, read by `model.recorded_cost`: known only
    when every model call has a price. A running session's totals are not written yet: its cost is unknown."""
    summary = SessionSummary(
        id=_text(row[0], "session_id"),
        trace_id=_text(row[1], "trace_id"),
        span_id=_text(row[2], "span_id", optional=True),
        name=_text(row[3], "name"),
        tags=[str(t) for t in _list_of(_json(row[4], "tags", "[]"))],
        start_ns=_integer(row[5], "start_ns"),
        end_ns=_integer(row[6], "end_ns", optional=True),
        end_state=_text(row[7], "end_state", optional=True),
        end_state_reason=_text(row[8], "end_state_reason", optional=True),
        cost=_number(row[9], "cost"),
        input_tokens=_integer(row[10], "input_tokens"),
        output_tokens=_integer(row[11], "output_tokens"),
        llm_calls=_integer(row[12], "llm_calls"),
        tool_and_action_calls=_integer(row[13], "tool_calls"),
        error_count=_integer(row[14], "error_count"),
        parent_id=_text(row[15], "parent_id", optional=True),
        service_name=_text(row[16], "service_name", optional=True),
    )
    if summary.end_ns is not None:
        summary.cost = recorded_cost(summary.cost, summary.llm_calls)
    return summary
