"""The test run and test a session was recorded in: the ids the pytest plugin stamps on every session.

One id per pytest run (`--agentotel-run-id ID`, else `AGENTOTEL_TEST_RUN_ID`, else a new one such as
`20261103T093012-3fa9c1`: sortable, UTC), shared by pytest-xdist's workers; the test's node id around each test.
Both go on the root span of every session started meanwhile (`agentotel.test.run.id`, `agentotel.test.node_id`),
through `agentotel._session_stamps`. `agentotel diff --run A --run B` groups sessions by them (`agentotel.runs`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime

from .. import semconv as sc
from .._session_stamps import session_stamps, set_session_stamps, stamped

RUN_ID_ENV = "AGENTOTEL_TEST_RUN_ID"
MAX_ID_LENGTH = 200


def new_run_id() -> str:
    """A fresh run id: the UTC time to the second (runs sort by it) and 6 random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def chosen_run_id(option: str | None = None) -> str:
    """The run id to stamp: `option` when given, else `AGENTOTEL_TEST_RUN_ID`, else a new one."""
    for value in (option, os.environ.get(RUN_ID_ENV)):
        text = " ".join((value or "").split())[:MAX_ID_LENGTH]
        if text:
            return text
    return new_run_id()


def start_run(run_id: str) -> Mapping[str, str]:
    """Stamps every session started from now on with `run_id`; returns the stamps before, for `end_run`."""
    previous = session_stamps()
    set_session_stamps({**previous, sc.AGENTOTEL_TEST_RUN_ID: run_id})
    return previous


def end_run(previous: Mapping[str, str] | None = None) -> None:
    """Stops stamping sessions with the run: puts back the stamps `start_run` returned (those of the run around
    this one, for pytest run inside a test), else drops the run and test stamps."""
    if previous is None:
        ours = (sc.AGENTOTEL_TEST_RUN_ID, sc.AGENTOTEL_TEST_NODE_ID)
        previous = {k: v for k, v in session_stamps().items() if k not in ours}
    set_session_stamps(previous)


@contextmanager
def in_test(node_id: str) -> Iterator[None]:
    """Sessions started in the block are stamped with the test's node id too."""
    with stamped({sc.AGENTOTEL_TEST_NODE_ID: node_id}):
        yield
