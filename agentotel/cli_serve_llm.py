"""`agentotel serve-llm [--host HOST] [--port N] [--script FILE] [--expose]`: the scripted model server
(`agentotel.testing.llm_server.LLMServer`) started from a shell, so an app run by hand or under
`opentelemetry-instrument` talks to it instead of a provider: no API key, no network, the same answers every run.

It prints one line, the `export` of the variables that point the OpenAI and Anthropic SDKs at it (pasteable into
another shell), then serves until Ctrl-C or SIGTERM and prints how many requests it answered (exit 0). It has no
authentication: it listens on loopback (127.0.0.1:8766; `agentotel ui` has 8765) and refuses another address
without `--expose`. A bad `--script`, an address that is not loopback or a port in use is one line on stderr and
exit 2, before anything is served. Registered into the `agentotel` parser by `register(subparsers)`.
"""

from __future__ import annotations

import argparse
import errno
import shlex
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from .cli import EXIT_OK, PROG, UsageError, _port
from .cli_render import Output
from .replay.text import printable

if TYPE_CHECKING:
    from .testing.llm_server import LLMServer, RecordedRequest, Reply

COMMAND = f"{PROG} serve-llm"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
"""The port listened on unless `--port` says otherwise: one above `agentotel ui`'s 8765, so both can run."""
API_KEY = "test"
"""The API key the printed line sets: the SDKs refuse to start without one; the server accepts any."""
_TICK_S = 1.0
"""How often the serving loop tallies and forgets the requests received: their bodies and headers are kept that
long at most, so memory stays bounded however long it serves."""


class _Terminated(BaseException):
    """Raised in the main thread by SIGTERM: stop serving, as Ctrl-C does."""


class _HelpAction(argparse.Action):
    """`-h` / `--help` with the script file format (`SCRIPT_FORMAT`) as the epilog, imported only when asked for:
    every other `agentotel` command builds this parser too."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, help=kwargs.get("help"))

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: Any = None
    ) -> NoReturn:
        from .testing.llm_server import SCRIPT_FORMAT

        parser.epilog = (
            f"Script files (--script FILE):\n\n{SCRIPT_FORMAT}\n\nExit codes: 0 stopped, 2 bad usage or input."
        )
        parser.print_help()
        parser.exit()


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Adds the `serve-llm` command to the `agentotel` parser's subcommands (`add_subparsers()`'s result)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve-llm",
        add_help=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="serve scripted OpenAI / Anthropic model replies on loopback, for apps run without an API key",
        description=(
            "Serve a scripted model that speaks the OpenAI (chat completions, Responses, embeddings) and Anthropic\n"
            "(messages) wire formats, streams included, until Ctrl-C or SIGTERM. The first line printed sets the\n"
            "variables the SDKs read (OPENAI_BASE_URL, OPENAI_API_KEY, ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY);\n"
            "paste it into the shell that runs your app. Each request takes the next reply of --script, then the\n"
            'default responder answers ("You said: ..."). The server has no authentication: it listens on loopback\n'
            "only, unless --expose."
        ),
    )
    parser.add_argument("-h", "--help", action=_HelpAction, help="show this help message (and the script format)")
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}; another needs --expose)"
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        metavar="N",
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--script", metavar="FILE", help="the replies to give, in order: a JSON list or JSON Lines (format below)"
    )
    parser.add_argument(
        "--expose",
        action="store_true",
        help="allow a --host that is not loopback: whoever reaches it gets answers, with no authentication",
    )
    parser.set_defaults(run=cmd_serve_llm)
    return parser


def cmd_serve_llm(args: argparse.Namespace, out: Output) -> int:
    """Serves until SIGINT or SIGTERM, then prints the tally and returns 0. Raises `UsageError` (nothing served)
    for a script that cannot be read, an address that is not loopback without `--expose`, or one that cannot be
    listened on."""
    from .testing.llm_server import LLMServer, ScriptError, load_replies
    from .ui import is_loopback

    replies: list[Reply] = []
    if args.script is not None:
        try:
            replies = load_replies(args.script)
        except ScriptError as error:
            raise UsageError(f"{COMMAND}: {error}; nothing started") from None
    address = _address(args.host, args.port)
    exposed = not is_loopback(address)
    if exposed and not args.expose:
        raise UsageError(
            f"{COMMAND}: {_named(args.host, address)} is not a loopback address and the server has no authentication: "
            "whoever reaches it would be answered (and could use up the script); add --expose to listen there anyway"
        )
    server = LLMServer(host=address, port=args.port)
    server.script(*replies)
    tally = _Tally()
    stop = _Stop()
    previous = _on_sigterm(stop)
    try:
        try:
            server.start()
        except OSError as error:
            raise UsageError(_cannot_listen(args.host, args.port, error)) from None
        if exposed:
            port = urlsplit(server.url).port
            _warn(
                f"{COMMAND}: warning: listening on {address}, not loopback: whoever reaches port {port} is answered, "
                "with no authentication"
            )
        out.line(ready_line(server, len(replies)))
        out.stream.flush()
        while True:
            time.sleep(_TICK_S)
            tally.take(server)
    except (KeyboardInterrupt, _Terminated):
        pass
    finally:
        stop.stopping = True  # a second SIGTERM while stopping is not a traceback
        server.stop()
        _on_sigterm(previous)
    tally.take(server)
    out.line(tally.summary(scripted=len(replies), unused=server.pending))
    return EXIT_OK


def _warn(text: str) -> None:
    sys.stderr.write(printable(text) + "\n")
    sys.stderr.flush()


def environment(server: LLMServer) -> dict[str, str]:
    """The variables that point the OpenAI and Anthropic SDKs at the running `server`."""
    return {
        "OPENAI_BASE_URL": server.openai_base_url,
        "OPENAI_API_KEY": API_KEY,
        "ANTHROPIC_BASE_URL": server.anthropic_base_url,
        "ANTHROPIC_API_KEY": API_KEY,
    }


def ready_line(server: LLMServer, scripted: int) -> str:
    """The line printed once `server` listens: `export` of `environment(server)`, each value shell-quoted, then
    a comment saying where it serves and what it answers (the whole line pastes into a POSIX shell)."""
    assignments = " ".join(f"{name}={shlex.quote(value)}" for name, value in environment(server).items())
    answers = f"{_many(scripted, 'scripted reply', 'scripted replies')}, then " if scripted else ""
    return f"export {assignments}  # {COMMAND} on {server.url}: {answers}the default responder answers (Ctrl-C to stop)"


def _address(host: str, port: int) -> str:
    """The IP address `host` names (itself when it is one; an IPv4 address first for a name), the one listened on
    and judged loopback or not. Raises `UsageError` when it names none."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise UsageError(f"{COMMAND}: --host {host} names no address to listen on: {reason}") from None
    found.sort(key=lambda info: info[0] != socket.AF_INET)
    return str(found[0][4][0])


