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
from typing import TYPE_CHECKING, Any

from . import conventions
from . import semconv as sc
from ._content import parse_json
from ._gc import paused_gc
from .pricing import model_of, prices, provider_of, usage_from_attributes
from .records import ExceptionInfo, SpanRecord

if TYPE_CHECKING:
    from .diff import SessionDiff

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
KIND_SPAN = conventions.KIND_SPAN
kind_of = conventions.kind_of

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


def _datetime(ns: int | None) -> datetime | None:
    """The moment `ns` nanoseconds after the epoch; `None` for none, or for a time no `datetime` holds (a
    malformed span from a file or a backend)."""
    if ns is None:
        return None
    try:
        return datetime.fromtimestamp(ns / 1e9, tz=UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return None


COST_DIGITS = 12
"""Significant digits a cost keeps in JSON output: enough for any price, none of a float sum's noise."""


def json_cost(cost: float | None) -> float | None:
    """A cost in USD as JSON output shows it: rounded to `COST_DIGITS` significant digits, so that a sum of
    prices reads `2.415e-05` rather than `2.4149999999999997e-05`. `None` (unknown) stays `None`."""
    if cost is None:
        return None
    return float(f"{cost:.{COST_DIGITS}g}")


def recorded_cost(cost: float | None, llm_calls: int) -> float | None:
    """A session's cost as its recorded totals say it (a root span's `agentotel.session.cost.amount` and
    `agentotel.session.llm_call.count`, a store row): the amount, which `Session.totals` writes only when every
    model call has a price (`Session.cost_known`); 0 for a session that made no model call; else unknown, `None`."""
    if cost is not None:
        return cost
    return 0.0 if not llm_calls else None


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
    """USD: a priced model call's, or the cost the application gave a tool (`@tool(cost=...)`); `None` for any
    other step."""
    span_id: str
    parent_span_id: str | None
    trace_id: str
    session_id: str | None
    start_ns: int
    end_ns: int | None
    attributes: Mapping[str, Any] = field(repr=False, default_factory=dict)
    duplicate_of: str | None = None
    """For a step recorded twice (an LLM call or tool call that two instrumentations each traced, nested or side
    by side): the span id of the one that counts. A duplicate is shown among the events but counted in no total
    or list of steps (`llm_calls`, `tool_calls`, `action_events`, `errors`, cost, tokens)."""

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
        kind: Any = get(_STEP_KIND)  # agentotel's own spans carry their kind as text
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
        foreign = type(kind) is not str or not kind  # another instrumentation's span: read in every form it may take
        if foreign:
            kind = kind_of(attrs)
        if kind == KIND_LLM:
            if _INPUT_MESSAGES in attrs:  # content capture only: most calls have none to parse
                params = parse_json(attrs[_INPUT_MESSAGES])
            elif foreign:
                params = conventions.llm_input(attrs)
            if _OUTPUT_MESSAGES in attrs:
                returns = parse_json(attrs[_OUTPUT_MESSAGES])
            elif foreign:
                returns = conventions.llm_output(attrs)
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
            if foreign:
                action_type = conventions.tool_name(attrs, name)
                params = conventions.tool_arguments(attrs)
                returns = conventions.tool_result(attrs)
            else:
                action_type = str(get(_TOOL_NAME, name))
                params = parse_json(get(_TOOL_ARGUMENTS))
                returns = parse_json(get(_TOOL_RESULT))
            name = action_type or name
            declared = get(_COST_AMOUNT)  # a cost the application gave the tool
            if type(declared) is float or type(declared) is int:
                cost = float(declared)
        elif kind == KIND_ACTION:
            action_type = str(get(_ACTION_TYPE, name))
            params = parse_json(get(_ACTION_PARAMS))
            returns = parse_json(get(_ACTION_RETURNS))
        elif kind in (KIND_AGENT, KIND_SESSION):
            name = conventions.agent_name(attrs, name) if foreign else str(get(_AGENT_NAME) or name)
            if foreign:
                params, returns = conventions.step_input(attrs), conventions.step_output(attrs)
        elif foreign and kind == KIND_OPERATION:
            params, returns = conventions.step_input(attrs), conventions.step_output(attrs)
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
            "cost": json_cost(self.cost),
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "trace_id": self.trace_id,
            "session_id": self.session_id,
            "duplicate_of": self.duplicate_of,
        }


