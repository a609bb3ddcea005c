#!/usr/bin/env bash
# Runs tests/frameworks_crewai/ against a CrewAI release. CrewAI pins openai < 3 (and brings chromadb, onnxruntime,
# lancedb ...), which clashes with the main virtualenv (openai 3.x), so it gets a virtualenv of its own:
#
#   bash .ci/crewai.sh                      # crewai 1.15.30
#   AGENTOTEL_CREWAI_RELEASE=1.10.1 AGENTOTEL_CREWAI_VENV=/tmp/agentotel-crewai-1.10.1 bash .ci/crewai.sh
#
# CrewAI stays offline in the tests: tests/frameworks_crewai/conftest.py turns off its telemetry, trace uploads,
# first-run prompt and version check before it is imported (never with OTEL_SDK_DISABLED, which would turn
# agentotel's own tracing off too).
#
# Environment:
#   AGENTOTEL_CREWAI_RELEASE  the crewai release to test (default 1.15.30, the latest installable here)
#   AGENTOTEL_CREWAI_VENV     where the virtualenv lives (default $TMPDIR/agentotel-crewai); it is reused when
#                             present, so a second run only reinstalls the project
#   PYTHON                    the interpreter to build it from (default python3; 3.11+, as genai-prices)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${AGENTOTEL_CREWAI_VENV:-${TMPDIR:-/tmp}/agentotel-crewai}"
release="${AGENTOTEL_CREWAI_RELEASE:-1.15.30}"
started=$SECONDS

if [ ! -x "$venv/bin/python" ]; then
    echo "crewai: creating $venv"
    "$python" -m venv "$venv"
fi
# Twice quiet: only errors, not the notes about this machine's local package folders.
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet --quiet)
# The project's build backend needs setuptools>=69; installing it here once lets later runs skip build isolation.
"${pip[@]}" install "setuptools>=69" wheel
"${pip[@]}" install --no-build-isolation -e "$repo" "pytest>=8" "pytest-asyncio>=0.24" "crewai==$release"

echo "crewai: crewai==$release"
status=0
(
    cd "$repo"
    AGENTOTEL_CREWAI=1 "$venv/bin/python" -m pytest tests/frameworks_crewai -q -p no:cacheprovider
) || status=$?
echo "crewai: done in $((SECONDS - started))s"
exit "$status"
