"""`AnthropicInstrumentor`: the anthropic SDK's model calls as LLM steps of agentotel sessions.

Two ways, chosen by what the installed SDK can do:

- **native** — the SDK traces itself (`anthropic.lib._tracing`): its `anthropic.messages.create` spans are used as
  they are, never wrapped a second time. agentotel only makes their content mode follow `capture_content`
  (`_anthropic_native`); `session.id`, cost and the LLM classification come from agentotel's processors and model.
- **wrapped** — an SDK without native tracing (0.40 up to 1.13): `Messages.create` / `Messages.stream`, their
  async twins and the beta messages' (`client.beta.messages`) are wrapped (`_anthropic_wrappers`) and make
  `chat {model}` spans like agentotel's OpenAI ones.

The SDK is instrumented when the app imports it (at once when it already has: `init()` never imports it).
`instrument(native=False)` forces the wrappers on an SDK that traces itself; its clients should then be made with
`open_telemetry=False`, or each call is recorded twice. `uninstrument()` restores exactly what was there.
Neither method raises into the caller.
"""

from __future__ import annotations

import logging
from types import ModuleType

from opentelemetry import trace

from .._version import __version__
from ._anthropic_native import NativeContentMode, has_native_tracing
from ._anthropic_wrappers import unwrap_messages, wrap_messages
from ._framework import FrameworkInstrumentor

log = logging.getLogger("agentotel")

_INSTRUMENTS = ("anthropic >= 0.40",)

MODE_NATIVE = "native"
MODE_WRAPPED = "wrapped"


class AnthropicInstrumentor(FrameworkInstrumentor):
    """Instruments the anthropic SDK; see the module docstring. A singleton, as every `BaseInstrumentor`.

    `instrument()` accepts `tracer_provider=` (for the wrapped mode's spans; the SDK's native spans use its own
    `open_telemetry` option) and `native=` (`None`: detect, the default).
    """

    module_name = "anthropic"
    requirements = _INSTRUMENTS

    _mode: str | None = None
    _content_mode: NativeContentMode | None = None
    _wrapped: list[tuple[type, str]] | None = None

    @property
    def mode(self) -> str | None:
        """`"native"`, `"wrapped"`, or `None` when not instrumented."""
        return self._mode

    def apply(self, module: ModuleType) -> None:
        kwargs = self._options
        try:
            native = kwargs.get("native")
            if native is None:
                native = has_native_tracing()
            if native:
                content_mode = NativeContentMode()
                content_mode.install()
                self._content_mode = content_mode
                self._mode = MODE_NATIVE
                return
            tracer = trace.get_tracer(__name__, __version__, tracer_provider=kwargs.get("tracer_provider"))
            self._wrapped = wrap_messages(tracer)
            self._mode = MODE_WRAPPED
        except Exception:
            log.debug("Could not instrument the anthropic SDK", exc_info=True)

    def remove(self) -> None:
        try:
            content_mode, self._content_mode = self._content_mode, None
            if content_mode is not None:
                content_mode.uninstall()
            wrapped, self._wrapped = self._wrapped, None
            if wrapped:
                unwrap_messages(wrapped)
        except Exception:
            log.debug("Could not uninstrument the anthropic SDK", exc_info=True)
        finally:
            self._mode = None