def _step_costs(events: list[Event]) -> tuple[list[float], list[float], bool]:
    """The costs of the model calls that have a price and of the tool calls that declared one, each step once, and
    whether every model call has a price (`Session.cost_known`). The one place a session's cost is summed from."""
    priced: list[float] = []
    tools: list[float] = []
    all_priced = True
    for event in events:
        if event.duplicate_of is not None:
            continue
        if event.kind == KIND_LLM:
            if event.cost is None:
                all_priced = False
            else:
                priced.append(event.cost)
        elif event.kind == KIND_TOOL and event.cost is not None:
            tools.append(event.cost)
    return priced, tools, all_priced


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
        self.root_attributes: Mapping[str, Any] = {}
        """The attributes of the session's root span, for a session rebuilt from it (the test run and test that
        recorded it, for one): empty for a live session."""
        self._records: list[SpanRecord] = []
        self._root: SpanRecord | None = None  # the session's own span, once seen: what `save` writes first
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
        session.root_attributes = attrs
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
        self._root = record
        if not self.root_attributes:
            self.root_attributes = record.attributes  # a live session's too: its test run and test, for one
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
                _mark_duplicate_steps(self._events)
                self._cache_key = len(self._records)
            return list(self._events)

    def _of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds and e.duplicate_of is None]

    @property
    def action_events(self) -> list[Event]:
        """Actions and tool calls, in order (AgentOps' `action_events`), each once."""
        return self._of_kind(KIND_ACTION, KIND_TOOL)

    @property
    def tool_calls(self) -> list[Event]:
        """Tool calls, in order, each once (a call two instrumentations traced counts by one of its spans)."""
        return self._of_kind(KIND_TOOL)

    @property
    def llm_calls(self) -> list[Event]:
        """Model calls, each once: a call traced twice counts by its outer span (see `Event.duplicate_of`)."""
        return [e for e in self.events if e.kind == KIND_LLM and e.duplicate_of is None]

    @property
    def errors(self) -> list[Event]:
        """Steps that ended with an error, in the order they started, each once."""
        return _failed_steps(self.events)

    @property
    def first_error(self) -> Event | None:
        """The step that failed first: the failed step that ended earliest (an error's origin ends before the
        steps it propagates through), the deepest one on a tie. This is error attribution. A step recorded twice
        is named by the span that counts (by its duplicate only when that one holds the error)."""
        failed = [e for e in _failed_steps(self.events) if e.end_ns is not None]
        if not failed:
            return None
        return min(failed, key=lambda e: (e.end_ns, -e.start_ns))

    @property
    def cost(self) -> float:
        """USD spent on the session's priced model calls and the costs its tools declared (`@tool(cost=...)`),
        nested sessions' included, each step counted once. The session's whole cost only when `cost_known`: what
        is shown and checked is `known_cost`."""
        priced, tools, _ = _step_costs(self.events)
        return float(sum(priced) + sum(tools))

    @property
    def unpriced_llm_calls(self) -> list[Event]:
        """Model calls with no known price (their cost is not in `cost`): a model genai-prices does not price, or
        a call that reported no token usage."""
        return [e for e in self.llm_calls if e.cost is None]

    @property
    def cost_known(self) -> bool:
        """Whether the session's cost is known: every model call in it has a price (a session with no model call
        costs nothing). The one rule for unknown cost: replays and lists show it as `unknown`, `--json` as `null`,
        and a cost limit (`agentotel check --max-cost`, `assert_cost_below`) fails on it."""
        return not self.unpriced_llm_calls

    @property
    def known_cost(self) -> float | None:
        """`cost` when it is the session's whole cost (`cost_known`), else `None` (unknown)."""
        priced, tools, all_priced = _step_costs(self.events)
        return float(sum(priced) + sum(tools)) if all_priced else None

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
        """Where to see the session: the `AGENTOTEL_SESSION_URL` template filled in (`web_url`), else the command
        that replays it (`replay_command`)."""
        return self.web_url or self.replay_command

    @property
    def web_url(self) -> str | None:
        """The `AGENTOTEL_SESSION_URL` template filled in for this session; `None` when none is set (or it does
        not fill)."""
        template = self.url_template
        if template is None:
            from ._config import settings

            template = settings.session_url_template
        if template:
            try:
                return template.format(trace_id=self.trace_id, session_id=self.id)
            except (KeyError, IndexError, ValueError):
                pass
        return None

    @property
    def replay_command(self) -> str:
        """The command that shows the session as a text timeline."""
        return f"agentotel replay {self.id}"

    @property
    def service_name(self) -> str | None:
        """The `service.name` of the process that recorded the session's root span (`None` before it is seen)."""
        root = self._root
        return None if root is None else root.service_name

    def totals(self) -> dict[str, Any]:
        """The totals that the session's root span carries when it ends."""
        events = self.events
        llm = [e for e in events if e.kind == KIND_LLM and e.duplicate_of is None]
        totals: dict[str, Any] = {
            sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS: sum(e.input_tokens or 0 for e in llm),
            sc.AGENTOTEL_SESSION_USAGE_OUTPUT_TOKENS: sum(e.output_tokens or 0 for e in llm),
            sc.AGENTOTEL_SESSION_LLM_CALL_COUNT: len(llm),
            sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT: sum(
                1 for e in events if e.kind in (KIND_TOOL, KIND_ACTION) and e.duplicate_of is None
            ),
            sc.AGENTOTEL_SESSION_ERROR_COUNT: len(_failed_steps(events)),
        }
        priced, tools, all_priced = _step_costs(events)
        if (priced or tools) and all_priced:  # `cost_known`: a sum that leaves calls out is no session's cost
            totals[sc.AGENTOTEL_SESSION_COST_AMOUNT] = float(sum(priced) + sum(tools))
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

    def diff(self, other: Session, *, ignore: str | Iterable[str] | None = None) -> SessionDiff:
        """How `other` behaves differently from this session: steps aligned, arguments and results that changed,
        figures before and after, the first divergence (`agentotel.diff`). `ignore` rules leave things out
        (`agentotel.diff_ignore`: `["arguments.request_id", "cost", "@current_time"]`)."""
        from .diff import diff

        return diff(self, other, ignore=ignore)

    def save(self, path: str | os.PathLike[str], *, require_content: bool = False) -> list[str]:
        """Writes the session's spans to `path` as OTLP JSON Lines (a fixture `agentotel.testing.rerun` re-runs,
        readable by every `--source`) and returns what it lacks for a re-run, warned about (`require_content=True`
        raises instead). See `sessions_file.save_session`."""
        from .sessions_file import save_session

        return save_session(self, path, require_content=require_content)

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
            "cost": json_cost(self.known_cost),
            "cost_known": self.cost_known,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "url": self.web_url,
            "replay_command": self.replay_command,
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