def _named(host: str, address: str) -> str:
    """`host` as given, and the address it names when that is another text."""
    return host if host.strip("[]") == address else f"{host} ({address})"


def _cannot_listen(host: str, port: int, error: OSError) -> str:
    """The one line for a bind that failed."""
    reason = error.strerror or str(error)
    hint = ""
    if error.errno == errno.EADDRINUSE:
        hint = " (another serve-llm still running? --port 0 picks a free port)"
    elif error.errno == errno.EACCES and 0 < port < 1024:
        hint = " (ports below 1024 need privileges; the default is 8766)"
    return f"{COMMAND}: cannot listen on {host}:{port}: {reason}{hint}; nothing started"


class _Stop:
    """The SIGTERM handler while serving: raises `_Terminated` in the main thread, once; not while stopping."""

    def __init__(self) -> None:
        self.stopping = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            self.stopping = True
            raise _Terminated


_Handler = Callable[[int, FrameType | None], Any] | int | None


def _on_sigterm(handler: _Handler) -> _Handler:
    """Installs `handler` for SIGTERM and returns the one it replaces; does nothing (returns `None`) off the main
    thread, where Python cannot handle signals, or where there is no SIGTERM."""
    if handler is None or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        return None
    return signal.signal(signal.SIGTERM, handler)


class _Tally:
    """Counts of the requests a server answered, taken from `LLMServer.requests`, which it then empties."""

    def __init__(self) -> None:
        self.answered = 0
        self.replied = 0
        """Requests to a model endpoint with a JSON object body: each took a scripted reply or the responder's."""

    def take(self, server: LLMServer) -> None:
        """Counts the requests received since the last call and forgets them (a slice deletion is atomic, so a
        request arriving meanwhile stays for the next call)."""
        received = list(server.requests)
        del server.requests[: len(received)]
        self.answered += len(received)
        self.replied += sum(1 for request in received if _took_reply(request))

    def summary(self, *, scripted: int, unused: int) -> str:
        """The line printed when the server stops."""
        used = scripted - unused
        parts = []
        if scripted:
            parts.append(_many(used, "scripted reply", "scripted replies"))
        parts.append(f"{self.replied - used} from the default responder")
        refused = self.answered - self.replied
        if refused:
            parts.append(f"{refused} refused (no such endpoint, or a body that is no JSON object)")
        text = f"{COMMAND}: stopped; answered {_many(self.answered, 'request')}: {', '.join(parts)}"
        if unused:
            text += f"; {_many(unused, 'scripted reply', 'scripted replies')} left unused"
        return text


def _took_reply(request: RecordedRequest) -> bool:
    """Whether the server answered `request` with a reply (scripted or the responder's), not a 404 or 400."""
    return request.endpoint is not None and isinstance(request.body, dict)


def _many(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"
