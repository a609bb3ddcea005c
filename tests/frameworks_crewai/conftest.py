"""The CrewAI tests. CrewAI's pins clash with the main virtualenv's, so `.ci/crewai.sh` runs them in a virtualenv
of their own with `AGENTOTEL_CREWAI=1`; anywhere crewai cannot be imported they are not collected.

CrewAI is kept offline and off the user's home before it is imported: its anonymous telemetry (an OTLP exporter
of its own, to telemetry.crewai.com), its trace uploads, the first-run tracing prompt and the PyPI version check
are turned off by their variables, and the files it writes at each kickoff (task outputs, a credentials key) go
to a throw-away data directory. `OTEL_SDK_DISABLED` is not one of those switches: it would turn agentotel's own
tracer provider off too."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import tempfile

OFFLINE = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_TESTING": "true",
}


def _keep_crewai_offline_and_out_of_home() -> None:
    os.environ.update(OFFLINE)
    data = tempfile.mkdtemp(prefix="agentotel-crewai-data-")
    atexit.register(shutil.rmtree, data, True)
    os.environ["XDG_DATA_HOME"] = os.path.join(data, "share")
    os.environ["XDG_CACHE_HOME"] = os.path.join(data, "cache")


if os.environ.get("AGENTOTEL_CREWAI") == "1" or importlib.util.find_spec("crewai") is not None:
    _keep_crewai_offline_and_out_of_home()
else:
    collect_ignore_glob = ["test_*.py"]
