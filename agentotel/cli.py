"""The `agentotel` command: list sessions, replay one, check failure rate and cost in CI, run the demo.

    agentotel sessions [--since 1h] [--tag T] [--state Fail] [--limit N] [--source S] [--json]
    agentotel replay SESSION_ID|TRACE_ID|last [--source S] [--json]
    agentotel check [--max-failure-rate 0.05] [--max-cost USD] [--min-sessions N] [--since ...] [--tag ...]
    agentotel prune [--keep N] [--older-than 30d] [--vacuum] [--source STORE] [--json]
    agentotel demo [--store PATH] [--json]

Exit codes: 0 ok, 1 a check failed, 2 bad usage or input (an unknown id, a damaged or locked store, a bad
`--since`). Errors are one line on stderr, never a traceback (`AGENTOTEL_DEBUG=1` adds it, for bug reports).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from ._version import __version__
from .cli_render import Output, format_summary_cost, short_id
from .model import END_STATES, FAIL
from .sources import SessionSummary, SourceError, SpanSource, normalise_state, open_source

PROG = "agentotel"

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """Bad arguments or input: shown as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# --- argument types ---------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_since(text: str) -> datetime:
    """`30m`, `1h`, `2d`, `1w`, `1h30m` (that long before now), or an ISO date/time (`2026-11-01`,
    `2026-11-01T09:30`, local time unless it says otherwise). Raises `argparse.ArgumentTypeError`."""
    value = text.strip()
    compact = value.replace(" ", "")
    if compact and _DURATION.sub("", compact) == "":
        delta = timedelta()
        for amount, unit in _DURATION.findall(compact):
            delta += timedelta(**{_UNITS[unit.lower()]: float(amount)})
        return datetime.now(UTC) - delta
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration such as 30m, 1h or 7d, nor a date such as 2026-11-01"
        ) from None
    return moment if moment.tzinfo is not None else moment.astimezone()


def _state(text: str) -> str:
    try:
        state = normalise_state(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an end state ({', '.join(END_STATES)})") from None
    assert state is not None
    return state


def _rate(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate such as 0.05 or 5%") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate between 0 and 1")
    return value


def _usd(text: str) -> float:
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD such as 0.01") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is negative")
    return value


# --- the parser -------------------------------------------------------------------------------------------------------

