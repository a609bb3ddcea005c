"""Worker: the cost of one traced step, a trivial tool function, against the floor: a bare
`tracer.start_as_current_span` with the same attributes on a plain SDK provider (batch processor, null exporter).

    <venv>/bin/python benchmarks/bench_steps.py --peer agentotel|agentops|traceloop [--blocks 20 --block 300]

Each case runs in the same process, blocks interleaved, so the floor and the decorator see the same noise:
- `floor`: the bare span on its own provider; `floor+content`: the same, also writing the arguments and result as
  JSON attributes (what a step records with content capture on);
- agentotel: `@agentotel.tool` inside a session (content off, and on), and the bare span on agentotel's provider
  inside that session (what agentotel's processors add to any span);
- agentops / traceloop: their `@tool` decorators, exporting through the same pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

import _harness as harness
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

TOOL_NAME = "add"
ATTRIBUTES = {
    "agentotel.step.kind": "tool",
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": TOOL_NAME,
    "gen_ai.tool.type": "function",
}
"""What `@agentotel.tool` puts on a tool's span at start (the floor sets the same, by name: agentotel's constants
are not importable in a peer's venv)."""


def add(a: int, b: int) -> int:
    return a + b


def floor_cases(tracer: trace.Tracer) -> dict[str, Callable[[], Any]]:
    def floor() -> int:
        with tracer.start_as_current_span(f"execute_tool {TOOL_NAME}", kind=SpanKind.INTERNAL, attributes=ATTRIBUTES):
            return add(1, 2)

    def floor_content() -> int:
        with tracer.start_as_current_span(
            f"execute_tool {TOOL_NAME}", kind=SpanKind.INTERNAL, attributes=ATTRIBUTES
        ) as span:
            span.set_attribute("gen_ai.tool.call.arguments", json.dumps({"a": 1, "b": 2}))
            result = add(1, 2)
            span.set_attribute("gen_ai.tool.call.result", json.dumps(result))
            return result

    return {"floor": floor, "floor+content": floor_content}


def agentotel_cases(floor_tracer: trace.Tracer) -> tuple[dict[str, Callable[[], Any]], Callable[[], int]]:
    os.environ["AGENTOTEL_STORE"] = "off"
    import agentotel
    from agentotel._config import settings

    provider, null = harness.make_provider()
    trace.set_tracer_provider(provider)
    agentotel.init(capture_content=False, instrument=False)
    traced_add = agentotel.tool(add)
    global_tracer = trace.get_tracer("bench")

    def agentotel_tool() -> int:
        return int(traced_add(1, 2))

    def agentotel_tool_content() -> int:
        settings.capture_content = True
        try:
            return int(traced_add(1, 2))
        finally:
            settings.capture_content = False

    def floor_on_agentotel() -> int:
        with global_tracer.start_as_current_span(
            f"execute_tool {TOOL_NAME}", kind=SpanKind.INTERNAL, attributes=ATTRIBUTES
        ):
            return add(1, 2)

    session = agentotel.start_session(name="bench-steps")
    del session  # stays current for the whole run: every case's spans belong to it
    cases = {
        **floor_cases(floor_tracer),
        "agentotel": agentotel_tool,
        "agentotel+content": agentotel_tool_content,
        "floor-on-agentotel-provider": floor_on_agentotel,
    }

    def exported() -> int:
        provider.force_flush()
        return null.count

    return cases, exported


def agentops_cases(floor_tracer: trace.Tracer) -> tuple[dict[str, Callable[[], Any]], Callable[[], int]]:
    from bench_agentops import agentops_tool

    traced_add, exported = agentops_tool(add)
    return {**floor_cases(floor_tracer), "agentops": lambda: traced_add(1, 2)}, exported


def traceloop_cases(floor_tracer: trace.Tracer) -> tuple[dict[str, Callable[[], Any]], Callable[[], int]]:
    os.environ["TRACELOOP_TRACE_CONTENT"] = "false"
    os.environ["TRACELOOP_TELEMETRY"] = "false"
    from traceloop.sdk import Traceloop
    from traceloop.sdk.decorators import tool

    null = harness.NullExporter()
    Traceloop.init(
        app_name="bench", exporter=null, disable_batch=False, telemetry_enabled=False, should_enrich_metrics=False
    )
    traced_add = tool(name=TOOL_NAME)(add)

    def exported() -> int:
        Traceloop.flush() if hasattr(Traceloop, "flush") else None
        return null.count

    return {**floor_cases(floor_tracer), "traceloop": lambda: traced_add(1, 2)}, exported


PEERS = {"agentotel": agentotel_cases, "agentops": agentops_cases, "traceloop": traceloop_cases}
PACKAGES = {"agentotel": "agentotel", "agentops": "agentops", "traceloop": "traceloop-sdk"}


def run(peer: str, *, blocks: int, block: int, warmup: int, budget_s: float) -> dict[str, Any]:
    floor_provider = TracerProvider()
    floor_null = harness.NullExporter()
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    floor_provider.add_span_processor(BatchSpanProcessor(floor_null))
    floor_tracer = floor_provider.get_tracer("bench-floor")
    result: dict[str, Any] = {"peer": peer, "versions": harness.versions("opentelemetry-sdk", PACKAGES[peer])}
    try:
        cases, exported = PEERS[peer](floor_tracer)
        for func in cases.values():
            if func() != 3:
                raise RuntimeError("a traced step returned the wrong result")
    except Exception as error:
        result.update(status="not-run", reason=f"setup failed: {type(error).__name__}: {error}"[:300])
        return result
    before = exported()
    measured = harness.interleaved(cases, block=block, blocks=blocks, warmup=warmup, budget_s=budget_s)
    spans = exported() - before
    peer_calls = sum(found.calls for name, found in measured.items() if not name.startswith("floor"))
    result.update(
        status="ok",
        cases={name: found.to_dict() for name, found in measured.items()},
        peer_spans_exported=spans,
        peer_calls=peer_calls,
    )
    if spans == 0:
        result.update(status="not-run", reason="the decorator exported no span")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", required=True, choices=sorted(PEERS))
    parser.add_argument("--blocks", type=int, default=20)
    parser.add_argument("--block", type=int, default=300, help="calls per timed block")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--budget", type=float, default=6.0, help="seconds of timing at most (after 3 blocks)")
    args = parser.parse_args(argv)
    harness.emit(run(args.peer, blocks=args.blocks, block=args.block, warmup=args.warmup, budget_s=args.budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
