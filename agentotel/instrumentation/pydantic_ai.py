"""Pydantic AI: its own OpenTelemetry instrumentation, turned on for every agent.

Pydantic AI traces itself in the GenAI conventions (`invoke_agent {agent}` for a run, `chat {model}` for each model
request, `execute_tool {tool}` for each tool call), but only when asked to. When the app imports `pydantic_ai`, this
asks for it for all agents, through Pydantic AI's own switch (`Agent.instrument_all`), with:

- the latest version of its span conventions (`version=6`: tool results in `role="tool"` messages, as the GenAI
  conventions pair them; an older Pydantic AI that does not know it gets its own default);
- the global tracer provider, which is agentotel's (so agentotel's processor sees every span, gives it the session
  and, with content capture off, drops content from it);
- `include_content` following agentotel's content capture (`settings.capture_content`) at the moment Pydantic AI
  writes each span, not as it was when the agent was built: `agentotel.init(capture_content=True)` later on turns
  content on for the spans written from then on, with no re-instrumenting (a run in progress may hold both kinds).

With content capture off Pydantic AI keeps only an exception's type on its spans (a message may quote content). A
tool's own error is no content to agentotel (`@agentotel.tool` keeps its message too), so its type and message are
recorded on Pydantic AI's `execute_tool` span, before Pydantic AI's own type-only exception event.

The user's own choice always wins: an agent's `agent.instrument = ...`, an `Instrumentation(...)` capability, an
`InstrumentedModel`, or `Agent.instrument_all(...)` called after `agentotel.init()`. A non-default
`Agent.instrument_all(...)` made before agentotel hooks Pydantic AI is kept; only `Agent.instrument_all(False)` made
before then cannot be told from Pydantic AI's default, so call it after `init()`.

The one-line switch, to leave Pydantic AI's instrumentation as Pydantic AI has it (off unless you turn it on)::

    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=agentotel_pydantic_ai

(or, in code after `agentotel.init()`, Pydantic AI's own `Agent.instrument_all(False)`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, ClassVar, Final

import wrapt
from opentelemetry import trace
from opentelemetry.instrumentation.utils import unwrap

from .._config import settings
from ..steps import error_type_name
from ._framework import FrameworkInstrumentor, record_failure

log = logging.getLogger("agentotel")

__all__ = ["CONVENTIONS_VERSION", "PydanticAIInstrumentor"]

CONVENTIONS_VERSION: Final = 6
"""The newest `InstrumentationSettings(version=...)` Pydantic AI 2.68 knows (its default is 5)."""

_CAPABILITY_MODULE = "pydantic_ai.capabilities.instrumentation"
_TOOL_HOOK = "Instrumentation.wrap_tool_execute"


class PydanticAIInstrumentor(FrameworkInstrumentor):
    """Turns Pydantic AI's own instrumentation on for all agents (see the module's docstring)."""

    module_name = "pydantic_ai"
    requirements = ("pydantic-ai-slim >= 1.0",)

    _settings: ClassVar[Any] = None
    """The `InstrumentationSettings` made here and given to `Agent.instrument_all`, while it is applied."""
    _wrapped_tool_hook: ClassVar[bool] = False

    @property
    def settings(self) -> Any:
        """The `InstrumentationSettings` agentotel gave `Agent.instrument_all`, while applied; else `None` (also when
        the app's own instrumentation was found in its place)."""
        return type(self)._settings

    def apply(self, module: ModuleType) -> None:
        from pydantic_ai.agent import Agent

        cls = type(self)
        if Agent._instrument_default is not False:
            log.debug("Pydantic AI's instrumentation is the app's own (Agent.instrument_all); left as it is")
        else:
            cls._settings = _settings_following_capture()
            Agent.instrument_all(cls._settings)
        try:
            _wrap_tool_hook()
            cls._wrapped_tool_hook = True
        except Exception:  # a Pydantic AI without the `Instrumentation` capability: spans without error messages
            log.debug("Could not hook Pydantic AI's tool spans", exc_info=True)

    def remove(self) -> None:
        from pydantic_ai.agent import Agent

        cls = type(self)
        if cls._wrapped_tool_hook:
            cls._wrapped_tool_hook = False
            _unwrap_tool_hook()
        ours, cls._settings = cls._settings, None
        if ours is not None and Agent._instrument_default is ours:  # not if the app has set its own since
            Agent.instrument_all(False)


def _settings_following_capture() -> Any:
    """Pydantic AI's `InstrumentationSettings`, at the newest conventions version it knows, whose `include_content`
    is agentotel's content capture whenever Pydantic AI reads it. May raise (the caller logs it)."""
    from pydantic_ai.models.instrumented import InstrumentationSettings

    class AgentotelInstrumentationSettings(InstrumentationSettings):
        """`InstrumentationSettings` whose content switch is agentotel's `settings.capture_content`."""

        @property
        def include_content(self) -> bool:
            return settings.capture_content

        @include_content.setter
        def include_content(self, value: bool) -> None:
            pass  # `InstrumentationSettings.__init__` assigns it; agentotel's setting decides

    try:
        return AgentotelInstrumentationSettings(version=CONVENTIONS_VERSION)
    except ValueError:  # a Pydantic AI that does not know this version yet
        return AgentotelInstrumentationSettings()


# --------------------------------------------------------------------------------------------------------------------
# A tool's error message on Pydantic AI's tool span


def _wrap_tool_hook() -> None:
    wrapt.wrap_function_wrapper(_CAPABILITY_MODULE, _TOOL_HOOK, _wrap_tool_execute)


def _unwrap_tool_hook() -> None:
    from pydantic_ai.capabilities.instrumentation import Instrumentation

    unwrap(Instrumentation, _TOOL_HOOK.rsplit(".", 1)[-1])


def _wrap_tool_execute(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Pydantic AI's tool-span hook, with the tool handler it runs inside the span wrapped to record a tool's error
    message (only under agentotel's settings, with content capture off: else Pydantic AI records it itself). Never
    raises but what the hook raises."""
    try:
        handler = kwargs.get("handler")
        ours = PydanticAIInstrumentor._settings
        if handler is not None and ours is not None and instance.settings is ours and not settings.capture_content:
            kwargs = {**kwargs, "handler": _recording_errors(handler)}
    except Exception:
        log.debug("Could not hook Pydantic AI's tool span", exc_info=True)
    return wrapped(*args, **kwargs)


def _recording_errors(handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
    async def run_tool(tool_args: Any) -> Any:
        try:
            return await handler(tool_args)
        except Exception as error:
            _record_tool_error(error)
            raise

    return run_tool


def _record_tool_error(error: Exception) -> None:
    """Records the tool's own error (not Pydantic AI's control flow: retries, deferrals, skips, whose text is what
    the model is told) on the current span, Pydantic AI's tool span. Never raises."""
    try:
        if type(error).__module__.partition(".")[0] == "pydantic_ai":
            return
        span = trace.get_current_span()
        if span.is_recording():
            record_failure(span, type_name=error_type_name(error), message=str(error))
    except Exception:
        log.debug("Could not record a tool's error on Pydantic AI's span", exc_info=True)
