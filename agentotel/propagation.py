"""Who gets to see and set a session id across processes: the trust rule for the W3C baggage `session.id`.

A session's id travels in W3C baggage with the trace context, so that a tool served by another process stamps its
spans with it and a backend gathers one session from many services. Baggage is plain text any caller can write and
every instrumented HTTP client sends to every host, so agentotel bounds both directions:

- **Sending** (`SessionBaggagePropagator`, the `agentotel_baggage` propagator, which agentotel puts in place of
  W3C's `baggage` unless `OTEL_PROPAGATORS` says otherwise): every baggage entry is sent as W3C's propagator sends
  it, except `session.id` to a host outside `AGENTOTEL_SESSION_BAGGAGE_HOSTS`. The host is the one the HTTP client
  span being sent names (`server.address`, else `url.full` / `http.url`); by default only internal hosts get it:
  loopback and private addresses, single-label names (`tools`, `tool-service`) and `.local`, `.internal`,
  `.svc`, `.cluster.local` names. A context injected with no client span (an app's own RPC, MCP's `_meta`) is
  sent as is.
- **Receiving** (`accepts_baggage_session`): `AGENTOTEL_SESSION_BAGGAGE=ignore` makes a service that faces
  untrusted callers ignore incoming session ids (the default, `accept`, stamps them). Whatever it says, a session
  started in this process is never nested in a session that only baggage names (`nests_in_remote_session`: it is
  a session of its own, linked to the caller's by `agentotel.session.caller.id`, so its failures count for itself in
  `agentotel check`) unless `AGENTOTEL_SESSION_BAGGAGE=nest`; and a span joins the session its `session.id` names
  only inside that session's trace (`model.build_sessions`, `live.SessionRegistry`): baggage sent without the
  session's trace context (forged, or left over from an earlier request) joins no session, ended or running.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import baggage, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)

from . import semconv as sc
from ._config import settings
from .records import span_attributes

log = logging.getLogger("agentotel")

HOSTS_ENV = "AGENTOTEL_SESSION_BAGGAGE_HOSTS"
PROPAGATOR_NAME = "agentotel_baggage"

_INTERNAL_SUFFIXES = (".local", ".internal", ".svc", ".cluster.local", ".localhost")
_SERVER_ADDRESS, _URL_FULL, _HTTP_URL, _NET_PEER_NAME = sc.SERVER_ADDRESS, sc.URL_FULL, sc.HTTP_URL, sc.NET_PEER_NAME


def accepts_baggage_session() -> bool:
    """Whether incoming `session.id` baggage stamps this process's spans (`AGENTOTEL_SESSION_BAGGAGE` is not
    `ignore`)."""
    return settings.session_baggage != "ignore"


def nests_in_remote_session() -> bool:
    """Whether a session started here nests in a session only incoming baggage names (`AGENTOTEL_SESSION_BAGGAGE=
    nest`); by default it is a session of its own."""
    return settings.session_baggage == "nest"


def is_internal_host(host: str) -> bool:
    """Whether a host is one of this system's by its name or address: loopback, private and link-local addresses,
    single-label names and the usual internal suffixes."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if not name:
        return False
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return "." not in name or name == "localhost" or name.endswith(_INTERNAL_SUFFIXES)
    return address.is_loopback or address.is_private or address.is_link_local


class HostRule:
    """`AGENTOTEL_SESSION_BAGGAGE_HOSTS`: hosts that may receive a session id (`name`, `*.suffix`, `*` for all, or
    `internal`, the default)."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.everyone = False
        self.internal = False
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                self.everyone = True
            elif entry == "internal":
                self.internal = True
            elif entry.startswith("*."):
                self.suffixes.append(entry[1:])
            else:
                self.exact.add(entry)

    @classmethod
    def from_env(cls) -> HostRule:
        raw = os.environ.get(HOSTS_ENV)
        return cls(["internal"] if raw is None else raw.split(","))

    def allows(self, host: str) -> bool:
        name = host.strip().strip("[]").rstrip(".").lower()
        if self.everyone or name in self.exact or any(name.endswith(s) for s in self.suffixes):
            return True
        return self.internal and is_internal_host(name)


def destination_host(context: Context | None) -> str | None:
    """The host the HTTP client span current in `context` is sending to, or `None` when no client span says."""
    span: Any = trace.get_current_span(context)
    try:
        attributes = span_attributes(span)
    except Exception:
        return None
    host = attributes.get(_SERVER_ADDRESS) or attributes.get(_NET_PEER_NAME)
    if host:
        return str(host)
    url = attributes.get(_URL_FULL) or attributes.get(_HTTP_URL)
    if url:
        try:
            return urlsplit(str(url)).hostname
        except ValueError:
            return None
    return None


class SessionBaggagePropagator(TextMapPropagator):
    """W3C baggage, except `session.id` to hosts outside `AGENTOTEL_SESSION_BAGGAGE_HOSTS` (see the module
    docstring). Registered as the `agentotel_baggage` propagator. Never raises from `inject`."""

    def __init__(self) -> None:
        self._w3c = W3CBaggagePropagator()
        self._hosts = HostRule.from_env()

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        return self._w3c.extract(carrier, context, getter)

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        try:
            if baggage.get_baggage(sc.SESSION_ID, context) is not None:
                host = destination_host(context)
                if host is not None and not self._hosts.allows(host):
                    context = baggage.remove_baggage(sc.SESSION_ID, context)
        except Exception:
            log.debug("Could not decide whether to send the session id", exc_info=True)
            return  # sending nothing is the safe side
        self._w3c.inject(carrier, context, setter)

    @property
    def fields(self) -> set[str]:
        return self._w3c.fields


def install_default_propagators() -> None:
    """With `OTEL_PROPAGATORS` unset, makes the global propagator W3C trace context + `SessionBaggagePropagator`
    (the SDK's default is trace context + W3C baggage, which sends the session id to every host). A value the user
    set is kept. Never raises."""
    if os.environ.get("OTEL_PROPAGATORS") is not None:
        return
    try:
        from opentelemetry import propagate
        from opentelemetry.propagators.composite import CompositePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        propagate.set_global_textmap(CompositePropagator([TraceContextTextMapPropagator(), SessionBaggagePropagator()]))
    except Exception:
        log.debug("Could not set agentotel's propagators", exc_info=True)
