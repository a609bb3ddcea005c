"""Carries the OpenTelemetry context (and so the current session) into work handed to a thread pool.

`concurrent.futures.ThreadPoolExecutor.submit` runs its function in a worker thread with an empty context, so a
tool called from a pool would start a new trace outside its session — the most common way agent tracing loses
spans. This wraps `submit` (which `loop.run_in_executor` also uses) so the function runs with the submitter's
OpenTelemetry context attached; no other context variable travels. `asyncio.to_thread` copies the context
already and needs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import wrapt
from opentelemetry import context
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap

log = logging.getLogger("agentotel")


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


class ExecutorContextInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Makes work submitted to a `ThreadPoolExecutor` run in the submitter's OpenTelemetry context."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        wrapt.wrap_function_wrapper("concurrent.futures", "ThreadPoolExecutor.submit", _submit)

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap(ThreadPoolExecutor, "submit")
