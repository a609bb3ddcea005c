"""Creates one virtualenv per peer (another tracing SDK that agentotel is measured against), outside the repository.

    python benchmarks/peers/setup.py [PEER ...] [--force] [--list] [--frameworks]

Each peer gets `~/.cache/agentotel-bench/<peer>` (`AGENTOTEL_BENCH_CACHE` moves the root) holding that peer, the
OpenTelemetry SDK and the newest `openai` it can install with: peers that pin an older `openai` get it in their own
venv, and the benchmark measures the uninstrumented baseline in that same venv. Idempotent: a venv whose
requirements are unchanged is kept (`--force` rebuilds it). Never touches the project's own venv.

The frameworks whose pins clash with the project's venv (CrewAI, Google ADK) are benchmarked in the venvs their CI
scripts make (`.ci/crewai.sh`, `.ci/adk-strands.sh`); this adds their OpenInference instrumentors there, pinning
everything already installed (`--frameworks` does only that).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import venv
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "AGENTOTEL_BENCH_CACHE"
COMMON = ("opentelemetry-sdk", "httpx2")
"""What every peer venv gets: the SDK pipeline the benchmark builds, and openai 3.x's HTTP client."""
PINNED_FROM_PROJECT = ("opentelemetry-api", "opentelemetry-sdk")
"""Pinned to the versions in the venv that runs this script (the project's), so that every peer runs the same SDK
pipeline, and pip need not search the SDK's history for a combination. (Not `opentelemetry-instrumentation`:
contrib packages the peers need lag its releases.)"""
OPENLLMETRY_VERSION = "0.62.4"
TRACELOOP_SDK_DEPENDENCIES = (
    "aiohttp",
    "colorama",
    "httpx",
    "cuid",
    "deprecated",
    "jinja2",
    "opentelemetry-exporter-otlp-proto-grpc",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-semantic-conventions-ai",
    "pydantic",
    "tenacity",
)
"""traceloop-sdk's own dependencies, without the ~30 unpinned instrumentations of other libraries it also
requires (one of which needs a release missing from the registry here): the SDK is installed `--no-deps` on top,
and only its openai instrumentation is used."""


@dataclass(frozen=True)
class Peer:
    """A peer's venv: what to install in it, and why it differs from the others."""

    name: str
    requirements: tuple[str, ...]
    openai: str = "openai"
    """The openai requirement: the newest the peer supports."""
    constraints: tuple[str, ...] = ()
    """Pins that only steer pip's resolution (`pip install -c`)."""
    no_deps: tuple[str, ...] = ()
    """Installed after the requirements with `--no-deps`."""
    pin_sdk: bool = True
    """Whether the OpenTelemetry API/SDK are pinned to the project's versions (off when the peer cannot have them)."""
    note: str = ""


PEERS: dict[str, Peer] = {
    p.name: p
    for p in (
        Peer(
            "otel-openai-v2",
            ("opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai==1.1b0", "httpx"),
            note="2.4b0 imports httpx and fails to import with opentelemetry-util-genai 1.3b0 (needs 1.1b0)",
        ),
        Peer(
            "otel-genai-openai",
            ("opentelemetry-instrumentation-genai-openai==1.3b0", "httpx"),
            note=(
                "the successor of opentelemetry-instrumentation-openai-v2: needs opentelemetry-util-genai 1.3 (which "
                "breaks openai-v2 2.4b0), hence a venv of its own"
            ),
        ),
        Peer(
            "traceloop",
            (f"opentelemetry-instrumentation-openai=={OPENLLMETRY_VERSION}", *TRACELOOP_SDK_DEPENDENCIES),
            no_deps=(
                f"traceloop-sdk=={OPENLLMETRY_VERSION}",
                # imported by traceloop.sdk; no release for this SDK yet, so the previous one, without its pins
                "opentelemetry-instrumentation-logging",
                "opentelemetry-instrumentation-threading",
            ),
        ),
        Peer("openinference", ("openinference-instrumentation-openai",)),
        Peer(
            "openlit",
            ("openlit>=1.45",),
            openai="openai<3",
            pin_sdk=False,
            note=(
                "openlit 1.45 requires openai<3 (it runs with the newest 2.x, its baseline measured there) and "
                "contrib instrumentations that have no release for SDK 1.45.2 (it gets 1.45.1)"
            ),
        ),
        Peer("agentops", ("agentops",)),
    )
}


@dataclass(frozen=True)
class FrameworkVenv:
    """A framework whose pins clash with the project's venv: its CI script's venv, where the benchmark runs it, and
    the OpenInference instrumentor added there for the comparison."""

    framework: str
    env: str
    """The variable that moves the venv (the CI script's)."""
    default: str
    """The venv's folder under `$TMPDIR` (or /tmp) when `env` is unset."""
    script: str
    """What makes the venv."""
    peer: str
    """The OpenInference instrumentor installed into it."""


FRAMEWORK_VENVS: dict[str, FrameworkVenv] = {
    v.framework: v
    for v in (
        FrameworkVenv(
            "crewai",
            "AGENTOTEL_CREWAI_VENV",
            "agentotel-crewai",
            ".ci/crewai.sh",
            "openinference-instrumentation-crewai",
        ),
        FrameworkVenv(
            "google-adk",
            "AGENTOTEL_ADK_STRANDS_VENV",
            "agentotel-adk-strands",
            ".ci/adk-strands.sh",
            "openinference-instrumentation-google-adk",
        ),
    )
}


