"""Model calls' messages as the GenAI conventions' log event `gen_ai.client.inference.operation.details`, for
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=EVENT_ONLY` (messages in the event, none on the span) and
`SPAN_AND_EVENT` (both).

The event goes through the OpenTelemetry Logs API to the global logger provider: the one `opentelemetry-instrument`
configures with `OTEL_LOGS_EXPORTER`, or the app's own. With none set, events are dropped (the API's no-op logger),
as the conventions intend: a user who asks for events has somewhere to send them. Redaction (built-in patterns and
the app's hook) runs on the messages first, as it does for span attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span

from .._config import settings
from .._content import to_json
from .._version import __version__

log = logging.getLogger("agentotel")

EVENT_NAME = "gen_ai.client.inference.operation.details"

_logger: Any = None


def _get_logger() -> Any:
    """agentotel's logger of the global logger provider (a proxy until one is set). Never raises."""
    global _logger
    if _logger is None:
        from opentelemetry import _logs

        _logger = _logs.get_logger("agentotel", __version__)
    return _logger


def emit_inference_event(span: Span, attributes: Mapping[str, Any], content: Mapping[str, Any]) -> None:
    """Emits a model call's event: its request/response attributes and its content (each message attribute as
    bounded JSON text, redacted), in the call's span context. Never raises."""
    try:
        from opentelemetry._logs import LogRecord

        from ..redaction import redaction

        event_attributes: dict[str, Any] = dict(attributes)
        for key, value in content.items():
            text, _ = to_json(value, settings.content_max_length)
            kept = redaction.apply(key, text) if redaction.active else text
            if kept is not None:
                event_attributes[key] = kept
        record = LogRecord(
            event_name=EVENT_NAME,
            attributes=event_attributes,
            context=trace.set_span_in_context(span),
        )
        _get_logger().emit(record)
    except Exception:
        log.debug("Could not emit a model call's content event", exc_info=True)
