"""The session API: `session()` (context manager and decorator), AgentOps-style `start_session()` /
`end_session()`, and `get_session()`.

A session is a root-of-its-story span (`invoke_agent {name}`) made current, with the `Session` object kept in the
OpenTelemetry context (so threads and asyncio tasks each see their own) and its id in W3C baggage (so other
processes can stamp their spans with it). A session started inside another is its child, `start_session()` too:
AgentOps' `start_session()` nests the same way (its session span starts in the current context), and code such as
a test fixture's session around an agent's own `start_session()` relies on the outer one seeing the inner one's
steps and cost.

A session keeps its own spans and links to the sessions nested in it; what it shows (`events`, cost, tokens) is
gathered from them when read, and the totals it records as it ends are its own plus those of the nested sessions
that ended before it. So a span is filed once however deep sessions nest, and code that never ends its sessions
(each nested in the one before) costs no more per span. Running sessions are bounded (`live.py`): past
`AGENTOTEL_MAX_RUNNING_SESSIONS` the oldest is ended `Indeterminate`.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import baggage, context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import _clock as clock
from . import semconv as sc
from ._config import settings
from ._gc import paused_gc
from ._session_stamps import session_stamps
from ._wrapping import wrap
from .configure import ensure_initialized
from .live import MAX_RUNNING_ENV, RECORD_BYTES, REPORT_EVERY, estimate, registry
from .model import END_STATES, FAIL, INDETERMINATE, SUCCESS, Event, Session, recorded_cost
from .processors import SESSION_CONTEXT_KEY, session_id_in
from .propagation import nests_in_remote_session
from .records import SpanRecord, format_span_id, format_trace_id
from .steps import error_type_name, record_error, tracer

log = logging.getLogger("agentotel")

F = TypeVar("F", bound=Callable[..., Any])


class LiveSession(Session):
    """A session running in this process: a `Session` that can be ended and tagged.

    Its own spans are its records; the sessions nested in it are linked (`children`) and their steps shown in its
    `events` (gathered when read, cached until one of them changes). Never raises from its hooks."""

    _span: Span
    _parent_context: Context
    _token: object | None
    _pid: int
    """The process that started the session: only it ends the session's span."""

    def __init__(self, id: str, name: str, **kwargs: Any) -> None:
        super().__init__(id, name, **kwargs)
        self.children: list[LiveSession] = []
        """The sessions started inside this one (in this process), in the order they started."""
        self.held_bytes = 0
        """Estimated bytes of the spans this session keeps (`live.estimate`): its own, and those of nested sessions
        the registry let go of, which it took over."""
        self._pending_bytes = 0
        self.recorded_totals: dict[str, Any] | None = None
        """The totals set on the session's span as it ended."""
        self._holder: weakref.ref[LiveSession] | None = None
        self._view: list[Event] = []
        self._view_key: tuple[int, int] | None = None

    def end(self, end_state: str = SUCCESS, end_state_reason: str | None = None) -> None:
        """Ends the session (once; later calls do nothing) with its totals on its span. Never raises: should
        recording the end fail, the session still ends and the context it made current is put back."""
        try:
            _end(self, end_state, end_state_reason)
        except Exception:
            log.debug("Could not end session %s", self.id, exc_info=True)
            _end_untraced(self, end_state, end_state_reason)

    def add_tags(self, tags: Iterable[str]) -> None:
        """Adds tags to a running session. Never raises: a tag that cannot be made text is left out."""
        try:
            for tag in _tags(tags, with_defaults=False):
                if tag not in self.tags:
                    self.tags.append(tag)
            self._span.set_attribute(sc.AGENTOTEL_SESSION_TAGS, list(self.tags))
        except Exception:
            log.debug("Could not tag session %s", self.id, exc_info=True)

    @property
    def active(self) -> bool:
        return not self.ended

    # --- what it holds --------------------------------------------------------------------------------------------

    def add(self, record: SpanRecord) -> None:
        """Keeps a span of this session, within `max_events` and the registry's byte budget (else counts it as
        dropped)."""
        # With capture off and no exception (most spans), a span costs the fixed part: no call to work that out.
        size = estimate(record) if settings.capture_content or record.exceptions else RECORD_BYTES
        # Before this session's lock: making room takes the registry's, which is held while it takes sessions'.
        if registry.full and not registry.make_room(size):
            with self._lock:
                self.dropped_events += 1
            return
        with self._lock:
            if self.max_events is not None and len(self._records) >= self.max_events:
                self.dropped_events += 1
                return
            self._records.append(record)
            self.held_bytes += size
            pending = self._pending_bytes + size
            if pending < REPORT_EVERY:
                self._pending_bytes = pending
                return
            self._pending_bytes = 0
        registry.report(pending)

    def reported_bytes(self) -> int:
        """The bytes of `held_bytes` the registry has counted (the rest is reported at the next `REPORT_EVERY`)."""
        return self.held_bytes - self._pending_bytes

    def _report_pending(self) -> None:
        with self._lock:
            pending, self._pending_bytes = self._pending_bytes, 0
        if pending:
            registry.report(pending)

    def adopt(self, child: LiveSession) -> None:
        """Links a session started inside this one."""
        with self._lock:
            self.children.append(child)
            child._holder = weakref.ref(self)

    def absorb(self, child: Session) -> None:
        """Takes over the spans of a nested session the registry lets go of: this session still shows them (and
        the sessions nested in that one stay linked, to this one now)."""
        grandchildren = list(getattr(child, "children", ()))
        records = list(child._records)
        with self._lock:
            self.children = [c for c in self.children if c is not child]
            self.children.extend(grandchildren)
            self._records.extend(records)
            self.held_bytes += int(getattr(child, "held_bytes", 0))
            self._pending_bytes += int(getattr(child, "_pending_bytes", 0))
        for grandchild in grandchildren:
            grandchild._holder = weakref.ref(self)

    def release_views(self) -> None:
        """Drops the events built for an ended session (they are built again when read): a session kept in memory
        keeps its spans, not a second copy of their content."""
        with self._lock:
            self._events = []
            self._cache_key = -1
            self._view = []
            self._view_key = None
        self._report_pending()  # what it holds counts in full once it ended: it is what the ring weighs

    def _tree(self) -> list[Session]:
        """This session and every session nested in it, each once."""
        found: list[Session] = []
        seen: set[int] = set()
        waiting: list[Session] = [self]
        while waiting:
            session = waiting.pop()
            if id(session) in seen:
                continue
            seen.add(id(session))
            found.append(session)
            waiting.extend(getattr(session, "children", ()))
        return found

    def _own_events(self) -> list[Event]:
        return super().events

    @property
    def events(self) -> list[Event]:
        """Every step of the session in the order they started, nested sessions' steps included."""
        if not self.children:
            return super().events
        tree = self._tree()
        key = (len(tree), sum(len(s._records) for s in tree))
        with self._lock:
            if self._view_key != key:
                records = [record for session in tree for record in list(session._records)]
                view = Session(self.id, self.name, trace_id=self.trace_id, span_id=self.span_id)
                view._records = records
                with paused_gc() if len(records) > 1_000 else nullcontext():
                    self._view = view.events
                self._view_key = key
            return list(self._view)

    def __len__(self) -> int:
        return sum(len(s._records) for s in self._tree())

    def totals(self) -> dict[str, Any]:
        """The totals its span carries when it ends: its own steps', plus those of the sessions nested in it that
        ended before it (each recorded as it ended). A nested session still running counts in its own totals."""
        children = list(self.children)
        if not children:
            return Session.totals(self)
        totals = Session.totals(cast(Session, _Own(self._own_events(), self.dropped_events)))
        for child in children:
            if child.ended:
                _add_totals(totals, child.recorded_totals if child.recorded_totals is not None else child.totals())
        return totals


