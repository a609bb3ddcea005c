"""`agentotel demo`: runs the demo support agent, then shows its sessions as `agentotel sessions` and
`agentotel replay` would, read back from the store they were written to: the demo's own (`demo.db` beside the
default store), never the one your agents write to unless you name it (`--store PATH`, `AGENTOTEL_STORE`). The
commands it suggests name that store with `--source`, so they work pasted into any shell."""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import shutil
from pathlib import Path

from .cli import UsageError
from .cli_render import Output, short_id
from .demo.runner import ORIGIN_DEFAULT, ORIGIN_ENVIRONMENT, DemoRun
from .model import FAIL, Session
from .sources import SessionSummary, SourceError
from .sources.store import StoreSource


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

    run = run_demo(args.store)
    try:
        _show(run, args, out)
    finally:
        if run.temporary_store:
            shutil.rmtree(run.store_path.parent, ignore_errors=True)  # the store is off: keep nothing
    return 0


def _show(run: DemoRun, args: argparse.Namespace, out: Output) -> None:
    ids = [s.id for s in run.sessions]
    stored = _stored_sessions(run.store_path, ids)
    sessions = stored if stored is not None else run.sessions
    if args.json:
        out.stream.write(json.dumps([s.to_dict() for s in sessions], indent=2, ensure_ascii=False) + "\n")
        return

    out.line(
        f"agentotel demo: a support agent answered {len(run.messages)} messages, against a model server on "
        "loopback (no API key, no network).",
        style="bold",
    )
    if stored is not None:
        out.line(f"Each run is a session, stored in {_where(run)}.")
    else:
        out.line(f"The sessions could not be read back from the store at {run.store_path}; shown from memory.")
    out.line()
    out.table([SessionSummary.from_session(s) for s in sessions])
    for number, (session, message) in enumerate(zip(sessions, run.messages, strict=True), start=1):
        out.line()
        out.line(f"── Session {number} of {len(sessions)}: {message!r} ──", style="bold cyan")
        out.replay(session.replay(width=out.width))

    out.line()
    if run.temporary_store:
        return  # nothing to come back to
    source = f" --source {shlex.quote(str(run.store_path))}"  # pasted into another shell, it still finds them
    failing = [s for s in sessions if s.end_state == FAIL]
    if failing:
        out.line(f"See the failing session again: agentotel replay {short_id(failing[0].id)}{source}")
    out.line(f"List sessions: agentotel sessions --tag demo{source}")
    out.line(f"Browse them: agentotel ui{source}")


def _where(run: DemoRun) -> str:
    """Where the demo's sessions are, and why there."""
    if run.temporary_store:
        return "a temporary store, removed when the demo ends (AGENTOTEL_STORE=off)"
    if run.store_origin == ORIGIN_DEFAULT:
        return f"{run.store_path}, the demo's own store (your sessions stay apart; --store PATH for another)"
    if run.store_origin == ORIGIN_ENVIRONMENT:
        return f"{run.store_path}, as AGENTOTEL_STORE says"
    return str(run.store_path)
