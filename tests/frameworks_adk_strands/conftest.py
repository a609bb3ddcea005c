"""These tests drive Google ADK and Strands Agents, whose pins the main virtualenv cannot hold:
`.ci/adk-strands.sh` runs them in a virtualenv of their own with `AGENTOTEL_ADK_STRANDS=1`. Anywhere else they are
collected only when both frameworks are installed."""

from __future__ import annotations

import importlib.util
import os


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


if os.environ.get("AGENTOTEL_ADK_STRANDS") != "1" and not (_installed("google.adk") and _installed("strands")):
    collect_ignore_glob = ["test_*.py"]
