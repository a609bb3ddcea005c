"""Testing agents with agentotel: capture sessions, assert on their behaviour, run variations, and a pytest
plugin (registered automatically) that records each test phase's report and summarises sessions."""

from .capture import Capture, capture

__all__ = ["Capture", "capture"]
