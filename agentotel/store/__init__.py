"""The embedded session store: spans kept in a local SQLite file, so sessions can be listed and replayed with no
server.

Where: `AGENTOTEL_STORE=<path>`, else `$XDG_DATA_HOME/agentotel/sessions.db` (`~/.local/share/...` without
`XDG_DATA_HOME`); `AGENTOTEL_STORE=off` turns the store off. The file is created readable by its owner only,
since it may hold prompts and completions.

Several processes may write at once: the file is in WAL mode (readers never wait for writers), each batch is one
`BEGIN IMMEDIATE` transaction, and a writer waits up to `WRITE_TIMEOUT_S` for another's lock. Spans are written
with `INSERT OR REPLACE` on (trace id, span id), so a batch retried or exported twice is stored once.

Two tables: `spans` (every span, normalised like a `SpanRecord`) and `sessions` (one row per session, filled when
the session's root span arrives, with the totals it carries), so that listing sessions never reads spans.

Retention: the store keeps the newest `AGENTOTEL_STORE_MAX_SESSIONS` outermost sessions (default 10,000; `0` keeps
every one). When an app's writes take it past that by a tenth, its exporter removes the oldest sessions, the
sessions nested in them and their spans, on the batch processor's thread: after each batch it has written, for at
most `PRUNE_BUDGET_S`, and never while the app exits. `agentotel prune` does the same by hand, by count or by age.
Either way removal goes in short transactions (about `PRUNE_TRANSACTION_S` each) with pauses between them, so
another process waiting to write waits for one of them, never for a whole prune of a store far over its limit. A
session still `Running` is removed by age from its start, and by count once it started `STALE_RUNNING_S` ago: a
process that dies mid-session leaves its session `Running` for good.

A store file deleted, moved away or replaced while an app writes to it is noticed at the app's next batch (a `stat`
before and after each): the exporter opens the file now at the path, making a new store when there is none, and
writes the batch there; the old file's -wal and -shm are taken off the path first, so that SQLite never pairs them
with the new file.

The package, one module per job:
- `settings.py`: where the store is and how many sessions it keeps, from the environment;
- `schema.py`: the tables, and records made into rows and rows read back;
- `database.py`: `Store`, a connection to the file (writes, queries, retention with `Pruning`);
- `exporter.py`: the export path (`StoreSpanExporter`, `StoreBatchProcessor`, the at-fork hooks, `store_exporters`).
The tunables re-exported here are read by the module that defines them: change one there (for instance
`agentotel.store.database.READ_TIMEOUT_S`), not here.
"""

from __future__ import annotations

from .database import PRUNE_TRANSACTION_S, STALE_RUNNING_S, Store, StoreError
from .exporter import PRUNE_BUDGET_S, StoreBatchProcessor, StoreSpanExporter, store_exporters
from .settings import MAX_SESSIONS_ENV, STORE_ENV, default_store_path, store_max_sessions, store_path

# Public too, though not in `__all__` (as in the module this package was): imported by name.
from .database import READ_TIMEOUT_S as READ_TIMEOUT_S  # isort: skip
from .database import WRITE_TIMEOUT_S as WRITE_TIMEOUT_S  # isort: skip
from .database import Pruning as Pruning  # isort: skip
from .exporter import FORK_TRANSACTION_WAIT_S as FORK_TRANSACTION_WAIT_S  # isort: skip
from .exporter import FORK_WAIT_S as FORK_WAIT_S  # isort: skip
from .schema import SCHEMA_VERSION as SCHEMA_VERSION  # isort: skip
from .settings import DEFAULT_MAX_SESSIONS as DEFAULT_MAX_SESSIONS  # isort: skip
from .settings import OFF_VALUES as OFF_VALUES  # isort: skip
from .settings import store_setting as store_setting  # isort: skip

__all__ = [
    "MAX_SESSIONS_ENV",
    "PRUNE_BUDGET_S",
    "PRUNE_TRANSACTION_S",
    "STALE_RUNNING_S",
    "STORE_ENV",
    "Store",
    "StoreBatchProcessor",
    "StoreError",
    "StoreSpanExporter",
    "default_store_path",
    "store_exporters",
    "store_max_sessions",
    "store_path",
]
