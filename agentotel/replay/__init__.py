"""Replays of a session: a text timeline (`render_text`) and a self-contained HTML page (`render_html`)."""

from .html import render_html, write_html
from .text import render_text

__all__ = ["render_html", "render_text", "write_html"]
