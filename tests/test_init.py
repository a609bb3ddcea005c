"""`agentotel.init()`: adds to the app's own tracer provider, is idempotent, takes exporters, phones nowhere.

Each case runs in a fresh interpreter: OpenTelemetry allows one global tracer provider per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path


def run(code: str, tmp_path: Path, **env: str) -> dict[str, object]:
    """Runs `code` in a fresh interpreter with a clean OTEL environment; it prints one JSON line."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOTEL_"))}
    clean.update({"AGENTOTEL_STORE": "off", "HOME": str(tmp_path), **env})
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=clean, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_init_adds_to_the_apps_provider_and_never_replaces_it(tmp_path: Path) -> None:
    out = run(
        """
        import json
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        mine = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(mine))
        trace.set_tracer_provider(provider)

        import agentotel
        agentotel.init(api_key="ignored", some_agentops_option=True)
        agentotel.init()
        processors = len(provider._active_span_processor._span_processors)

        @agentotel.tool
        def lookup(q):
            return q

        with agentotel.session("s") as s:
            lookup("x")
        spans = mine.get_finished_spans()
        print(json.dumps({
            "same_provider": trace.get_tracer_provider() is provider,
            "processors": processors,
            "app_exporter_got": sorted(span.name for span in spans),
            "stamped": all(span.attributes.get("session.id") == s.id for span in spans),
            "live_tools": [e.name for e in s.tool_calls],
        }))
        """,
        tmp_path,
    )
    assert out["same_provider"] is True
    assert out["processors"] == 2  # the app's own + agentotel's one (session, cost, export pipeline), added once
    assert out["app_exporter_got"] == ["execute_tool lookup", "invoke_agent s"]
    assert out["stamped"] is True
    assert out["live_tools"] == ["lookup"]


def test_init_exporter_argument_replaces_the_previous_one(tmp_path: Path) -> None:
    out = run(
        """
        import json
        import agentotel
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        first, second = InMemorySpanExporter(), InMemorySpanExporter()
        agentotel.init(exporter=first)
        with agentotel.session("a"):
            pass
        agentotel.init(exporter=[second])
        with agentotel.session("b"):
            pass
        print(json.dumps({"first": [s.name for s in first.get_finished_spans()],
                          "second": [s.name for s in second.get_finished_spans()]}))
        """,
        tmp_path,
    )
    assert out == {"first": ["invoke_agent a"], "second": ["invoke_agent b"]}


def test_init_with_nothing_configured_exports_nowhere_and_leaves_builtins_alone(tmp_path: Path) -> None:
    out = run(
        """
        import builtins, json
        before = dict(vars(builtins))
        import agentotel
        from agentotel.configure import state
        agentotel.init()
        with agentotel.session("quiet"):
            pass
        exporters = [type(getattr(p, "span_exporter", p)).__name__ for p in state.pipeline.processors]
        print(json.dumps({"exporters": exporters, "builtins_same": dict(vars(builtins)) == before}))
        """,
        tmp_path,
    )
    assert out == {"exporters": [], "builtins_same": True}


def test_otel_variables_configure_service_and_exporters(tmp_path: Path) -> None:
    out = run(
        """
        import json
        import agentotel
        from opentelemetry import trace
        from agentotel.configure import state
        agentotel.init()
        resource = trace.get_tracer_provider().resource.attributes
        exporters = sorted(type(getattr(p, "span_exporter", p)).__name__ for p in state.pipeline.processors)
        print(json.dumps({"service": resource.get("service.name"), "team": resource.get("team"),
                          "exporters": exporters}))
        """,
        tmp_path,
        OTEL_SERVICE_NAME="support-bot",
        OTEL_RESOURCE_ATTRIBUTES="team=agents",
        OTEL_TRACES_EXPORTER="console,otlp",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )
    assert out == {"service": "support-bot", "team": "agents", "exporters": ["ConsoleSpanExporter", "OTLPSpanExporter"]}


def test_init_imports_no_client_sdk_and_instruments_one_when_the_app_imports_it() -> None:
    """`init()` costs what agentotel costs, not the SDKs' import time (anthropic alone is seconds): each client SDK
    is instrumented when the app imports it."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        import sys
        import agentotel
        agentotel.init()
        print(sorted(m for m in ("openai", "anthropic", "agents", "langchain_core", "crewai") if m in sys.modules))
        import openai
        from openai.resources.chat.completions.completions import Completions
        print(type(vars(Completions)["create"]).__name__)
        """
    )
    env = {"PATH": "/usr/bin:/bin", "AGENTOTEL_STORE": "off"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    imported, wrapper = result.stdout.strip().splitlines()
    assert imported == "[]"
    assert wrapper == "FunctionWrapper", "openai is instrumented once the app imports it"
