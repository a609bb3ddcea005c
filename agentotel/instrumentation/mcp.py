"""The MCP Python SDK: a `tools/call` is the agent's tool call.

MCP 2.x traces itself: the client's JSON-RPC dispatcher opens a CLIENT span `MCP send {method} [{tool}]` around
each request (`mcp.method.name`, `jsonrpc.request.id`, nothing of the tool's arguments or result) and injects the
W3C trace context and baggage into the request's `params._meta`; the server's `OpenTelemetryMiddleware` (on by
default) continues that trace in a SERVER span `tools/call {tool}` (`gen_ai.operation.name=execute_tool`,
`gen_ai.tool.name`; an `isError` result sets `error.type=tool_error` and status ERROR, without the error's text).

In the calling process, `ClientSession.call_tool` and `Client.call_tool` become an agentotel tool step: an
`execute_tool {tool}` span (`gen_ai.tool.type=extension`: the tool runs in the MCP server), with the arguments and
result under content capture, failed on an `isError` result with the text the server sent as its message
(`error.type=tool_error`, as MCP's conventions call it) or on the exception the call raised. MCP's own client span
is not the step because it is opened and closed inside the dispatcher, before `call_tool` reads the result, so no
public hook can give it the result or the error; it nests inside the step as a plain span. A call made inside an
`execute_tool` span of the same tool already (a framework's own tool step around its MCP toolset, or
`Client.call_tool` around `ClientSession.call_tool`) adds no second step.

In a server process that agentotel traces too, `MCPServer.call_tool` puts on MCP's `tools/call {tool}` span what
only the server knows: the arguments and result (content capture only), and the exception the tool raised (the
original one, its type and message, which MCP keeps from the client unless it is a `ToolError`). When the server
exports to the same place as the client, the session then holds, in one trace::

    execute_tool {tool}            agentotel step, INTERNAL, client process (the tool step)
      MCP send tools/call {tool}   MCP's, CLIENT, client process (a plain span)
        tools/call {tool}          MCP's, SERVER, server process (execute_tool, same gen_ai.tool.name)

Turn it off with `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=agentotel_mcp`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import Span

from .._config import settings
from ..steps import record_error
from ._framework import (
    FrameworkInstrumentor,
    attach,
    detach,
    end_step,
    record_failure,
    set_arguments,
    set_result,
    start_tool,
)

log = logging.getLogger("agentotel")

__all__ = ["TOOL_ERROR", "TOOL_TYPE", "MCPInstrumentor"]

TOOL_TYPE = "extension"
"""`gen_ai.tool.type` of an MCP tool: run outside the agent, by the MCP server."""
TOOL_ERROR = "tool_error"
"""The error type of an `isError` result (MCP's `error.type` for it): the server sends text, not an exception."""

_STEP_PREFIX = "execute_tool "
_SERVER_SPAN_PREFIX = "tools/call "

# (module, attribute) of each method wrapped.
_CLIENT_TARGETS = (("mcp.client.session", "ClientSession.call_tool"), ("mcp.client.client", "Client.call_tool"))
_SERVER_TARGET = ("mcp.server.mcpserver.server", "MCPServer.call_tool")


class MCPInstrumentor(FrameworkInstrumentor):
    """Makes each MCP `tools/call` a tool step, and enriches a traced server's tool span (see the module's
    docstring)."""

    module_name = "mcp"
    requirements = ("mcp >= 1.0",)

    _wrapped: ClassVar[list[tuple[str, str]]] = []

    def apply(self, module: ModuleType) -> None:
        wrapped = type(self)._wrapped
        for target in _CLIENT_TARGETS:
            _wrap(target, _call_tool, wrapped)
        _wrap(_SERVER_TARGET, _server_call_tool, wrapped)
        if not wrapped:
            raise RuntimeError("no MCP client or server method to hook")

    def remove(self) -> None:
        wrapped = type(self)._wrapped
        while wrapped:
            module_name, attribute = wrapped.pop()
            try:
                owner: Any = sys.modules[module_name]
                for part in attribute.split(".")[:-1]:
                    owner = getattr(owner, part)
                unwrap(owner, attribute.rsplit(".", 1)[-1])
            except Exception:
                log.debug("Could not unwrap %s.%s", module_name, attribute, exc_info=True)


def _wrap(target: tuple[str, str], wrapper: Callable[..., Any], wrapped: list[tuple[str, str]]) -> None:
    """Wraps one method; one that is missing (another MCP version) is skipped. Never raises."""
    try:
        wrapt.wrap_function_wrapper(target[0], target[1], wrapper)
        wrapped.append(target)
    except Exception:
        log.debug("Could not hook MCP's %s.%s", *target, exc_info=True)


def _tool_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str | None, Any]:
    """The tool name and arguments of a `call_tool(name, arguments, ...)` call."""
    name = kwargs.get("name", args[0] if args else None)
    arguments = kwargs.get("arguments", args[1] if len(args) > 1 else None)
    return (name if isinstance(name, str) else None), arguments


