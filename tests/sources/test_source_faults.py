"""Network faults give one clear line (`SourceError`) from every backend source: refused, timeout, 5xx, malformed
JSON, an HTML page where the API should be, and an answer (a trace) too large."""

from __future__ import annotations

import time

import pytest
from fake_backends import FakeJaeger, FakeTempo, FaultyServer, closed_port
from source_scenario import Recorded

from agentotel.sources import SourceError, open_source

SCHEMES = ["jaeger", "tempo", "phoenix"]
NAMES = {"jaeger": "Jaeger", "tempo": "Tempo", "phoenix": "Phoenix"}


def _error_of(location: str) -> SourceError:
    with pytest.raises(SourceError) as raised:
        open_source(location).sessions()
    return raised.value


@pytest.mark.parametrize("scheme", SCHEMES)
def test_refused(scheme: str) -> None:
    port = closed_port()
    error = _error_of(f"{scheme}+http://127.0.0.1:{port}")
    assert str(error) == f"cannot reach {NAMES[scheme]} at http://127.0.0.1:{port}: connection refused (is it running?)"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_timeout(scheme: str) -> None:
    with FaultyServer("slow", delay=5) as server:
        started = time.monotonic()
        error = _error_of(f"{scheme}+{server.url}?timeout=0.3")
        server.release.set()
    assert time.monotonic() - started < 3
    assert f"{NAMES[scheme]} at {server.url} did not answer within 0.3 s (GET /" in str(error)


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("error", "failed: HTTP 503 Service Unavailable for GET /"),
        ("malformed", "with malformed JSON ("),
        ("html", "HTML page"),
        ("huge", "is larger than 1 KiB; narrow the query or raise AGENTOTEL_SOURCE_MAX_BYTES"),
    ],
)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_bad_answers(scheme: str, fault: str, words: str) -> None:
    with FaultyServer(fault, size=4096) as server:
        error = _error_of(f"{scheme}+{server.url}?max_bytes=1024")
    message = str(error)
    assert words in message, message
    assert message.startswith(NAMES[scheme]) or message.startswith(f"cannot reach {NAMES[scheme]}")
    assert "\n" not in message and len(message) < 300


def test_a_trace_too_large_for_the_cap(recorded: Recorded) -> None:
    with FakeJaeger(recorded.spans) as jaeger, FakeTempo(recorded.spans) as tempo:
        for location in (f"jaeger+{jaeger.url}?max_bytes=2000", f"tempo+{tempo.url}?max_bytes=2000"):
            with pytest.raises(
                SourceError, match=r"the answer to GET /api/v\d/traces/0+\w+ is larger than 1.95312 KiB"
            ):
                open_source(location).session(recorded.support.trace_id)


def test_a_malformed_location_is_one_line() -> None:
    with pytest.raises(SourceError, match="bad port"):
        open_source("jaeger+http://localhost:port")
    with pytest.raises(SourceError, match="lookback must be a duration"):
        open_source("tempo+http://localhost:3200?lookback=yesterday")
    with pytest.raises(SourceError, match="timeout must be a number"):
        open_source("phoenix+http://localhost:6006?timeout=soon")


def test_credentials_stay_out_of_messages(recorded: Recorded) -> None:
    with FakeTempo(recorded.spans) as tempo:
        location = f"tempo+http://ci:s3cret@127.0.0.1:{tempo.port}"
        source = open_source(location)
        with pytest.raises(SourceError) as raised:
            source.session("no-such-session")
    assert "s3cret" not in str(raised.value) and "ci:***@" in str(raised.value)
    assert "s3cret" not in source.location
    assert tempo.requests[0].headers["authorization"] == "Basic Y2k6czNjcmV0"  # sent, never shown
