"""`paused_gc()`: the cyclic garbage collector paused while a big batch of acyclic objects is built.

Rebuilding a session of 100,000 spans makes several hundred thousand objects (records, attribute dicts, events);
each 700 new container objects start a collection, and the older generations are walked again and again as they
grow: a third of the time of such a build. Nothing built there forms a reference cycle, so nothing is lost by
collecting once afterwards instead.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
"""How many `paused_gc` blocks are open (in any thread); the collector is turned back on when the last ends."""
_paused = False
"""Whether the open blocks turned the collector off (they leave it alone when the app had turned it off)."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pauses the cyclic collector for the block unless the app has turned it off itself. Never raises."""
    global _depth, _paused
    with _lock:
        if _depth == 0:
            _paused = gc.isenabled()
            if _paused:
                gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _paused:
                _paused = False
                gc.enable()
