"""The `agentotel` command: list sessions, replay one, check failure rate and cost in CI, run the demo, serve a
scripted model.

    agentotel sessions [--since 1h] [--tag T] [--state Fail] [--service NAME] [--limit N] [--source S] [--json]
    agentotel replay SESSION_ID|TRACE_ID|last [--state Fail] [--tag T] [--service NAME] [--source S] [--json]
    agentotel check [--max-failure-rate 0.05] [--max-cost USD] [--min-sessions N] [--running-grace 1h] [--since ...]
    agentotel prune [--keep N] [--older-than 30d] [--vacuum] [--source STORE] [--json]
    agentotel export SESSION_ID|TRACE_ID|last [--source S] -o FILE [--require-content] [--json]
    agentotel diff A B [--source S [--source S2]] [--ignore RULE] [--json | --html FILE]  |  --run A --run B
    agentotel demo [--store PATH] [--json]
    agentotel serve-llm [--host 127.0.0.1] [--port 8766] [--script FILE] [--expose]

Exit codes: 0 ok, 1 a check failed, 2 bad usage or input (an unknown id, a damaged or locked store, a bad
`--since`). Errors are one line on stderr, never a traceback (`AGENTOTEL_DEBUG=1` adds it, for bug reports).
Whatever is printed, errors included, shows control characters escaped (`replay.text.printable`): names, tags and
errors come from whoever wrote the spans, and a backend's message from whoever answers.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from ._version import __version__
from .cli_render import Output, format_duration, short_id
from .model import END_STATES
from .replay.text import format_cost, printable
from .sources import SessionSummary, SourceError, SpanSource, last_of, normalise_state, open_source
from .sources._scan import Coverage, SessionTally

PROG = "agentotel"

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2

MAX_COUNT = 2**63 - 1
"""The largest `--limit`, `--keep` or `--min-sessions`: a store counts in 64-bit integers."""

DEFAULT_RUNNING_GRACE = timedelta(hours=1)
"""How long `check` waits for a session to end before it counts it as crashed (`--running-grace`)."""


class UsageError(Exception):
    """Bad arguments or input: shown as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (argparse prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


# --- argument types ---------------------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_SECONDS = {"w": 604800.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PLAIN_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def _parse_duration(text: str) -> timedelta | None:
    """`30m`, `1h`, `2d`, `1w`, `1h30m` as a span of time; `None` when `text` is not a duration. Raises
    `argparse.ArgumentTypeError` for one longer than a `timedelta` holds (about 2.7 million years)."""
    compact = text.strip().replace(" ", "")
    if not compact or _DURATION.sub("", compact) != "":
        return None
    seconds = sum(float(amount) * _SECONDS[unit.lower()] for amount, unit in _DURATION.findall(compact))
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} is too long a span of time") from None


def parse_since(text: str) -> datetime:
    """`30m`, `1h`, `2d`, `1w`, `1h30m` (that long before now), or an ISO date/time (`2026-11-01`,
    `2026-11-01T09:30`, local time unless it says otherwise). Raises `argparse.ArgumentTypeError`."""
    value = text.strip()
    delta = _parse_duration(value)
    if delta is not None:
        try:
            return datetime.now(UTC) - delta
        except OverflowError:
            raise argparse.ArgumentTypeError(f"{text!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration such as 30m, 1h or 7d, nor a date such as 2026-11-01"
        ) from None
    try:
        aware = moment if moment.tzinfo is not None else moment.astimezone()
        aware.timestamp()  # the years 1 and 9999 in some zones are out of the range of a timestamp
    except (OverflowError, ValueError, OSError):
        raise argparse.ArgumentTypeError(f"{text!r} is out of the range of dates this machine handles") from None
    return aware


def _grace(text: str) -> timedelta:
    value = text.strip()
    delta = _parse_duration(value + "s" if _PLAIN_SECONDS.fullmatch(value) else value)
    if delta is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 1h or 0")
    return delta


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
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate between 0 and 1")
    return value


def _usd(text: str) -> float:
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD such as 0.01") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD such as 0.01 (a limit must be finite)")
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
    if value > MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{text!r} is too large (at most {MAX_COUNT})")
    return value


