"""AgentOps 0.4's trace API on agentotel sessions: `start_trace()` / `end_trace()`, the `TraceContext` handle,
`update_trace_metadata()` and the `@trace` decorator.

A trace is a session: `start_trace` is `start_session` with AgentOps' arguments, `@trace` is `session()` around
each call (the same `_wrapping` core and `sessions._CallSession`), and ending one is `LiveSession.end`. What differs
from AgentOps: a trace started inside another is nested in it (agentotel's sessions nest; AgentOps says its traces
run side by side), a trace that raises ends `Fail` (AgentOps: `Indeterminate` for `@trace`), and AgentOps' free
end states are agentotel's three (`_end_state`). Nothing here raises into the application.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from types import TracebackType
from typing import Any, TypeVar, Unpack, get_args, overload

from opentelemetry.trace import Span, StatusCode

from . import semconv as sc
from ._config import settings
from ._content import to_json
from ._wrapping import wrap
from .live import registry
from .model import FAIL, INDETERMINATE, SUCCESS, Session
from .sessions import LiveSession, _CallSession, _finish, _text, current_session, end_all_sessions, start_session
from .steps import StepOptions, agent, tool

log = logging.getLogger("agentotel")

F = TypeVar("F", bound=Callable[..., Any])


class TraceState(StrEnum):
    """AgentOps 0.4's end states (`agentops.TraceState`), each the agentotel end state it means."""

    SUCCESS = SUCCESS
    ERROR = FAIL
    UNSET = INDETERMINATE


ERROR = TraceState.ERROR
UNSET = TraceState.UNSET

DEFAULT_PREFIX = "trace.metadata"
"""AgentOps' default `prefix` of `update_trace_metadata`: keys under it become `agentotel.session.metadata.<key>`."""
MAX_METADATA_KEYS = 128
"""Most metadata keys one `update_trace_metadata` call sets (the rest are left out with a warning)."""
MAX_METADATA_TEXT = 4096
"""Longest metadata text kept (characters); longer text is cut."""

_RESERVED = frozenset(get_args(sc.AttributeName))
"""Attribute names the registry defines: metadata never overwrites one of them."""


class TraceContext:
    """What `start_trace()` returns (AgentOps' `TraceContext`): a handle on the session it started, to give to
    `end_trace()` or use as a context manager (`with agentotel.start_trace("x") as trace:` ends it `Success`, or
    `Fail` when the block raises; the exception propagates unchanged)."""

    __slots__ = ("is_init_trace", "session")

    def __init__(self, session: LiveSession, is_init_trace: bool = False) -> None:
        self.session = session
        """The session this trace is: its events, cost, end state."""
        self.is_init_trace = is_init_trace
        """AgentOps' flag for the trace `init()` starts; agentotel's `init()` starts none, so always False."""

    @property
    def span(self) -> Span:
        """The session's span (AgentOps' `trace.span`): `trace.span.set_attribute(...)` sets an attribute on it."""
        return self.session._span

    @property
    def token(self) -> object | None:
        """The context token of the session's start (AgentOps' `trace.token`)."""
        return self.session._token

    def __enter__(self) -> TraceContext:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        """Ends the session as `session()` does (unless the block ended it already). Never raises; never swallows
        the block's exception."""
        try:
            _finish(self.session, error)
        except Exception:
            log.debug("Could not end trace %s", self.session.id, exc_info=True)

    async def __aenter__(self) -> TraceContext:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(kind, error, tb)

    def __repr__(self) -> str:
        return f"<TraceContext {self.session.name!r} session={self.session.id} state={self.session.end_state}>"


def start_trace(
    trace_name: str = "session", tags: Mapping[str, Any] | Iterable[str] | str | None = None, **ignored: Any
) -> TraceContext:
    """Starts a session named `trace_name` and makes it current (AgentOps 0.4's `start_trace`); it lasts until
    `end_trace()` or the end of the `with` block the handle is used in. `tags` is a list of tags, or (AgentOps'
    other form) a mapping, set as the session's metadata (`update_trace_metadata`). Inside another session it is
    that session's child. Never raises: with tracing broken the session still works as an object."""
    del ignored
    tag_list, metadata = _split_tags(tags)
    session = start_session(tag_list, name=trace_name)
    if metadata:
        _set_metadata(session, metadata, DEFAULT_PREFIX)
    return TraceContext(session)