class _Own:
    """A session's own steps, without those of the sessions nested in it: what `Session.totals` sums for it."""

    __slots__ = ("dropped_events", "events")

    def __init__(self, events: list[Event], dropped_events: int) -> None:
        self.events = events
        self.dropped_events = dropped_events


def _add_totals(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Adds one session's totals (counts, tokens, cost) to another's. The sum has a cost only when both costs are
    known (`recorded_cost`): a nested session with an unpriced model call makes its parent's cost unknown too. A
    sum with no model call has a cost only when a tool declared one."""
    costs = [recorded_cost(t.get(_COST), t.get(_LLM_CALLS, 0)) for t in (into, more)]
    for key, value in more.items():
        if key != _COST and isinstance(value, (int, float)) and not isinstance(value, bool):
            into[key] = into.get(key, 0) + value
    into.pop(_COST, None)
    if costs[0] is not None and costs[1] is not None and (into.get(_LLM_CALLS) or costs[0] + costs[1]):
        into[_COST] = float(costs[0] + costs[1])


_COST, _LLM_CALLS = sc.AGENTOTEL_SESSION_COST_AMOUNT, sc.AGENTOTEL_SESSION_LLM_CALL_COUNT


def current_session(ctx: Context | None = None) -> LiveSession | None:
    """The innermost running session in `ctx` (default: the current context)."""
    session = context.get_value(SESSION_CONTEXT_KEY, ctx)
    if isinstance(session, LiveSession) and not session.ended:
        return session
    return None


MAX_NAME_LENGTH = 256
"""Longest session name (and tag) kept: a name goes into the span's name, which no OpenTelemetry limit bounds."""
MAX_TAGS = 128


def _text(value: Any, limit: int = MAX_NAME_LENGTH) -> str | None:
    """`value` as text of at most `limit` characters (bytes decoded), or `None` when it cannot be. Never raises."""
    try:
        if isinstance(value, (bytes, bytearray)):
            text = bytes(value[: limit * 4]).decode("utf-8", errors="replace")
        else:
            text = value if isinstance(value, str) else str(value)
        return text[:limit]
    except Exception:
        return None


def _tags(tags: Any, *, with_defaults: bool = True) -> list[str]:
    """Tags as a list of text: one tag or an iterable of them, each made text; odd values are left out. Never
    raises."""
    found = list(settings.default_tags) if with_defaults else []
    if tags is None:
        return found
    if isinstance(tags, (str, bytes, bytearray)):
        tags = [tags]
    try:
        items = list(itertools.islice(iter(tags), MAX_TAGS))
    except Exception:  # not iterable (or its iterator fails): the value is the one tag
        items = [tags]
    for item in items:
        text = _text(item)
        if text is not None:
            found.append(text)
    return found


def start_session(
    tags: Iterable[str] | str | None = None,
    *,
    name: str | None = None,
    conversation_id: str | None = None,
    **ignored: Any,
) -> LiveSession:
    """Starts a session and makes it current; it lasts until `end_session()` (or `.end()`).

    Inside another session it is that session's child. Never raises: if tracing is broken the session still
    works as an object, without spans. `ignored` takes AgentOps arguments agentotel has no use for. A name or tag
    of another type is made text (bytes decoded, at most `MAX_NAME_LENGTH` characters).
    """
    del ignored
    ensure_initialized()
    session_name, session_tags, conversation = "session", [], None
    try:
        session_name = (None if name is None else _text(name)) or "session"
        session_tags = _tags(tags)
        conversation = (None if conversation_id is None else _text(conversation_id, 1024)) or None
        return _start(session_name, session_tags, conversation)
    except Exception:
        log.debug("Could not start a session; it runs untraced", exc_info=True)
        return _untraced(session_name, session_tags, conversation)


def _parent_of_new_session(parent_context: Context) -> tuple[str | None, str | None]:
    """(the session a new session nests in, the caller's session it only links to). A session of this process that
    is current is the parent. A session only incoming W3C baggage names (another process's, or anyone's who sent
    the header) is not: the new session is one of its own, so its failures count for itself in `agentotel check`,
    linked to the caller by `agentotel.session.caller.id` (`AGENTOTEL_SESSION_BAGGAGE=nest` nests it instead; see
    `propagation.py`)."""
    parent = current_session(parent_context)
    if parent is not None:
        return parent.id, None
    local = context.get_value(SESSION_CONTEXT_KEY, parent_context)
    if local is not None:  # this process's session, ended: its children stay its children, as before
        return getattr(local, "id", None), None
    remote = session_id_in(parent_context)
    if remote is None:
        return None, None
    return (remote, None) if nests_in_remote_session() else (None, remote)


def _start(name: str, session_tags: list[str], conversation_id: str | None) -> LiveSession:
    parent_context = context.get_current()
    parent_id, caller_id = _parent_of_new_session(parent_context)
    session_id = clock.make_session_id()
    attributes: dict[str, Any] = {
        **session_stamps(),  # the pytest plugin's run and test ids (`_session_stamps.py`); the session's own win
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: name,
        sc.SESSION_ID: session_id,
        sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_SESSION,
        sc.AGENTOTEL_SESSION_TAGS: session_tags,
    }
    if parent_id:
        attributes[sc.AGENTOTEL_SESSION_PARENT_ID] = parent_id
    if caller_id:
        attributes[sc.AGENTOTEL_SESSION_CALLER_ID] = caller_id
    if conversation_id:
        attributes[sc.GEN_AI_CONVERSATION_ID] = conversation_id
    start = clock.now_ns()
    try:
        span = tracer.start_span(
            f"invoke_agent {name}", kind=SpanKind.INTERNAL, attributes=attributes, start_time=start
        )
    except Exception:
        log.debug("Could not start the span of a session", exc_info=True)
        span = trace.INVALID_SPAN
    try:
        span_context = span.get_span_context()
        session = LiveSession(
            id=session_id,
            name=name,
            trace_id=format_trace_id(span_context.trace_id),
            span_id=format_span_id(span_context.span_id),
            tags=session_tags,
            parent_id=parent_id,
            start_ns=start,
            conversation_id=conversation_id,
        )
        session._span = span
        session._parent_context = parent_context
        session._token = None
        session._pid = os.getpid()
        too_many = registry.register(session)
        holder = registry.get(parent_id) if parent_id else None
        if isinstance(holder, LiveSession):
            holder.adopt(session)
        ctx = trace.set_span_in_context(span, parent_context)
        ctx = context.set_value(SESSION_CONTEXT_KEY, session, ctx)
        ctx = baggage.set_baggage(sc.SESSION_ID, session_id, ctx)
    except Exception:
        span.end()  # a span left open would never be exported nor filed
        raise
    session._token = context.attach(ctx)
    _end_the_oldest(too_many)  # after the attach: none of them is current here any more
    return session


_warned_too_many = False


def _end_the_oldest(sessions: list[Session]) -> None:
    """Ends the running sessions past `AGENTOTEL_MAX_RUNNING_SESSIONS`, `Indeterminate`, with one warning. Never
    raises."""
    global _warned_too_many
    if not sessions:
        return
    limit = registry.max_running
    if not _warned_too_many:
        _warned_too_many = True
        log.warning(
            "agentotel: more than %d sessions are running at once (%s); the oldest are ended Indeterminate as new "
            "ones start. Is end_session() missing?",
            limit,
            MAX_RUNNING_ENV,
        )
    reason = f"ended by agentotel: more than {limit} sessions were running at once ({MAX_RUNNING_ENV})"
    for session in sessions:
        if isinstance(session, LiveSession):
            session.end(INDETERMINATE, reason)


def _untraced(name: str, session_tags: list[str], conversation_id: str | None) -> LiveSession:
    """A session object with no span and no context of its own, for when tracing cannot start one."""
    session = LiveSession(
        id=str(uuid.uuid4()),
        name=name,
        trace_id="0" * 32,
        span_id="0" * 16,
        tags=session_tags,
        start_ns=time.time_ns(),
        conversation_id=conversation_id,
    )
    session._span = trace.INVALID_SPAN
    session._parent_context = context.get_current()
    session._token = None
    session._pid = os.getpid()
    return session


def _end_untraced(session: LiveSession, end_state: str, reason: str | None) -> None:
    """Ends a session whose end could not be recorded: its context is put back and it is marked ended. Never
    raises."""
    try:
        if current_session() is session:
            context.attach(session._parent_context)
    except Exception:
        log.debug("Could not restore the context of session %s", session.id, exc_info=True)
    if session.ended:
        return
    try:
        session.end_state = end_state if end_state in END_STATES else INDETERMINATE
        session.end_state_reason = None if reason is None else _text(reason, 4096)
        session.end_ns = time.time_ns()
        registry._retire(session)
    except Exception:
        log.debug("Could not retire session %s", session.id, exc_info=True)


def _now() -> int:
    try:
        return clock.now_ns()
    except Exception:
        return time.time_ns()


def _end(session: LiveSession, end_state: str, reason: str | None, *, sum_up: bool = True) -> None:
    if session.ended:
        log.debug("Session %s has already ended", session.id)
        return
    if session._pid != os.getpid():
        # A session the parent process started, seen in a forked child (at its exit, say): its span is the
        # parent's to end; ending it here too would export a second copy of it with another end state.
        _end_untraced(session, end_state, reason)
        return
    state = end_state if isinstance(end_state, str) and end_state in END_STATES else _normalise_state(end_state)
    reason_text = None if reason is None else _text(reason, 4096)
    span = session._span
    end = _now()
    session.end_state = state
    session.end_state_reason = reason_text
    try:
        attributes: dict[str, Any] = {sc.AGENTOTEL_SESSION_END_STATE: state}
        try:
            if sum_up:
                totals = session.totals()
                session.recorded_totals = totals
                attributes.update(totals)
        except Exception:
            log.debug("Could not sum up session %s", session.id, exc_info=True)
        if reason_text:
            attributes[sc.AGENTOTEL_SESSION_END_STATE_REASON] = reason_text
        span.set_attributes(attributes)
        _keep_identity(session, span)
        if state == FAIL:
            span.set_status(Status(StatusCode.ERROR, reason_text or "the session failed"))
    finally:
        # Whatever failed above, the session's context is let go and its span ends.
        if current_session() is session:
            context.attach(session._parent_context)
        span.end(end_time=end)
    if not session.ended:
        # No SDK processor saw the span end (tracing off or sampled out): end the object by itself.
        session.end_ns = end
        registry._retire(session)


def _keep_identity(session: LiveSession, span: Span) -> None:
    """When the span's attribute count limit (`OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`) made the SDK drop attributes (the
    oldest first: those that say what the span is), sets again, last, what a session is rebuilt from: its id,
    kind, name, end state and tags, so that the SDK drops totals instead."""
    if not getattr(span, "dropped_attributes", 0):
        return
    kept: dict[str, Any] = {
        sc.AGENTOTEL_SESSION_TAGS: list(session.tags),
        sc.GEN_AI_AGENT_NAME: session.name,
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
        sc.AGENTOTEL_SESSION_END_STATE: session.end_state,
        sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_SESSION,
        sc.SESSION_ID: session.id,
    }
    if session.parent_id:
        kept[sc.AGENTOTEL_SESSION_PARENT_ID] = session.parent_id
    span.set_attributes(kept)


def _normalise_state(end_state: Any) -> str:
    text = (_text(end_state) or "").strip()
    for state in END_STATES:
        if state.lower() == text.lower():
            return state
    log.warning("Unknown session end state %r; recorded as %s", text, INDETERMINATE)
    return INDETERMINATE


def end_session(
    end_state: str = INDETERMINATE,
    end_state_reason: str | None = None,
    *,
    session: Session | None = None,
    **ignored: Any,
) -> None:
    """Ends `session`, by default the innermost running one in this context (AgentOps' `end_session`).

    End states are `Success`, `Fail` and `Indeterminate`. Never raises; with no session running, does nothing.
    """
    del ignored
    target = session if isinstance(session, LiveSession) else current_session() or _only_active()
    if target is None:
        log.debug("end_session() with no running session")
        return
    target.end(end_state, end_state_reason)


def _only_active() -> LiveSession | None:
    """The one running session when exactly one runs (it was started in another context, e.g. a fixture)."""
    running = [s for s in registry.active() if isinstance(s, LiveSession)]
    return running[0] if len(running) == 1 else None


def get_session(session_id: str | None = None) -> Session | None:
    """The session with `session_id`; without it, the innermost running session in this context, else the only
    running one, else the one that ended last."""
    if session_id is not None:
        return registry.get(session_id)
    return current_session() or _only_active() or registry.last_ended


def end_all_sessions(end_state: str = INDETERMINATE, end_state_reason: str | None = None) -> None:
    """Ends every running session, innermost first. Never raises."""
    end_every_session(end_state, end_state_reason)


def end_every_session(end_state: str, end_state_reason: str | None, budget_s: float | None = None) -> None:
    """Ends every running session, innermost first, each with its totals for `budget_s` seconds (no limit by
    default); past it, the others end without totals (their spans still carry their end state and reason), so
    that ending them takes about the same time however much they hold. Never raises."""
    deadline = None if budget_s is None else time.monotonic() + budget_s
    try:
        running = sorted(registry.active(), key=lambda s: s.start_ns, reverse=True)
    except Exception:
        log.debug("Could not list the running sessions", exc_info=True)
        return
    for session in running:
        if not isinstance(session, LiveSession):
            continue
        if deadline is not None and time.monotonic() > deadline:
            session.recorded_totals = {}  # nothing summed: each nested one counts in its own span
            _end_without_totals(session, end_state, end_state_reason)
        else:
            session.end(end_state, end_state_reason)


def _end_without_totals(session: LiveSession, end_state: str, reason: str | None) -> None:
    try:
        _end(session, end_state, reason, sum_up=False)
    except Exception:
        log.debug("Could not end session %s", session.id, exc_info=True)
        _end_untraced(session, end_state, reason)


class _SessionScope:
    """A session around a block or a call: what `session()` returns."""

    def __init__(self, name: str | None, tags: Any, conversation_id: str | None) -> None:
        self._name = name
        self._tags = tags
        self._conversation_id = conversation_id
        self._session: LiveSession | None = None

    # context manager -------------------------------------------------------------------------------------------

    def __enter__(self) -> LiveSession:
        self._session = start_session(self._tags, name=self._name, conversation_id=self._conversation_id)
        return self._session

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._session is not None:
            _finish(self._session, error)
            self._session = None

    async def __aenter__(self) -> LiveSession:
        return self.__enter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, error, tb)

    # decorator -------------------------------------------------------------------------------------------------

    def __call__(self, func: F) -> F:
        name = self._name or getattr(func, "__name__", None)

        def open_scope(args: tuple[Any, ...], kwargs: dict[str, Any]) -> _CallSession:
            return _CallSession(name, self._tags, self._conversation_id)

        return wrap(func, open_scope)


