#!/usr/bin/env bash
# Runs tests/frameworks_adk_strands/ against Google ADK and Strands Agents, the two frameworks that trace themselves
# with OpenTelemetry (agentotel only reads their spans and sets their content switches). Their pins cannot share the
# main virtualenv (google-adk needs opentelemetry-sdk <= 1.44, strands-agents needs mcp < 2.2, both OpenAI extras
# need openai < 3), so they get one of their own:
#
#   bash .ci/adk-strands.sh
#
# Environment:
#   AGENTOTEL_ADK_STRANDS_VENV  where the virtualenv lives (default $TMPDIR/agentotel-adk-strands); it is reused when
#                               present, so a second run only checks the pins and reinstalls the project
#   PYTHON                      the interpreter to build it from (default python3; 3.11+, as genai-prices)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${AGENTOTEL_ADK_STRANDS_VENV:-${TMPDIR:-/tmp}/agentotel-adk-strands}"
# The latest releases that install together (with openai 2.x, opentelemetry-sdk 1.44 and mcp 2.1).
adk_release="2.13.0"
strands_release="1.62.0"
started=$SECONDS

if [ ! -x "$venv/bin/python" ]; then
    echo "adk-strands: creating $venv"
    "$python" -m venv "$venv"
fi
# Twice quiet: only errors, not the notes about this machine's local package folders.
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet --quiet)
# The project's build backend needs setuptools>=69; installing it here once lets later runs skip build isolation.
"${pip[@]}" install "setuptools>=69" wheel
# One resolution for everything, so the frameworks' pins (not the project's floors) choose the shared packages.
# The `openai` extras are the frameworks' OpenAI-compatible models (ADK's `OpenAILlm`, Strands' `OpenAIModel`),
# which the tests point at the scripted model server on loopback.
echo "adk-strands: google-adk==$adk_release strands-agents==$strands_release"
"${pip[@]}" install --no-build-isolation -e "$repo" "pytest>=8" "pytest-asyncio>=0.24" \
    "google-adk[openai]==$adk_release" "strands-agents[openai]==$strands_release"

status=0
(
    cd "$repo"
    AGENTOTEL_ADK_STRANDS=1 "$venv/bin/python" -m pytest tests/frameworks_adk_strands -q -p no:cacheprovider
) || status=$?
echo "adk-strands: done in $((SECONDS - started))s"
exit "$status"
