"""Replays of a session: as text (`text`), later as a self-contained HTML page."""

from .text import render_text

__all__ = ["render_text"]
