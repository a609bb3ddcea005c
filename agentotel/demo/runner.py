"""`run_demo()`: the support agent answers a few messages against a model server on loopback, each in its own
session, recorded (content included) in a store of the demo's own. No API key, no network.

The demo's sessions never go into the store your agents write to (one of them fails on purpose, and would fail
`agentotel check --max-failure-rate 0.05` there): by default they go to `demo.db` beside the default store
(`~/.local/share/agentotel/demo.db`). `store=` (`agentotel demo --store PATH`) names another file; an
`AGENTOTEL_STORE` you set is honoured too (as every variable you set is: `AGENTOTEL_STORE=$tmp agentotel demo`
keeps the demo's sessions in a throw-away file), and `AGENTOTEL_STORE=off` keeps them in a temporary store removed
afterwards."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._config import settings
from ..configure import add_export_processor, force_flush, init, remove_export_processor, state
from ..live import registry
from ..model import Session
from ..store import STORE_ENV, StoreSpanExporter, default_store_path, store_path, store_setting

log = logging.getLogger("agentotel")

MESSAGES: tuple[str, ...] = (
    "What are your support hours?",
    "My account C-1042 was billed twice this month",
    "I was charged twice for my subscription",
)
"""The demo's conversation: a general question, a billing question that names the account, and the guide's
failing one (no account named)."""

DEMO_TAG = "demo"

DEMO_STORE_NAME = "demo.db"
"""The demo's own store, a file beside the default store."""

ORIGIN_OPTION = "option"
ORIGIN_ENVIRONMENT = "environment"
ORIGIN_DEFAULT = "default"
ORIGIN_TEMPORARY = "temporary"


@dataclass
class DemoRun:
    """What the demo did: where its sessions are stored and, in order, the sessions it ran."""

    store_path: Path
    sessions: list[Session] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    """session id -> the exception its run raised (`ValueError: customer_id cannot be None` for the guide's bug)."""
    temporary_store: bool = False
    store_origin: str = ORIGIN_DEFAULT
    """Who chose the store: `option` (`store=`), `environment` (`AGENTOTEL_STORE`), `default` (the demo's own
    `demo.db`) or `temporary` (`AGENTOTEL_STORE=off`)."""
    stored: bool = False
    """Whether every span reached the store (a flush that failed or timed out leaves it false)."""


def default_demo_store_path() -> Path:
    """`demo.db` beside the default store: `$XDG_DATA_HOME/agentotel/demo.db` (`~/.local/share/agentotel/demo.db`)."""
    return default_store_path().parent / DEMO_STORE_NAME


def demo_store_path(store: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """Where the demo keeps its sessions, and who chose it (`DemoRun.store_origin`): `store` when given, else the
    store `AGENTOTEL_STORE` names when set (a temporary folder when it is `off`), else `default_demo_store_path()`.
    A temporary folder is made for `off` only."""
    if store is not None:
        return Path(store).expanduser(), ORIGIN_OPTION
    if store_setting() is None:
        return default_demo_store_path(), ORIGIN_DEFAULT
    configured = store_path()
    if configured is not None:
        return configured, ORIGIN_ENVIRONMENT
    # AGENTOTEL_STORE=off: the demo still needs somewhere to keep its sessions, and must not turn the store on.
    folder = tempfile.mkdtemp(prefix="agentotel-demo-")
    return Path(folder) / "sessions.db", ORIGIN_TEMPORARY


def run_demo(store: str | os.PathLike[str] | None = None, messages: Sequence[str] = MESSAGES) -> DemoRun:
    """Runs the support agent over `messages` against a local `LLMServer`, with content capture on, recording
    each run's session in the store at `store` (default: see `demo_store_path`, never the store your agents
    write to unless `AGENTOTEL_STORE` names it). Expected failures of the agent are caught and kept in
    `DemoRun.errors`."""
    import openai

    from ..testing.llm_server import LLMServer
    from . import support_agent

    path, origin = demo_store_path(store)
    previous_capture = settings.capture_content
    extra = None
    if not state.initialized:
        # Named explicitly, the store runs beside any exporter the OTEL_* variables configure.
        os.environ[STORE_ENV] = str(path)
        init(capture_content=True)
    else:
        init(capture_content=True)
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        extra = BatchSpanProcessor(StoreSpanExporter(path))
        add_export_processor(extra)

    run = DemoRun(store_path=path, temporary_store=origin == ORIGIN_TEMPORARY, store_origin=origin)
    ended: list[Session] = []
    listener = ended.append
    registry.add_listener(listener)
    try:
        with LLMServer(support_agent.scripted_model) as server:
            http_client = openai.DefaultHttpx2Client(trust_env=False)  # loopback: never through a proxy
            client = openai.OpenAI(
                base_url=server.openai_base_url, api_key="demo-key", max_retries=0, http_client=http_client
            )
            support_agent.use_client(client)
            try:
                for message in messages:
                    before = len(ended)
                    error: str | None = None
                    try:
                        support_agent.run_support_agent(message, tags=(*support_agent.TAGS, DEMO_TAG))
                    except Exception as failure:
                        error = f"{type(failure).__name__}: {failure}"
                    for session in ended[before:]:
                        run.sessions.append(session)
                        run.messages.append(message)
                        if error is not None:
                            run.errors[session.id] = error
            finally:
                client.close()
    finally:
        registry.remove_listener(listener)
        settings.capture_content = previous_capture
        run.stored = force_flush(10_000)
        if extra is not None:
            remove_export_processor(extra)
            extra.shutdown()  # type: ignore[no-untyped-call]
    return run
