"""Zero-code set-up: agentotel's distro and configurator for `opentelemetry-instrument`.

`opentelemetry-instrument python app.py` starts the app with these, in this order:

1. `AgentotelDistro` (the `opentelemetry_distro` entry point `agentotel`) fills in defaults for the `OTEL_*`
   variables the user left unset (see `AgentotelDistro._configure`);
2. `AgentotelConfigurator` (the `opentelemetry_configurator` entry point `agentotel`) lets the SDK's own
   configurator build the tracer provider from the variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
   `OTEL_TRACES_EXPORTER`, `OTEL_EXPORTER_OTLP_*`, sampler, id generator), then calls `agentotel.init()`, which
   adds agentotel's processors to that provider (no second provider, no exporters of its own);
3. `opentelemetry-instrument` loads every `opentelemetry_instrumentor` entry point that
   `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` does not name, agentotel's `agentotel_openai` and
   `agentotel_anthropic` among them.

An app that also calls `agentotel.init()` itself finds agentotel initialised on the global provider and changes
nothing but the settings it passes, so nothing is configured, processed or exported twice.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import MutableMapping
from typing import Any

from opentelemetry.environment_variables import OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]  # an untyped module
from opentelemetry.instrumentation.environment_variables import (
    OTEL_PYTHON_CONFIGURATOR,
    OTEL_PYTHON_DISABLED_INSTRUMENTATIONS,
)
from opentelemetry.sdk._configuration import _OTelSDKConfigurator
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
)
from opentelemetry.util._importlib_metadata import EntryPoint, entry_points

from . import semconv as sc
from ._version import __version__

log = logging.getLogger("agentotel")

OTEL_CONFIG_FILE = "OTEL_CONFIG_FILE"
"""The SDK's declarative configuration file variable (named in `opentelemetry.sdk.environment_variables` only from
SDK 1.43 on; older SDKs read no such file and have no constant for it)."""

DISTRO_NAME = "agentotel"
"""The name agentotel's distro and configurator are registered under (`OTEL_PYTHON_DISTRO=agentotel`)."""


def apply_env_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Sets the distro's defaults for the variables left unset (a value the user set always wins):

    - `OTEL_PYTHON_CONFIGURATOR=agentotel`: with agentotel's distro chosen, its configurator runs even when
      another package (such as `opentelemetry-distro`) registers one too, instead of whichever loads first.
    - `OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf`: the specification's default, which the SDK's configurator
      would otherwise replace with `grpc`. agentotel depends on the HTTP exporter; gRPC is the `[grpc]` extra.
    - `OTEL_TRACES_EXPORTER=otlp` only when an OTLP endpoint variable is set: naming an endpoint is asking for
      OTLP. With neither set, nothing leaves the machine and sessions go to the embedded store (as
      `agentotel.init()` does without the wrapper). Metrics and logs exporters stay off unless set: agentotel
      records traces, and a trace backend such as Jaeger rejects OTLP metrics and logs.

    The defaults go into the environment, so that the app's subprocesses see the same configuration.
    """
    if environ is None:
        environ = os.environ
    environ.setdefault(OTEL_PYTHON_CONFIGURATOR, DISTRO_NAME)
    environ.setdefault(OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf")
    if OTEL_TRACES_EXPORTER not in environ and (
        environ.get(OTEL_EXPORTER_OTLP_ENDPOINT) or environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
    ):
        environ[OTEL_TRACES_EXPORTER] = "otlp"


class AgentotelDistro(BaseDistro):  # type: ignore[misc]
    """agentotel's distro: the defaults of `apply_env_defaults`, and one instrumentation per LLM client library."""

    def _configure(self, **kwargs: Any) -> None:
        """Never raises: a failure is logged and leaves the variables as the user set them."""
        try:
            apply_env_defaults()
        except Exception:
            log.warning("agentotel could not set its OpenTelemetry defaults", exc_info=True)

    def load_instrumentor(self, entry_point: EntryPoint, **kwargs: Any) -> None:
        """Instruments as the base distro does, except another package's instrumentor of a client library that
        agentotel instruments itself (e.g. `opentelemetry-instrumentation-openai-v2`, entry point `openai`):
        two instrumentations would record each LLM call twice, and count its cost twice in the session. Naming
        agentotel's in `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` lets the other one load instead."""
        ours = superseded_by(entry_point)
        if ours is not None:
            log.info(
                "agentotel: not loading the %r instrumentor (%s); agentotel's %r instruments the same library "
                "(set OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=%s to use %r instead)",
                entry_point.name,
                entry_point.value,
                ours,
                ours,
                entry_point.name,
            )
            return
        super().load_instrumentor(entry_point, **kwargs)


