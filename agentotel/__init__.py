"""agentotel: every agent run recorded as a session (one OpenTelemetry trace) that tests can assert on and people
can replay. `import agentotel as agentops` runs AgentOps-style code unchanged."""

from ._loss import lost_spans
from ._version import __version__
from .agentops_traces import (
    ERROR,
    UNSET,
    TraceContext,
    TraceState,
    end_trace,
    start_trace,
    trace,
    track_agent,
    track_tool,
    update_trace_metadata,
)
from .configure import force_flush, init
from .events import ActionEvent, ErrorEvent, LLMEvent, ToolEvent, record
from .model import FAIL, INDETERMINATE, SUCCESS, Event, Session, build_sessions
from .records import ExceptionInfo, SpanRecord, records_from_spans
from .sessions import LiveSession, end_all_sessions, end_session, get_session, session, start_session
from .sources import open_source
from .steps import agent, guardrail, operation, record_action, task, tool, workflow

__all__ = [
    "ERROR",
    "FAIL",
    "INDETERMINATE",
    "SUCCESS",
    "UNSET",
    "ActionEvent",
    "ErrorEvent",
    "Event",
    "ExceptionInfo",
    "LLMEvent",
    "LiveSession",
    "Session",
    "SpanRecord",
    "ToolEvent",
    "TraceContext",
    "TraceState",
    "__version__",
    "agent",
    "build_sessions",
    "end_all_sessions",
    "end_session",
    "end_trace",
    "force_flush",
    "get_session",
    "guardrail",
    "init",
    "lost_spans",
    "open_source",
    "operation",
    "record",
    "record_action",
    "records_from_spans",
    "session",
    "sessions_from_spans",
    "start_session",
    "start_trace",
    "task",
    "tool",
    "trace",
    "track_agent",
    "track_tool",
    "update_trace_metadata",
    "workflow",
]


def sessions_from_spans(spans: list, *, include_traces_without_session: bool = True) -> list[Session]:  # type: ignore[type-arg]
    """Sessions rebuilt from SDK spans (e.g. an `InMemorySpanExporter`'s), by the same code as live sessions."""
    return build_sessions(records_from_spans(spans), include_traces_without_session=include_traces_without_session)