def _current_span_named(name: str) -> Span | None:
    """The current span when it is recording and named `name` (an SDK span's name), else `None`."""
    span = trace.get_current_span()
    if span.is_recording() and getattr(span, "name", None) == name:
        return span
    return None


# --------------------------------------------------------------------------------------------------------------------
# The client: a tool step per call


def _call_tool(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`call_tool`, inside a tool step unless it is one's already. Raises only what the call raises."""
    try:
        name, arguments = _tool_call(args, kwargs)
        if name is not None and _current_span_named(_STEP_PREFIX + name) is None:
            return _in_tool_step(wrapped, args, kwargs, name, arguments)
    except Exception:
        log.debug("Could not hook an MCP tool call", exc_info=True)
    return wrapped(*args, **kwargs)


async def _in_tool_step(
    wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str, arguments: Any
) -> Any:
    span = start_tool(name, tool_type=TOOL_TYPE, arguments=arguments)
    token = attach(span)
    try:
        result = await wrapped(*args, **kwargs)
    except Exception as error:
        record_failure(span, error)
        raise
    else:
        _record_result(span, result)
        return result
    finally:
        detach(token)
        end_step(span)


def _record_result(span: Span, result: Any) -> None:
    """A tool result on its step: its content (capture only), or its failure when it is an `isError` result.
    Never raises."""
    try:
        if getattr(result, "is_error", None) or getattr(result, "isError", None):
            record_failure(span, type_name=TOOL_ERROR, message=_text_of(result))
        elif settings.capture_content:
            set_result(span, _value_of(result))
    except Exception:
        log.debug("Could not record an MCP tool result", exc_info=True)


def _text_of(result: Any) -> str:
    """The text blocks of a tool result, one after the other."""
    texts = [getattr(block, "text", None) for block in getattr(result, "content", None) or ()]
    return "\n".join(text for text in texts if isinstance(text, str))


def _value_of(result: Any) -> Any:
    """What a tool result says: its structured content when there is one, else its text (one block: the text, which
    `set_result` keeps as the JSON it may be), other blocks by their type."""
    structured = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if structured is not None:
        return structured
    blocks = [
        block.text if isinstance(getattr(block, "text", None), str) else {"type": getattr(block, "type", None)}
        for block in getattr(result, "content", None) or ()
    ]
    return blocks[0] if len(blocks) == 1 else blocks


# --------------------------------------------------------------------------------------------------------------------
# A traced server: what only it knows, on MCP's own tool span


def _server_call_tool(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`MCPServer.call_tool`, its arguments, result and error put on MCP's `tools/call` span when that is current.
    Raises only what the call raises."""
    try:
        name, arguments = _tool_call(args, kwargs)
        span = _current_span_named(_SERVER_SPAN_PREFIX + name) if name is not None else None
    except Exception:
        log.debug("Could not hook an MCP server tool call", exc_info=True)
        span = None
    if span is None:
        return wrapped(*args, **kwargs)
    if arguments is not None:
        set_arguments(span, arguments)
    return _on_server_span(wrapped, args, kwargs, span)


async def _on_server_span(
    wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], span: Span
) -> Any:
    try:
        result = await wrapped(*args, **kwargs)
    except Exception as error:
        record_error(span, _root_cause(error))
        raise
    if settings.capture_content:
        try:
            set_result(span, _value_of(result))
        except Exception:
            log.debug("Could not record an MCP tool result", exc_info=True)
    return result


def _root_cause(error: BaseException) -> BaseException:
    """The exception the tool raised, under the `ToolError`s MCP wraps it in (bounded: a cycle cannot hang it)."""
    for _ in range(8):
        cause = error.__cause__
        if cause is None:
            break
        error = cause
    return error
