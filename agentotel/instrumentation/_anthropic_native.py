"""The anthropic SDK's own tracing (`anthropic.lib._tracing`; releases up to 1.13 have none): detected, and set
up so that its content mode follows agentotel's `capture_content`.

The SDK's spans need nothing else from agentotel: they start on the global tracer provider (so our
`SessionSpanProcessor` stamps `session.id` on them and our `CostSpanProcessor` prices them), and they carry
`gen_ai.operation.name=chat`, which makes them LLM steps of the session.

Content mode. A client resolves its `open_telemetry` option once, when it is constructed; a client given no option
takes it from the `ANTHROPIC_OPEN_TELEMETRY_*` environment variables, read by `anthropic._tracing.
env_open_telemetry()`. agentotel wraps that function so that, for such a client, an unset
`ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE` means "as agentotel's `capture_content` says at that moment". So a
client made after `init(capture_content=True)` (or inside `capture(capture_content=True)`) records messages, and
what the user chose explicitly (the client option, or the variable) always wins. If a future SDK drops that
function, agentotel falls back to setting the documented variable itself when it is unset, and removes it again
on uninstrument.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from collections.abc import Callable
from typing import Any

import wrapt

from .._config import settings

log = logging.getLogger("agentotel")

CONTENT_MODE_ENV = "ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE"
CONTENT_MODE_CONTENT = "content"
_ENV_OPTIONS_MODULE = "anthropic._tracing"
_ENV_OPTIONS_FUNCTION = "env_open_telemetry"


def has_native_tracing() -> bool:
    """Whether the installed anthropic SDK traces its own calls (it ships `anthropic.lib._tracing`). Never raises."""
    try:
        return importlib.util.find_spec("anthropic.lib._tracing") is not None
    except Exception:
        return False


def _user_chose_content_mode() -> bool:
    return bool(os.environ.get(CONTENT_MODE_ENV, "").strip())


def _env_options_with_agentotel_default(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`env_open_telemetry()`, with `traces.content_mode` set to `content` when the variable is unset and
    agentotel captures content. Never raises beyond what the SDK's own function raises."""
    options = wrapped(*args, **kwargs)
    try:
        if settings.capture_content and not _user_chose_content_mode():
            traces = options.get("traces") if isinstance(options, dict) else None
            if isinstance(traces, dict) and "content_mode" not in traces:
                traces["content_mode"] = CONTENT_MODE_CONTENT
    except Exception:
        log.debug("Could not set the content mode of an anthropic client", exc_info=True)
    return options


class NativeContentMode:
    """Makes the content mode of the SDK's spans follow `settings.capture_content`. `install()` and `uninstall()`
    never raise, and `uninstall()` leaves the SDK and the environment as `install()` found them."""

    def __init__(self) -> None:
        self._wrapped_module: Any = None
        self._env_set = False

    @property
    def how(self) -> str | None:
        """`"env_open_telemetry"` (the SDK function is wrapped), `"environment"` (the variable was set), or `None`."""
        if self._wrapped_module is not None:
            return _ENV_OPTIONS_FUNCTION
        return "environment" if self._env_set else None

    def install(self) -> None:
        try:
            module = importlib.import_module(_ENV_OPTIONS_MODULE)
            if callable(getattr(module, _ENV_OPTIONS_FUNCTION, None)):
                wrapt.wrap_function_wrapper(module, _ENV_OPTIONS_FUNCTION, _env_options_with_agentotel_default)
                self._wrapped_module = module
                return
        except Exception:
            log.debug("Could not hook the anthropic SDK's telemetry options", exc_info=True)
        try:
            if settings.capture_content and not _user_chose_content_mode():
                os.environ[CONTENT_MODE_ENV] = CONTENT_MODE_CONTENT
                self._env_set = True
        except Exception:
            log.debug("Could not set %s", CONTENT_MODE_ENV, exc_info=True)

    def uninstall(self) -> None:
        module, self._wrapped_module = self._wrapped_module, None
        if module is not None:
            try:
                current = getattr(module, _ENV_OPTIONS_FUNCTION)
                if isinstance(current, wrapt.FunctionWrapper):
                    setattr(module, _ENV_OPTIONS_FUNCTION, current.__wrapped__)
            except Exception:
                log.debug("Could not unhook the anthropic SDK's telemetry options", exc_info=True)
        if self._env_set:
            self._env_set = False
            # Only our own value is removed: a value the user set since then is theirs.
            if os.environ.get(CONTENT_MODE_ENV) == CONTENT_MODE_CONTENT:
                os.environ.pop(CONTENT_MODE_ENV, None)
