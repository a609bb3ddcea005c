"""The `agentotel` command on the backend sources: the seed's "fail the build when the failure rate is over 5%"
runs against Jaeger, Tempo and Phoenix with the same command, and replay takes a session or a trace id."""

from __future__ import annotations

import pytest
from fake_backends import FakeJaeger, FakePhoenix, FakeServer, FakeTempo, closed_port
from source_scenario import Recorded

from agentotel.cli import main

BACKENDS = {"jaeger": FakeJaeger, "tempo": FakeTempo, "phoenix": FakePhoenix}


@pytest.mark.parametrize("scheme", sorted(BACKENDS))
def test_check_fails_the_build_on_the_failure_rate(
    recorded: Recorded, scheme: str, capsys: pytest.CaptureFixture[str]
) -> None:
    backend: FakeServer
    with BACKENDS[scheme](recorded.spans) as backend:
        location = f"{scheme}+{backend.url}"
        failing = main(["check", "--source", location, "--max-failure-rate", "0.05"])
        out = capsys.readouterr().out
        passing = main(["check", "--source", location, "--max-failure-rate", "0.5", "--max-cost", "1"])
    assert failing == 1
    # support and triage count (research is nested in support); triage failed.
    assert "Sessions: 2 (2 ended)" in out and "Failure rate: 50.0%" in out
    assert "failure rate 50.0% is over --max-failure-rate 5.0%" in out
    assert passing == 0


def test_replay_a_session_of_jaeger_with_its_remote_tool(
    recorded: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeJaeger(recorded.spans) as jaeger:
        assert main(["replay", "--source", f"jaeger+{jaeger.url}", recorded.support.trace_id]) == 0
    out = capsys.readouterr().out
    assert recorded.support.id in out and "geocode" in out and "lookup_order" in out


def test_an_unreachable_backend_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    assert main(["check", "--source", f"jaeger+http://127.0.0.1:{port}", "--max-failure-rate", "0.05"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot reach Jaeger at http://127.0.0.1:{port}: connection refused" in err
