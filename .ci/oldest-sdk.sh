#!/usr/bin/env bash
# Runs the tests of what depends on the OpenTelemetry SDK (processors, content removal and redaction, error text,
# cost, sessions, steps, the store, OTLP export, the distro, propagation, the OpenAI / Anthropic instrumentation,
# re-runs) against the oldest OpenTelemetry release pyproject.toml allows. The main virtualenv has the newest; the
# framework packages there need newer releases, so this one holds the project and its test tools only:
#
#   bash .ci/oldest-sdk.sh            # opentelemetry-sdk 1.40.0 (the first that calls a processor's _on_ending)
#
# Environment:
#   AGENTOTEL_OLDEST_SDK_VENV  where the virtualenv lives (default $TMPDIR/agentotel-oldest-sdk); it is reused when
#                              present, so a second run only reinstalls the project
#   PYTHON                     the interpreter to build it from (default python3; 3.11+, as genai-prices)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${AGENTOTEL_OLDEST_SDK_VENV:-${TMPDIR:-/tmp}/agentotel-oldest-sdk}"
sdk=1.40.0         # keep in step with pyproject.toml's floors
contrib=0.61b0     # the contrib (instrumentation) release of that SDK
started=$SECONDS

if [ ! -x "$venv/bin/python" ]; then
    echo "oldest-sdk: creating $venv"
    "$python" -m venv "$venv"
fi
# Twice quiet: only errors, not the notes about this machine's local package folders.
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet --quiet)
# The project's build backend needs setuptools>=69; installing it here once lets later runs skip build isolation.
"${pip[@]}" install "setuptools>=69" wheel
"${pip[@]}" install --no-build-isolation -e "$repo" "pytest>=8" "pytest-asyncio>=0.24" "hypothesis>=6" pyyaml \
    "openai>=1.50" "anthropic>=0.40" "httpx>=0.28" "requests>=2.31" "msgspec>=0.18" \
    "opentelemetry-api==$sdk" "opentelemetry-sdk==$sdk" "opentelemetry-proto==$sdk" \
    "opentelemetry-exporter-otlp-proto-http==$sdk" "opentelemetry-exporter-otlp-proto-grpc==$sdk" \
    "opentelemetry-instrumentation==$contrib" "opentelemetry-instrumentation-requests==$contrib"
"$venv/bin/python" -c "
from importlib.metadata import version
assert version('opentelemetry-sdk') == '$sdk', version('opentelemetry-sdk')
"

status=0
(
    cd "$repo"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider \
        tests/test_sessions.py tests/test_steps.py tests/test_testing_toolkit.py tests/test_store.py \
        tests/test_redaction.py tests/test_init.py tests/test_content_policy.py tests/test_content_events.py \
        tests/test_rerun.py tests/test_duplicate_steps.py tests/test_pricing.py tests/test_span_attributes.py \
        tests/test_cross_service.py tests/test_session_file.py tests/test_pytest_output.py tests/test_conventions.py \
        tests/test_distro.py tests/instrumentation/test_openai.py tests/instrumentation/test_anthropic.py \
        tests/instrumentation/test_llm_capture_conformance.py tests/reliability/test_error_text.py \
        tests/reliability/test_redaction_misses.py tests/reliability/test_session_trust.py \
        tests/reliability/test_session_bounds.py tests/reliability/test_lifecycle.py
) || status=$?
echo "oldest-sdk: done in $((SECONDS - started))s"
exit "$status"
