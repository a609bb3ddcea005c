"""Settings from `init()` arguments and the environment. One process-wide `Settings` object; reads are lock-free."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger("agentotel")

CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
SESSION_URL_ENV = "AGENTOTEL_SESSION_URL"
MAX_SESSIONS_ENV = "AGENTOTEL_MAX_SESSIONS"
MAX_EVENTS_ENV = "AGENTOTEL_MAX_EVENTS_PER_SESSION"
CONTENT_LIMIT_ENV = "AGENTOTEL_CONTENT_MAX_LENGTH"
KEEP_CONTENT_FROM_ENV = "AGENTOTEL_KEEP_CONTENT_FROM"
SESSION_BAGGAGE_ENV = "AGENTOTEL_SESSION_BAGGAGE"
_SESSION_BAGGAGE_MODES = ("accept", "ignore", "nest")

_CONTENT_ON_SPANS = {"true", "1", "yes", "on", "span_only", "span_and_event"}
_CONTENT_AS_EVENTS = {"event_only", "span_and_event"}
_CONTENT_OFF = {"", "false", "0", "no", "off", "no_content"}


def _content_mode(environ: os._Environ[str] | dict[str, str] | None) -> str:
    value = (environ if environ is not None else os.environ).get(CAPTURE_CONTENT_ENV, "").strip().lower()
    if value not in _CONTENT_ON_SPANS and value not in _CONTENT_AS_EVENTS and value not in _CONTENT_OFF:
        log.warning("%s=%r is not a known value; message content stays off", CAPTURE_CONTENT_ENV, value)
        return ""
    return value


def content_capture_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Whether the GenAI content-capture variable puts content on spans (`true`, `SPAN_ONLY`, `SPAN_AND_EVENT`).
    Never raises: an odd value means off, logged."""
    return _content_mode(environ) in _CONTENT_ON_SPANS


def content_events_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Whether the variable asks for content as the conventions' log events (`EVENT_ONLY`, `SPAN_AND_EVENT`): each
    model call's messages in a `gen_ai.client.inference.operation.details` event. Never raises."""
    return _content_mode(environ) in _CONTENT_AS_EVENTS


def _int_from_env(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        log.warning("%s=%r is not a whole number; using %d", name, raw, default)
        return default
    return max(minimum, value)


def scope_names(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Instrumentation scope names from a comma-separated text or a list, blanks left out."""
    items = raw.split(",") if isinstance(raw, str) else [str(item) for item in raw]
    return tuple(item.strip() for item in items if item.strip())


def _session_baggage_from_env() -> str:
    raw = os.environ.get(SESSION_BAGGAGE_ENV, "").strip().lower()
    if not raw:
        return "accept"
    if raw not in _SESSION_BAGGAGE_MODES:
        log.warning(
            "%s=%r is not one of %s; incoming session ids are ignored", SESSION_BAGGAGE_ENV, raw, _SESSION_BAGGAGE_MODES
        )
        return "ignore"  # a value the user meant as a restriction must not widen trust
    return raw


@dataclass
class Settings:
    """What agentotel does, as `init()` and the environment set it."""

    capture_content: bool = False
    """Content on spans (prompts, completions, tool arguments and results): `true`, `SPAN_ONLY`, `SPAN_AND_EVENT`."""
    content_events: bool = False
    """Model calls' messages as `gen_ai.client.inference.operation.details` log events: `EVENT_ONLY`,
    `SPAN_AND_EVENT`."""
    content_max_length: int = 16_384
    """Longest content attribute, in characters; longer content is cut and the span marked truncated."""
    max_ended_sessions: int = 1_000
    """Ended sessions kept in memory for `get_session()` and test assertions; the oldest are forgotten first."""
    max_events_per_session: int = 100_000
    """Events a live session keeps; past it events are counted as dropped, so memory stays bounded."""
    session_url_template: str | None = None
    default_tags: list[str] = field(default_factory=list)
    session_baggage: str = "accept"
    """What an incoming `session.id` in W3C baggage does: `accept` (stamps this process's spans), `ignore`, or
    `nest` (also nests sessions started here in it); see `propagation.py`."""
    keep_content_from: tuple[str, ...] = ()
    """Instrumentation scope names (or their prefixes) whose spans keep the content they record while agentotel's
    capture is off; every other library's content is dropped then."""

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment alone. Never raises."""
        return cls(
            capture_content=content_capture_from_env(),
            content_events=content_events_from_env(),
            content_max_length=_int_from_env(CONTENT_LIMIT_ENV, 16_384, minimum=64),
            max_ended_sessions=_int_from_env(MAX_SESSIONS_ENV, 1_000),
            max_events_per_session=_int_from_env(MAX_EVENTS_ENV, 100_000),
            session_url_template=os.environ.get(SESSION_URL_ENV) or None,
            keep_content_from=scope_names(os.environ.get(KEEP_CONTENT_FROM_ENV, "")),
            session_baggage=_session_baggage_from_env(),
        )


settings = Settings.from_env()
"""The process-wide settings. `init()` updates it in place, so modules may keep a reference."""
