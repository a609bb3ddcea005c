"""These tests drive an anthropic SDK release without native tracing, which the main virtualenv does not have:
`.ci/legacy-anthropic.sh` runs them in a virtualenv of their own with `AGENTOTEL_LEGACY_ANTHROPIC=1`. Anywhere else
they are not collected."""

from __future__ import annotations

import os

if os.environ.get("AGENTOTEL_LEGACY_ANTHROPIC") != "1":
    collect_ignore_glob = ["test_*.py"]
