"""`agentotel ui`: a local web server with a sessions list (filter by state, tag and time; sort by start, cost or
duration; a page at a time, each nested session right under its parent) linking to each session's replay page.

Standard library only (`http.server`), bound to 127.0.0.1 by default. Sessions come from a callable, asked on every
request, so the list follows a store that grows while the server runs. Pages are built on the server with every
value HTML-escaped, carry a Content-Security-Policy that runs only their own scripts, and requests naming another
host are refused (a web page elsewhere cannot reach the server through DNS rebinding).

Pages show every prompt and completion, without a password: the server listens on a loopback address unless it is
told to expose them (`expose=True`, `agentotel ui --expose`), and says so on stderr when it does. Whatever the
address, a request is answered only when its Host names localhost, a loopback address, the address the request
reached, or a name allowed by `allow_hosts` (`--allow-host`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from . import _clock as clock
from . import semconv as sc
from ._nesting import nest
from .model import END_STATES, Session
from .replay.html import asset, content_security_policy, fill_template, format_duration, html_text, render_html
from .replay.text import format_cost, printable
from .sources import SessionSummary

log = logging.getLogger("agentotel")

SessionsProvider = Callable[[], Iterable["Session | SessionSummary"]]
"""What the server lists: called on each request, returns sessions (or a source's summaries of them)."""

SessionLoader = Callable[[str], Session]
"""How the server gets the session a replay page shows, by id; raises `LookupError` when there is none."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
RUNNING = "Running"
STATES = (*END_STATES, RUNNING)
SINCE = {"15m": 15 * 60, "1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
"""Time filters: sessions started within this many seconds of now."""
_SINCE_CHOICES = [
    ("", "any time"),
    ("15m", "last 15 min"),
    ("1h", "last hour"),
    ("24h", "last 24 h"),
    ("7d", "last 7 days"),
    ("30d", "last 30 days"),
]
SORTS = ("start", "cost", "duration", "name")
MAX_ROWS = 10_000
"""Most sessions the list reads from a source (the store keeps 10,000 by default); it shows them a page at a
time."""
PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
"""Outermost sessions on one page of the list (each with the sessions nested in it)."""

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
"""Host names answered whatever the address listened on."""


class UIError(Exception):
    """The server cannot start as asked (an address not loopback without `expose`, a port in use): one line."""


def is_loopback(address: str) -> bool:
    """Whether `address` (an IP address as bound, or `localhost`) reaches this machine only."""
    if address.strip().lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]").split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def host_of(header: str | None) -> str:
    """The host a `Host` header names, lowercased, without its port, brackets or a trailing dot (`""` for none)."""
    value = (header or "").strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else ""
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


# --- selecting sessions -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """What the list shows: state, tag, time window, a name search, the order, and which page of how many
    outermost sessions."""

    state: str = ""
    tag: str = ""
    since: str = ""
    q: str = ""
    sort: str = "start"
    order: str = "desc"
    page: int = 1
    size: int = DEFAULT_PAGE_SIZE

    @classmethod
    def from_query(cls, query: str) -> Filters:
        """Filters from a URL query; unknown values are ignored rather than refused."""
        values = {key: items[-1] for key, items in parse_qs(query).items() if items}
        state = values.get("state", "")
        since = values.get("since", "")
        sort = values.get("sort", "start")
        order = values.get("order", "desc")
        size = _number(values.get("size"), DEFAULT_PAGE_SIZE)
        return cls(
            state=state if state in STATES else "",
            tag=values.get("tag", "")[:200],
            since=since if since in SINCE else "",
            q=values.get("q", "")[:200],
            sort=sort if sort in SORTS else "start",
            order=order if order in ("asc", "desc") else "desc",
            page=max(1, _number(values.get("page"), 1)),
            size=size if size in PAGE_SIZES else DEFAULT_PAGE_SIZE,
        )

    def query(self, **changes: str | int) -> str:
        """The URL query for these filters with `changes` applied (defaults left out). A change of anything but
        the page goes back to the first page: the old page number means nothing in another list."""
        values: dict[str, str | int] = {**self.__dict__, "page": self.page if "page" in changes else 1, **changes}
        defaults = Filters().__dict__
        return urlencode({k: str(v) for k, v in values.items() if v and v != defaults[k]})


def _number(text: str | None, default: int) -> int:
    """`text` as a whole number (at most 9 digits), else `default`."""
    if text is None or not text.isdigit() or len(text) > 9:
        return default
    return int(text)


@dataclass(frozen=True)
class SessionRow:
    """One session as the list shows it."""

    id: str
    name: str
    state: str
    reason: str | None
    tags: tuple[str, ...]
    start_ns: int
    duration: float | None
    cost: float | None
    input_tokens: int
    output_tokens: int
    llm_calls: int
    tool_calls: int
    """Tool calls and actions together (`SessionSummary.tool_and_action_calls`)."""
    errors: int
    parent_id: str | None

    @classmethod
    def of(cls, session: Session) -> SessionRow:
        totals = session.totals()
        return cls(
            id=session.id,
            name=session.name,
            state=session.end_state or RUNNING,
            reason=session.end_state_reason,
            tags=tuple(session.tags),
            start_ns=session.start_ns,
            duration=session.duration,
            cost=session.known_cost,
            input_tokens=int(totals.get(sc.AGENTOTEL_SESSION_USAGE_INPUT_TOKENS, 0)),
            output_tokens=int(totals.get(sc.AGENTOTEL_SESSION_USAGE_OUTPUT_TOKENS, 0)),
            llm_calls=int(totals.get(sc.AGENTOTEL_SESSION_LLM_CALL_COUNT, 0)),
            tool_calls=int(totals.get(sc.AGENTOTEL_SESSION_TOOL_CALL_COUNT, 0)),
            errors=int(totals.get(sc.AGENTOTEL_SESSION_ERROR_COUNT, 0)),
            parent_id=session.parent_id,
        )

    @classmethod
    def of_summary(cls, summary: SessionSummary) -> SessionRow:
        """The row of a source's summary (a store lists sessions without reading their spans)."""
        return cls(
            id=summary.id,
            name=summary.name,
            state=summary.end_state or RUNNING,
            reason=summary.end_state_reason,
            tags=tuple(summary.tags),
            start_ns=summary.start_ns,
            duration=summary.duration,
            cost=summary.cost,
            input_tokens=summary.input_tokens,
            output_tokens=summary.output_tokens,
            llm_calls=summary.llm_calls,
            tool_calls=summary.tool_and_action_calls,
            errors=summary.error_count,
            parent_id=summary.parent_id,
        )


def row_of(item: Session | SessionSummary) -> SessionRow:
    return SessionRow.of(item) if isinstance(item, Session) else SessionRow.of_summary(item)


def select(rows: Iterable[SessionRow], filters: Filters, now_ns: int) -> list[SessionRow]:
    """The rows that pass `filters`, in their order (sessions with no duration or cost sort last either way)."""
    window = SINCE.get(filters.since)
    needle = filters.q.casefold()
    chosen = [
        row
        for row in rows
        if (not filters.state or row.state == filters.state)
        and (not filters.tag or filters.tag in row.tags)
        and (window is None or row.start_ns >= now_ns - window * 1_000_000_000)
        and (not needle or needle in row.name.casefold() or needle in row.id.casefold())
    ]
    keys: dict[str, Callable[[SessionRow], Any]] = {
        "start": lambda r: r.start_ns,
        "cost": lambda r: r.cost,
        "duration": lambda r: r.duration,
        "name": lambda r: r.name.casefold(),
    }
    key = keys[filters.sort]
    known = sorted((r for r in chosen if key(r) is not None), key=key, reverse=filters.order == "desc")
    return known + [r for r in chosen if key(r) is None]


Group = list[tuple[SessionRow, int]]
"""An outermost session's row and the rows of the sessions nested in it, each with its depth (0 for the first):
what `nest` (`agentotel._nesting`, shared with `agentotel sessions`) makes of the chosen rows."""


def page_of(groups: list[Group], filters: Filters) -> tuple[list[Group], int, int]:
    """The groups on the filters' page, that page's number (the last one when asked past it) and how many
    pages there are (at least 1)."""
    pages = max(1, -(-len(groups) // filters.size))
    page = min(filters.page, pages)
    start = (page - 1) * filters.size
    return groups[start : start + filters.size], page, pages


# --- pages ------------------------------------------------------------------------------------------------------


def session_path(session_id: str) -> str:
    """The replay page's path for a session id."""
    return "/sessions/" + quote(session_id, safe="")


def _options(name: str, current: str, choices: Iterable[tuple[str, str]]) -> str:
    options = "".join(
        f'<option value="{html_text(value)}"{" selected" if value == current else ""}>{html_text(text)}</option>'
        for value, text in choices
    )
    return f'<select name="{name}" id="f-{name}">{options}</select>'


def _sort_link(filters: Filters, key: str, text: str) -> str:
    """A column heading that sorts by `key`: descending first, flipped when it already sorts by it."""
    order = "asc" if filters.sort == key and filters.order == "desc" else "desc"
    arrow = (" ▼" if filters.order == "desc" else " ▲") if filters.sort == key else ""
    current = ' aria-sort="descending"' if filters.sort == key and filters.order == "desc" else ""
    if filters.sort == key and filters.order == "asc":
        current = ' aria-sort="ascending"'
    href = "/?" + filters.query(sort=key, order=order)
    return f'<th{current}><a class="sort" data-sort="{key}" href="{html_text(href)}">{html_text(text)}{arrow}</a></th>'


def _started(start_ns: int) -> str:
    return datetime.fromtimestamp(start_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _row_html(row: SessionRow, names: dict[str, str], depth: int = 0) -> str:
    tags = " ".join(f'<span class="tag">{html_text(t)}</span>' for t in row.tags)
    nested = ""
    if row.parent_id:
        parent = names.get(row.parent_id, row.parent_id)
        nested = f'<div class="nested muted">in {html_text(parent)}</div>'
    reason = f'<div class="reason" title="{html_text(row.reason)}">{html_text(row.reason)}</div>' if row.reason else ""
    state = row.state if row.state in STATES else RUNNING
    nesting = f" nested-row depth-{min(depth, 6)}" if depth else ""
    return (
        f'<tr class="session-row{nesting}" data-session-id="{html_text(row.id)}" data-state="{html_text(row.state)}"'
        f' data-depth="{depth}">'
        f'<td class="num started" data-label="Started">{_started(row.start_ns)}</td>'
        f'<td class="name"><a class="replay-link" href="{html_text(session_path(row.id))}">{html_text(row.name)}</a>'
        f'<div class="sid muted">{html_text(row.id)}</div>{nested}</td>'
        f'<td class="state"><span class="badge state-{state}">{html_text(row.state)}</span>{reason}</td>'
        f'<td class="tags">{tags}</td>'
        f'<td class="num" data-label="Duration">{html_text(format_duration(row.duration))}</td>'
        f'<td class="num" data-label="Cost">{html_text(format_cost(row.cost))}</td>'
        f'<td class="num" data-label="Tokens">{row.input_tokens + row.output_tokens:,}</td>'
        f'<td class="num" data-label="LLM calls">{row.llm_calls:,}</td>'
        f'<td class="num" data-label="Tools + actions">{row.tool_calls:,}</td>'
        f'<td class="num{" has-errors" if row.errors else ""}" data-label="Errors">{row.errors:,}</td>'
        "</tr>"
    )


def _pager(filters: Filters, page: int, pages: int) -> str:
    """Previous / next links that keep every filter, and where this page is."""

    def link(to: int, rel: str, text: str) -> str:
        if to < 1 or to > pages:
            return f'<span class="{rel} disabled" aria-disabled="true">{text}</span>'
        found = filters.query(page=to)
        href = "/?" + found if found else "/"
        return f'<a id="{rel}-page" class="{rel}" rel="{rel}" href="{html_text(href)}">{text}</a>'

    return (
        '<nav id="pager" aria-label="Pages">'
        f"{link(page - 1, 'prev', '← Previous')}"
        f'<span id="page-of">Page {page:,} of {pages:,}</span>'
        f"{link(page + 1, 'next', 'Next →')}"
        "</nav>"
    )


def _form(filters: Filters, all_tags: list[str]) -> str:
    sizes = [(str(size), f"{size} per page") for size in PAGE_SIZES]
    return (
        '<form id="filters" method="get" action="/">'
        f"<label>State {_options('state', filters.state, [('', 'any'), *((s, s) for s in STATES)])}</label>"
        f"<label>Tag {_options('tag', filters.tag, [('', 'any'), *((t, t) for t in all_tags)])}</label>"
        f"<label>Started {_options('since', filters.since, _SINCE_CHOICES)}</label>"
        '<label>Name <input type="search" name="q" id="f-q" placeholder="name or id" '
        f'value="{html_text(filters.q)}"></label>'
        f"<label>Sort {_options('sort', filters.sort, [(key, key) for key in SORTS])}"
        f"{_options('order', filters.order, [('desc', 'high → low'), ('asc', 'low → high')])}</label>"
        f"<label>Show {_options('size', str(filters.size), sizes)}</label>"
        '<button type="submit">Apply</button> <a href="/" class="reset">Reset</a>'
        "</form>"
    )


def render_list(sessions: Iterable[Session | SessionSummary], filters: Filters, *, now_ns: int | None = None) -> str:
    """The sessions list page: filter form, a table of one page of the matching sessions (each nested session
    right under its parent) linking to their replays, and links to the pages before and after."""
    rows = [row_of(s) for s in sessions]
    names = {r.id: r.name for r in rows}
    chosen = select(rows, filters, clock.current_time_ns() if now_ns is None else now_ns)
    groups, page, pages = page_of(nest(chosen, rows), filters)
    form = _form(filters, sorted({t for r in rows for t in r.tags}))
    head = (
        "<tr>"
        + _sort_link(filters, "start", "Started (UTC)")
        + _sort_link(filters, "name", "Session")
        + "<th>State</th><th>Tags</th>"
        + _sort_link(filters, "duration", "Duration")
        + _sort_link(filters, "cost", "Cost")
        + "<th>Tokens</th><th>LLM calls</th><th>Tools + actions</th><th>Errors</th></tr>"
    )
    body = "".join(_row_html(row, names, depth) for group in groups for row, depth in group)
    if not chosen:
        body = '<tr><td colspan="10" class="empty">No session matches these filters.</td></tr>'
    shown = f"{len(chosen):,} of {len(rows):,} sessions"
    script = asset("sessions.js")
    return fill_template(
        asset("sessions.html"),
        {
            "csp": content_security_policy(script),
            "style": asset("base.css") + asset("sessions.css"),
            "shown": html_text(shown),
            "form": form,
            "head": head,
            "body": body,
            "pager": _pager(filters, page, pages),
            "script": script,
        },
    )


def _message_page(title: str, message: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="color-scheme" content="light dark">'
        f"<title>{html_text(title)}</title></head><body><h1>{html_text(title)}</h1><p>{html_text(message)}</p>"
        '<p><a href="/">All sessions</a></p></body></html>'
    )


# --- the server -------------------------------------------------------------------------------------------------


class UIServer(ThreadingHTTPServer):
    """The `agentotel ui` HTTP server: `serve_forever()` it, or use `serve()`."""

    daemon_threads = True

    def __init__(
        self,
        sessions_provider: SessionsProvider,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        load_session: SessionLoader | None = None,
        *,
        expose: bool = False,
        allow_hosts: Iterable[str] = (),
    ) -> None:
        """Binds `host:port`. Raises `UIError` when the address is not loopback and `expose` is not set (checked
        once bound, before listening: a name is judged by the address it resolved to), or cannot be bound."""
        self.sessions_provider = sessions_provider
        self.load_session = load_session
        # Requests are answered on threads, but a source need not be thread-safe: one reads at a time.
        self._read_lock = threading.Lock()
        self.address_family = _family(host, port)
        try:
            super().__init__((host, port), _Handler, bind_and_activate=False)
        except OSError as error:
            raise UIError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        self._bind(host, port)
        self.exposed = not is_loopback(self.address)
        if self.exposed and not expose:
            self.server_close()
            raise UIError(
                f"{host} ({self.address}) is not a loopback address: every session, prompts and completions "
                "included, would be served without a password to whoever reaches it; add --expose to do so anyway"
            )
        bound: set[str] = set() if self.address in ("0.0.0.0", "::") else {self.address.lower()}
        self.allowed_hosts: frozenset[str] = LOOPBACK_NAMES | bound | ({host_of(name) for name in allow_hosts} - {""})
        """Host names answered besides the address a request reached."""
        self._activate(host, port)

    def _bind(self, host: str, port: int) -> None:
        try:
            self.server_bind()
        except (OSError, OverflowError) as error:
            self.server_close()
            reason = getattr(error, "strerror", None) or str(error)
            raise UIError(f"cannot listen on {host}:{port}: {reason}") from None

    def _activate(self, host: str, port: int) -> None:
        try:
            self.server_activate()
        except OSError as error:
            self.server_close()
            raise UIError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None

    @property
    def address(self) -> str:
        """The IP address listened on (`0.0.0.0` or `::` for every interface)."""
        return str(self.server_address[0])

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.server_port}/"

    def sessions(self) -> list[Session | SessionSummary]:
        with self._read_lock:
            return list(self.sessions_provider())

    def find(self, session_id: str) -> Session | None:
        """The session with this id: from `load_session` when given, else among the provider's sessions."""
        if self.load_session is not None:
            try:
                with self._read_lock:
                    return self.load_session(session_id)
            except LookupError:
                return None
        return next((s for s in self.sessions() if isinstance(s, Session) and s.id == session_id), None)


def _family(host: str, port: int) -> socket.AddressFamily:
    """IPv4 unless the host has only IPv6 addresses (`::1`, `::`): the server's socket is made before binding."""
    try:
        families = {info[0] for info in socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)}
    except (OSError, OverflowError, UnicodeError):
        return socket.AF_INET  # binding says what is wrong
    return socket.AF_INET if socket.AF_INET in families or not families else socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: UIServer
    server_version = "agentotel-ui"

    def do_GET(self) -> None:
        try:
            self._get()
        except Exception as exc:
            log.warning(
                "agentotel ui: could not answer %s: %s", printable(self.path), printable(str(exc)), exc_info=True
            )
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, _message_page("Error", f"{type(exc).__name__}: {exc}"))

    def _get(self) -> None:
        if not self._host_allowed():
            page = _message_page("Wrong host", "This server answers requests for its own names only (--allow-host).")
            self._send(HTTPStatus.MISDIRECTED_REQUEST, page)
            return
        url = urlsplit(self.path)
        path = url.path
        if path in ("/", "/sessions", "/sessions/"):
            page = render_list(self.server.sessions(), Filters.from_query(url.query))
            self._send(HTTPStatus.OK, page)
            return
        if path.startswith("/sessions/"):
            session_id = unquote(path[len("/sessions/") :])
            as_json = session_id.endswith(".json")
            session = self.server.find(session_id[: -len(".json")] if as_json else session_id)
            if session is None:
                self._send(HTTPStatus.NOT_FOUND, _message_page("Not found", f"No session {session_id!r}."))
            elif as_json:
                self._send(HTTPStatus.OK, json.dumps(session.to_dict(), default=str), "application/json")
            else:
                self._send(HTTPStatus.OK, render_html(session, back_url="/"))
            return
        self._send(HTTPStatus.NOT_FOUND, _message_page("Not found", f"Nothing at {path}."))

    def _host_allowed(self) -> bool:
        """Only requests naming a host of the allow-list, or the address this connection reached (a browser sends
        it when the page was opened by address): a page on another site that rebinds its name to this server's
        address sends its own name, and is refused, on loopback as on any other address."""
        host = host_of(self.headers.get("Host"))
        if not host:
            return False
        if host in self.server.allowed_hosts:
            return True
        try:
            reached = str(self.connection.getsockname()[0])
        except OSError:
            return False
        return host == reached.lower() or host == reached.lower().removeprefix("::ffff:")

    def _send(self, status: HTTPStatus, body: str, content_type: str = "text/html") -> None:
        data = body.encode("utf-8", "replace")
        self.send_response(status)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("agentotel ui: " + format, *args)


def make_server(
    sessions_provider: SessionsProvider,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    load_session: SessionLoader | None = None,
    *,
    expose: bool = False,
    allow_hosts: Iterable[str] = (),
) -> UIServer:
    """A server for `sessions_provider` bound to `host:port` (port 0: any free port), not yet serving. Raises
    `UIError` (see `UIServer`)."""
    return UIServer(sessions_provider, host, port, load_session, expose=expose, allow_hosts=allow_hosts)


def start_in_thread(
    sessions_provider: SessionsProvider,
    host: str = DEFAULT_HOST,
    port: int = 0,
    load_session: SessionLoader | None = None,
    *,
    expose: bool = False,
    allow_hosts: Iterable[str] = (),
) -> UIServer:
    """A server answering from a daemon thread; `server.shutdown()` stops it. Raises `UIError`."""
    server = make_server(sessions_provider, host, port, load_session, expose=expose, allow_hosts=allow_hosts)
    threading.Thread(target=server.serve_forever, name="agentotel-ui", daemon=True).start()
    return server


def serve(
    sessions_provider: SessionsProvider,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    load_session: SessionLoader | None = None,
    open_browser: bool = False,
    expose: bool = False,
    allow_hosts: Iterable[str] = (),
) -> None:
    """Serves the sessions list and replays until interrupted (Ctrl-C), printing the URL to stderr, and a warning
    when the address is not loopback (which needs `expose`). Raises `UIError` when it cannot start.

    `sessions_provider` gives the sessions to list (full sessions, or a source's summaries); `load_session` gives
    the one a replay page shows, by id (by default it is looked up among the provider's sessions).
    """
    server = make_server(sessions_provider, host, port, load_session, expose=expose, allow_hosts=allow_hosts)
    if server.exposed:
        names = ", ".join(sorted(server.allowed_hosts))
        print(
            printable(
                f"agentotel ui: warning: listening on {server.address}, not loopback: whoever reaches port "
                f"{server.server_port} reads every session, prompts and completions included, with no password "
                f"(answering Host {names} or the address reached; more with --allow-host)"
            ),
            file=sys.stderr,
            flush=True,
        )
    print(printable(f"agentotel ui: {server.url}  (Ctrl-C to stop)"), file=sys.stderr, flush=True)
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
