"""`GoogleADKInstrumentor`: Google ADK's own spans as steps of agentotel sessions, with its content capture following
agentotel's.

ADK traces itself on the global tracer provider (instrumentation scope `gcp.vertex.agent`): `invoke_workflow`,
`invoke_agent {name}`, `generate_content {model}` (a model call; agentotel's `chat {model}` span of the same call is
its child when the model speaks OpenAI) and `execute_tool {name}`. agentotel wraps none of it; its model reads those
spans. What this instrumentor does is configuration, with one addition for errors:

- **Content on ADK's spans follows `settings.capture_content`**, read when ADK resolves a `TelemetryConfig` (for each
  span, unless the run brings its own config), so `init(capture_content=…)` and `capture(capture_content=…)` take
  effect at once. Two ADK switches are concerned:

  - `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` — messages on `generate_content` spans and
    `gen_ai.tool.call.arguments` / `gen_ai.tool.call.result` on `execute_tool` spans need a span-bearing mode.
    Unset, agentotel answers `SPAN_ONLY` with content capture on and `NO_CONTENT` with it off. A value the user set
    is ADK's to read as it reads it: `SPAN_ONLY` / `SPAN_AND_EVENT` put content on spans, while `true` / `1` (which
    agentotel reads as "content on") mean `EVENT_ONLY` to ADK: content on log records, none on its spans.
  - `ADK_CAPTURE_MESSAGE_CONTENT_IN_SPANS` — ADK's legacy content knob (the `gcp.vertex.agent.llm_request` /
    `llm_response` / `tool_call_args` / `tool_response` attributes of the schema-1 spans, which
    `ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN=1` brings back). ADK defaults it *on*; unset, agentotel makes it follow
    content capture, so nothing is recorded with capture off.

  How: agentotel wraps the two functions of `google.adk.telemetry.context` that read those variables. An ADK without
  them gets the variables themselves instead, set once when ADK is imported and only when unset (the legacy knob to
  `false` with capture off; the content mode to `SPAN_ONLY` with capture on), and removed again by `uninstrument()`.
  A `RunConfig(telemetry=TelemetryConfig(capture_message_content=…))` the app passes always wins, as in ADK. With
  agentotel's capture off, `keep_content_from` naming ADK's scope (`gcp.vertex.agent`) counts as content on: the
  user keeps ADK's content, so ADK must record it.
- **Semantic conventions need nothing**: ADK 2.x emits the latest experimental GenAI conventions by default (its
  schema 2), so `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` changes nothing there; a schema the user
  pinned (`ADK_TELEMETRY_SCHEMA_VERSION_OPT_IN`) is left alone.
- **A tool error a callback answered stays an error.** When a tool raises and an `on_tool_error_callback` (agent or
  plugin) turns the exception into a response for the model, ADK marks its `execute_tool` span with
  `error.type=TOOL_ERROR` at most (only when the response is a dict with an `error` key), without the exception.
  agentotel notes the exception as the plugin callbacks are run (`PluginManager.run_on_tool_error_callback`) and,
  when ADK then records the call (`google.adk.telemetry.trace_tool_call`) without an exception, records it on the
  span: its `exception` event, `error.type` the exception's type, status ERROR (also for a call of an unknown tool,
  which ADK answers itself). A tool error no callback answers is ADK's to record, as it does (it re-raises it).

Nothing of ADK's telemetry is imported before the app imports it (ADK loads it lazily): each hook is installed when
its module is imported. No hook raises into ADK, and `uninstrument()` restores what it found.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
import weakref
from collections.abc import Callable
from types import ModuleType
from typing import Any, ClassVar

import wrapt
from opentelemetry import trace
from opentelemetry.trace import Span

from .. import semconv as sc
from .._config import CAPTURE_CONTENT_ENV, settings
from ._framework import FrameworkInstrumentor, Patches, record_failure

log = logging.getLogger("agentotel")

__all__ = ["GoogleADKInstrumentor"]

LEGACY_CONTENT_ENV = "ADK_CAPTURE_MESSAGE_CONTENT_IN_SPANS"
SPAN_ONLY = "SPAN_ONLY"
ADK_SCOPE = "gcp.vertex.agent"
"""The instrumentation scope of ADK's spans."""