_SOURCE_HELP = (
    "where to read sessions: a store file or an OTLP JSON / JSON Lines file (default: the embedded store, "
    "AGENTOTEL_STORE or ~/.local/share/agentotel/sessions.db)"
)


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--source", metavar="S", help=_SOURCE_HELP)
    common.add_argument("--json", action="store_true", help="print JSON for scripts instead of text")
    filters = _Parser(add_help=False)
    filters.add_argument(
        "--since", type=parse_since, metavar="WHEN", help="sessions started in the last 30m, 1h, 7d ... or since a date"
    )
    filters.add_argument(
        "--tag", action="append", default=[], metavar="T", help="sessions with this tag (repeat: with every tag)"
    )

    parser = _Parser(
        prog=PROG,
        description=(
            "Agent sessions recorded by agentotel: list them, replay one (text or HTML), browse them, "
            "check them in CI, run a demo."
        ),
        epilog="Exit codes: 0 ok, 1 a check failed, 2 bad usage or input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sessions = commands.add_parser(
        "sessions", parents=[common, filters], help="list recent sessions", description="List recent sessions."
    )
    sessions.add_argument(
        "--state", type=_state, metavar="STATE", help="sessions that ended Success, Fail or Indeterminate"
    )
    sessions.add_argument("--limit", type=_count, default=20, metavar="N", help="show at most N sessions (default 20)")
    sessions.set_defaults(run=cmd_sessions)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="show a session as a timeline",
        description="Show a session as a text timeline, its failing step marked; with --json, the session's data.",
    )
    replay.add_argument(
        "ref",
        nargs="?",
        default="last",
        metavar="SESSION_ID|TRACE_ID|last",
        help="a session id, a trace id, a unique prefix of either, or `last` (the session that ended last; default)",
    )
    replay.add_argument("--html", metavar="FILE", help="write the replay as one self-contained HTML page to FILE")
    replay.set_defaults(run=cmd_replay)

    ui = commands.add_parser(
        "ui",
        parents=[common],
        help="serve the sessions list and their replays in the browser (127.0.0.1)",
        description="Serve a sessions list (filter by state, tag, time; sort by cost, duration) linking to replays.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    ui.add_argument("--open", action="store_true", help="open the list in the default web browser")
    ui.set_defaults(run=cmd_ui)

    check = commands.add_parser(
        "check",
        parents=[common, filters],
        help="fail (exit 1) when the failure rate or cost is over a limit",
        description=(
            "Print the failure rate and cost of the selected sessions and exit 1 when one is over its limit. "
            "The failure rate is Fail sessions / ended sessions. A session nested in another selected session "
            "counts through that one. --max-cost applies to each session's cost."
        ),
    )
    check.add_argument(
        "--max-failure-rate", type=_rate, metavar="RATE", help="highest failure rate allowed (0.05 or 5%%)"
    )
    check.add_argument("--max-cost", type=_usd, metavar="USD", help="highest cost allowed for any one session")
    check.add_argument(
        "--min-sessions", type=_count, default=0, metavar="N", help="fail when fewer than N sessions ended (default 0)"
    )
    check.set_defaults(run=cmd_check)

    prune = commands.add_parser(
        "prune",
        parents=[common],
        help="remove old sessions from the store",
        description=(
            "Remove the oldest sessions from a store (the sessions nested in them and every span of them): those "
            "beyond the newest N, or those that ended before a moment. Apps do this themselves past "
            "AGENTOTEL_STORE_MAX_SESSIONS (default 10000)."
        ),
    )
    prune.add_argument("--keep", type=_count, metavar="N", help="keep the newest N sessions")
    prune.add_argument(
        "--older-than", type=parse_since, metavar="WHEN", help="remove sessions that ended over 30d, 12h ... ago"
    )
    prune.add_argument("--vacuum", action="store_true", help="then give the freed space back to the disk")
    prune.set_defaults(run=cmd_prune)

    demo = commands.add_parser(
        "demo",
        help="run a small support agent and replay its sessions (no API key, no network)",
        description=(
            "Run the AgentOps testing guide's support agent over a few messages against a model server it starts "
            "on loopback, record each run as a session in the embedded store (one of them fails, as in the guide), "
            "and show the sessions and their replays."
        ),
    )
    demo.add_argument("--store", metavar="PATH", help="store the sessions in this file (default: the embedded store)")
    demo.add_argument("--json", action="store_true", help="print the sessions as JSON instead of text")
    demo.set_defaults(run=cmd_demo)
    return parser


# --- commands ---------------------------------------------------------------------------------------------------------


def _print_json(out: Output, data: Any) -> None:
    out.stream.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def _source(args: argparse.Namespace) -> SpanSource:
    return open_source(args.source)


def _no_sessions_hint(source: SpanSource, args: argparse.Namespace) -> str:
    filtered = any(getattr(args, name, None) for name in ("since", "tag", "state"))
    if filtered:
        return f"No sessions match in {source.location}."
    if args.source is None:
        return f"No sessions in {source.location} yet. Try: agentotel demo"
    return f"No sessions in {source.location}."


def cmd_sessions(args: argparse.Namespace, out: Output) -> int:
    with _source(args) as source:
        found = source.sessions(since=args.since, tag=args.tag, state=args.state, limit=args.limit)
        if args.json:
            _print_json(out, [s.to_dict() for s in found])
        elif not found:
            out.line(_no_sessions_hint(source, args))
        else:
            out.table(found)
    return EXIT_OK


def cmd_replay(args: argparse.Namespace, out: Output) -> int:
    with _source(args) as source:
        session = source.session(args.ref)
        if args.html:
            from .replay.html import write_html

            write_html(session, args.html)
            out.line(f"Wrote {args.html}")
        elif args.json:
            _print_json(out, session.to_dict())
        else:
            out.replay(session.replay(width=out.width))
    return EXIT_OK


def cmd_ui(args: argparse.Namespace, out: Output) -> int:
    from . import ui

    with _source(args) as source:
        ui.serve(
            lambda: source.sessions(limit=ui.MAX_ROWS),
            load_session=source.session,
            host=args.host,
            port=args.port,
            open_browser=args.open,
        )
    return EXIT_OK


def _outermost(summaries: Sequence[SessionSummary]) -> list[SessionSummary]:
    ids = {s.id for s in summaries}
    return [s for s in summaries if s.parent_id not in ids]


def check_figures(
    summaries: Sequence[SessionSummary],
    *,
    max_failure_rate: float | None = None,
    max_cost: float | None = None,
    min_sessions: int = 0,
) -> dict[str, Any]:
    """The figures `agentotel check` prints, and the limits they break (`problems`; none means the check passed)."""
    counted = _outermost(summaries)
    ended = [s for s in counted if s.end_state is not None]
    failed = [s for s in ended if s.end_state == FAIL]
    rate = len(failed) / len(ended) if ended else 0.0
    costs = [s.cost for s in counted if s.cost is not None]
    priciest = max((s for s in counted if s.cost is not None), key=lambda s: s.cost or 0.0, default=None)
    problems: list[str] = []
    if len(ended) < min_sessions:
        problems.append(f"only {len(ended)} ended sessions, fewer than --min-sessions {min_sessions}")
    if max_failure_rate is not None and rate > max_failure_rate:
        problems.append(f"failure rate {rate:.1%} is over --max-failure-rate {max_failure_rate:.1%}")
    if max_cost is not None:
        over = [s for s in counted if s.cost is not None and s.cost > max_cost]
        if over:
            worst = max(over, key=lambda s: s.cost or 0.0)
            problems.append(
                f"{len(over)} session(s) cost more than --max-cost ${max_cost:g}; the most: "
                f"{format_summary_cost(worst.cost)} (agentotel replay {short_id(worst.id)})"
            )
    return {
        "ok": not problems,
        "problems": problems,
        "sessions": len(counted),
        "ended": len(ended),
        "failed": len(failed),
        "failure_rate": rate,
        "max_failure_rate": max_failure_rate,
        "total_cost": float(sum(costs)),
        "mean_cost": float(sum(costs) / len(costs)) if costs else None,
        "max_cost": None if priciest is None else priciest.cost,
        "max_cost_session": None if priciest is None else priciest.id,
        "max_cost_limit": max_cost,
        "failed_sessions": [s.id for s in failed],
    }


def cmd_check(args: argparse.Namespace, out: Output) -> int:
    with _source(args) as source:
        summaries = source.sessions(since=args.since, tag=args.tag)
        figures = check_figures(
            summaries, max_failure_rate=args.max_failure_rate, max_cost=args.max_cost, min_sessions=args.min_sessions
        )
        figures["source"] = source.location
    if args.json:
        _print_json(out, figures)
    else:
        out.line(f"Sessions: {figures['sessions']} ({figures['ended']} ended) in {figures['source']}")
        out.line(f"Failed: {figures['failed']} | Failure rate: {figures['failure_rate']:.1%}")
        mean = figures["mean_cost"]
        out.line(
            f"Cost: total {format_summary_cost(figures['total_cost'])} | mean "
            f"{format_summary_cost(mean)} | max {format_summary_cost(figures['max_cost'])}"
        )
        for session_id in figures["failed_sessions"][:5]:
            out.line(f"  failed: agentotel replay {short_id(session_id)}")
        if figures["ok"]:
            out.line("Check passed.", style="green")
        for problem in figures["problems"]:
            out.line(f"Check failed: {problem}", style="bold red")
    return EXIT_OK if figures["ok"] else EXIT_CHECK_FAILED


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def cmd_prune(args: argparse.Namespace, out: Output) -> int:
    if args.keep is None and args.older_than is None:
        raise UsageError(f"{PROG} prune: give --keep N, --older-than WHEN or both (see {PROG} prune --help)")
    from .sources.store import StoreSource

    with _source(args) as source:
        if not isinstance(source, StoreSource):
            raise UsageError(f"{PROG} prune: {source.location} is not a store; only a store's sessions can be removed")
        store = source.store
        removed, spans = (0, 0) if store is None else store.prune(keep=args.keep, ended_before=args.older_than)
        if store is not None and args.vacuum:
            store.vacuum()
        left = (0, 0) if store is None else store.counts()
        figures = {"removed_sessions": removed, "removed_spans": spans, "sessions": left[0], "spans": left[1]}
        if args.json:
            _print_json(out, {"source": source.location, **figures})
        else:
            out.line(
                f"Removed {_many(removed, 'session')} ({_many(spans, 'span')}) from {source.location}; "
                f"{_many(left[0], 'session')} ({_many(left[1], 'span')}) left."
            )
    return EXIT_OK


def cmd_demo(args: argparse.Namespace, out: Output) -> int:
    from .cli_demo import run_demo_command

    return run_demo_command(args, out)


# --- main -------------------------------------------------------------------------------------------------------------


def _debug() -> bool:
    return os.environ.get("AGENTOTEL_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _fail(message: str) -> int:
    sys.stderr.write(" ".join(message.split()) + "\n")
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the `agentotel` command; returns its exit code (0 ok, 1 a check failed, 2 bad usage or input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except UsageError as error:
        return _fail(str(error))
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    run: Callable[[argparse.Namespace, Output], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return EXIT_USAGE
    for stream in (sys.stdout, sys.stderr):
        # A terminal whose encoding has no "←" or "…" gets "?" rather than a UnicodeEncodeError.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            try:
                reconfigure(errors="replace")
            except (OSError, ValueError):
                pass
    out = Output()
    try:
        return run(args, out)
    except SourceError as error:
        return _fail(f"{PROG}: {error}")
    except UsageError as error:
        return _fail(str(error))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader of a pipe went away (`agentotel sessions | head`): not an error of ours.
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - stdout must stay open until exit
        except OSError:
            pass
        return EXIT_OK
    except Exception as error:
        if _debug():
            raise
        return _fail(
            f"{PROG}: unexpected error: {type(error).__name__}: {error} (AGENTOTEL_DEBUG=1 shows the traceback)"
        )


if __name__ == "__main__":
    sys.exit(main())
