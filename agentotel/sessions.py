"""The session API: `session()` (context manager and decorator), AgentOps-style `start_session()` /
`end_session()`, and `get_session()`.

A session is a root-of-its-story span (`invoke_agent {name}`) made current, with the `Session` object kept in the
OpenTelemetry context (so threads and asyncio tasks each see their own) and its id in W3C baggage (so other
processes can stamp their spans with it). A session started inside another is its child.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import baggage, context, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from . import _clock as clock
from . import semconv as sc
from ._config import settings
from ._wrapping import wrap
from .configure import ensure_initialized
from .live import registry
from .model import END_STATES, FAIL, INDETERMINATE, SUCCESS, Session
from .processors import SESSION_CONTEXT_KEY, session_id_in
from .records import format_span_id, format_trace_id
from .steps import error_type_name, record_error, tracer

log = logging.getLogger("agentotel")

F = TypeVar("F", bound=Callable[..., Any])


class LiveSession(Session):
    """A session running in this process: a `Session` that can be ended and tagged."""

    _span: Span
    _parent_context: Context
    _token: object | None
    _pid: int
    """The process that started the session: only it ends the session's span."""

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


def _start(name: str, session_tags: list[str], conversation_id: str | None) -> LiveSession:
    parent_context = context.get_current()
    parent = current_session(parent_context)
    parent_id = parent.id if parent is not None else session_id_in(parent_context)
    session_id = clock.make_session_id()
    attributes: dict[str, Any] = {
        sc.GEN_AI_OPERATION_NAME: sc.GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
        sc.GEN_AI_AGENT_NAME: name,
        sc.SESSION_ID: session_id,
        sc.AGENTOTEL_STEP_KIND: sc.AGENTOTEL_STEP_KIND_VALUE_SESSION,
        sc.AGENTOTEL_SESSION_TAGS: session_tags,
    }
    if parent_id:
        attributes[sc.AGENTOTEL_SESSION_PARENT_ID] = parent_id
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
        registry.register(session)
        ctx = trace.set_span_in_context(span, parent_context)
        ctx = context.set_value(SESSION_CONTEXT_KEY, session, ctx)
        ctx = baggage.set_baggage(sc.SESSION_ID, session_id, ctx)
    except Exception:
        span.end()  # a span left open would never be exported nor filed
        raise
    session._token = context.attach(ctx)
    return session


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


def _end(session: LiveSession, end_state: str, reason: str | None) -> None:
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
            attributes.update(session.totals())
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
    for session in sorted(registry.active(), key=lambda s: s.start_ns, reverse=True):
        if isinstance(session, LiveSession):
            session.end(end_state, end_state_reason)


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
) -> Any:
    """A session around a block (`with agentotel.session("support", tags=[...]) as s:`) or around each call of a
    function (`@agentotel.session("support")`, sync or async). It ends `Success`, or `Fail` with the exception
    as reason (the exception propagates unchanged), unless the code ended it first."""
    if callable(name):
        return _SessionScope(None, tags, conversation_id)(name)
    return _SessionScope(name, tags, conversation_id)
