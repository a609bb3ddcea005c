"""`agentotel diff`: what two sessions did differently, or which tests changed behaviour between two test runs.

    agentotel diff A B [--source S [--source S2]] [--ignore RULE ...] [--json | --html FILE] [--exit-code]
    agentotel diff --run A --run B [--source S] [--ignore RULE ...] [--json] [--exit-code]

A and B are session references as `agentotel replay` takes them (an id, a trace id, a unique prefix, `last`); with
two `--source`, A is read from the first and B from the second. Runs are named by id, unique prefix, `last` or
`previous`. Registered into the `agentotel` parser by `register(subparsers)`.
"""

from __future__ import annotations

import argparse
from typing import Any

from .cli import EXIT_CHECK_FAILED, EXIT_OK, PROG, UsageError, write_private
from .cli_render import Output
from .diff import Behaviour, SessionDiff, diff
from .diff_ignore import SYNTAX, IgnoreRules
from .model import Session
from .replay.diff_text import diff_lines
from .sources import SessionNotFound, SpanSource, open_source

_SOURCE_HELP = (
    "where to read sessions: a store file or an OTLP JSON / JSON Lines file (default: the embedded store); "
    "give it twice to read A from the first and B from the second"
)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the `diff` command to the `agentotel` parser's subcommands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "diff",
        help="what two sessions, or two test runs, did differently",
        description=(
            "Compare two sessions' behaviour: their model calls, tool calls and actions aligned (a step inserted or "
            "missing shows as added or removed), the arguments and results that changed, cost, tokens, duration "
            "and end state before and after, the first divergence marked. With --run twice, compare two test runs "
            "(sessions stamped by agentotel's pytest plugin): which tests changed behaviour, and each one's cost."
        ),
        epilog=f"Ignore rules: {SYNTAX}. Exit codes: 0 shown (1 with --exit-code when the behaviour changed), "
        "2 bad usage or input.",
    )
    parser.add_argument("refs", nargs="*", metavar="SESSION", help="the two sessions: A (before) and B (after)")
    parser.add_argument(
        "--run",
        dest="runs",  # `run` is the command's function (`cli.main` calls `args.run`)
        action="append",
        default=[],
        metavar="RUN",
        help="a test run: its id, a unique prefix, `last` or `previous` (give two)",
    )
    parser.add_argument("--source", action="append", default=[], metavar="S", help=_SOURCE_HELP)
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="RULE",
        help="leave out a figure, a field, a value or a step: cost, arguments.request_id, result@search, "
        "@current_time (repeat)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    parser.add_argument("--html", metavar="FILE", help="write the diff as one self-contained HTML page to FILE")
    parser.add_argument(
        "--exit-code", action="store_true", help="exit 1 when the behaviour changed (as `git diff --exit-code`)"
    )
    parser.set_defaults(run=cmd_diff)
    return parser


def _rules(args: argparse.Namespace) -> IgnoreRules:
    try:
        return IgnoreRules.parse(args.ignore)
    except ValueError as error:
        raise UsageError(f"{PROG} diff: {error}") from None


def cmd_diff(args: argparse.Namespace, out: Output) -> int:
    """Runs `agentotel diff`; returns the exit code."""
    rules = _rules(args)
    if args.runs:
        if args.refs:
            raise UsageError(f"{PROG} diff: give two sessions or two --run, not both")
        if len(args.runs) != 2:
            raise UsageError(f"{PROG} diff: give --run twice (the run before, then the run after)")
        if args.html:
            raise UsageError(f"{PROG} diff: --html shows two sessions; compare two of the runs' sessions for a page")
        if len(args.source) > 1:
            raise UsageError(f"{PROG} diff: the two runs are read from one --source")
        return _diff_runs(args, rules, out)
    if len(args.refs) != 2:
        raise UsageError(f"{PROG} diff: give two sessions (A before, B after), or --run twice")
    if len(args.source) > 2:
        raise UsageError(f"{PROG} diff: give --source once (both sessions) or twice (A's, then B's)")
    if args.json and args.html:
        raise UsageError(f"{PROG} diff: give --json or --html, not both")
    found = _diff_sessions(args, rules)
    if args.html:
        write_private(args.html, found.to_html())
        out.line(f"Wrote {args.html}")
    elif args.json:
        out.json(found.to_dict())
    else:
        for text, style in diff_lines(found, width=out.width):
            out.line(text, style)
    return EXIT_CHECK_FAILED if args.exit_code and found.changed else EXIT_OK


def _session(source: SpanSource, ref: str, which: str, two_sources: bool) -> Session:
    """The session `ref` names in `source`; a miss says which of the two it was (and, with one source, that two
    can be given)."""
    try:
        return source.session(ref)
    except SessionNotFound as error:
        hint = "" if two_sources else "; to read A and B from two sources, give --source twice"
        raise SessionNotFound(f"{which}: {error}{hint}") from None


def _diff_sessions(args: argparse.Namespace, rules: IgnoreRules) -> SessionDiff:
    """A and B from the one source (or the default store), or A from the first `--source` and B from the second
    (each side then says where it was read)."""
    first_ref, second_ref = args.refs
    if len(args.source) < 2:
        with open_source(args.source[0] if args.source else None) as source:
            before = _session(source, first_ref, "A", False)
            after = _session(source, second_ref, "B", False)
        return diff(before, after, ignore=rules)
    sides = []
    for location, ref, which in ((args.source[0], first_ref, "A"), (args.source[1], second_ref, "B")):
        with open_source(location) as source:
            sides.append(Behaviour.of(_session(source, ref, which, True), origin=source.location))
    return diff(sides[0], sides[1], ignore=rules)


def _diff_runs(args: argparse.Namespace, rules: IgnoreRules, out: Output) -> int:
    from .replay.run_diff_text import run_diff_lines
    from .runs import diff_runs, load_runs

    location = args.source[0] if args.source else None
    with open_source(location) as source:
        before, after = load_runs(source, args.runs)
        if before.id == after.id:
            raise UsageError(
                f"{PROG} diff: --run {args.runs[0]} and --run {args.runs[1]} are the same run ({before.id})"
            )
        found = diff_runs(before, after, ignore=rules)
        hint = f" --source {source.location}" if args.source else ""
    if args.json:
        out.json(found.to_dict())
    else:
        for text, style in run_diff_lines(found, width=out.width, source_hint=hint):
            out.line(text, style)
    return EXIT_CHECK_FAILED if args.exit_code and found.changed else EXIT_OK