def _failed_steps(events: list[Event]) -> list[Event]:
    """The failed events, each step once: a duplicate counts only when the span that counts for it has no error."""
    failed = [e for e in events if e.error is not None]
    if not any(e.duplicate_of is not None for e in failed):
        return failed
    failed_ids = {e.span_id for e in failed}
    return [e for e in failed if e.duplicate_of is None or e.duplicate_of not in failed_ids]


_MAX_ANCESTORS = 64


def _mark_duplicate_steps(events: list[Event]) -> None:
    """Marks the steps recorded twice (by two instrumentations of one call: agentotel's and another tracer's, or a
    framework's span around the SDK's). Every event but one of each such group gets `duplicate_of` the span id of
    the one that counts; see `_duplicate_llm_calls` and `_duplicate_tool_calls` for what makes a group."""
    llm = [e for e in events if e.kind == KIND_LLM]
    tools = [e for e in events if e.kind == KIND_TOOL]
    if len(llm) < 2 and len(tools) < 2:
        return
    by_id = {(e.trace_id, e.span_id): e for e in events}
    if len(llm) >= 2:
        _duplicate_llm_calls(llm, by_id)
    if len(tools) >= 2:
        _duplicate_tool_calls(tools, by_id)


class _Groups:
    """Union-find over events (by identity): which events are one step."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._events: dict[int, Event] = {}

    def find(self, event: Event) -> int:
        key = id(event)
        self._events.setdefault(key, event)
        parent = self._parent.setdefault(key, key)
        while parent != self._parent[parent]:
            self._parent[parent] = self._parent[self._parent[parent]]
            parent = self._parent[parent]
        return parent

    def union(self, a: Event, b: Event) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self._parent[root_b] = root_a

    def groups(self) -> list[list[Event]]:
        found: dict[int, list[Event]] = {}
        for event in self._events.values():
            found.setdefault(self.find(event), []).append(event)
        return [members for members in found.values() if len(members) > 1]


def _ancestors(event: Event, by_id: dict[tuple[str, str], Event], kind: str) -> list[tuple[int, Event]]:
    """The events of `kind` among `event`'s ancestors in its trace, nearest first, with their distance."""
    found = []
    parent_id, steps = event.parent_span_id, 0
    while parent_id is not None and steps < _MAX_ANCESTORS:
        ancestor = by_id.get((event.trace_id, parent_id))
        if ancestor is None:
            break
        steps += 1
        if ancestor.kind == kind:
            found.append((steps, ancestor))
        parent_id = ancestor.parent_span_id
    return found


