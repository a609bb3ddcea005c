"""A session saved as a file: its span records as OTLP JSON Lines, to keep as a test fixture (`Session.save`,
`agentotel export`) that `agentotel.testing.rerun` re-runs the agent against.

Each line is one OTLP `TracesData` document (the OTLP "JSON Protobuf Encoding": hex ids, integer enums, 64-bit
integers as decimal text), so the file is read back by `open_source(path)` and every `--source` reader, and what
`build_sessions` reads survives the round trip exactly: ids, times, names, kinds, attributes (sequences come back
as lists, OTLP's arrays), status, exception events and service name. The file is written whole or not at all,
readable by its owner only (it holds prompts and completions).

A re-run needs the session's content: every LLM call's input and output messages, recorded only with content
capture on. `content_problems` says which calls lack them; saving such a session still works, with a warning
(`MissingContentWarning`), unless `require_content=True` makes it an error.
"""

from __future__ import annotations

import base64
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import semconv as sc
from .model import FAIL, KIND_SESSION, Event, Session
from .records import SpanRecord
from .sources import RecordsSource, SessionNotFound, SourceError, open_source

__all__ = [
    "MissingContentError",
    "MissingContentWarning",
    "SessionFileError",
    "call_label",
    "content_problems",
    "load_session",
    "model_calls",
    "otlp_json_lines",
    "save_session",
    "session_records",
    "write_records",
]

_KINDS = {"INTERNAL": 1, "SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
_STATUS = {"UNSET": 0, "OK": 1, "ERROR": 2}
_SPANS_PER_LINE = 500
"""Spans per document: bounds a line's length, so a reader of JSON Lines never holds one huge line."""
_LINE_BREAKS_ESCAPED = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}
"""What JSON leaves as it is but `str.splitlines` (and so a JSON Lines reader) breaks a line at: escaped, so each
document stays on its line (the encoder already escapes the other control characters)."""
_SCOPE = {"name": "agentotel.sessions_file"}
"""The instrumentation scope written for every span: records do not keep their spans' scopes, nor does any reader
use them."""


class SessionFileError(SourceError):
    """A session file cannot be written or read as a session: one line, fit to show a person."""


class MissingContentError(SessionFileError):
    """The session lacks what a re-run needs (content capture was off when it was recorded)."""


class MissingContentWarning(UserWarning):
    """A session saved without what a re-run needs: the message names the LLM calls that lack it."""


# --- which steps a re-run replays ---------------------------------------------------------------------------------


def model_calls(session: Session) -> list[Event]:
    """The session's model calls a re-run answers, in the order they started: its LLM calls, each once, without
    embeddings (they have no messages to replay)."""
    return [
        e
        for e in session.llm_calls
        if e.attributes.get(sc.GEN_AI_OPERATION_NAME) != sc.GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS
    ]


def call_label(event: Event, index: int, total: int) -> str:
    """How a model call is named to a person: `LLM call 2 of 3 (chat gpt-4o-mini)`."""
    operation = event.attributes.get(sc.GEN_AI_OPERATION_NAME) or sc.GEN_AI_OPERATION_NAME_VALUE_CHAT
    model = event.attributes.get(sc.GEN_AI_REQUEST_MODEL) or event.model
    what = f"{operation} {model}" if model else str(operation)
    return f"LLM call {index} of {total} ({what})"


def content_problems(session: Session) -> list[str]:
    """What the session lacks for a re-run, one sentence each: model calls without input or output messages (a
    failed call needs no output), output messages cut by `AGENTOTEL_CONTENT_MAX_LENGTH`, events dropped over the
    per-session limit, a session still running. Empty when a re-run has all it needs."""
    problems: list[str] = []
    calls = model_calls(session)
    for index, call in enumerate(calls, start=1):
        missing = []
        if call.params is None:
            missing.append("input")
        if call.returns is None and call.error is None:
            missing.append("output")
        label = call_label(call, index, len(calls))
        if missing:
            problems.append(f"{label} has no {' or '.join(missing)} messages")
        elif call.error is None and not isinstance(call.returns, list):
            problems.append(f"{label} has its output messages cut (AGENTOTEL_CONTENT_MAX_LENGTH)")
    if session.dropped_events:
        problems.append(f"the session dropped {session.dropped_events} events over the per-session limit")
    if not session.ended:
        problems.append("the session is still running: steps that have not ended are not in it")
    return problems