def end_trace(
    trace_context: TraceContext | Session | None = None,
    end_state: TraceState | StatusCode | str = TraceState.SUCCESS,
    **ignored: Any,
) -> None:
    """Ends the trace `trace_context` (what `start_trace` returned, or a session), or with none given every
    running session, innermost first, as AgentOps ends every active trace. `end_state` is `Success` by default;
    `Error` / `Fail` / `TraceState.ERROR` / `StatusCode.ERROR` end it `Fail`; another text ends it
    `Indeterminate` with that text as its reason. A trace that has already ended is left as it ended, with a
    warning. Never raises."""
    del ignored
    try:
        state, reason = _end_state(end_state)
        if trace_context is None:
            end_all_sessions(state, reason)
            return
        session = trace_context.session if isinstance(trace_context, TraceContext) else trace_context
        if not isinstance(session, LiveSession):
            log.warning(
                "agentotel: end_trace() takes what start_trace() returned, not a %s; nothing ended",
                type(trace_context).__name__,
            )
            return
        if session.ended:
            log.warning(
                "agentotel: end_trace(): trace %r (session %s) had already ended %s; left as it was",
                session.name,
                session.id,
                session.end_state,
            )
            return
        session.end(state, reason)
    except Exception:
        log.debug("Could not end a trace", exc_info=True)


_SUCCESS_WORDS = frozenset({"success", "succeeded", "ok"})
_FAIL_WORDS = frozenset({"fail", "failed", "failure", "error"})
_INDETERMINATE_WORDS = frozenset({"indeterminate", "unset", "unknown"})


def _end_state(end_state: Any) -> tuple[str, str | None]:
    """The agentotel end state an AgentOps end state means, and the reason to record with it: AgentOps takes any
    text ("Escalation_Required"); text agentotel has no state for ends `Indeterminate` with that text as reason."""
    if isinstance(end_state, TraceState):
        return str(end_state.value), None
    if isinstance(end_state, StatusCode):
        return {StatusCode.OK: SUCCESS, StatusCode.ERROR: FAIL}.get(end_state, INDETERMINATE), None
    text = (_text(end_state) or "").strip()
    word = text.lower()
    if word in _SUCCESS_WORDS:
        return SUCCESS, None
    if word in _FAIL_WORDS:
        return FAIL, None
    if word in _INDETERMINATE_WORDS:
        return INDETERMINATE, None
    return INDETERMINATE, text or None


def update_trace_metadata(metadata: Mapping[str, Any], prefix: str = DEFAULT_PREFIX) -> bool:
    """Sets `metadata` on the current session's span (AgentOps 0.4's `update_trace_metadata`): the innermost
    running session in this context, else the one that started last. Returns True when it set at least one key.

    Each key becomes an attribute: `agentotel.session.metadata.<key>` under the default prefix, `<prefix>.<key>`
    under another. A text, number or boolean, or a list of one of them, is set as given (text cut at
    `MAX_METADATA_TEXT` characters); a mapping, a tuple or a list of mixed values as JSON text; `None` is skipped.
    Other values, keys that are no text, and names agentotel's attributes have are left out with a logged
    warning. The key `tags` adds tags to the session instead. Never raises: with no running session, or nothing
    set, it warns and returns False."""
    try:
        session = current_session() or _latest_running()
        if session is None:
            log.warning("agentotel: update_trace_metadata(): no trace is running; nothing set")
            return False
        if not isinstance(metadata, Mapping):
            log.warning(
                "agentotel: update_trace_metadata() takes a dict, not a %s; nothing set", type(metadata).__name__
            )
            return False
        if _set_metadata(session, metadata, prefix):
            return True
        log.warning("agentotel: update_trace_metadata(): no metadata value could be set")
        return False
    except Exception:
        log.debug("Could not update a trace's metadata", exc_info=True)
        return False


def _latest_running() -> LiveSession | None:
    """The running session that started last (AgentOps' "most recent active trace")."""
    running = [s for s in registry.active() if isinstance(s, LiveSession) and not s.ended]
    return max(running, key=lambda s: s.start_ns) if running else None


def _set_metadata(session: LiveSession, metadata: Mapping[Any, Any], prefix: str | None) -> int:
    """Sets each usable key of `metadata` on `session`'s span; returns how many it set. Never raises."""
    try:
        return _set_each(session, metadata, prefix)
    except Exception:
        log.debug("Could not set metadata on session %s", session.id, exc_info=True)
        return 0


