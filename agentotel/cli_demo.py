"""`agentotel demo`: runs the demo support agent, then shows its sessions as `agentotel sessions` and
`agentotel replay` would, read back from the store they were written to."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
from pathlib import Path

from .cli import UsageError
from .cli_render import Output, short_id
from .model import FAIL, Session
from .sources import SessionSummary, SourceError
from .sources.store import StoreSource
from .store import store_path


def _stored_sessions(path: Path, ids: list[str]) -> list[Session] | None:
    """The demo's sessions read back from the store, or `None` when any of them is missing or unreadable."""
    try:
        with StoreSource(path) as source:
            return [source.session(session_id) for session_id in ids]
    except SourceError:
        return None


def run_demo_command(args: argparse.Namespace, out: Output) -> int:
    if importlib.util.find_spec("openai") is None:
        raise UsageError(
            "agentotel demo: it runs the real openai client, which is not installed: pip install 'agentotel[demo]'"
        )
    from .demo import run_demo

    default_path = store_path()  # before the demo names its store in AGENTOTEL_STORE
    run = run_demo(args.store)
    ids = [s.id for s in run.sessions]
    stored = _stored_sessions(run.store_path, ids)
    sessions = stored if stored is not None else run.sessions
    if args.json:
        out.stream.write(json.dumps([s.to_dict() for s in sessions], indent=2, ensure_ascii=False) + "\n")
        return 0

    out.line(
        f"agentotel demo: a support agent answered {len(run.messages)} messages, against a model server on "
        "loopback (no API key, no network).",
        style="bold",
    )
    if stored is not None:
        where = "a temporary store (AGENTOTEL_STORE=off)" if run.temporary_store else str(run.store_path)
        out.line(f"Each run is a session, stored in {where}.")
    else:
        out.line(f"The sessions could not be read back from the store at {run.store_path}; shown from memory.")
    out.line()
    out.table([SessionSummary.from_session(s) for s in sessions])
    for number, (session, message) in enumerate(zip(sessions, run.messages, strict=True), start=1):
        out.line()
        out.line(f"── Session {number} of {len(sessions)}: {message!r} ──", style="bold cyan")
        out.replay(session.replay(width=out.width))

    out.line()
    source = ""
    if not run.temporary_store and run.store_path != default_path:
        source = f" --source {run.store_path}"
    failing = [s for s in sessions if s.end_state == FAIL]
    if failing and not run.temporary_store:
        out.line(f"See the failing session again: agentotel replay {short_id(failing[0].id)}{source}")
    if not run.temporary_store:
        out.line(f"List sessions: agentotel sessions --tag demo{source}")
    else:
        shutil.rmtree(run.store_path.parent, ignore_errors=True)  # the store is off: keep nothing
    return 0