# Entry-point names other packages register for the libraries agentotel instruments, and agentotel's own.
_OUR_INSTRUMENTORS = {"openai": "agentotel_openai", "anthropic": "agentotel_anthropic"}


def superseded_by(entry_point: EntryPoint) -> str | None:
    """The name of agentotel's instrumentor that replaces `entry_point` under this distro, or None when
    `entry_point` should load: it is agentotel's own, covers another library, or agentotel's is not going to
    load (not installed, or disabled by `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`). Never raises."""
    try:
        ours = _OUR_INSTRUMENTORS.get(entry_point.name)
        if ours is None or entry_point.value.startswith("agentotel."):
            return None
        disabled = {name.strip() for name in os.environ.get(OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, "").split(",")}
        if ours in disabled or "*" in disabled:
            return None
        for candidate in entry_points(group="opentelemetry_instrumentor", name=ours):
            if importlib.util.find_spec(candidate.module) is not None:
                return ours
    except Exception:
        log.debug("Could not tell whether %r is superseded", getattr(entry_point, "name", "?"), exc_info=True)
    return None


class AgentotelConfigurator(_OTelSDKConfigurator):
    """The SDK's configurator (tracer, meter and logger providers from the `OTEL_*` variables), then agentotel's
    processors on the tracer provider it made, and the embedded store when `OTEL_TRACES_EXPORTER` is unset (or
    beside the exporters when `AGENTOTEL_STORE` names a path)."""

    def _configure(self, **kwargs: Any) -> None:
        """Never raises: a variable the SDK rejects (an unknown exporter, a bad protocol) is reported in one
        warning, and agentotel still records sessions, so that the app and its instrumentation keep running."""
        if not os.environ.get(OTEL_CONFIG_FILE):
            # A declarative configuration file describes its own resource; the configurator then ignores kwargs.
            resource_attributes = dict(kwargs.pop("resource_attributes", None) or {})
            resource_attributes.setdefault(sc.TELEMETRY_DISTRO_NAME, DISTRO_NAME)
            resource_attributes.setdefault(sc.TELEMETRY_DISTRO_VERSION, __version__)
            kwargs["resource_attributes"] = resource_attributes
        try:
            super()._configure(**kwargs)  # type: ignore[no-untyped-call]
        except Exception as error:
            log.warning(
                "agentotel: the OpenTelemetry SDK could not be configured from the OTEL_* variables (%s: %s); "
                "sessions are still recorded, but not exported as those variables ask",
                type(error).__name__,
                error,
            )
        _init_agentotel()


def _init_agentotel() -> None:
    """`agentotel.init()` on the provider the SDK configurator made, without instrumenting: instrumentors are
    `opentelemetry-instrument`'s job, so that `OTEL_PYTHON_DISABLED_INSTRUMENTATIONS` decides. Then the
    embedded store, as `configure.export_processors` chooses it. Never raises."""
    try:
        from .configure import init, state

        init(instrument=False)
    except Exception:
        log.warning("agentotel could not add its span processors", exc_info=True)
        return
    if state.owns_provider:
        return  # the SDK made no provider, so init() made one and set up its export (store included) itself
    try:
        _add_store()
    except Exception:
        log.warning("agentotel could not set up its session store", exc_info=True)


_store_added = False


def _add_store() -> None:
    """Adds the store's processor to agentotel's export pipeline (once), beside the exporters the SDK's
    configurator put on its provider: what `configure.export_processors` chooses when the `OTEL_*` exporters are
    not agentotel's to make (the store with no other trace exporter, or beside them when `AGENTOTEL_STORE` names a
    path). Batched, so the app never waits for the disk; flushed at exit by the provider."""
    global _store_added
    if _store_added:
        return
    from .configure import add_export_processor, export_processors

    for processor in export_processors(from_env=False):
        add_export_processor(processor)
        _store_added = True
