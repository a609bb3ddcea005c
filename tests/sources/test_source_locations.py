"""How backend locations are read: scheme, transport, base path, credentials, options; durations and trace ids."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agentotel.sources import SourceError
from agentotel.sources._http import parse_location
from agentotel.sources._remote import parse_duration, redacted, trace_id_of


def test_a_location_is_taken_apart() -> None:
    where = parse_location(
        "jaeger+https://ci:p%40ss@tracing.example.com:8443/jaeger/?service=a,b&lookback=7d", "jaeger"
    )
    assert where.base_url == "https://tracing.example.com:8443/jaeger"
    assert where.options == {"service": "a,b", "lookback": "7d"}
    assert (where.username, where.password) == ("ci", "p@ss")
    assert parse_location("tempo+http://[::1]:3200", "tempo").base_url == "http://[::1]:3200"
    assert parse_location("phoenix://localhost:6006", "phoenix").base_url == "http://localhost:6006"


@pytest.mark.parametrize(
    "location", ["jaeger+ftp://host", "tempo+http://host:3200", "jaeger+http://", "jaeger+http://h:x"]
)
def test_a_location_that_is_not_one_is_refused(location: str) -> None:
    with pytest.raises(SourceError):
        parse_location(location, "jaeger")


def test_options_fall_back_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTOTEL_TEMPO_TENANT", "from-env")
    assert parse_location("tempo+http://h:1?tenant=acme", "tempo").option("tenant", "AGENTOTEL_TEMPO_TENANT") == "acme"
    assert parse_location("tempo+http://h:1", "tempo").option("tenant", "AGENTOTEL_TEMPO_TENANT") == "from-env"


def test_durations_and_trace_ids() -> None:
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("3600") == timedelta(hours=1)
    with pytest.raises(SourceError):
        parse_duration("soon")
    assert trace_id_of("ABC") == "0" * 29 + "abc"
    assert trace_id_of("a" * 32) == "a" * 32
    assert trace_id_of("a" * 33) is None and trace_id_of("session-1") is None


def test_passwords_are_masked_in_locations() -> None:
    assert redacted("tempo+https://ci:s3cret@host:3200/x?tenant=a") == "tempo+https://ci:***@host:3200/x?tenant=a"
    assert redacted("jaeger+http://host:16686") == "jaeger+http://host:16686"
