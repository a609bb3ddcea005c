"""The official OpenAI instrumentations' recorded test cassettes, taken from their released source distributions.

The cassettes are theirs (Apache-2.0) and stay theirs: they are not copied into this repository but fetched from
the package registry (`pip download` of the pinned sdist) into `.cache/official-cassettes/` at the repository root
the first time a test asks, and read from there afterwards. `AGENTOTEL_OFFICIAL_CASSETTES` names a folder that
already holds them (one sub-folder per package, `<name>-<version>/`, each with the sdist's `tests/cassettes/`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SUCCESSOR = ("opentelemetry-instrumentation-genai-openai", "1.3b0")
"""The official instrumentation's current package (the one `opentelemetry-instrumentation-openai-v2` points to)."""

_ROOT = Path(__file__).resolve().parents[2]
_DOWNLOAD_TIMEOUT_S = 300


def cache_root() -> Path:
    return Path(os.environ.get("AGENTOTEL_OFFICIAL_CASSETTES") or _ROOT / ".cache" / "official-cassettes")


def cassette_folder(package: tuple[str, str] = SUCCESSOR) -> tuple[Path | None, str]:
    """The folder of `package`'s cassettes, fetched once; else `None` and why (no registry, say)."""
    name, version = package
    folder = cache_root() / f"{name}-{version}"
    if any(folder.glob("*.yaml")):
        return folder, ""
    with tempfile.TemporaryDirectory() as download:
        try:
            subprocess.run(
                [
                    *(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"),
                    *("-d", str(download), "--disable-pip-version-check", f"{name}=={version}"),
                ],
                check=True,
                capture_output=True,
                timeout=_DOWNLOAD_TIMEOUT_S,
            )
        except (subprocess.SubprocessError, OSError) as error:
            return None, f"could not download the {name} {version} sdist for its cassettes: {error}"
        archives = list(Path(download).glob("*.tar.gz"))
        if not archives:
            return None, f"pip downloaded no sdist of {name} {version}"
        partial = folder.with_name(folder.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts
                wanted = (parts[-1] == "LICENSE" and len(parts) == 2) or parts[1:3] == ("tests", "cassettes")
                if not (member.isfile() and wanted):
                    continue
                source = archive.extractfile(member)
                if source is not None:
                    (partial / parts[-1]).write_bytes(source.read())
        partial.replace(folder)  # whole or not at all: a cut download is fetched again next time
    return folder, ""
