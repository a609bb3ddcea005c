"""The `Session` and `Event` model, and the one code path that builds sessions from span records.

A live session (fed by the span processor as its spans end) and a session rebuilt from exported spans, a file
or a backend are the same class filled by the same functions: `Session.from_root()` / `Session.add()` and
`build_sessions()`. Derived views (events, totals, errors) are computed from the records on demand and cached
until a record is added.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import semconv as sc
from ._content import parse_json
from ._gc import paused_gc
from .pricing import model_of, prices, provider_of, usage_from_attributes
from .records import ExceptionInfo, SpanRecord

SUCCESS = sc.AGENTOTEL_SESSION_END_STATE_VALUE_SUCCESS
FAIL = sc.AGENTOTEL_SESSION_END_STATE_VALUE_FAIL
INDETERMINATE = sc.AGENTOTEL_SESSION_END_STATE_VALUE_INDETERMINATE
END_STATES = (SUCCESS, FAIL, INDETERMINATE)

KIND_SESSION = sc.AGENTOTEL_STEP_KIND_VALUE_SESSION
KIND_AGENT = sc.AGENTOTEL_STEP_KIND_VALUE_AGENT
KIND_LLM = sc.AGENTOTEL_STEP_KIND_VALUE_LLM
KIND_TOOL = sc.AGENTOTEL_STEP_KIND_VALUE_TOOL
KIND_ACTION = sc.AGENTOTEL_STEP_KIND_VALUE_ACTION
KIND_OPERATION = sc.AGENTOTEL_STEP_KIND_VALUE_OPERATION
KIND_SPAN = "span"
"""A span that is none of the agent's steps (an HTTP call, a database query, ...)."""

_LLM_OPERATIONS = frozenset(
    {
        sc.GEN_AI_OPERATION_NAME_VALUE_CHAT,
        sc.GEN_AI_OPERATION_NAME_VALUE_TEXT_COMPLETION,
        sc.GEN_AI_OPERATION_NAME_VALUE_GENERATE_CONTENT,
        sc.GEN_AI_OPERATION_NAME_VALUE_EMBEDDINGS,
    }
)


_USAGE_KEYS = (sc.GEN_AI_USAGE_INPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_PROMPT_TOKENS)

# Module globals for the attribute names `Event.from_record` reads: it runs for every span of a session.
_INPUT_MESSAGES, _OUTPUT_MESSAGES = sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES
_STEP_KIND = sc.AGENTOTEL_STEP_KIND
_ERROR = "ERROR"  # `SpanRecord.failed`, without a property call per span
_COST_AMOUNT, _SESSION_ID, _AGENT_NAME = sc.AGENTOTEL_USAGE_COST_AMOUNT, sc.SESSION_ID, sc.GEN_AI_AGENT_NAME
_TOOL_NAME, _TOOL_ARGUMENTS = sc.GEN_AI_TOOL_NAME, sc.GEN_AI_TOOL_CALL_ARGUMENTS
_TOOL_RESULT = sc.GEN_AI_TOOL_CALL_RESULT
_ACTION_TYPE, _ACTION_PARAMS, _ACTION_RETURNS = (
    sc.AGENTOTEL_ACTION_TYPE,
    sc.AGENTOTEL_ACTION_PARAMS,
    sc.AGENTOTEL_ACTION_RETURNS,
)


def kind_of(attributes: Mapping[str, Any]) -> str:
    """What a span stands for in the agent's story, by agentotel's own mark or the GenAI attributes."""
    kind = attributes.get(sc.AGENTOTEL_STEP_KIND)
    if kind:
        return str(kind)
    operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
    if operation == sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL:
        return KIND_TOOL
    if operation in (sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT, sc.GEN_AI_OPERATION_NAME_VALUE_CREATE_AGENT):
        return KIND_AGENT
    # Only a model call has an LLM operation or token usage; other spans that name a model (token counting,
    # session creation) are not calls to be counted or priced.
    if operation in _LLM_OPERATIONS or any(key in attributes for key in _USAGE_KEYS):
        return KIND_LLM
    return KIND_SPAN