def _set_each(session: LiveSession, metadata: Mapping[Any, Any], prefix: str | None) -> int:
    if session.ended:
        log.warning("agentotel: trace %r has ended; its metadata cannot change", session.name)
        return 0
    namespace = sc.AGENTOTEL_SESSION_METADATA if prefix == DEFAULT_PREFIX else (_text(prefix or "") or "").strip(".")
    count = 0
    attributes: dict[str, Any] = {}
    try:
        items = list(metadata.items())
    except Exception:
        log.warning("agentotel: trace metadata that cannot be read is left out")
        return 0
    if len(items) > MAX_METADATA_KEYS:
        log.warning("agentotel: only the first %d trace metadata keys are kept", MAX_METADATA_KEYS)
        items = items[:MAX_METADATA_KEYS]
    for key, value in items:
        if value is None:
            continue
        if not isinstance(key, str) or not key:
            shown = repr(key) if isinstance(key, (str, int, float)) else f"a {type(key).__name__}"
            log.warning("agentotel: a trace metadata key must be non-empty text; %s is left out", shown)
            continue
        if key == "tags":
            tags = [value] if isinstance(value, str) else value
            if isinstance(tags, (list, tuple)) and all(isinstance(t, str) for t in tags):
                session.add_tags(tags)
                count += 1
            else:
                log.warning("agentotel: trace metadata 'tags' must be text or a list of text; left out")
            continue
        name = f"{namespace}.{key}" if namespace else key
        if name in _RESERVED or (name.startswith("agentotel.") and not name.startswith(sc.AGENTOTEL_SESSION_METADATA)):
            log.warning("agentotel: trace metadata %r would overwrite agentotel's attribute %r; left out", key, name)
            continue
        usable, converted = _metadata_value(value)
        if not usable:
            log.warning(
                "agentotel: trace metadata %r is a %s, which is no text, number, boolean, list or dict; left out",
                key,
                type(value).__name__,
            )
            continue
        attributes[name] = converted
        count += 1
    if attributes:
        session._span.set_attributes(attributes)
    return count


_SCALARS = (str, bool, int, float)


def _metadata_value(value: Any) -> tuple[bool, Any]:
    """`(True, attribute value)` for a usable metadata value, `(False, None)` for another. Never raises."""
    if isinstance(value, str):
        return True, value[:MAX_METADATA_TEXT]
    if isinstance(value, _SCALARS):
        return True, value
    if isinstance(value, list):
        kinds = {type(item) for item in value}
        if len(kinds) == 1 and kinds <= set(_SCALARS):
            return True, [item[:MAX_METADATA_TEXT] if isinstance(item, str) else item for item in value]
    if isinstance(value, (list, tuple, Mapping)):
        return True, to_json(value, min(settings.content_max_length, MAX_METADATA_TEXT))[0]
    return False, None


def _split_tags(tags: Any) -> tuple[Any, Mapping[Any, Any] | None]:
    """AgentOps' two forms of `tags`: a list (the session's tags) or a mapping (its metadata)."""
    if isinstance(tags, Mapping):
        return None, tags
    return tags, None


class _TraceCall(_CallSession):
    """A session around one call of a `@trace` function, its metadata set once it starts."""

    def __init__(self, name: str, tags: Any, metadata: Mapping[Any, Any] | None) -> None:
        super().__init__(name, tags, None)
        self._metadata = metadata

    def activate(self) -> None:
        starting = self._session is None
        super().activate()
        if starting and self._metadata and self._session is not None:
            _set_metadata(self._session, self._metadata, DEFAULT_PREFIX)


@overload
def trace(wrapped: F, **options: Unpack[StepOptions]) -> F: ...
@overload
def trace(wrapped: str | None = None, **options: Unpack[StepOptions]) -> Callable[[F], F]: ...
def trace(wrapped: Any = None, **options: Unpack[StepOptions]) -> Any:
    """AgentOps 0.4's `@trace` (`@trace`, `@trace(name=..., tags=...)`): a session around each call of the function
    (sync, async, generator or async generator), named after it by default. It ends `Success`, or `Fail` with the
    exception as reason (the exception propagates unchanged), unless the code ended it first. `tags` as in
    `start_trace`; AgentOps' other arguments are accepted and ignored. On a class it records nothing (warned)."""
    name, tags = options.get("name"), options.get("tags")
    if wrapped is None or isinstance(wrapped, str):
        chosen = wrapped or name
        return lambda func: _trace(func, chosen, tags)
    return _trace(wrapped, name, tags)


def _trace(func: Any, name: str | None, tags: Any) -> Any:
    if isinstance(func, type):
        log.warning("agentotel: @trace on a class records nothing; put it on a function or method")
        return func
    session_name = str(name or getattr(func, "__name__", None) or "session")
    tag_list, metadata = _split_tags(tags)
    return wrap(func, lambda args, kwargs: _TraceCall(session_name, tag_list, metadata))


track_agent = agent
"""AgentOps' older `@track_agent(name=...)`: an agent step (on a class, each call of its public methods)."""
track_tool = tool
"""AgentOps' older `@track_tool`: a tool step."""
