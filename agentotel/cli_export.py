"""`agentotel export SESSION_ID|TRACE_ID|last [--source S] -o FILE`: a session, from the store or any backend,
saved as OTLP JSON Lines, a fixture `agentotel.testing.rerun` re-runs the agent against.

A session that lacks what a re-run needs (messages of LLM calls: content capture was off) is still written, with a
warning on stderr naming the calls; `--require-content` makes that an error (exit 2, nothing written)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .cli import _SOURCE_HELP, EXIT_OK, PROG, UsageError
from .cli_render import Output, short_id
from .replay.text import printable
from .sessions_file import MissingContentError, model_calls, save_session, session_records
from .sources import open_source


def register(commands: Any) -> argparse.ArgumentParser:
    """Adds the `export` command to the `agentotel` parser's subcommands (`add_subparsers()`'s result)."""
    export: argparse.ArgumentParser = commands.add_parser(
        "export",
        help="save a session as OTLP JSON Lines, a fixture a test re-runs the agent against",
        description=(
            "Save a session (its root span, steps and nested sessions) as OTLP JSON Lines, readable by every "
            "--source and by agentotel.testing.rerun, which re-runs the agent against it offline. The session "
            "must have been recorded with content capture on: LLM calls without messages are named (a warning; "
            "an error with --require-content)."
        ),
    )
    export.add_argument(
        "ref",
        nargs="?",
        default="last",
        metavar="SESSION_ID|TRACE_ID|last",
        help="a session id, a trace id, a unique prefix of either, or `last` (default)",
    )
    export.add_argument("--source", metavar="S", help=_SOURCE_HELP)
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write (replaced whole)")
    export.add_argument(
        "--require-content",
        action="store_true",
        help="fail (exit 2, nothing written) when the session lacks what a re-run needs",
    )
    export.add_argument("--json", action="store_true", help="print what was written as JSON")
    export.set_defaults(run=cmd_export)
    return export


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    """Writes the session `args.ref` of `args.source` to `args.output`; warnings on stderr."""
    with open_source(args.source) as source:
        session = source.session(args.ref)
        try:
            problems = save_session(session, args.output, require_content=args.require_content, warn=False)
        except MissingContentError as error:
            raise UsageError(f"{PROG} export: {error}; nothing written") from None
        spans = len(session_records(session))
    for problem in problems:
        sys.stderr.write(printable(f"{PROG} export: warning: {problem}") + "\n")
    figures = {
        "file": args.output,
        "session_id": session.id,
        "name": session.name,
        "end_state": session.end_state,
        "spans": spans,
        "llm_calls": len(model_calls(session)),
        "problems": problems,
    }
    if args.json:
        out.json(figures)
    else:
        state = session.end_state or "Running"
        out.line(
            f"Wrote session {short_id(session.id)} ({session.name}, {state}): {spans} spans, "
            f"{figures['llm_calls']} LLM calls, to {args.output}"
        )
    return EXIT_OK