def _problems_text(problems: list[str]) -> str:
    hint = "" if not any("messages" in p for p in problems) else " (record with content capture on)"
    return "; ".join(problems) + hint


# --- the records of a session --------------------------------------------------------------------------------------


def _tree(session: Session) -> list[Session]:
    """The session and the live sessions linked to it as nested in it (a live session keeps their spans apart),
    each once."""
    found: list[Session] = []
    seen: set[int] = set()
    waiting = [session]
    while waiting:
        current = waiting.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        waiting.extend(child for child in getattr(current, "children", ()) if isinstance(child, Session))
    return found


def _made_up_root(session: Session) -> SpanRecord:
    """A root span for a session whose own has not ended (or was never seen): what `Session.from_root` reads."""
    attributes: dict[str, Any] = {
        sc.AGENTOTEL_STEP_KIND: KIND_SESSION,
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: session.name,
        sc.SESSION_ID: session.id,
    }
    if session.tags:
        attributes[sc.AGENTOTEL_SESSION_TAGS] = list(session.tags)
    if session.parent_id:
        attributes[sc.AGENTOTEL_SESSION_PARENT_ID] = session.parent_id
    if session.conversation_id:
        attributes[sc.GEN_AI_CONVERSATION_ID] = session.conversation_id
    if session.end_state:
        attributes[sc.AGENTOTEL_SESSION_END_STATE] = session.end_state
    if session.end_state_reason:
        attributes[sc.AGENTOTEL_SESSION_END_STATE_REASON] = session.end_state_reason
    return SpanRecord(
        trace_id=session.trace_id,
        span_id=session.span_id,
        parent_span_id=None,
        name=f"invoke_agent {session.name}",
        kind="INTERNAL",
        start_ns=session.start_ns,
        end_ns=session.end_ns,
        attributes=attributes,
        status_code="ERROR" if session.end_state == FAIL else "UNSET",
        status_message=session.end_state_reason if session.end_state == FAIL else None,
    )


def session_records(session: Session) -> list[SpanRecord]:
    """Every span record of the session, in the order they started: its root span first, then its steps and
    those of the sessions nested in it (each span once)."""
    root: SpanRecord | None = getattr(session, "_root", None)
    if root is None or root.span_id != session.span_id:
        root = _made_up_root(session)
    found: dict[tuple[str, str], SpanRecord] = {(root.trace_id, root.span_id): root}
    for member in _tree(session):
        for record in list(member._records):
            found.setdefault((record.trace_id, record.span_id), record)
    rest = sorted((r for r in found.values() if r is not root), key=lambda r: r.start_ns)
    return [root, *rest]


# --- OTLP JSON -----------------------------------------------------------------------------------------------------


def _any_value(value: Any) -> dict[str, Any] | None:
    """An OTLP `AnyValue` in the JSON encoding; `None` for `None` (an attribute the readers leave out anyway)."""
    if value is None:
        return None
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _key_values(value)}}
    if isinstance(value, (list, tuple)):
        values = [_any_value(item) for item in value]
        return {"arrayValue": {"values": [v if v is not None else {} for v in values]}}
    return {"stringValue": str(value)}


