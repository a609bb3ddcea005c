"""Where the embedded store is and how many sessions it keeps: `AGENTOTEL_STORE` (a path, or `off`) and
`AGENTOTEL_STORE_MAX_SESSIONS`, read from the environment. No disk is touched here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("agentotel")

STORE_ENV = "AGENTOTEL_STORE"
OFF_VALUES = frozenset({"off", "none", "false", "0", "no"})
MAX_SESSIONS_ENV = "AGENTOTEL_STORE_MAX_SESSIONS"
DEFAULT_MAX_SESSIONS = 10_000


# --- where the store is -----------------------------------------------------------------------------------------------


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """`$XDG_DATA_HOME/agentotel/sessions.db`, or `~/.local/share/agentotel/sessions.db`."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME", "").strip()
    root = Path(base).expanduser() if base and Path(base).expanduser().is_absolute() else None
    if root is None:
        root = Path.home() / ".local" / "share"
    return root / "agentotel" / "sessions.db"


def store_setting(environ: Mapping[str, str] | None = None) -> str | None:
    """`AGENTOTEL_STORE` as set (stripped), or `None` when unset or empty."""
    env = os.environ if environ is None else environ
    value = env.get(STORE_ENV, "").strip()
    return value or None


def store_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """The store's path per `AGENTOTEL_STORE` (the default path when unset); `None` when the store is off."""
    value = store_setting(environ)
    if value is None:
        return default_store_path(environ)
    if value.lower() in OFF_VALUES:
        return None
    return Path(value).expanduser()


def store_max_sessions(environ: Mapping[str, str] | None = None) -> int | None:
    """How many outermost sessions the store keeps (`AGENTOTEL_STORE_MAX_SESSIONS`; default 10,000); `None` keeps
    every one (`0`, `off`). A value that is no whole number is reported once and the default applies. Never raises."""
    env = os.environ if environ is None else environ
    value = env.get(MAX_SESSIONS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_SESSIONS
    if value.lower() in OFF_VALUES:
        return None
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        log.warning(
            "%s=%r is not a whole number; the store keeps %d sessions", MAX_SESSIONS_ENV, value, DEFAULT_MAX_SESSIONS
        )
        return DEFAULT_MAX_SESSIONS
    return count or None