def _limit(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} shows no session (at least 1)")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
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
    filters.add_argument(
        "--service", metavar="NAME", help="sessions recorded by this service (the service.name resource attribute)"
    )
    state = _Parser(add_help=False)
    state.add_argument(
        "--state", type=_state, metavar="STATE", help="sessions that ended Success, Fail or Indeterminate"
    )

    parser = _Parser(
        prog=PROG,
        description=(
            "Agent sessions recorded by agentotel: list them, replay one (text or HTML), browse them, "
            "check them in CI, run a demo, serve a scripted model for apps run without an API key."
        ),
        epilog="Exit codes: 0 ok, 1 a check failed, 2 bad usage or input.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    sessions = commands.add_parser(
        "sessions",
        parents=[common, filters, state],
        help="list recent sessions",
        description=(
            "List recent sessions, newest first, each nested session indented under its parent (whose cost, "
            "tokens and calls include the nested sessions'). TOOLS+ACTIONS counts tool calls and actions together. "
            "A cost is unknown when a model call has no known price."
        ),
    )
    sessions.add_argument("--limit", type=_limit, default=20, metavar="N", help="show at most N sessions (default 20)")
    sessions.set_defaults(run=cmd_sessions)

    replay = commands.add_parser(
        "replay",
        parents=[common, filters, state],
        help="show a session as a timeline",
        description=(
            "Show a session as a text timeline, its failing step marked; with --json, the session's data. "
            "With `last`, --state, --tag, --service and --since choose the last session among those that match "
            "(`agentotel replay last --state Fail`: the last failed one)."
        ),
    )
    replay.add_argument(
        "ref",
        nargs="?",
        default="last",
        metavar="SESSION_ID|TRACE_ID|last",
        help="a session id, a trace id, a unique prefix of either, or `last` (the session that ended last, of "
        "those the filters keep; default)",
    )
    replay.add_argument("--html", metavar="FILE", help="write the replay as one self-contained HTML page to FILE")
    replay.set_defaults(run=cmd_replay)

    ui = commands.add_parser(
        "ui",
        parents=[common],
        help="serve the sessions list and their replays in the browser (127.0.0.1)",
        description="Serve a sessions list (filter by state, tag, time; sort by cost, duration) linking to replays.",
    )
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; another needs --expose)"
    )
    ui.add_argument("--port", type=_port, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    ui.add_argument(
        "--expose",
        action="store_true",
        help="allow a --host that is not loopback: whoever reaches it reads every session (prompts included), "
        "with no password",
    )
    ui.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests that name this host (besides localhost and the address listened on; repeat)",
    )
    ui.add_argument("--open", action="store_true", help="open the list in the default web browser")
    ui.set_defaults(run=cmd_ui)

    check = commands.add_parser(
        "check",
        parents=[common, filters],
        help="fail (exit 1) when the failure rate or cost is over a limit",
        description=(
            "Print the failure rate and cost of the selected sessions and exit 1 when one is over its limit. "
            "The failure rate is failed sessions / ended sessions, where a session still running past "
            "--running-grace counts as ended and failed (crashed). A session nested in another selected session "
            "counts through that one. --max-cost applies to each session's cost, and fails on a session whose "
            "cost is unknown (a model call with no known price, or a crash before its totals were written). "
            "It says how many sessions of the window the figures cover (every one, counted by the store or "
            "paged through a backend's search; or 'N of at least M' when a backend's search hit its limit): "
            "--require-complete fails a check that does not cover them all. "
            "With no limit given (--max-failure-rate, --max-cost, --min-sessions, --require-complete) it prints "
            "the figures, says that nothing was checked, and exits 0."
        ),
    )
    check.add_argument(
        "--max-failure-rate", type=_rate, metavar="RATE", help="highest failure rate allowed (0.05 or 5%%)"
    )
    check.add_argument("--max-cost", type=_usd, metavar="USD", help="highest cost allowed for any one session")
    check.add_argument(
        "--min-sessions", type=_count, default=0, metavar="N", help="fail when fewer than N sessions ended (default 0)"
    )
    check.add_argument(
        "--running-grace",
        type=_grace,
        default=DEFAULT_RUNNING_GRACE,
        metavar="WHEN",
        help="a session still running this long after it started crashed: it counts as failed (default 1h; "
        "0 after the runs are over, as in CI)",
    )
    check.add_argument(
        "--require-complete",
        action="store_true",
        help="fail when the figures are not over every session of the window (a backend's search hit its limit, "
        "or the scan stopped at ?max_sessions=)",
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
            "on loopback, record each run as a session in a store of its own (one of them fails, as in the guide), "
            "and show the sessions and their replays. The store is demo.db beside the default store, so your "
            "sessions and `agentotel check` never see the demo's; --store PATH, or AGENTOTEL_STORE when you set "
            "it, names another."
        ),
    )
    demo.add_argument(
        "--store",
        metavar="PATH",
        help="store the sessions in this file (default: AGENTOTEL_STORE when set, else demo.db beside the default "
        "store, ~/.local/share/agentotel/demo.db)",
    )
    demo.add_argument("--json", action="store_true", help="print the sessions as JSON instead of text")
    demo.set_defaults(run=cmd_demo)
    from .cli_export import register as register_export

    register_export(commands)
    from .cli_diff import register as register_diff

    register_diff(commands)
    from .cli_serve_llm import register as register_serve_llm

    register_serve_llm(commands)
    return parser