def _with_kind_below(events: list[Event], by_id: dict[tuple[str, str], Event], kind: str) -> list[Event]:
    """The events of `events` (all of `kind`) that have an ancestor of `kind`: only they can be nested duplicates.
    Whether a span is of `kind` or has such an ancestor is worked out once per span (remembered along each walk),
    so this is linear in the number of events. A chain longer than the walk answers yes (the exact walk decides)."""
    ids = {(e.trace_id, e.span_id) for e in events}
    below: dict[tuple[str, str], bool] = {}  # span -> it or one of its ancestors is of `kind`
    found = []
    for event in events:
        if event.parent_span_id is None:
            continue
        key: tuple[str, str] | None = (event.trace_id, event.parent_span_id)
        path: list[tuple[str, str]] = []
        answer = False
        while key is not None:
            known = below.get(key)
            if known is not None:
                answer = known
                break
            if key in ids or len(path) >= _MAX_ANCESTORS:
                answer = True
                break
            ancestor = by_id.get(key)
            if ancestor is None:
                break
            path.append(key)
            key = None if ancestor.parent_span_id is None else (event.trace_id, ancestor.parent_span_id)
        for step in path:
            below[step] = answer
        if answer:
            found.append(event)
    return found


def _overlaps(a: Event, b: Event) -> bool:
    """Whether two steps ran at the same time (one started while the other was open)."""
    a_end = a.end_ns if a.end_ns is not None else a.start_ns
    b_end = b.end_ns if b.end_ns is not None else b.start_ns
    return a.start_ns <= b_end and b.start_ns <= a_end


def _model_key(model: str | None) -> str | None:
    """A model name without a router's provider prefix (`openai/gpt-4o` -> `gpt-4o`), in lower case."""
    if not model:
        return None
    return model.rsplit("/", 1)[-1].lower()


def _same_model(a: Event, b: Event) -> bool:
    """Whether two spans can name the same model: either names none, or one name starts with the other (a
    request's `gpt-4o-mini` and a response's `gpt-4o-mini-2024-07-18`)."""
    left, right = _model_key(a.model), _model_key(b.model)
    return left is None or right is None or left.startswith(right) or right.startswith(left)


def _response_id(event: Event) -> str | None:
    value = event.attributes.get(sc.GEN_AI_RESPONSE_ID)
    return None if value in (None, "") else str(value)


def _has_usage(event: Event) -> bool:
    return event.input_tokens is not None or event.output_tokens is not None


def _same_llm_call(outer: Event, inner: Event) -> bool:
    """Whether two LLM spans can be one call: nothing they both state differs (response id, usage, model)."""
    left, right = _response_id(outer), _response_id(inner)
    if left is not None and right is not None and left != right:
        return False
    if (
        _has_usage(outer)
        and _has_usage(inner)
        and (outer.input_tokens, outer.output_tokens) != (inner.input_tokens, inner.output_tokens)
    ):
        return False
    return _same_model(outer, inner)


