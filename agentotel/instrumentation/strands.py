"""`StrandsInstrumentor`: Strands Agents' own spans as steps of agentotel sessions, with its content capture
following agentotel's.

Strands traces itself on the global tracer provider (instrumentation scope `strands.telemetry.tracer`):
`invoke_agent {name}`, `execute_event_loop_cycle`, `chat` (a model call; agentotel's `chat {model}` span of the
same call is its child when the model speaks OpenAI) and `execute_tool {name}`. agentotel wraps none of it; its
model reads those spans. What this instrumentor does is configuration, all of it on Strands' tracer alone (the
environment, which other instrumentations read too, is left as it is). Each switch is an
`OTEL_SEMCONV_STABILITY_OPT_IN` token of Strands:

- **Content follows `settings.capture_content`.** Strands has no "content off": it records prompts, completions,
  tool arguments and results always, unless `gen_ai_unredacted_attributes=<list>` turns on its redaction (then every
  sensitive attribute not listed reads `[REDACTED]`). Without that token, agentotel decides for each value as Strands
  records it (`Tracer._is_attribute_unredacted`): as it is with content capture on, `[REDACTED]` with it off. So
  `init(capture_content=…)` and `capture(capture_content=…)` take effect at once. With capture off,
  `keep_content_from` naming Strands' scope (`strands.telemetry.tracer`, or `strands`) counts as content on. With the
  token, Strands' redaction is the user's and is left alone. (Strands' memory spans record their query and content
  unredacted, whatever the token; the agent loop does not make them.)
- **The latest conventions, content as span attributes.** Strands puts `gen_ai.tool.call.arguments` /
  `gen_ai.tool.call.result` on its `execute_tool` spans only under `gen_ai_latest_experimental`; otherwise a tool's
  arguments and result are span events (`gen_ai.tool.message`, `gen_ai.choice`). And it records messages as span
  events (which OpenTelemetry deprecates for content) unless `gen_ai_span_attributes_only` is given: then they are
  `gen_ai.input.messages` / `gen_ai.output.messages` / `gen_ai.system_instructions` attributes, as on agentotel's
  own spans. When `OTEL_SEMCONV_STABILITY_OPT_IN` names no `gen_ai_` token of its own (`gen_ai_unredacted_attributes=`
  aside), agentotel turns both on for each Strands tracer as it is made. Any other `gen_ai_` token means the user
  chose Strands' conventions: nothing is changed (so `gen_ai_stable`, which Strands does not know, keeps its legacy
  form).

No hook raises into Strands, and `uninstrument()` restores what it found (the tracer's settings included).
"""

from __future__ import annotations

import importlib
import logging
import os
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .._config import settings
from ._framework import FrameworkInstrumentor, Patches

log = logging.getLogger("agentotel")

__all__ = ["StrandsInstrumentor"]

OPT_IN_ENV = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_CONVENTIONS = "gen_ai_latest_experimental"
ATTRIBUTES_ONLY = "gen_ai_span_attributes_only"
UNREDACTED_TOKEN = "gen_ai_unredacted_attributes="
STRANDS_SCOPE = "strands.telemetry.tracer"
"""The instrumentation scope of Strands' spans."""

_TRACER_MODULE = "strands.telemetry.tracer"
_REDACTION_CHECK = "_is_attribute_unredacted"
_LATEST_ATTRIBUTE = "use_latest_genai_conventions"
_ATTRIBUTES_ONLY_ATTRIBUTE = "_span_attributes_only"


class _Hooks:
    on = False
    """Whether the wrappers act: off after `uninstrument()`, for a wrapper that could not be taken off."""


def user_chose_conventions(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Whether `OTEL_SEMCONV_STABILITY_OPT_IN` names a GenAI token other than the redaction list. Never raises."""
    raw = (environ if environ is not None else os.environ).get(OPT_IN_ENV, "")
    tokens = (token.strip() for token in raw.split(","))
    return any(token.startswith("gen_ai_") and not token.startswith(UNREDACTED_TOKEN) for token in tokens)


def _wants_content() -> bool:
    """Whether Strands should record content: agentotel captures it, or the user keeps Strands' content with
    agentotel's off (`keep_content_from` naming Strands' scope or a prefix of it)."""
    if settings.capture_content:
        return True
    keep = getattr(settings, "keep_content_from", ())
    return bool(keep) and any(name == STRANDS_SCOPE or STRANDS_SCOPE.startswith(name + ".") for name in keep)


def _unredacted(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`Tracer._is_attribute_unredacted`: Strands' answer when the user configured its redaction, else whether
    agentotel captures content."""
    if not _Hooks.on or getattr(instance, "_redaction_enabled", False):
        return wrapped(*args, **kwargs)
    return _wants_content()


class _TracerSettings:
    """The conventions agentotel set on Strands tracers, and what they were before. Its methods never raise."""

    def __init__(self) -> None:
        self._before: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()

    def prefer_latest(self, tracer: Any) -> None:
        try:
            if tracer is None or tracer in self._before or user_chose_conventions():
                return
            before = {}
            for name in (_LATEST_ATTRIBUTE, _ATTRIBUTES_ONLY_ATTRIBUTE):
                if hasattr(tracer, name):
                    before[name] = getattr(tracer, name)
                    setattr(tracer, name, True)
            self._before[tracer] = before
        except Exception:
            log.debug("Could not set the conventions of a Strands tracer", exc_info=True)

    def restore(self) -> None:
        for tracer, before in list(self._before.items()):
            try:
                for name, value in before.items():
                    setattr(tracer, name, value)
            except Exception:
                log.debug("Could not restore the conventions of a Strands tracer", exc_info=True)
        self._before.clear()


class StrandsInstrumentor(FrameworkInstrumentor):
    """Makes Strands' content capture follow agentotel's and its tool content span attributes; see the module
    docstring. A singleton, as every `BaseInstrumentor`."""

    module_name = "strands"
    requirements = ("strands-agents >= 1.0",)

    _patches: Patches | None = None
    _settings: _TracerSettings | None = None

    def apply(self, module: ModuleType) -> None:
        tracing = importlib.import_module(_TRACER_MODULE)  # `strands` imports it: nothing more is loaded
        tracer_type = tracing.Tracer
        patches = self._patches = Patches("Strands")
        self._settings = _TracerSettings()
        _Hooks.on = True
        if callable(getattr(tracer_type, _REDACTION_CHECK, None)):
            patches.wrap(tracer_type, _REDACTION_CHECK, _unredacted)
        else:
            log.debug("This Strands release has no redaction: its content is recorded whatever capture_content says")
        patches.wrap(tracer_type, "__init__", self._made)
        self._settings.prefer_latest(getattr(tracing, "_tracer_instance", None))

    def remove(self) -> None:
        _Hooks.on = False
        patches, self._patches = self._patches, None
        if patches is not None:
            patches.undo()
        current, self._settings = self._settings, None
        if current is not None:
            current.restore()

    def _made(self, wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """`Tracer.__init__`, then agentotel's conventions on the new tracer. Raises only what Strands raises."""
        result = wrapped(*args, **kwargs)
        current = self._settings
        if current is not None:
            current.prefer_latest(instance)
        return result
