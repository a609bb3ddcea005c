"""Worker: the cost of one `openai` chat completion (plain, and streamed in 20 chunks), uninstrumented or traced by
one peer, with content capture off or on. One process per (peer, mode): instrumentations patch the SDK for the
whole process and several cannot be undone.

    <venv>/bin/python benchmarks/bench_llm.py --peer agentotel --mode on [--blocks 30 --block 40]

Each process first times the calls with no tracing set up (the baseline), then sets the peer up and times them
again: the baseline and the traced calls share the process (its memory layout shifts a call's cost by as much as a
tracer adds, from one process to the next). Every peer gets the same SDK pipeline: its spans go to a global
`TracerProvider` with a `BatchSpanProcessor` in front of a null exporter. Prints one `BENCH-RESULT {json}` line:
per-block per-call times, versions, and checks (spans per call, whether the prompt showed up in the spans).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import _fake_openai as fake
import _harness as harness
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

MODES = ("off", "on")
OWN_PROVIDER = {"agentops"}
"""Peers that build their own tracer provider; the benchmark swaps its exporter for the null one."""


class NotRunnable(Exception):
    """The peer cannot run here; the message says why (shown in the table)."""


Setup = Callable[[TracerProvider, bool], str]
"""Instruments the openai SDK for one peer, content capture on or off; returns a note for the table."""


def _agentotel(provider: TracerProvider, content: bool) -> str:
    if importlib.util.find_spec("agentotel.instrumentation.openai") is None:
        raise NotRunnable("pending: agentotel/instrumentation/openai.py does not exist yet")
    os.environ["AGENTOTEL_STORE"] = "off"
    import agentotel

    agentotel.init(capture_content=content)  # adds its processors to the global provider; instruments openai
    from agentotel.instrumentation.openai import OpenAIInstrumentor

    if not OpenAIInstrumentor().is_instrumented_by_opentelemetry:
        raise NotRunnable("agentotel.init() did not instrument openai")
    return ""


def _otel_v2(provider: TracerProvider, content: bool) -> str:
    # The latest GenAI conventions, content on the span: the same shape agentotel records.
    os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "span_only" if content else "no_content"
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)
    return ""


def _otel_genai(provider: TracerProvider, content: bool) -> str:
    # The successor of openai-v2 (on opentelemetry-util-genai 1.3): the latest GenAI conventions are its only ones
    # (it reads no OTEL_SEMCONV_STABILITY_OPT_IN); content on the span, no events, as for the v2 above.
    os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "span_only" if content else "no_content"
    from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)
    return ""


def _traceloop(provider: TracerProvider, content: bool) -> str:
    os.environ["TRACELOOP_TRACE_CONTENT"] = "true" if content else "false"
    from opentelemetry.instrumentation.openai import OpenAIInstrumentor

    OpenAIInstrumentor().instrument(tracer_provider=provider)
    return ""


def _openinference(provider: TracerProvider, content: bool) -> str:
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.openai import OpenAIInstrumentor

    config = TraceConfig(hide_inputs=not content, hide_outputs=not content)
    OpenAIInstrumentor().instrument(tracer_provider=provider, config=config)
    return ""


def _openlit(provider: TracerProvider, content: bool) -> str:
    import json
    import tempfile

    import openlit

    # Its default fetches a price list from the network at init: give it a local one with the benchmark's model.
    prices = {"chat": {fake.MODEL: {"promptPrice": 0.00015, "completionPrice": 0.0006}}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump(prices, out)
    # It reuses the global provider set above. Its events would go to a console exporter and its metrics to
    # another pipeline: both off, so that, like every other peer, it records spans only.
    openlit.init(
        capture_message_content=content,
        disable_metrics=True,
        disable_events=True,
        pricing_json=out.name,
        collect_gpu_stats=False,
    )
    return "events and metrics off (spans only, like the others); local price list"


def _agentops(provider: TracerProvider, content: bool) -> str:
    return "its own provider (agentops.init), exporter swapped for the null one"


SETUPS: dict[str, Setup] = {
    "agentotel": _agentotel,
    "otel-openai-v2": _otel_v2,
    "otel-genai-openai": _otel_genai,
    "traceloop": _traceloop,
    "openinference": _openinference,
    "openlit": _openlit,
    "agentops": _agentops,
}
PACKAGES = {
    "agentotel": "agentotel",
    "otel-openai-v2": "opentelemetry-instrumentation-openai-v2",
    "otel-genai-openai": "opentelemetry-instrumentation-genai-openai",
    "traceloop": "opentelemetry-instrumentation-openai",
    "openinference": "openinference-instrumentation-openai",
    "openlit": "openlit",
    "agentops": "agentops",
}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def prompt_recorded(spans: list[Any]) -> bool:
    """Whether the benchmark's prompt is in any attribute (or event attribute) of `spans`."""
    for span in spans:
        sources = [span.attributes or {}] + [event.attributes or {} for event in span.events]
        for attributes in sources:
            for value in attributes.values():
                if any(fake.PROMPT in text for text in _strings(value)):
                    return True
    return False


