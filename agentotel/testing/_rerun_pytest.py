"""The pytest side of `agentotel.testing.rerun` (loaded by agentotel's pytest plugin):

    @pytest.mark.agentotel_rerun("tests/sessions/charged_twice.jsonl")   # strict=True, tools="real" by default
    def test_charged_twice_still_fails_the_same_way(agentotel_rerun):
        with pytest.raises(ValueError):
            run_support_agent("I was charged twice for my subscription")
        assert agentotel_rerun.session.end_state == "Fail"

The marked test's body runs inside the re-run (the path is taken relative to the rootdir, else to the test's
folder), and the test fails with the `RerunDivergence` when the agent leaves the recording. The `agentotel_rerun`
fixture is that re-run: `.calls`, `.divergences`, and `.session` once the agent's session has ended.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

_RERUN = pytest.StashKey[Any]()
MARKER = "agentotel_rerun"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(path, strict=True, tools='real'): run the test against the session recorded in path "
        "(agentotel.testing.rerun); it fails where the agent leaves the recording",
    )


def _rerun_of(item: pytest.Item) -> Any:
    """The re-run the item's marker asks for (made once per item), or `None` for an item without the marker."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return None
    made = item.stash.get(_RERUN, None)
    if made is None:
        from .reruns import rerun, resolve

        if not marker.args:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} needs the path of the recorded session")
        made = rerun(resolve(marker.args[0], item.config.rootpath, item.path.parent), **marker.kwargs)
        item.stash[_RERUN] = made
    return made


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    active = _rerun_of(item)
    if active is None:
        return (yield)
    with active:
        return (yield)


@pytest.fixture
def agentotel_rerun(request: pytest.FixtureRequest) -> Any:
    """The test's re-run (`agentotel.testing.reruns.Rerun`), made from its `@pytest.mark.agentotel_rerun(path, ...)`
    marker; active while the test's body runs."""
    active = _rerun_of(request.node)
    if active is None:
        raise pytest.UsageError(f'the agentotel_rerun fixture needs @pytest.mark.{MARKER}("path/to/session.jsonl")')
    return active
