#!/usr/bin/env bash
# Runs tests/legacy_anthropic/ against anthropic SDK releases that do not trace themselves (no
# `anthropic.lib._tracing`), so agentotel's own wrappers of `messages.create` / `messages.stream` are what make the
# spans. The old SDKs cannot share the main virtualenv (it has anthropic 2.x), so they get one of their own:
#
#   bash .ci/legacy-anthropic.sh            # 0.40.0 (the floor agentotel declares; httpx) and 1.13.0 (httpx2)
#
# Environment:
#   AGENTOTEL_LEGACY_ANTHROPIC_RELEASES  the releases to test, space-separated (default "0.40.0 1.13.0")
#   AGENTOTEL_LEGACY_VENV                where the virtualenv lives (default $TMPDIR/agentotel-legacy-anthropic);
#                                        it is reused when present, so a second run only reinstalls the project
#   PYTHON                               the interpreter to build it from (default python3; 3.11+, as genai-prices)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
venv="${AGENTOTEL_LEGACY_VENV:-${TMPDIR:-/tmp}/agentotel-legacy-anthropic}"
releases="${AGENTOTEL_LEGACY_ANTHROPIC_RELEASES:-0.40.0 1.13.0}"
started=$SECONDS

if [ ! -x "$venv/bin/python" ]; then
    echo "legacy-anthropic: creating $venv"
    "$python" -m venv "$venv"
fi
# Twice quiet: only errors, not the notes about this machine's local package folders.
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet --quiet)
# The project's build backend needs setuptools>=69; installing it here once lets later runs skip build isolation.
"${pip[@]}" install "setuptools>=69" wheel
"${pip[@]}" install --no-build-isolation -e "$repo" "pytest>=8" "pytest-asyncio>=0.24"

status=0
for release in $releases; do
    echo "legacy-anthropic: anthropic==$release"
    "${pip[@]}" install "anthropic==$release"
    (
        cd "$repo"
        AGENTOTEL_LEGACY_ANTHROPIC=1 "$venv/bin/python" -m pytest tests/legacy_anthropic -q -p no:cacheprovider
    ) || status=$?
done
echo "legacy-anthropic: done in $((SECONDS - started))s"
exit "$status"