# --- commands ---------------------------------------------------------------------------------------------------------


def _source(args: argparse.Namespace) -> SpanSource:
    return open_source(args.source)


def _no_sessions_hint(source: SpanSource, args: argparse.Namespace) -> str:
    filtered = any(getattr(args, name, None) for name in _FILTERS)
    if filtered:
        return f"No sessions match in {source.location}."
    if args.source is None:
        return f"No sessions in {source.location} yet. Try: agentotel demo"
    return f"No sessions in {source.location}."


_FILTERS = ("since", "tag", "state", "service")
"""The options that choose among sessions (`--since`, `--tag`, `--state`, `--service`)."""


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    """The filters given, as `SpanSource.sessions` takes them (`service` only when given, for sources of other
    packages written before it)."""
    chosen: dict[str, Any] = {"since": args.since, "tag": args.tag, "state": getattr(args, "state", None)}
    if args.service is not None:
        chosen["service"] = args.service
    return chosen


def cmd_sessions(args: argparse.Namespace, out: Output) -> int:
    with _source(args) as source:
        found = source.sessions(**_filters(args), limit=args.limit)
        if args.json:
            out.json([s.to_dict() for s in found])
        elif not found:
            out.line(_no_sessions_hint(source, args))
        else:
            out.table(found)
    return EXIT_OK


def cmd_replay(args: argparse.Namespace, out: Output) -> int:
    filtered = [f"--{name}" for name in _FILTERS if getattr(args, name, None)]
    if filtered and args.ref.strip() != "last":
        raise UsageError(
            f"{PROG} replay: {', '.join(filtered)} choose among sessions for `last`; a session id names one already"
        )
    with _source(args) as source:
        if filtered:
            chosen = last_of(source.sessions(**_filters(args)))
            if chosen is None:
                raise UsageError(f"{PROG} replay: no session matches {' '.join(_given(args))} in {source.location}")
            session = source.session(chosen.id)
        else:
            session = source.session(args.ref)
        if args.html:
            from .replay.html import render_html

            write_private(args.html, render_html(session))
            out.line(f"Wrote {args.html}")
        elif args.json:
            out.json(session.to_dict())
        else:
            out.replay(session.replay(width=out.width))
    return EXIT_OK


def _given(args: argparse.Namespace) -> list[str]:
    """The filters given, as they were typed (for messages)."""
    given: list[str] = []
    if args.state:
        given.append(f"--state {args.state}")
    given.extend(f"--tag {tag}" for tag in args.tag)
    if args.service is not None:
        given.append(f"--service {args.service}")
    if args.since is not None:
        given.append(f"--since {args.since.isoformat(timespec='seconds')}")
    return given


