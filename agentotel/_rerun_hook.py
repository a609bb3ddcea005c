"""The seam through which a re-run (`agentotel.testing.rerun(..., tools="recorded")`) serves a step's recorded
result in place of running it.

The step decorators pass each tool and action function through `servable`; the shim it makes asks the active
re-run (`serve_with`) for the call's recorded result and runs the function only when there is none. With no re-run
active, the shim costs one global read per call. Module state rather than a context variable: a re-run answers the
whole process (its interception of model requests is process-wide too), and frameworks run tools in worker threads
that see no context variable of the code that started the re-run.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import semconv as sc

log = logging.getLogger("agentotel")

F = TypeVar("F", bound=Callable[..., Any])

Served = Callable[[], Any]
"""Stands in for one call of a step: returns the recorded result, or raises the exception the recorded call raised
(or the re-run's own, when it stops the run there)."""

Server = Callable[[str, str, Callable[..., Any], tuple[Any, ...], dict[str, Any]], "Served | None"]
"""`server(kind, name, func, args, kwargs)`: the stand-in for this call of step `name`, or `None` to run it."""

_SERVED_KINDS = (sc.AGENTOTEL_STEP_KIND_VALUE_TOOL, sc.AGENTOTEL_STEP_KIND_VALUE_ACTION)

_server: Server | None = None


def serve_with(server: Server | None) -> None:
    """Makes `server` answer every served step from now on (`None`: every step runs again)."""
    global _server
    _server = server


def recorded_result(
    kind: str, name: str, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any]:
    """`(True, result)` when the active re-run serves this call from the recording, `(False, None)` when the step is
    to run. Raises what the recorded call raised: the step then fails as it did."""
    server = _server
    if server is None:
        return (False, None)
    try:
        served = server(kind, name, func, args, kwargs)
    except Exception:  # a fault of the re-run's own: the step runs, as it would without one
        log.debug("A re-run could not look up step %s", name, exc_info=True)
        return (False, None)
    if served is None:
        return (False, None)
    return (True, served())


def servable(func: F, kind: str, attributes: Mapping[str, Any]) -> F:
    """`func` itself, or, for a tool or action step (`kind`, named in its first `attributes`) of a plain or async
    function, a shim that lets an active re-run serve the call's recorded result instead of calling `func`.
    Generator steps always run."""
    name = attributes.get(sc.GEN_AI_TOOL_NAME) or attributes.get(sc.AGENTOTEL_ACTION_TYPE)
    if kind not in _SERVED_KINDS or not isinstance(name, str):
        return func
    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        return func
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def served_coroutine(*args: Any, **kwargs: Any) -> Any:
            if _server is not None:
                found, result = recorded_result(kind, name, func, args, kwargs)
                if found:
                    return result
            return await func(*args, **kwargs)

        return served_coroutine  # type: ignore[return-value]

    @functools.wraps(func)
    def served_call(*args: Any, **kwargs: Any) -> Any:
        if _server is not None:
            found, result = recorded_result(kind, name, func, args, kwargs)
            if found:
                return result
        return func(*args, **kwargs)

    return served_call  # type: ignore[return-value]
