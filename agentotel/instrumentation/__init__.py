"""Instrumentation of LLM client SDKs, one module per provider. `instrument_installed()` instruments every
client SDK that is installed and not disabled by `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`."""

from __future__ import annotations

import importlib
import logging
import os

log = logging.getLogger("agentotel")

# (entry-point name, module, instrumentor class, the client package it needs)
INSTRUMENTORS: tuple[tuple[str, str, str, str], ...] = (
    ("agentotel_openai", "agentotel.instrumentation.openai", "OpenAIInstrumentor", "openai"),
    ("agentotel_anthropic", "agentotel.instrumentation.anthropic", "AnthropicInstrumentor", "anthropic"),
    ("agentotel_executors", "agentotel.instrumentation.executors", "ExecutorContextInstrumentor", "concurrent.futures"),
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
            importlib.import_module(package)
        except ImportError:
            continue
        except Exception:
            log.debug("Importing %s failed", package, exc_info=True)
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