def _duplicate_llm_calls(llm: list[Event], by_id: dict[tuple[str, str], Event]) -> None:
    """Each model call counted once, whatever records it. Two LLM spans are one call when
    - one is nested in the other (started while it was open) and nothing they both state differs; provider names
      do not matter (a framework names itself: Strands writes `strands-agents`);
    - or they carry the same `gen_ai.response.id`;
    - or, side by side in one trace, they ran at the same time with the same model and the same usage (two
      tracers each making their own span of one call), and no response ids that differ.
    An LLM span around two or more calls of its own (a framework's span rolling up a retry or a chain of calls) is
    no call itself: it gets `duplicate_of` the first of them. Of a group, the one that counts is the outermost one
    with a cost, else with usage (the first when none has usage)."""
    groups = _Groups()
    depth: dict[int, int] = {}
    inner_calls: dict[int, list[Event]] = {}
    for event in _with_kind_below(llm, by_id, KIND_LLM):
        for distance, ancestor in _ancestors(event, by_id, KIND_LLM):
            started_inside = ancestor.start_ns <= event.start_ns and (
                ancestor.end_ns is None or event.start_ns <= ancestor.end_ns
            )
            if not started_inside:
                continue
            if _same_llm_call(ancestor, event):
                groups.union(ancestor, event)
                depth[id(event)] = max(depth.get(id(event), 0), distance)
            else:
                inner_calls.setdefault(id(ancestor), []).append(event)
    by_response: dict[tuple[str, str], Event] = {}
    by_usage: dict[tuple[str, int | None, int | None], list[Event]] = {}
    for event in llm:
        response_id = _response_id(event)
        if response_id is not None:
            first = by_response.setdefault((event.trace_id, response_id), event)
            if first is not event:
                groups.union(first, event)
        if _has_usage(event):
            by_usage.setdefault((event.trace_id, event.input_tokens, event.output_tokens), []).append(event)
    for same_usage in by_usage.values():
        if len(same_usage) < 2:
            continue
        same_usage.sort(key=lambda e: e.start_ns)
        for i, left in enumerate(same_usage):
            for right in same_usage[i + 1 :]:
                if right.start_ns > (left.end_ns if left.end_ns is not None else left.start_ns):
                    break  # sorted by start: no later one overlaps `left` either
                if _same_llm_call(left, right) and not _both_agentotel(left, right):
                    groups.union(left, right)
    for members in groups.groups():
        # Priced before unpriced (a framework may name a provider its model is not priced under: Google ADK says
        # `gcp.gemini` of an OpenAI model), then with usage before without, then the outermost.
        members.sort(key=lambda e: (e.cost is None, not _has_usage(e), depth.get(id(e), 0), e.start_ns, e.span_id))
        counted = members[0]
        for event in members[1:]:
            event.duplicate_of = counted.span_id
    by_identity = {id(e): e for e in llm}
    for key, inner in inner_calls.items():
        outer = by_identity.get(key)
        distinct = {groups.find(e) for e in inner}
        if outer is not None and outer.duplicate_of is None and len(distinct) >= 2:
            counted_inner = min(inner, key=lambda e: e.start_ns)
            outer.duplicate_of = counted_inner.duplicate_of or counted_inner.span_id


def _both_agentotel(a: Event, b: Event) -> bool:
    """Whether both spans are agentotel's own: its instrumentation records each call once, so two of its spans
    side by side are two calls, however alike."""
    return _STEP_KIND in a.attributes and _STEP_KIND in b.attributes


def _duplicate_tool_calls(tools: list[Event], by_id: dict[tuple[str, str], Event]) -> None:
    """Each tool call shown once, whatever records it: a tool span nested in a tool span of the same tool (a
    framework's tool step around an `@agentotel.tool` function, an MCP client's call around the server's span of
    it) or with the same tool call id (two tracers' spans of one call) is the same call. The outermost counts."""
    groups = _Groups()
    depth: dict[int, int] = {}
    for event in _with_kind_below(tools, by_id, KIND_TOOL):
        for distance, ancestor in _ancestors(event, by_id, KIND_TOOL):
            if ancestor.action_type == event.action_type or _same_call_id(ancestor, event):
                groups.union(ancestor, event)
                depth[id(event)] = max(depth.get(id(event), 0), distance)
    by_call: dict[tuple[str, str, str | None], Event] = {}
    for event in tools:
        call_id = conventions.tool_call_id(event.attributes)
        if call_id:
            first = by_call.setdefault((event.trace_id, call_id, event.action_type), event)
            if first is not event and not _both_agentotel(first, event):
                groups.union(first, event)
    for members in groups.groups():
        members.sort(key=lambda e: (depth.get(id(e), 0), e.start_ns, e.span_id))
        counted = members[0]
        for event in members[1:]:
            event.duplicate_of = counted.span_id
        # The step failed as its origin failed: the span that raised (it ends first) knows the exception's type and
        # message, where an outer one may only have the text a framework or protocol passed on (MCP's isError).
        failed = [e for e in members if e.error is not None and e.end_ns is not None]
        if counted.error is not None and failed:
            counted.error = min(failed, key=lambda e: (e.end_ns, -e.start_ns)).error


def _same_call_id(a: Event, b: Event) -> bool:
    left, right = conventions.tool_call_id(a.attributes), conventions.tool_call_id(b.attributes)
    return left is not None and left == right


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

    A span belongs to the session its `session.id` names, when it is in that session's trace, and to every session
    that one is nested in. Spans of traces that hold no agentotel session become one session per trace (under the
    trace id), when asked.
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
        if record.trace_id != owner.trace_id:
            by_trace.setdefault(record.trace_id, []).append(record)
            continue  # a `session.id` outside its session's trace (forged, stale baggage) joins no session
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
