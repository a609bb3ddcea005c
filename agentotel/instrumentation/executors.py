"""Carries the OpenTelemetry context (and so the current session) into work handed to other threads.

`concurrent.futures.ThreadPoolExecutor.submit` runs its function in a worker thread with an empty context, and so
does a plain `threading.Thread`: a tool called there would start a new trace outside its session — the most common
way agent tracing loses spans. This wraps
- `ThreadPoolExecutor.submit` (which `loop.run_in_executor` also uses): the function runs with the submitter's
  context attached;
- `threading.Thread.start`: the thread (its `run`, overridden or not, and a `Timer`'s function) runs with the
  context of the code that started it, for as long as the session current there runs (`_WhileRunning`): once
  that session has ended, the thread is in the context the session was started from, as the starter's own code
  is after the session's block. So a worker thread that a session starts lazily (a hand-made loop over a queue)
  works for that session while it runs and never for it afterwards; it cannot know whose task it takes from a
  plain queue, so later tasks run outside any session unless the code that queues them hands its context over.
  A pool's own worker threads are left alone: each task brings its own.
Only the OpenTelemetry context travels, no other context variable. `asyncio.to_thread` copies the context already
and needs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import thread as pool_threads
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry import context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

from ..processors import SESSION_CONTEXT_KEY

if TYPE_CHECKING:
    from _collections_abc import dict_items, dict_keys, dict_values

log = logging.getLogger("agentotel")

_CONTEXT = "_agentotel_context"
"""The attribute a started thread carries its starter's context in, until it runs."""
_POOL_WORKER = getattr(pool_threads, "_worker", None)
_THREAD_ENTRY = "_bootstrap_inner" if hasattr(threading.Thread, "_bootstrap_inner") else "run"
"""What runs first in the new thread: `_bootstrap_inner` (CPython) calls `run`, overridden or not."""


def _in_context(ctx: context.Context, fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        token = context.attach(ctx)
        try:
            return fn(*args, **kwargs)
        finally:
            context.detach(token)

    return run


def _submit(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not args:
        return wrapped(*args, **kwargs)
    try:
        fn = _in_context(context.get_current(), args[0])
    except Exception:
        log.debug("Could not carry the context into a thread pool", exc_info=True)
        return wrapped(*args, **kwargs)
    return wrapped(fn, *args[1:], **kwargs)


class _WhileRunning(context.Context):
    """The context a thread was started in, for as long as the session current in it runs; once that session has
    ended, the context it was started from (itself read the same way). Every read goes through `_now`: a dict
    lookup and a check of the session's end, only in threads started inside a session."""

    def __init__(self, ctx: context.Context, session: Any) -> None:
        super().__init__(ctx)
        self._own = dict(ctx)  # a plain dict: copied and read at C speed (not through the overrides below)
        self._session = session
        self._after: context.Context | None = None

    def _fallback(self) -> context.Context:
        """The context the session was started from, read the same way (its own session may end too)."""
        if self._after is None:
            found = getattr(self._session, "_parent_context", None)
            self._after = _carried(found) if isinstance(found, context.Context) else context.Context()
        return self._after

    def _now(self) -> dict[str, object]:
        if self._session.end_ns is None:
            return self._own.copy()
        return dict(self._fallback())

    def get(self, key: str, default: object = None) -> object:
        if self._session.end_ns is None:
            return self._own.get(key, default)
        return self._fallback().get(key, default)

    def __getitem__(self, key: str) -> object:
        if self._session.end_ns is None:
            return self._own[key]
        return self._fallback()[key]

    def __contains__(self, key: object) -> bool:
        return key in self._now()

    def __iter__(self) -> Iterator[str]:
        return iter(self._now())

    def __len__(self) -> int:
        return len(self._now())

    def keys(self) -> dict_keys[str, object]:
        return self._now().keys()

    def values(self) -> dict_values[str, object]:
        return self._now().values()

    def items(self) -> dict_items[str, object]:
        return self._now().items()

    def copy(self) -> dict[str, object]:  # what `context.set_value` builds the next context from
        return self._now()


def _carried(ctx: context.Context) -> context.Context:
    """The context a thread started in `ctx` runs in: `ctx` while the session current in it runs (see
    `_WhileRunning`); `ctx` itself when no session is current there."""
    session = ctx.get(SESSION_CONTEXT_KEY)
    if session is None or getattr(session, "ended", True) or not hasattr(session, "_parent_context"):
        return ctx
    return _WhileRunning(ctx, session)


def _start(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`Thread.start`: notes the starter's context on the thread. Never raises more than `start` itself."""
    try:
        if _POOL_WORKER is None or getattr(instance, "_target", None) is not _POOL_WORKER:
            setattr(instance, _CONTEXT, _carried(context.get_current()))
    except Exception:
        log.debug("Could not carry the context into a thread", exc_info=True)
    return wrapped(*args, **kwargs)


def _thread_entry(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The new thread's first call: runs it in the context its starter noted (then forgets that context)."""
    token = None
    try:
        ctx = instance.__dict__.pop(_CONTEXT, None)
        if ctx is not None:
            token = context.attach(ctx)
    except Exception:
        log.debug("Could not attach a thread's context", exc_info=True)
    try:
        return wrapped(*args, **kwargs)
    finally:
        if token is not None:
            try:
                context.detach(token)
            except Exception:
                log.debug("Could not detach a thread's context", exc_info=True)


class ExecutorContextInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Makes work submitted to a `ThreadPoolExecutor`, and every `threading.Thread`, run in the OpenTelemetry
    context of the code that handed it over."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        wrapt.wrap_function_wrapper("concurrent.futures", "ThreadPoolExecutor.submit", _submit)
        wrapt.wrap_function_wrapper(threading, "Thread.start", _start)
        wrapt.wrap_function_wrapper(threading, f"Thread.{_THREAD_ENTRY}", _thread_entry)

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap(ThreadPoolExecutor, "submit")
        unwrap(threading.Thread, "start")
        unwrap(threading.Thread, _THREAD_ENTRY)
