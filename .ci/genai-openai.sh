#!/usr/bin/env bash
# Runs tests/instrumentation/test_official_cassettes.py against opentelemetry-instrumentation-genai-openai, the
# official OpenAI instrumentation's successor package. It needs opentelemetry-util-genai 1.3, which breaks the
# opentelemetry-instrumentation-openai-v2 release the main virtualenv compares with, so it gets a virtualenv of
# its own:
#
#   bash .ci/genai-openai.sh                  # opentelemetry-instrumentation-genai-openai 1.3b0
#
# The test fetches that release's sdist from the package registry for its recorded cassettes (into .cache/).
#
# Environment:
#   AGENTOTEL_GENAI_OPENAI_VENV  where the virtualenv lives (default $TMPDIR/agentotel-genai-openai); it is reused
#                                when present, so a second run only reinstalls the project
#   PYTHON                       the interpreter to build it from (default python3; 3.11+, as genai-prices)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${AGENTOTEL_GENAI_OPENAI_VENV:-${TMPDIR:-/tmp}/agentotel-genai-openai}"
started=$SECONDS

if [ ! -x "$venv/bin/python" ]; then
    echo "genai-openai: creating $venv"
    "$python" -m venv "$venv"
fi
# Twice quiet: only errors, not the notes about this machine's local package folders.
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet --quiet)
# The project's build backend needs setuptools>=69; installing it here once lets later runs skip build isolation.
"${pip[@]}" install "setuptools>=69" wheel
"${pip[@]}" install --no-build-isolation -e "$repo" "pytest>=8" "pytest-asyncio>=0.24" pyyaml "openai>=1.50" "anthropic>=0.40" \
    "opentelemetry-instrumentation-genai-openai==1.3b0"

status=0
(
    cd "$repo"
    "$venv/bin/python" -m pytest tests/instrumentation/test_official_cassettes.py -q -p no:cacheprovider
) || status=$?
echo "genai-openai: done in $((SECONDS - started))s"
exit "$status"