def write_private(path: str, text: str) -> None:
    """Writes `text` (UTF-8) to the file `path`, readable by its owner only: a replay page holds the session's
    prompts and completions. A file already there is made owner-only too. Raises `UsageError`."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            if stat.S_ISREG(os.fstat(fd).st_mode):  # never a terminal's or a pipe's mode (--html /dev/stdout)
                os.fchmod(fd, 0o600)  # O_CREAT's mode is for a new file only
            file.write(text.encode("utf-8", "replace"))
    except OSError as error:
        raise UsageError(f"{PROG}: cannot write {path}: {error.strerror or error}") from None


def cmd_ui(args: argparse.Namespace, out: Output) -> int:
    from . import ui

    with _source(args) as source:
        try:
            ui.serve(
                lambda: source.sessions(limit=ui.MAX_ROWS),
                load_session=source.session,
                host=args.host,
                port=args.port,
                open_browser=args.open,
                expose=args.expose,
                allow_hosts=args.allow_host,
            )
        except ui.UIError as error:
            raise UsageError(f"{PROG} ui: {error}") from None
    return EXIT_OK


def check_figures(
    summaries: Sequence[SessionSummary],
    *,
    max_failure_rate: float | None = None,
    max_cost: float | None = None,
    min_sessions: int = 0,
    running_grace: timedelta = DEFAULT_RUNNING_GRACE,
    now_ns: int | None = None,
) -> dict[str, Any]:
    """The figures `agentotel check` prints for these summaries (all of the window: coverage complete), and the
    limits they break; see `tally_figures`."""
    now = time.time_ns() if now_ns is None else now_ns
    tally = SessionTally(now_ns=now, grace_ns=running_grace.total_seconds() * 1e9, max_cost=max_cost)
    tally.add_batch(summaries)
    tally.coverage = Coverage(examined=len(summaries), in_window=len(summaries))
    return tally_figures(
        tally,
        max_failure_rate=max_failure_rate,
        max_cost=max_cost,
        min_sessions=min_sessions,
        running_grace=running_grace,
    )


def tally_figures(
    tally: SessionTally,
    *,
    max_failure_rate: float | None = None,
    max_cost: float | None = None,
    min_sessions: int = 0,
    running_grace: timedelta = DEFAULT_RUNNING_GRACE,
    require_complete: bool = False,
) -> dict[str, Any]:
    """The figures `agentotel check` prints, and the limits they break (`problems`; none means the check passed).

    A session still running `running_grace` after it started crashed (its process died before it could end it):
    it is judged, as failed. Sessions running for less are not judged; when sessions were selected but none can
    be judged, a failure-rate limit fails rather than pass on nothing.

    A judged session whose cost is unknown (`SessionSummary.cost` is `None`: a model call with no known price,
    `Session.cost_known`, or a crash before the totals were written) makes the cost figures unknown (`None`) and
    fails a cost limit: its cost cannot be bounded. With `require_complete`, figures that do not cover every
    session of the window (`tally.coverage`) fail. With no limit at all nothing is checked (`checked` false).
    The id lists hold at most `LISTED_IDS` ids each; the counts are whole."""
    coverage = tally.coverage
    problems: list[str] = []
    if require_complete and not coverage.complete:
        problems.append(
            f"--require-complete: the figures cover {coverage.examined:,} of "
            f"{'at least ' if coverage.at_least else ''}{coverage.in_window:,} sessions in the window"
            + (f" ({coverage.limited_by})" if coverage.limited_by else "")
        )
    judged = tally.judged
    if judged < min_sessions:
        problems.append(f"only {judged} ended sessions, fewer than --min-sessions {min_sessions}")
    if max_failure_rate is not None and not tally.sessions and coverage.in_window > coverage.examined:
        problems.append(
            f"no session of the window was examined ({coverage.line().removeprefix('Coverage: ')}), so there is "
            "no failure rate to check"
        )
    elif max_failure_rate is not None and tally.sessions and not judged:
        problems.append(
            f"none of the {_many(tally.sessions, 'session')} has ended, so there is no failure rate to check (still "
            f"running, or crashed less than --running-grace {format_duration(running_grace.total_seconds())} ago)"
        )
    elif max_failure_rate is not None and tally.failure_rate > max_failure_rate:
        problems.append(f"failure rate {tally.failure_rate:.1%} is over --max-failure-rate {max_failure_rate:.1%}")
    if max_cost is not None:
        if tally.over_max_cost and tally.priciest is not None and tally.priciest_id is not None:
            problems.append(
                f"{tally.over_max_cost} session(s) cost more than --max-cost ${max_cost:g}; the most: "
                f"{format_cost(tally.priciest)} (agentotel replay {short_id(tally.priciest_id)})"
            )
        if tally.unknown_cost:
            crashed_ids = set(tally.crashed_ids)
            unknown = tally.unknown_cost_ids
            shown = "; ".join(_unknown_cost_text(i, crashed_ids) for i in unknown[:5])
            more = f" and {tally.unknown_cost - 5} more" if tally.unknown_cost > 5 else ""
            problems.append(
                f"the cost of {_many(tally.unknown_cost, 'session')} is unknown, so "
                f"{'it' if tally.unknown_cost == 1 else 'they'} cannot be held to --max-cost ${max_cost:g}: "
                f"{shown}{more}"
            )
    return {
        "ok": not problems,
        "checked": max_failure_rate is not None or max_cost is not None or min_sessions > 0 or require_complete,
        "problems": problems,
        "sessions": tally.sessions,
        "ended": tally.ended,
        "crashed": tally.crashed,
        "running": tally.running,
        "running_grace_s": running_grace.total_seconds(),
        "failed": tally.failed,
        "failure_rate": tally.failure_rate,
        "max_failure_rate": max_failure_rate,
        **tally.cost_figures(),
        "max_cost_limit": max_cost,
        "failed_sessions": list(tally.failed_ids),
        "crashed_sessions": list(tally.crashed_ids),
        "unknown_cost_sessions": list(tally.unknown_cost_ids),
        "unknown_cost_count": tally.unknown_cost,
        "coverage": coverage.to_dict(),
        "require_complete": require_complete,
    }


def _unknown_cost_text(session_id: str, crashed: set[str]) -> str:
    """A session whose cost is unknown, and why."""
    why = "crashed before its totals were written" if session_id in crashed else "a model call has no known price"
    return f"agentotel replay {short_id(session_id)} ({why})"


def _check_lines(figures: dict[str, Any]) -> list[str]:
    """The text `agentotel check` prints before its verdict."""
    grace = format_duration(figures["running_grace_s"])
    counts = [f"{figures['ended']} ended"]
    if figures["crashed"]:
        counts.append(f"{figures['crashed']} crashed: still running after {grace}, counted as failed")
    if figures["running"]:
        counts.append(f"{figures['running']} running, not judged")
    crashed = set(figures["crashed_sessions"])
    unknown = figures["unknown_cost_sessions"]
    if not figures["cost_known"]:
        cost = f"Cost: unknown ({_many(figures['unknown_cost_count'], 'session')} with an unknown cost)"
    else:
        cost = (
            f"Cost: total {format_cost(figures['total_cost'])} | mean {_cost_or_dash(figures['mean_cost'])}"
            f" | max {_cost_or_dash(figures['max_cost'])}"
        )
    lines = [
        f"Sessions: {figures['sessions']} ({', '.join(counts)}) in {figures['source']}",
        f"Failed: {figures['failed']} | Failure rate: {figures['failure_rate']:.1%}",
        cost,
        _coverage_line(figures["coverage"]),
    ]
    for session_id in figures["failed_sessions"][:5]:
        how = "crashed" if session_id in crashed else "failed"
        lines.append(f"  {how}: agentotel replay {short_id(session_id)}")
    lines.extend(f"  unknown cost: {_unknown_cost_text(session_id, crashed)}" for session_id in unknown[:5])
    return lines


def _coverage_line(coverage: dict[str, Any]) -> str:
    """How much of the window the figures cover (`Coverage.line`, from its JSON form)."""
    return Coverage(
        examined=coverage["examined"],
        in_window=coverage["in_window"],
        at_least=coverage["in_window_at_least"],
        limited_by=coverage["limited_by"],
        counted_by=coverage["counted_by"],
    ).line()


def _cost_or_dash(cost: float | None) -> str:
    """A mean or a maximum: `-` when there is none (no session to take it of)."""
    return "-" if cost is None else format_cost(cost)


def cmd_check(args: argparse.Namespace, out: Output) -> int:
    with _source(args) as source:
        meter = _progress_meter()
        try:
            tally = source.tally(
                **_filters(args),
                now_ns=time.time_ns(),
                grace_ns=args.running_grace.total_seconds() * 1e9,
                max_cost=args.max_cost,
                progress=meter,
            )
        finally:
            if meter is not None:
                sys.stderr.write("\r\x1b[K")
        figures = tally_figures(
            tally,
            max_failure_rate=args.max_failure_rate,
            max_cost=args.max_cost,
            min_sessions=args.min_sessions,
            running_grace=args.running_grace,
            require_complete=args.require_complete,
        )
        figures["source"] = source.location
    if args.json:
        out.json(figures)
    else:
        for line in _check_lines(figures):
            out.line(line)
        if not figures["checked"]:
            out.line(
                "No limit given (--max-failure-rate, --max-cost or --min-sessions), so nothing was checked.",
                style="yellow",
            )
        elif figures["ok"]:
            out.line("Check passed.", style="green")
        for problem in figures["problems"]:
            out.line(f"Check failed: {problem}", style="bold red")
    return EXIT_OK if figures["ok"] else EXIT_CHECK_FAILED


def _progress_meter() -> Callable[[int], None] | None:
    """On a terminal, a line on stderr counting the sessions examined as a backend is paged (rewritten in place,
    cleared at the end by the caller's next line); `None` when stderr is not a terminal."""
    stream = sys.stderr
    if not stream.isatty():
        return None
    last = [0.0]

    def show(examined: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.2:
            last[0] = now
            stream.write(f"\r\x1b[Kexamined {examined:,} sessions...")
            stream.flush()

    return show


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
            out.json({"source": source.location, **figures})
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
    sys.stderr.write(printable(" ".join(message.split())) + "\n")
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