def _calls(client: Any, *, blocks: int, block: int, warmup: int, budget_s: float) -> dict[str, harness.Blocks]:
    return harness.interleaved(
        {"plain": lambda: fake.call_plain(client), "stream": lambda: fake.call_stream(client)},
        block=block,
        blocks=blocks,
        warmup=warmup,
        budget_s=budget_s,
    )


def run(
    peer: str, mode: str, *, blocks: int, block: int, warmup: int, budget_s: float, session: bool
) -> dict[str, Any]:
    """The baseline (no tracing set up at all), then the peer set up and the same calls traced, in this process:
    the two share the process's memory layout, which differs from process to process by as much as a tracer
    adds."""
    started = time.perf_counter()
    result: dict[str, Any] = {
        "peer": peer,
        "mode": mode,
        "session": session,
        "versions": harness.versions("openai", "opentelemetry-sdk", PACKAGES.get(peer, peer)),
    }
    client = fake.make_client()
    baseline = _calls(client, blocks=blocks, block=block, warmup=warmup, budget_s=budget_s)
    started_setup = time.perf_counter()
    try:
        if peer in OWN_PROVIDER:
            from bench_agentops import setup_agentops

            provider, null = setup_agentops(mode == "on")
        else:
            provider, null = harness.make_provider()
            null.keep = 64
            trace.set_tracer_provider(provider)
        note = SETUPS[peer](provider, mode == "on")
    except NotRunnable as reason:
        result.update(status="not-run", reason=str(reason))
        return result
    except Exception as error:
        result.update(status="not-run", reason=f"setup failed: {type(error).__name__}: {error}"[:300])
        return result
    result["setup_s"] = round(time.perf_counter() - started_setup, 3)
    if session:
        import agentotel

        agentotel.start_session(name="bench")
    try:
        fake.call_plain(client)
        chunks = fake.call_stream(client)
    except Exception as error:
        result.update(status="not-run", reason=f"a traced call failed: {type(error).__name__}: {error}"[:300])
        return result
    if chunks != fake.STREAM_CHUNKS:
        result.update(status="not-run", reason=f"the stream gave {chunks} chunks, not {fake.STREAM_CHUNKS}")
        return result
    provider.force_flush()
    checked = list(null.seen)
    traced = _calls(client, blocks=blocks, block=block, warmup=warmup, budget_s=budget_s)
    provider.force_flush()
    calls = sum(found.calls for found in traced.values()) + 2 + 2 * warmup
    result.update(
        status="ok",
        note=note,
        baseline={kind: found.to_dict() for kind, found in baseline.items()},
        traced={kind: found.to_dict() for kind, found in traced.items()},
        spans_per_call=round(null.count / calls, 3),
        span_names=sorted({s.name for s in checked}),
        prompt_recorded=prompt_recorded(checked),
        wall_s=round(time.perf_counter() - started, 2),
    )
    if null.count == 0:
        result.update(status="not-run", reason="instrumented, but no span reached the exporter")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer", required=True, choices=sorted(SETUPS))
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--session", action="store_true", help="agentotel only: every call inside one session")
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--block", type=int, default=40, help="calls per timed block")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--budget", type=float, default=3.0, help="seconds of timing at most (after 3 blocks)")
    args = parser.parse_args(argv)
    harness.emit(
        run(
            args.peer,
            args.mode,
            blocks=args.blocks,
            block=args.block,
            warmup=args.warmup,
            budget_s=args.budget,
            session=args.session,
        )
    )
    # Leave without atexit hooks: some peers flush to their cloud endpoints at exit.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
