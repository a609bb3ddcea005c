"""Fixtures of the backend-source tests."""

from __future__ import annotations

import pytest
from source_scenario import Recorded, record_run


@pytest.fixture(scope="session")
def recorded() -> Recorded:
    """The agent run of `source_scenario`, recorded once for every test of the sources."""
    return record_run()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "phoenix: starts a real Arize Phoenix (skipped when it is not installed)")