_CONTEXT_MODULE = "google.adk.telemetry.context"
_TRACING_MODULE = "google.adk.telemetry.tracing"
_PLUGINS_MODULE = "google.adk.plugins.plugin_manager"
_MODE_READER = "_read_content_capturing_mode"
_LEGACY_READER = "_read_add_content_to_legacy_spans"

_TOOL_SPAN_PREFIX = sc.GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL + " "
_MAX_PENDING = 1024
"""Tool errors noted and not yet recorded; past it a new one is not noted (a span that never got its record)."""

_pending: weakref.WeakKeyDictionary[Span, BaseException] = weakref.WeakKeyDictionary()
"""A tool's exception by its `execute_tool` span, from the error callbacks to ADK's record of the call."""


class _Hooks:
    on = False
    """Whether the wrappers act: off after `uninstrument()`, for a wrapper that could not be taken off."""


def _user_set(name: str) -> bool:
    return bool(os.environ.get(name, "").strip())


def _wants_content() -> bool:
    """Whether ADK should record content: agentotel captures it, or the user keeps ADK's content with agentotel's
    off (`keep_content_from` naming ADK's scope or a prefix of it)."""
    if settings.capture_content:
        return True
    keep = getattr(settings, "keep_content_from", ())
    return bool(keep) and any(name == ADK_SCOPE or ADK_SCOPE.startswith(name + ".") for name in keep)


# --------------------------------------------------------------------------------------------------------------------
# Content capture


def _content_mode_reader(mode_type: Any) -> Callable[..., Any]:
    """The wrapper of ADK's reader of the content-mode variable: the user's value when set, else agentotel's."""
    on, off = mode_type.SPAN_ONLY, mode_type.NO_CONTENT

    def read(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not _Hooks.on or _user_set(CAPTURE_CONTENT_ENV):
            return wrapped(*args, **kwargs)
        return on if _wants_content() else off

    return read


def _legacy_content_reader(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """ADK's reader of its legacy content knob: the user's value when set, else agentotel's content capture."""
    if not _Hooks.on or _user_set(LEGACY_CONTENT_ENV):
        return wrapped(*args, **kwargs)
    return _wants_content()


class _EnvironmentFallback:
    """The documented variables, for an ADK without the readers agentotel wraps: set only when unset, removed only
    when still agentotel's value. Its methods never raise."""

    def __init__(self) -> None:
        self._set: dict[str, str] = {}

    def install(self) -> None:
        wanted = {CAPTURE_CONTENT_ENV: SPAN_ONLY} if _wants_content() else {LEGACY_CONTENT_ENV: "false"}
        for name, value in wanted.items():
            try:
                if not _user_set(name):
                    os.environ[name] = value
                    self._set[name] = value
            except Exception:
                log.debug("Could not set %s", name, exc_info=True)

    def uninstall(self) -> None:
        for name, value in self._set.items():
            if os.environ.get(name) == value:  # a value the user set since is theirs
                os.environ.pop(name, None)
        self._set.clear()


# --------------------------------------------------------------------------------------------------------------------
# Tool errors answered by a callback


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], index: int, name: str) -> Any:
    return kwargs[name] if name in kwargs else (args[index] if len(args) > index else None)


def _is_tool_span(span: Span) -> bool:
    return span.is_recording() and str(getattr(span, "name", "")).startswith(_TOOL_SPAN_PREFIX)


