"""Fixtures of the reliability suite: a clean loss ledger per test, and the `slow` marker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentotel._loss import ledger


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a stress test of the reliability suite (CI runs it too)")


@pytest.fixture(autouse=True)
def _fresh_ledger() -> Iterator[None]:
    """Each test counts its own lost spans."""
    ledger.reset()
    yield
    ledger.reset()