class _CallSession:
    """A session around one call of a decorated function (a `_wrapping.Scope`)."""

    def __init__(self, name: str | None, tags: Any, conversation_id: str | None) -> None:
        self._args = (name, tags, conversation_id)
        self._session: LiveSession | None = None
        self._inner_token: object | None = None

    def activate(self) -> None:
        if self._session is None:
            name, tags, conversation_id = self._args
            self._session = start_session(tags, name=name, conversation_id=conversation_id)
            self._inner_token = self._session._token
        else:
            ctx = trace.set_span_in_context(self._session._span, self._session._parent_context)
            ctx = context.set_value(SESSION_CONTEXT_KEY, self._session, ctx)
            ctx = baggage.set_baggage(sc.SESSION_ID, self._session.id, ctx)
            self._inner_token = context.attach(ctx)

    def deactivate(self) -> None:
        if self._session is not None and current_session() is self._session:
            context.attach(self._session._parent_context)

    def finish(self, error: BaseException | None, result: Any) -> None:
        if self._session is not None:
            _finish(self._session, error)


def _finish(session: LiveSession, error: BaseException | None) -> None:
    """Ends a scoped session: `Fail` with the reason for an exception, `Indeterminate` for a cancellation or
    interrupt, `Success` otherwise (unless the code ended it already)."""
    if session.ended:
        if current_session() is session:
            context.attach(session._parent_context)
        return
    if error is None:
        session.end(SUCCESS)
    elif isinstance(error, Exception):
        try:
            record_error(session._span, error)
        except Exception:
            pass
        session.end(FAIL, f"{error_type_name(error)}: {error}")
    else:
        session.end(INDETERMINATE, f"interrupted by {type(error).__name__}")


def session(
    name: str | Callable[..., Any] | None = None,
    *,
    tags: Iterable[str] | str | None = None,
    conversation_id: str | None = None,
    **ignored: Any,
) -> Any:
    """A session around a block (`with agentotel.session("support", tags=[...]) as s:`) or around each call of a
    function (`@agentotel.session("support")`, sync or async). It ends `Success`, or `Fail` with the exception
    as reason (the exception propagates unchanged), unless the code ended it first. AgentOps' other arguments of
    its `@session` decorator (`version=`, ...) are accepted and ignored."""
    del ignored
    if callable(name):
        return _SessionScope(None, tags, conversation_id)(name)
    return _SessionScope(name, tags, conversation_id)
