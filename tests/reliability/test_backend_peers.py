"""Hostile backends (issue 13, items 3 and 17): a source's credentials never follow a redirect to another server, a
backend that trickles its answer a byte at a time cannot hold a command past its timeout, and options a source
location cannot mean are one line, never a traceback.

Every backend here is a real HTTP (or raw TCP) server on loopback; two ports are two origins, as two hosts are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agentotel.cli import main
from agentotel.sources import SourceError, open_source

from .peers import RecordingServer, TricklingServer, empty_backend, redirecting_to

SCHEMES = ("jaeger", "tempo", "phoenix")
NAMES = {"jaeger": "Jaeger", "tempo": "Tempo", "phoenix": "Phoenix"}
PASSWORD = "s3cret-pass"
API_KEY = "phx-s3cret-api-key"
TENANT = "acme-tenant"


def location(scheme: str, url: str) -> str:
    """The source location of `scheme` at `url`, with the credentials that scheme carries: Basic auth for Jaeger
    and Tempo (and Tempo's tenant header), a bearer token (PHOENIX_API_KEY) for Phoenix."""
    host = url.removeprefix("http://")
    if scheme == "phoenix":
        return f"phoenix+http://{host}"
    tenant = f"?tenant={TENANT}" if scheme == "tempo" else ""
    return f"{scheme}+http://alice:{PASSWORD}@{host}{tenant}"


@pytest.fixture(autouse=True)
def _phoenix_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHOENIX_API_KEY", API_KEY)


def credential_headers(server: RecordingServer) -> list[str]:
    return server.header_values("authorization") + server.header_values("x-scope-orgid")


# --- item 3: credentials and redirects ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_credentials_never_follow_a_redirect_to_another_server(scheme: str, status: int) -> None:
    with RecordingServer() as elsewhere, RecordingServer(redirecting_to(lambda: elsewhere.url, status)) as named:
        with pytest.raises(SourceError) as raised:
            open_source(location(scheme, named.url)).sessions()
        assert credential_headers(named), "the server the location names gets the credentials"
        assert credential_headers(elsewhere) == [], "the server it redirects to must never get them"
        assert elsewhere.seen == [], "a redirect to another origin is refused, not followed"
    message = str(raised.value)
    assert message.startswith(f"{NAMES[scheme]} at {named.url} redirected GET /"), message
    assert f"to {elsewhere.url}, another server: not followed" in message
    assert "\n" not in message and PASSWORD not in message and API_KEY not in message


def test_a_redirect_to_another_port_or_name_of_the_same_host_is_another_server() -> None:
    with RecordingServer() as target:
        port = target.url.rsplit(":", 1)[1]
        for other in (f"http://localhost:{port}", "http://127.0.0.1:1"):
            with (
                RecordingServer(redirecting_to(lambda other=other: other)) as named,  # type: ignore[misc]
                pytest.raises(SourceError, match="another server: not followed"),
            ):
                open_source(location("jaeger", named.url)).sessions()
        assert target.seen == []


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_redirect_within_the_server_is_followed_with_the_credentials(scheme: str) -> None:
    def moved(path: str) -> tuple[int, dict[str, str], bytes]:
        if path.startswith("/moved/"):
            return empty_backend(path.removeprefix("/moved"))
        return 308, {"Location": "/moved" + path}, b""

    with RecordingServer(moved) as server:
        assert open_source(location(scheme, server.url)).sessions() == []
        followed = [seen for seen in server.seen if seen.path.startswith("/moved/")]
    assert followed, "the redirect was followed"
    assert all("authorization" in seen.headers for seen in followed)


# --- item 17: a timeout bounds the whole request -------------------------------------------------------------------


def call_with_bound(action: Callable[[], object], bound: float) -> tuple[BaseException | None, float, bool]:
    """Runs `action()` on a thread; returns what it raised, how long it took, and whether it ended within `bound`
    seconds (a bound far above what the test expects: the thread may run on a loaded machine)."""
    raised: list[BaseException | None] = [None]

    def run() -> None:
        try:
            action()
        except BaseException as error:  # handed to the test
            raised[0] = error

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(bound)
    return raised[0], time.monotonic() - started, not thread.is_alive()


@pytest.mark.parametrize("where", ["headers", "body"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_trickling_backend_is_given_up_on_at_the_timeout(scheme: str, where: str) -> None:
    """One byte every 0.2 s: each read returns well within the timeout, the request as a whole never ends."""
    with TricklingServer(where) as server:
        source = open_source(f"{scheme}+{server.url}?timeout=1")
        raised, took, ended = call_with_bound(source.sessions, bound=60)
        assert ended, f"{NAMES[scheme]}: still reading a trickling answer after {took:.0f} s with ?timeout=1"
    assert isinstance(raised, SourceError), raised
    assert str(raised).startswith(f"{NAMES[scheme]} at {server.url} did not answer within 1 s (GET /"), raised
    assert took < 20, f"gave up only after {took:.1f} s"


def test_the_sessions_command_ends_with_one_line_against_a_trickling_backend(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOTEL_"))}
    env["AGENTOTEL_STORE"] = "off"
    with TricklingServer("body") as server:
        started = time.monotonic()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "agentotel.cli", "sessions", "--source", f"jaeger+{server.url}?timeout=2"],
                capture_output=True,
                text=True,
                env=env,
                cwd=tmp_path,  # the agentotel installed (or on PYTHONPATH), not one in the working directory
                timeout=120,
            )
        except subprocess.TimeoutExpired:
            pytest.fail("agentotel sessions still hung on a trickling backend after 120 s with ?timeout=2")
        took = time.monotonic() - started
    assert done.returncode == 2, done
    assert done.stderr.strip().splitlines() == [
        f"agentotel: Jaeger at {server.url} did not answer within 2 s (GET /api/v3/services)"
    ]
    assert took < 60


# --- item 17: options of a location ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        "timeout=nan",
        "timeout=inf",
        "timeout=1e400",
        "timeout=-1",
        "timeout=99999999999",
        "max_bytes=nan",
        "max_bytes=1e400",
        "lookback=99999999999999w",
        "lookback=1e400",
        "limit=0",
        "limit=-4",
        "limit=100000000000000000000000",
    ],
)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_an_option_a_location_cannot_mean_is_one_line(
    scheme: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sessions", "--source", f"{scheme}+http://127.0.0.1:9?{option}"])
    err = capsys.readouterr().err
    assert code == 2
    [line] = err.strip().splitlines()
    name = option.split("=", 1)[0]
    assert line.startswith(f"agentotel: {name} must be"), line
    assert "unexpected error" not in line and "Traceback" not in err
