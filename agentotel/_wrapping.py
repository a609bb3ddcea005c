"""One core that wraps sync, async, generator and async-generator functions in a scope (a span, a session).

Each kind of function gets a thin shell; what a scope does on entry, on each resume and at the end lives in the
scope. A generator's scope opens at its first iteration (a generator never iterated leaves no open span), is
made current only while the generator body runs (never leaking into the caller between items), and ends when the
generator is exhausted, closed or raises.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Protocol, TypeVar

log = logging.getLogger("agentotel")

F = TypeVar("F", bound=Callable[..., Any])


class Scope(Protocol):
    """What a wrapped call opens. Implementations never raise from these methods."""

    def activate(self) -> None: ...

    def deactivate(self) -> None: ...

    def finish(self, error: BaseException | None, result: Any) -> None: ...


Opener = Callable[[tuple[Any, ...], dict[str, Any]], "Scope | None"]


def _open(opener: Opener, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Scope | None:
    try:
        return opener(args, kwargs)
    except Exception:
        log.debug("Could not open a tracing scope; the call runs untraced", exc_info=True)
        return None


def wrap(func: F, opener: Opener) -> F:
    """`func` wrapped so that each call runs inside the scope `opener(args, kwargs)` opens.

    The wrapped function returns what `func` returns and raises what it raises, unchanged.
    """
    if inspect.isasyncgenfunction(func):
        return _wrap_async_generator(func, opener)  # type: ignore[return-value]
    if inspect.isgeneratorfunction(func):
        return _wrap_generator(func, opener)  # type: ignore[return-value]
    if inspect.iscoroutinefunction(func):
        return _wrap_coroutine(func, opener)  # type: ignore[return-value]
    return _wrap_function(func, opener)  # type: ignore[return-value]


def _wrap_function(func: Callable[..., Any], opener: Opener) -> Callable[..., Any]:
    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:  # `_open`, inlined: this runs on every call
            scope = opener(args, kwargs)
        except Exception:
            log.debug("Could not open a tracing scope; the call runs untraced", exc_info=True)
            scope = None
        if scope is None:
            return func(*args, **kwargs)
        scope.activate()
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            scope.deactivate()
            scope.finish(error, None)
            raise
        scope.deactivate()
        scope.finish(None, result)
        return result

    return call


def _wrap_coroutine(func: Callable[..., Any], opener: Opener) -> Callable[..., Any]:
    @functools.wraps(func)
    async def call(*args: Any, **kwargs: Any) -> Any:
        try:  # `_open`, inlined: this runs on every call
            scope = opener(args, kwargs)
        except Exception:
            log.debug("Could not open a tracing scope; the call runs untraced", exc_info=True)
            scope = None
        if scope is None:
            return await func(*args, **kwargs)
        scope.activate()
        try:
            result = await func(*args, **kwargs)
        except BaseException as error:
            scope.deactivate()
            scope.finish(error, None)
            raise
        scope.deactivate()
        scope.finish(None, result)
        return result

    return call


def _wrap_generator(func: Callable[..., Generator[Any, Any, Any]], opener: Opener) -> Callable[..., Any]:
    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        scope = _open(opener, args, kwargs)
        if scope is None:
            return (yield from func(*args, **kwargs))
        generator = func(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            scope.activate()
            try:
                if thrown is not None:
                    error, thrown = thrown, None
                    item = generator.throw(error)
                else:
                    item = generator.send(sent)
            except StopIteration as stop:
                scope.deactivate()
                scope.finish(None, stop.value)
                return stop.value
            except BaseException as error:
                scope.deactivate()
                scope.finish(None if isinstance(error, GeneratorExit) else error, None)
                raise
            scope.deactivate()
            try:
                sent = yield item
            except GeneratorExit:
                generator.close()
                scope.finish(None, None)
                raise
            except BaseException as error:
                thrown = error

    return call


def _wrap_async_generator(func: Callable[..., AsyncGenerator[Any, Any]], opener: Opener) -> Callable[..., Any]:
    @functools.wraps(func)
    async def call(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        scope = _open(opener, args, kwargs)
        if scope is None:
            async for item in func(*args, **kwargs):
                yield item
            return
        generator = func(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            scope.activate()
            try:
                if thrown is not None:
                    error, thrown = thrown, None
                    item = await generator.athrow(error)
                else:
                    item = await generator.asend(sent)
            except StopAsyncIteration:
                scope.deactivate()
                scope.finish(None, None)
                return
            except BaseException as error:
                scope.deactivate()
                scope.finish(None if isinstance(error, GeneratorExit) else error, None)
                raise
            scope.deactivate()
            try:
                sent = yield item
            except GeneratorExit:
                await generator.aclose()
                scope.finish(None, None)
                raise
            except BaseException as error:
                thrown = error

    return call
