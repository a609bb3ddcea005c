"""AgentOps (the SDK agentotel's API follows) set up for the benchmarks, in its own venv, with no network.

`agentops.init()` builds its own tracer provider (a batch processor to its OTLP endpoint, plus its
`InternalSpanProcessor`) and makes it global. The benchmark keeps everything AgentOps does by default except the
destination: its OTLP exporter is swapped for the benchmark's null exporter, so every peer exports through the
same pipeline. No API key is given (so no authentication request is made), the metrics reader's interval is set
past the run, and workers leave with `os._exit`, so nothing is ever sent anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import _harness as harness
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

NO_NETWORK_ENV = {
    "AGENTOPS_EXPORTER_ENDPOINT": "http://127.0.0.1:9/v1/traces",
    "AGENTOPS_API_ENDPOINT": "http://127.0.0.1:9",
    "AGENTOPS_APP_URL": "http://127.0.0.1:9",
    "AGENTOPS_LOG_LEVEL": "CRITICAL",
    "AGENTOPS_LOG_SESSION_REPLAY_URL": "false",
    "AGENTOPS_PREFETCH_JWT_TOKEN": "false",
    "AGENTOPS_ENV_DATA_OPT_OUT": "true",
    "AGENTOPS_LOGGING_TO_FILE": "false",  # else it writes agentops.log in the working directory
    "OTEL_METRIC_EXPORT_INTERVAL": "86400000",
}


def _init(content: bool) -> tuple[TracerProvider, harness.NullExporter]:
    """Initialises AgentOps with its defaults, then points its span export at a null exporter."""
    os.environ.update(NO_NETWORK_ENV)
    os.environ.pop("AGENTOPS_API_KEY", None)
    # AgentOps' openai instrumentation reads traceloop's variable for content capture (on unless "false").
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true" if content else "false"
    import agentops
    from agentops.sdk.core import tracer

    agentops.init(api_key=None)
    provider = tracer.provider
    if provider is None:
        raise RuntimeError("agentops.init() set up no tracer provider")
    null = harness.NullExporter()
    null.keep = 64
    multi = provider._active_span_processor
    swapped = []
    for processor in multi._span_processors:
        if isinstance(processor, BatchSpanProcessor):
            processor.shutdown()  # its exporter never sent anything: the export interval had not come
            swapped.append(BatchSpanProcessor(null))
        else:
            swapped.append(processor)
    multi._span_processors = tuple(swapped)
    return provider, null


def setup_agentops(content: bool) -> tuple[TracerProvider, harness.NullExporter]:
    """AgentOps tracing openai calls (its default `instrument_llm_calls=True`); its provider and null exporter."""
    provider, null = _init(content)
    return provider, null


def agentops_tool(func: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[[], int]]:
    """`func` under AgentOps' `@tool` decorator, and a function that counts the spans exported so far."""
    provider, null = _init(False)
    from agentops.sdk.decorators import tool

    def exported() -> int:
        provider.force_flush()
        return null.count

    return tool(name=func.__name__)(func), exported
