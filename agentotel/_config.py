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

_CONTENT_ON = {"true", "1", "yes", "on", "span_only", "event_only", "span_and_event"}
_CONTENT_OFF = {"", "false", "0", "no", "off", "no_content"}


def content_capture_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> bool:
    """Whether the GenAI content-capture variable turns content on. Never raises: an odd value means off, logged."""
    value = (environ if environ is not None else os.environ).get(CAPTURE_CONTENT_ENV, "").strip().lower()
    if value in _CONTENT_ON:
        return True
    if value not in _CONTENT_OFF:
        log.warning("%s=%r is not a known value; message content stays off", CAPTURE_CONTENT_ENV, value)
    return False


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


@dataclass
class Settings:
    """What agentotel does, as `init()` and the environment set it."""

    capture_content: bool = False
    content_max_length: int = 16_384
    """Longest content attribute, in characters; longer content is cut and the span marked truncated."""
    max_ended_sessions: int = 1_000
    """Ended sessions kept in memory for `get_session()` and test assertions; the oldest are forgotten first."""
    max_events_per_session: int = 100_000
    """Events a live session keeps; past it events are counted as dropped, so memory stays bounded."""
    session_url_template: str | None = None
    default_tags: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment alone. Never raises."""
        return cls(
            capture_content=content_capture_from_env(),
            content_max_length=_int_from_env(CONTENT_LIMIT_ENV, 16_384, minimum=64),
            max_ended_sessions=_int_from_env(MAX_SESSIONS_ENV, 1_000),
            max_events_per_session=_int_from_env(MAX_EVENTS_ENV, 100_000),
            session_url_template=os.environ.get(SESSION_URL_ENV) or None,
        )


settings = Settings.from_env()
"""The process-wide settings. `init()` updates it in place, so modules may keep a reference."""
