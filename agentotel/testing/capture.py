"""`capture()`: record what a block of code does and get its sessions back, rebuilt from the exported spans."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from .._config import settings
from ..configure import add_export_processor, ensure_initialized, remove_export_processor
from ..model import Session, build_sessions
from ..records import records_from_spans


@dataclass
class Capture:
    """The spans a `capture()` block exported, and the sessions rebuilt from them."""

    exporter: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)

    @property
    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    @property
    def sessions(self) -> list[Session]:
        """Every session in the captured spans, nested ones included, in the order they started."""
        return build_sessions(records_from_spans(self.spans), include_traces_without_session=False)

    @property
    def root_sessions(self) -> list[Session]:
        """Sessions not nested in another captured session."""
        sessions = self.sessions
        ids = {s.id for s in sessions}
        return [s for s in sessions if s.parent_id not in ids]

    def session(self, name: str | None = None) -> Session:
        """The one root session captured, or the one that `name` picks (a session's name or id; among root
        sessions first, then nested ones). Raises `LookupError` with what was captured when there is none, and when
        there are several and nothing picks one of them (naming each with its id, to pick by)."""
        roots = self.root_sessions
        if name is None:
            candidates = roots
        else:
            candidates = [s for s in roots if name in (s.name, s.id)] or [
                s for s in self.sessions if name in (s.name, s.id)
            ]
        if len(candidates) == 1:
            return candidates[0]
        wanted = "" if name is None else f" named {name!r}"
        if not candidates:
            raise LookupError(f"no session{wanted} was captured (sessions seen: {_listed(self.sessions)})")
        raise LookupError(
            f"{len(candidates)} sessions{wanted} were captured: {_listed(candidates)}; "
            "pick one with cap.session(name or id), or read cap.root_sessions / cap.sessions"
        )

    def clear(self) -> None:
        self.exporter.clear()


def _listed(sessions: list[Session]) -> str:
    return ", ".join(f"{s.name!r} ({s.id})" for s in sessions) or "none"


@contextmanager
def capture(*, capture_content: bool | None = None) -> Iterator[Capture]:
    """Records the spans exported while the block runs, beside whatever exporters are configured.

    `capture_content=True` turns content capture on for the block (and back to what it was after); by default it
    stays as configured, off unless turned on. It is not turned on by itself: the switch is process-wide, and the
    spans go to every destination configured, not only to this capture. With it off, a failure message whose
    failed tool step shows no arguments says so in one line (`assertions.CONTENT_HINT`).
    """
    ensure_initialized()
    result = Capture()
    processor = SimpleSpanProcessor(result.exporter)
    previous = settings.capture_content
    if capture_content is not None:
        settings.capture_content = capture_content
    add_export_processor(processor)
    try:
        yield result
    finally:
        remove_export_processor(processor)
        settings.capture_content = previous
