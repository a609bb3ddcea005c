"""Instrumentation of LLM client SDKs (one module per provider) and of agent frameworks (one module per
framework). `instrument_installed()` instruments every one whose library is installed and that
`OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` does not name; a framework is hooked when the app imports it, not before
(`_framework.FrameworkInstrumentor`)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os

log = logging.getLogger("agentotel")

# (entry-point name, module, instrumentor class, the client package it needs)
INSTRUMENTORS: tuple[tuple[str, str, str, str], ...] = (
    ("agentotel_openai", "agentotel.instrumentation.openai", "OpenAIInstrumentor", "openai"),
    ("agentotel_anthropic", "agentotel.instrumentation.anthropic", "AnthropicInstrumentor", "anthropic"),
    ("agentotel_executors", "agentotel.instrumentation.executors", "ExecutorContextInstrumentor", "concurrent.futures"),
    # Agent frameworks: each hooks its framework when the app imports it.
    ("agentotel_openai_agents", "agentotel.instrumentation.openai_agents", "OpenAIAgentsInstrumentor", "agents"),
    ("agentotel_langchain", "agentotel.instrumentation.langchain", "LangChainInstrumentor", "langchain_core"),
    ("agentotel_crewai", "agentotel.instrumentation.crewai", "CrewAIInstrumentor", "crewai"),
    ("agentotel_pydantic_ai", "agentotel.instrumentation.pydantic_ai", "PydanticAIInstrumentor", "pydantic_ai"),
    ("agentotel_mcp", "agentotel.instrumentation.mcp", "MCPInstrumentor", "mcp"),
    ("agentotel_google_adk", "agentotel.instrumentation.google_adk", "GoogleADKInstrumentor", "google.adk"),
    ("agentotel_strands", "agentotel.instrumentation.strands", "StrandsInstrumentor", "strands"),
)


def _disabled() -> set[str]:
    raw = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def instrument_installed() -> list[str]:
    """Instruments each installed client SDK once; returns the entry-point names instrumented. Never raises."""
    done: list[str] = []
    disabled = _disabled()
    if "*" in disabled:
        return done
    for name, module_name, class_name, package in INSTRUMENTORS:
        if name in disabled or package in disabled:
            continue
        try:
            if importlib.util.find_spec(package) is None:  # installed? (without importing it: frameworks are heavy)
                continue
        except (ImportError, ValueError):
            continue
        except Exception:
            log.debug("Looking for %s failed", package, exc_info=True)
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            instrumentor = getattr(module, class_name)()
            if not instrumentor.is_instrumented_by_opentelemetry:
                instrumentor.instrument()
            done.append(name)
        except Exception:
            log.debug("Could not instrument %s", package, exc_info=True)
    return done