def _datetime(ns: int | None) -> datetime | None:
    """The moment `ns` nanoseconds after the epoch; `None` for none, or for a time no `datetime` holds (a
    malformed span from a file or a backend)."""
    if ns is None:
        return None
    try:
        return datetime.fromtimestamp(ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return None


def _tags_of(value: Any) -> list[str]:
    """A session's tags from its root span: a list of text (one tag, when another tool wrote a single value)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(t) for t in value]
    return [str(value)]


def _error_of(record: SpanRecord) -> ExceptionInfo | None:
    if record.exceptions:
        return record.exceptions[0]
    if record.failed:
        error_type = record.attributes.get(sc.ERROR_TYPE) or record.attributes.get(sc.AGENTOTEL_SESSION_END_STATE)
        return ExceptionInfo(type=str(error_type or "Error"), message=record.status_message or "")
    return None


@dataclass(slots=True)
class Event:
    """One step of a session: an LLM call, a tool call, an action, an agent step, a nested session, a span.

    Slotted: each live session keeps its events (up to `max_ended_sessions` sessions of them)."""

    kind: str
    name: str
    action_type: str | None
    duration: float | None
    """Seconds; `None` while the step has not ended."""
    params: Any
    """Inputs: an action's params, a tool's arguments, an LLM call's input messages (content capture only)."""
    returns: Any
    """Outputs: an action's returns, a tool's result, an LLM call's output messages (content capture only)."""
    error: ExceptionInfo | None
    model: str | None
    provider: str | None
    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cost: float | None
    """USD; `None` for a step that is no priced model call."""
    span_id: str
    parent_span_id: str | None
    trace_id: str
    session_id: str | None
    start_ns: int
    end_ns: int | None
    attributes: Mapping[str, Any] = field(repr=False, default_factory=dict)
    duplicate_of: str | None = None
    """For an LLM call traced twice (by two instrumentations of the same call, one span inside the other): the
    span id of the outer span, the one that counts. A duplicate is shown among the events but counted in no total
    (`llm_calls`, cost, tokens)."""

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def start_time(self) -> datetime:
        """When the step started (computed from `start_ns` when read: most events' times are never shown)."""
        return _datetime(self.start_ns) or datetime.fromtimestamp(0, tz=UTC)

    @classmethod
    def from_record(cls, record: SpanRecord) -> Event:
        """The event a span record stands for.

        Runs for every span of a session each time its events are rebuilt (100,000 for a big session read from
        the store): each attribute is looked up once, only what the step's kind needs is read, and the event is
        built from positional arguments (keywords cost a third more)."""
        attrs = record.attributes
        get = attrs.get
        kind = get(_STEP_KIND)
        if type(kind) is not str or not kind:  # agentotel's own spans carry their kind as text
            kind = kind_of(attrs)
        name = record.name
        params: Any = None
        returns: Any = None
        action_type: str | None = None
        model: str | None = None
        provider: str | None = None
        input_tokens: int | None = None
        output_tokens: int | None = None
        cache_read_tokens: int | None = None
        cost: float | None = None
        if kind == KIND_LLM:
            if _INPUT_MESSAGES in attrs:  # content capture only: most calls have none to parse
                params = parse_json(attrs[_INPUT_MESSAGES])
            if _OUTPUT_MESSAGES in attrs:
                returns = parse_json(attrs[_OUTPUT_MESSAGES])
            usage = usage_from_attributes(attrs)
            model = model_of(attrs)
            provider = provider_of(attrs)
            recorded = get(_COST_AMOUNT)
            if isinstance(recorded, (int, float)):
                cost = float(recorded)
            elif usage is not None:
                cost = prices.cost(provider, model, usage)  # what `cost_of_attributes` does, usage read once
            if usage is not None:
                input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
                cache_read_tokens = usage.cache_read_tokens
        elif kind == KIND_TOOL:
            action_type = str(get(_TOOL_NAME, name))
            params = parse_json(get(_TOOL_ARGUMENTS))
            returns = parse_json(get(_TOOL_RESULT))
            name = action_type or name
        elif kind == KIND_ACTION:
            action_type = str(get(_ACTION_TYPE, name))
            params = parse_json(get(_ACTION_PARAMS))
            returns = parse_json(get(_ACTION_RETURNS))
        elif kind in (KIND_AGENT, KIND_SESSION):
            name = str(get(_AGENT_NAME) or name)
        start_ns, end_ns = record.start_ns, record.end_ns
        session_id = get(_SESSION_ID)
        exceptions = record.exceptions
        error = exceptions[0] if exceptions else (None if record.status_code != _ERROR else _error_of(record))
        return cls(
            kind,
            name,
            action_type,
            None if end_ns is None else max(0, end_ns - start_ns) / 1e9,
            params,
            returns,
            error,
            model,
            provider,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cost,
            record.span_id,
            record.parent_span_id,
            record.trace_id,
            session_id if session_id is None or type(session_id) is str else str(session_id),
            start_ns,
            end_ns,
            attrs,
        )

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data (the shape `agentotel replay --json` prints)."""
        return {
            "kind": self.kind,
            "name": self.name,
            "action_type": self.action_type,
            "start_time": self.start_time.isoformat(),
            "duration": self.duration,
            "params": self.params,
            "returns": self.returns,
            "error": None if self.error is None else {"type": self.error.type, "message": self.error.message},
            "model": self.model,
            "provider": self.provider,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "trace_id": self.trace_id,
            "session_id": self.session_id,
            "duplicate_of": self.duplicate_of,
        }


def _start_ns(record: SpanRecord) -> int:
    return record.start_ns


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


class Session:
    """One agent run: its identity, how it ended, and its events (nested sessions' events included).

    Live sessions fill in as their spans end; a session rebuilt from stored spans is filled the same way.
    Reading any property is thread-safe.
    """

    def __init__(
        self,
        id: str,
        name: str,
        *,
        trace_id: str,
        span_id: str,
        tags: Iterable[str] = (),
        parent_id: str | None = None,
        start_ns: int = 0,
        conversation_id: str | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.tags: list[str] = list(tags)
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        self.conversation_id = conversation_id
        self.start_ns = start_ns
        self.end_ns: int | None = None
        self.end_state: str | None = None
        self.end_state_reason: str | None = None
        self.dropped_events = 0
        self.max_events: int | None = None
        self.url_template: str | None = None
        self._records: list[SpanRecord] = []
        self._lock = threading.Lock()
        self._cache_key = -1
        self._events: list[Event] = []

    # --- building -------------------------------------------------------------------------------------------------

    @classmethod
    def from_root(cls, record: SpanRecord) -> Session:
        """The session whose root span is `record` (a span marked `agentotel.step.kind=session`)."""
        attrs = record.attributes
        session = cls(
            id=str(attrs.get(sc.SESSION_ID) or record.trace_id),
            name=str(attrs.get(sc.GEN_AI_AGENT_NAME) or record.name),
            trace_id=record.trace_id,
            span_id=record.span_id,
            tags=_tags_of(attrs.get(sc.AGENTOTEL_SESSION_TAGS)),
            parent_id=_str_or_none(attrs.get(sc.AGENTOTEL_SESSION_PARENT_ID)),
            start_ns=record.start_ns,
            conversation_id=_str_or_none(attrs.get(sc.GEN_AI_CONVERSATION_ID)),
        )
        session.apply_end(record)
        return session

    @classmethod
    def for_trace(cls, trace_id: str, records: list[SpanRecord]) -> Session:
        """A session made of a trace that holds no agentotel session: its spans, under the trace id."""
        root = min(records, key=lambda r: (r.parent_span_id is not None, r.start_ns))
        session = cls(id=trace_id, name=root.name, trace_id=trace_id, span_id=root.span_id, start_ns=root.start_ns)
        ends = [r.end_ns for r in records if r.end_ns is not None]
        session.end_ns = max(ends) if ends else None
        session.end_state = None
        for record in records:
            session.add(record)
        if session.end_ns is not None:
            failed = any(r.failed for r in records)
            session.end_state = FAIL if failed else SUCCESS
        return session

    def apply_end(self, record: SpanRecord) -> None:
        """Takes the end time and end state from the session's ended root span."""
        if record.end_ns is None:
            return
        attrs = record.attributes
        self.end_ns = record.end_ns
        state = attrs.get(sc.AGENTOTEL_SESSION_END_STATE)
        self.end_state = str(state) if state else (FAIL if record.failed else INDETERMINATE)
        reason = attrs.get(sc.AGENTOTEL_SESSION_END_STATE_REASON)
        self.end_state_reason = str(reason) if reason else None
        dropped = attrs.get(sc.AGENTOTEL_SESSION_DROPPED_EVENTS)
        if isinstance(dropped, int):
            self.dropped_events = max(self.dropped_events, dropped)
        with self._lock:
            self._cache_key = -1

    def add(self, record: SpanRecord) -> None:
        """Adds a span of this session (or of a session nested in it) as an event. Bounded by `max_events`."""
        with self._lock:
            if self.max_events is not None and len(self._records) >= self.max_events:
                self.dropped_events += 1
                return
            self._records.append(record)

    def add_all(self, records: list[SpanRecord]) -> None:
        """`add` of each record, in order, under one hold of the lock."""
        with self._lock:
            room = len(records) if self.max_events is None else max(0, self.max_events - len(self._records))
            self._records.extend(records[:room] if room < len(records) else records)
            self.dropped_events += max(0, len(records) - room)

    # --- derived views --------------------------------------------------------------------------------------------

    @property
    def events(self) -> list[Event]:
        """Every step of the session in the order they started, nested sessions' steps included."""
        with self._lock:
            if self._cache_key != len(self._records):
                records = sorted(self._records, key=_start_ns)
                # A big session's events are many small acyclic objects: no collections while they are made.
                with paused_gc() if len(records) > 1_000 else nullcontext():
                    self._events = [Event.from_record(r) for r in records]
                _mark_duplicate_llm_calls(self._events)
                self._cache_key = len(self._records)
            return list(self._events)

    def _of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    @property
    def action_events(self) -> list[Event]:
        """Actions and tool calls, in order (AgentOps' `action_events`)."""
        return self._of_kind(KIND_ACTION, KIND_TOOL)

    @property
    def tool_calls(self) -> list[Event]:
        return self._of_kind(KIND_TOOL)

    @property
    def llm_calls(self) -> list[Event]:
        """Model calls, each once: a call traced twice counts by its outer span (see `Event.duplicate_of`)."""
        return [e for e in self.events if e.kind == KIND_LLM and e.duplicate_of is None]

    @property
    def errors(self) -> list[Event]:
        """Steps that ended with an error, in the order they started."""
        return [e for e in self.events if e.error is not None]

    @property
    def first_error(self) -> Event | None:
        """The step that failed first: the failed step that ended earliest (an error's origin ends before the
        steps it propagates through), the deepest one on a tie. This is error attribution."""
        failed = [e for e in self.events if e.error is not None and e.end_ns is not None]
        if not failed:
            return None
        return min(failed, key=lambda e: (e.end_ns, -e.start_ns))

    @property
    def cost(self) -> float:
        """USD spent on the session's model calls, nested sessions' included, each call counted once."""
        return float(sum(e.cost for e in self.llm_calls if e.cost is not None))

    @property
    def unpriced_llm_calls(self) -> list[Event]:
        """Model calls with no known price (their cost is not in `cost`)."""
        return [e for e in self.llm_calls if e.cost is None]

    @property
    def input_tokens(self) -> int:
        return sum(e.input_tokens or 0 for e in self.llm_calls)

    @property
    def output_tokens(self) -> int:
        return sum(e.output_tokens or 0 for e in self.llm_calls)

    @property
    def start_time(self) -> datetime:
        return _datetime(self.start_ns) or datetime.fromtimestamp(0, tz=UTC)

    @property
    def end_time(self) -> datetime | None:
        return _datetime(self.end_ns)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end; `None` while the session runs."""
        return None if self.end_ns is None else max(0, self.end_ns - self.start_ns) / 1e9

    @property
    def ended(self) -> bool:
        return self.end_ns is not None

    @property
    def url(self) -> str:
        """Where to see the session: the `AGENTOTEL_SESSION_URL` template filled in, else the CLI reference."""
        template = self.url_template
        if template is None:
            from ._config import settings

            template = settings.session_url_template
        if template:
            try:
                return template.format(trace_id=self.trace_id, session_id=self.id)
            except (KeyError, IndexError, ValueError):
                pass
        return f"agentotel replay {self.id}"

    def totals(self) -> dict[str, Any]:
        """The totals that the session's root span carries when it ends."""
        events = self.events
        llm = [e for e in events if e.kind == KIND_LLM and e.duplicate_of is None]
        totals: dict[str, Any] = {
            sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS: sum(e.input_tokens or 0 for e in llm),
            sc.AGENTOTEL_SESSION_USAGE_OUTPUT_TOKENS: sum(e.output_tokens or 0 for e in llm),
            sc.AGENTOTEL_SESSION_LLM_CALL_COUNT: len(llm),
            sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT: sum(1 for e in events if e.kind in (KIND_TOOL, KIND_ACTION)),
            sc.AGENTOTEL_SESSION_ERROR_COUNT: sum(1 for e in events if e.error is not None),
        }
        priced = [e.cost for e in llm if e.cost is not None]
        if priced:
            totals[sc.AGENTOTEL_SESSION_COST_AMOUNT] = float(sum(priced))
        if self.dropped_events:
            totals[sc.AGENTOTEL_SESSION_DROPPED_EVENTS] = self.dropped_events
        return totals

    def replay(self, *, width: int = 100) -> str:
        """The session as a text timeline: offsets, steps, inputs and outputs, the failing step marked."""
        from .replay.text import render_text

        return render_text(self, width=width)

    def to_html(self, path: str | os.PathLike[str] | None = None) -> str:
        """The session as one self-contained HTML page (timeline, scrubber, detail pane; no network needed),
        also written to `path` (UTF-8) when given."""
        from .replay.html import render_html

        page = render_html(self)
        if path is not None:
            Path(path).write_text(page, encoding="utf-8")
        return page

    def to_dict(self) -> dict[str, Any]:
        """The session as JSON-ready data, with the same fields as this class."""
        first = self.first_error
        return {
            "id": self.id,
            "name": self.name,
            "tags": list(self.tags),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "start_time": self.start_time.isoformat(),
            "end_time": None if self.end_time is None else self.end_time.isoformat(),
            "duration": self.duration,
            "end_state": self.end_state,
            "end_state_reason": self.end_state_reason,
            "cost": self.cost,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "url": self.url,
            "first_error": None if first is None else first.span_id,
            "dropped_events": self.dropped_events,
            "events": [e.to_dict() for e in self.events],
        }

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __bool__(self) -> bool:
        return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __repr__(self) -> str:
        return f"<Session {self.name!r} id={self.id} state={self.end_state} events={len(self)} cost=${self.cost:.6f}>"


_MAX_ANCESTORS = 64


def _mark_duplicate_llm_calls(events: list[Event]) -> None:
    """Marks the LLM calls traced twice. An LLM span that starts inside another LLM span of the same provider (two
    instrumentations of one call, such as agentotel's and the official openai-v2 one, or a framework's model span
    around the SDK's) is the same call. Of such a nest, the outermost span with token usage counts (the outermost
    one when none has usage); the others get `duplicate_of` its span id.

    Linear in the number of events: only an LLM call with an LLM span among its ancestors can be a duplicate, and
    whether a span has one is worked out once per span (`_under_llm`); only those calls walk their ancestors."""
    llm = [e for e in events if e.kind == KIND_LLM]
    if len(llm) < 2:
        return
    by_span = {e.span_id: e for e in events}
    walked: set[int] | None = None  # the calls that walk their ancestors (None: all of them)
    if len(by_span) == len(events):
        llm_ids = {e.span_id for e in llm}
        memo: dict[str, bool] = {}
        llm = [e for e in llm if _under_llm(e, by_span, llm_ids, memo)]
        if not llm:
            return
        walked = {id(e) for e in llm}
    by_id = {(e.trace_id, e.span_id): e for e in events}
    nests: dict[tuple[str, str], list[tuple[int, Event]]] = {}
    for event in llm:
        outermost, depth, parent_id, steps = event, 0, event.parent_span_id, 0
        while parent_id is not None and steps < _MAX_ANCESTORS:
            ancestor = by_id.get((event.trace_id, parent_id))
            if ancestor is None:
                break
            if ancestor.kind == KIND_LLM and _same_call(ancestor, event):
                outermost, depth = ancestor, depth + 1
            parent_id, steps = ancestor.parent_span_id, steps + 1
        nests.setdefault((outermost.trace_id, outermost.span_id), []).append((depth, event))
    if walked is not None:
        # A call that did not walk has no LLM ancestor: it is the outermost of its nest, at depth 0.
        for key, nest in nests.items():
            outermost = by_id[key]
            if id(outermost) not in walked:
                nest.insert(0, (0, outermost))
    for nest in nests.values():
        if len(nest) < 2:
            continue
        members = [event for _, event in sorted(nest, key=lambda pair: pair[0])]
        counted = next((e for e in members if e.input_tokens is not None or e.output_tokens is not None), members[0])
        for event in members:
            event.duplicate_of = None if event is counted else counted.span_id


def _under_llm(event: Event, by_span: dict[str, Event], llm_ids: set[str], memo: dict[str, bool]) -> bool:
    """Whether an LLM span may sit among `event`'s ancestors (span ids unique among the events). Errs towards
    yes: an ancestor in another trace, or a chain longer than the walk, answers yes (the exact walk decides)."""
    path: list[str] = []
    parent_id = event.parent_span_id
    found = False
    while parent_id is not None:
        known = memo.get(parent_id)
        if known is not None:
            found = known
            break
        if parent_id in llm_ids or len(path) >= _MAX_ANCESTORS:
            found = True
            break
        ancestor = by_span.get(parent_id)
        if ancestor is None:
            break
        if ancestor.trace_id != event.trace_id:
            return True  # not remembered: the answer depends on which trace asks
        path.append(parent_id)
        parent_id = ancestor.parent_span_id
    for span_id in path:
        memo[span_id] = found
    return found


def _same_call(outer: Event, inner: Event) -> bool:
    """Whether `inner`, a span under `outer`, can be the same model call: same provider (or one unknown), and it
    started while `outer` was open (a span left current by mistake is not taken for the call it outlived)."""
    if outer.provider is not None and inner.provider is not None and outer.provider != inner.provider:
        return False
    return outer.start_ns <= inner.start_ns and (outer.end_ns is None or inner.start_ns <= outer.end_ns)


def _chain(sessions: dict[str, Session], owner: Session | None) -> list[Session]:
    """`owner` and the sessions it is nested in, innermost first (each once, should parent ids form a loop)."""
    chain: list[Session] = []
    seen: set[str] = set()
    while owner is not None and owner.id not in seen:
        seen.add(owner.id)
        chain.append(owner)
        owner = sessions.get(owner.parent_id) if owner.parent_id else None
    return chain


def build_sessions(records: Iterable[SpanRecord], *, include_traces_without_session: bool = True) -> list[Session]:
    """Sessions rebuilt from span records, in the order they started.

    A span belongs to the session its `session.id` names and to every session that one is nested in. Spans of
    traces that hold no agentotel session become one session per trace (under the trace id), when asked.
    """
    records = list(records)
    # Sessions, chains and per-session lists are acyclic: a big batch is built with the cyclic collector paused.
    with paused_gc() if len(records) > 1_000 else nullcontext():
        return _build_sessions(records, include_traces_without_session)


def _build_sessions(records: list[SpanRecord], include_traces_without_session: bool) -> list[Session]:
    sessions: dict[str, Session] = {}
    for record in records:
        if record.attributes.get(sc.AGENTOTEL_STEP_KIND) == KIND_SESSION:
            session = Session.from_root(record)
            sessions[session.id] = session
    by_trace: dict[str, list[SpanRecord]] = {}
    # The sessions a span of each `session.id` belongs to (that session and those it is nested in), worked out once
    # per id; each session's spans are gathered in order and added in one call (a lock per span was a fifth of
    # the build of a 100,000-span session).
    chains: dict[str | None, list[Session]] = {}
    gathered: dict[str, list[SpanRecord]] = {}
    session_id_key = sc.SESSION_ID
    for record in records:
        owner_id = record.attributes.get(session_id_key)
        if owner_id is not None and type(owner_id) is not str:
            owner_id = str(owner_id)  # another tool's value of another type (a list is no dict key)
        chain = chains.get(owner_id)
        if chain is None:
            chain = _chain(sessions, sessions.get(owner_id) if owner_id is not None else None)
            chains[owner_id] = chain
        if not chain:
            by_trace.setdefault(record.trace_id, []).append(record)
            continue
        owner = chain[0]
        if record.span_id == owner.span_id and record.trace_id == owner.trace_id:
            # A session's own root span is an event of the sessions it is nested in, not of itself.
            chain = _chain(sessions, sessions.get(owner.parent_id) if owner.parent_id else None)
        for member in chain:
            gathered.setdefault(member.id, []).append(record)
    for session_id, members in gathered.items():
        sessions[session_id].add_all(members)
    result = sorted(sessions.values(), key=lambda s: s.start_ns)
    if include_traces_without_session:
        traces_with_session = {s.trace_id for s in result}
        for trace_id, trace_records in by_trace.items():
            if trace_id not in traces_with_session:
                result.append(Session.for_trace(trace_id, trace_records))
        result.sort(key=lambda s: s.start_ns)
    return result