def _key_values(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    for key, value in attributes.items():
        encoded = _any_value(value)
        if encoded is not None:
            found.append({"key": str(key), "value": encoded})
    return found


def _span(record: SpanRecord) -> dict[str, Any]:
    span: dict[str, Any] = {
        "traceId": record.trace_id,
        "spanId": record.span_id,
        "name": record.name,
        "kind": _KINDS.get(record.kind, 1),
        "startTimeUnixNano": str(record.start_ns),
        "attributes": _key_values(record.attributes),
    }
    if record.parent_span_id:
        span["parentSpanId"] = record.parent_span_id
    if record.end_ns is not None:
        span["endTimeUnixNano"] = str(record.end_ns)
    if record.exceptions:
        at = str(record.end_ns if record.end_ns is not None else record.start_ns)
        events = []
        for info in record.exceptions:
            attributes = {sc.EXCEPTION_TYPE: info.type, sc.EXCEPTION_MESSAGE: info.message}
            if info.stacktrace is not None:
                attributes[sc.EXCEPTION_STACKTRACE] = info.stacktrace
            events.append({"name": "exception", "timeUnixNano": at, "attributes": _key_values(attributes)})
        span["events"] = events
    status: dict[str, Any] = {"code": _STATUS.get(record.status_code, 0)}
    if record.status_message is not None:
        status["message"] = record.status_message
    span["status"] = status
    return span


def otlp_json_lines(records: Iterable[SpanRecord]) -> Iterator[str]:
    """The records as OTLP JSON Lines: one `TracesData` document per line (no line break in it), the spans of each
    service name together, in the records' order."""
    by_service: dict[str | None, list[SpanRecord]] = {}
    for record in records:
        by_service.setdefault(record.service_name, []).append(record)
    for service, members in by_service.items():
        resource: dict[str, Any] = {"attributes": []}
        if service is not None:
            resource["attributes"] = _key_values({sc.SERVICE_NAME: service})
        for start in range(0, len(members), _SPANS_PER_LINE):
            spans = [_span(r) for r in members[start : start + _SPANS_PER_LINE]]
            document = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": _SCOPE, "spans": spans}]}]}
            text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
            yield text.translate(_LINE_BREAKS_ESCAPED)


def write_records(records: Iterable[SpanRecord], path: str | os.PathLike[str]) -> Path:
    """Writes the records to `path` as OTLP JSON Lines, whole or not at all (a temporary file beside it, renamed
    into place), readable by its owner only. Raises `SessionFileError`."""
    target = Path(path)
    try:
        folder = target.parent if str(target.parent) else Path(".")
        fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)  # mode 0600
    except OSError as error:
        raise SessionFileError(f"cannot write {target}: {error.strerror or error}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for line in otlp_json_lines(records):
                handle.write(line + "\n")
        os.replace(temporary, target)
    except (OSError, ValueError) as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        detail = getattr(error, "strerror", None) or error
        raise SessionFileError(f"cannot write {target}: {detail}") from None
    return target


# --- saving and loading sessions ------------------------------------------------------------------------------------


def save_session(
    session: Session, path: str | os.PathLike[str], *, require_content: bool = False, warn: bool = True
) -> list[str]:
    """Writes the session (its root span, its steps, its nested sessions) to `path` as OTLP JSON Lines, and returns
    what it lacks for a re-run (`content_problems`; empty when nothing). A session lacking something is still
    written, with a `MissingContentWarning` (unless `warn=False`); with `require_content=True` it is not written
    and `MissingContentError` is raised. Raises `SessionFileError` when the file cannot be written."""
    problems = content_problems(session)
    if problems and require_content:
        raise MissingContentError(f"session {session.id} lacks what a re-run needs: {_problems_text(problems)}")
    write_records(session_records(session), path)
    if problems and warn:
        warnings.warn(
            MissingContentWarning(
                f"session {session.id} was saved without what a re-run needs: {_problems_text(problems)}"
            ),
            stacklevel=3,
        )
    return problems


def _outermost(sessions: list[Session]) -> list[Session]:
    ids = {s.id for s in sessions}
    return [s for s in sessions if s.parent_id not in ids]


def load_session(path: str | os.PathLike[str], session_id: str | None = None) -> Session:
    """The session a file holds: the one `session_id` names (any reference `agentotel replay` takes), else the
    file's only outermost session (a store's: the last one). Raises `SessionFileError` (one line) for a missing or
    unreadable file, a file that is neither OTLP JSON nor a store, one that holds no session or several."""
    where = str(path)
    try:
        with open_source(where) as source:
            if session_id is not None or not isinstance(source, RecordsSource):
                return source.session(session_id or "last")
            found = _outermost(source.all_sessions())
    except SessionFileError:
        raise
    except SessionNotFound as error:
        raise SessionFileError(f"{where}: {error}") from None
    except SourceError as error:
        raise SessionFileError(str(error)) from None
    if not found:
        raise SessionFileError(f"{where} holds no session (no spans)")
    if len(found) > 1:
        shown = ", ".join(f"{s.id} ({s.name})" for s in found[:3])
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        raise SessionFileError(f"{where} holds {len(found)} sessions: {shown}{more}; say which one")
    return found[0]