def _note_tool_error(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`PluginManager.run_on_tool_error_callback`: notes the exception against the current `execute_tool` span (ADK
    runs the error callbacks inside it). Raises only what ADK raises."""
    if not _Hooks.on:
        return wrapped(*args, **kwargs)
    try:
        error = kwargs.get("error")
        span = trace.get_current_span()
        if isinstance(error, BaseException) and _is_tool_span(span) and len(_pending) < _MAX_PENDING:
            _pending[span] = error
    except Exception:
        log.debug("Could not note an ADK tool error", exc_info=True)
    return wrapped(*args, **kwargs)


def _record_answered_error(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """`trace_tool_call`: after ADK's record of the call, the exception a callback answered, if ADK did not see it
    raised. Raises only what ADK raises."""
    result = wrapped(*args, **kwargs)
    if not _pending:
        return result
    try:
        span = _argument(args, kwargs, 4, "span") or trace.get_current_span()
        error = _pending.pop(span, None)
        if error is not None and _argument(args, kwargs, 3, "error") is None:
            record_failure(span, error)
    except Exception:
        log.debug("Could not record an ADK tool error", exc_info=True)
    return result


# --------------------------------------------------------------------------------------------------------------------
# The instrumentor


class GoogleADKInstrumentor(FrameworkInstrumentor):
    """Makes ADK's content capture follow agentotel's and keeps tool errors that callbacks answered; see the module
    docstring. A singleton, as every `BaseInstrumentor`."""

    module_name = "google.adk"
    requirements = ("google-adk >= 1.0",)

    _hooked_modules: ClassVar[set[str]] = set()
    """ADK modules with a post-import hook registered (it cannot be removed: one per module, gated by `_active`)."""

    _active = False
    _patches: Patches
    _installed: set[str]
    _fallback: _EnvironmentFallback | None = None
    _patch_lock: ClassVar[threading.Lock] = threading.Lock()

    def apply(self, module: ModuleType) -> None:
        self._patches = Patches("Google ADK")
        self._installed = set()
        self._active = _Hooks.on = True
        if not _module_exists(_CONTEXT_MODULE):
            self._install_fallback()
        for name in (_CONTEXT_MODULE, _TRACING_MODULE, _PLUGINS_MODULE):
            self._when_imported(name)

    def remove(self) -> None:
        self._active = _Hooks.on = False
        with self._patch_lock:
            self._patches.undo()
            self._installed.clear()
            fallback, self._fallback = self._fallback, None
        if fallback is not None:
            fallback.uninstall()
        _pending.clear()

    @property
    def hooks(self) -> list[str]:
        """What is hooked now, for diagnostics: `module:attribute` of each wrapper, and `environment` for the
        fallback."""
        return self._patches.hooked + (["environment"] if self._fallback is not None else [])

    def _when_imported(self, name: str) -> None:
        loaded = sys.modules.get(name)
        if loaded is not None:
            self._install(name, loaded)
            return
        if name in type(self)._hooked_modules:
            return
        type(self)._hooked_modules.add(name)
        try:
            wrapt.register_post_import_hook(lambda imported: self._install(name, imported), name)
        except Exception:
            log.debug("Could not wait for %s to be imported", name, exc_info=True)

    def _install(self, name: str, module: ModuleType) -> None:
        """Installs the hooks of ADK module `name` once while instrumented. Never raises."""
        if not self._active:
            return
        with self._patch_lock:
            if not self._active or name in self._installed:
                return
            self._installed.add(name)
            try:
                if name == _CONTEXT_MODULE:
                    self._hook_content_readers(module)
                elif name == _TRACING_MODULE:
                    self._patches.wrap(module, "trace_tool_call", _record_answered_error)
                elif name == _PLUGINS_MODULE:
                    self._patches.wrap(module.PluginManager, "run_on_tool_error_callback", _note_tool_error)
            except Exception:
                log.debug("Could not hook %s", name, exc_info=True)

    def _hook_content_readers(self, module: ModuleType) -> None:
        mode_type = getattr(module, "ContentCapturingMode", None)
        if mode_type is None or not callable(getattr(module, _MODE_READER, None)):
            self._install_fallback()
            return
        self._patches.wrap(module, _MODE_READER, _content_mode_reader(mode_type))
        if callable(getattr(module, _LEGACY_READER, None)):
            self._patches.wrap(module, _LEGACY_READER, _legacy_content_reader)

    def _install_fallback(self) -> None:
        if self._fallback is None:
            self._fallback = _EnvironmentFallback()
            self._fallback.install()


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:
        return False
