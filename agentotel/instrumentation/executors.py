"""Carries the OpenTelemetry context (and so the current session) into work handed to other threads.

`concurrent.futures.ThreadPoolExecutor.submit` runs its function in a worker thread with an empty context, and so
does a plain `threading.Thread`: a tool called there would start a new trace outside its session — the most common
way agent tracing loses spans. This wraps
- `ThreadPoolExecutor.submit` (which `loop.run_in_executor` also uses): the function runs with the submitter's
  context attached;
- `threading.Thread.start`: the thread (its `run`, overridden or not, and a `Timer`'s function) runs with the
  context of the code that started it. A pool's own worker threads are left alone: each task brings its own.
Only the OpenTelemetry context travels, no other context variable. `asyncio.to_thread` copies the context already
and needs nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import thread as pool_threads
from typing import Any

import wrapt
from opentelemetry import context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

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


def _start(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`Thread.start`: notes the starter's context on the thread. Never raises more than `start` itself."""
    try:
        if _POOL_WORKER is None or getattr(instance, "_target", None) is not _POOL_WORKER:
            setattr(instance, _CONTEXT, context.get_current())
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