def framework_python(framework: str) -> Path:
    """The interpreter of the venv the framework's CI script makes (it may not exist)."""
    spec = FRAMEWORK_VENVS[framework]
    configured = os.environ.get(spec.env, "").strip()
    home = Path(configured) if configured else Path(os.environ.get("TMPDIR") or "/tmp") / spec.default
    return home / "bin" / "python"


def add_framework_peer(spec: FrameworkVenv) -> bool:
    """Installs the framework's OpenInference instrumentor into the framework's venv, every package already there
    pinned to its installed version (so the framework's own tests run on what they ran on). Returns whether it is
    installed; a missing venv is left to its CI script."""
    python = framework_python(spec.framework)
    if not python.exists():
        print(f"{spec.framework}: no venv at {python.parent.parent} (bash {spec.script} makes it); skipped")
        return True
    quiet = ("-q", "--disable-pip-version-check")
    freeze = subprocess.run([str(python), "-m", "pip", "freeze", *quiet], capture_output=True, text=True)
    pins = [line for line in freeze.stdout.splitlines() if "==" in line and not line.startswith(("-e", "agentotel"))]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="agentotel-bench-pins-", delete=False) as out:
        out.write("\n".join(pins) + "\n")
    try:
        done = subprocess.run(
            [str(python), "-m", "pip", "install", *quiet, "-c", out.name, spec.peer], capture_output=True, text=True
        )
    finally:
        os.unlink(out.name)
    if done.returncode != 0:
        print(f"{spec.framework}: pip failed:\n{done.stderr[-3000:]}")
        return False
    print(f"{spec.framework}: {spec.peer} ready in {python.parent.parent}")
    return True


def cache_root() -> Path:
    """Where the peer venvs live: `$AGENTOTEL_BENCH_CACHE`, else `~/.cache/agentotel-bench`."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "agentotel-bench"


def venv_python(peer: str) -> Path:
    return cache_root() / peer / "bin" / "python"


def _requirements(peer: Peer) -> list[str]:
    return [peer.openai, *COMMON, *peer.requirements]


def _constraints(peer: Peer) -> list[str]:
    pins = []
    for name in PINNED_FROM_PROJECT if peer.pin_sdk else ():
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return [*pins, *peer.constraints]


def _stamp(peer: Peer) -> str:
    return hashlib.sha256(json.dumps([_requirements(peer), _constraints(peer), peer.no_deps]).encode()).hexdigest()[:16]


def is_ready(peer: str) -> bool:
    """Whether the peer's venv exists and was built from its current requirements."""
    spec = PEERS[peer]
    stamp = cache_root() / peer / ".agentotel-bench-stamp"
    return venv_python(peer).exists() and stamp.exists() and stamp.read_text().strip() == _stamp(spec)


def build(peer: Peer, *, force: bool = False) -> bool:
    """Creates (or keeps) the peer's venv. Returns whether it is ready; prints pip's error when it is not."""
    if is_ready(peer.name) and not force:
        print(f"{peer.name}: ready ({venv_python(peer.name)})")
        return True
    home = cache_root() / peer.name
    print(f"{peer.name}: building {home} ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(home)
    python = str(venv_python(peer.name))
    constraints = home / "constraints.txt"
    constraints.write_text("\n".join(_constraints(peer)) + "\n")
    command = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(constraints)]
    done = subprocess.run([*command, *_requirements(peer)], capture_output=True, text=True)
    if done.returncode == 0 and peer.no_deps:
        done = subprocess.run([*command, "--no-deps", *peer.no_deps], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{peer.name}: pip failed:\n{done.stderr[-3000:]}")
        return False
    (home / ".agentotel-bench-stamp").write_text(_stamp(peer) + "\n")
    freeze = subprocess.run([python, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    (home / "freeze.txt").write_text(freeze)
    print(f"{peer.name}: ready")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peers", nargs="*", help=f"peers to build (default: all of {', '.join(PEERS)})")
    parser.add_argument("--force", action="store_true", help="rebuild even when the venv is up to date")
    parser.add_argument("--list", action="store_true", help="list the peers and whether their venvs are ready")
    parser.add_argument("--jobs", type=int, default=2, help="venvs built at once (default 2)")
    parser.add_argument(
        "--frameworks",
        action="store_true",
        help="only add the OpenInference instrumentors to the framework venvs (done too when no peer is named)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for name, peer in PEERS.items():
            print(f"{name:16} {'ready' if is_ready(name) else 'missing':8} {' '.join(_requirements(peer))}")
        for name, spec in FRAMEWORK_VENVS.items():
            python = framework_python(name)
            print(f"{name:16} {'venv' if python.exists() else 'missing':8} {spec.peer} (in {python.parent.parent})")
        return 0
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s): {', '.join(unknown)}")
    results = [add_framework_peer(spec) for spec in FRAMEWORK_VENVS.values()] if not args.peers else []
    if args.frameworks:
        return 0 if all(results) else 1
    names = args.peers or list(PEERS)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results += list(pool.map(lambda name: build(PEERS[name], force=args.force), names))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
