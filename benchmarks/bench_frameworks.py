"""Worker: the cost of ONE tool call as an agent framework runs it, with no tracing, then traced by agentotel (its
`init()` and its integration of that framework) or by the framework's OpenInference instrumentor, content capture
off or on. One process per (framework, peer, mode): instrumentors patch the framework for the whole process and
several cannot be undone.

    <python> benchmarks/bench_frameworks.py --framework langchain --peer agentotel --mode off [--blocks 20]
    <python> benchmarks/bench_frameworks.py --framework langchain --peer openinference --mode on --instructions

Each framework's tool call goes through its own tool machinery and tracing hook, without an LLM round trip:
- langchain: a `@tool`'s `.invoke(tool_call)` (what LangGraph's `ToolNode` does per call; callbacks fire);
- openai-agents: what the Runner does per function tool (`run_internal/tool_execution.py`): a `function_span` around
  `FunctionTool.on_invoke_tool`, its input and output on the span data (`trace_include_sensitive_data`, on by
  default), inside one `agents.trace(...)` per phase; the SDK's own processors (its exporter to OpenAI) removed
  in every case, the baseline included;
- pydantic-ai: agent runs on a `FunctionModel` (no HTTP): one whose model asks for 1 tool call, one for 11 in one
  response; per tool call = (run with 11 - run with 1) / 10, the model steps cancelling out (each run has two);
- crewai: `crewai.utilities.agent_utils.execute_single_native_tool_call`, what CrewAI's executors run per native
  tool call (its tool events on the event bus, its hooks, `Tool.run`); CrewAI's console output off, as a crew
  with `verbose=False` sets it;
- google-adk: `google.adk.flows.llm_flows.functions.handle_function_calls_async` on a model event with one
  function call, what ADK's flow runs per model response that calls tools (ADK's own `execute_tool` span).

The process first times the calls with no tracing set up at all (no tracer provider: the frameworks' own spans,
ADK's and Pydantic AI's, are not recorded; Pydantic AI's instrumentation off), then sets a global `TracerProvider`
with a `BatchSpanProcessor` in front of a null exporter (`_harness.py`, as every worker), sets the peer up and
times the same calls again. agentotel runs inside a session (`agentotel.start_session`), as an agent run is.
Prints one `BENCH-RESULT {json}` line: per-block per-call CPU times of each case, the figures per tool call, and
checks (spans per tool call, whether the tool's argument shows up in the spans, span names).

With `--instructions`, the same calls are counted by callgrind instead (the machinery of `bench_instructions.py`):
the worker runs itself again under valgrind and reads back the instructions of the calling thread per call.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _harness as harness
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

TOOL = "lookup_customer"
MARKER = "cust-bench-7731"
"""The tool's argument: in the spans with content capture on, never with it off."""
PEERS = ("agentotel", "openinference")
MODES = ("off", "on")
WIDE = 31
"""Tool calls in the wide Pydantic AI run (the narrow one has 1)."""

# What each framework is installed as, agentotel's integration of it, and its OpenInference instrumentor.
PACKAGES = {
    "langchain": ("langchain-core", "openinference-instrumentation-langchain"),
    "openai-agents": ("openai-agents", "openinference-instrumentation-openai-agents"),
    "pydantic-ai": ("pydantic-ai-slim", "openinference-instrumentation-pydantic-ai"),
    "crewai": ("crewai", "openinference-instrumentation-crewai"),
    "google-adk": ("google-adk", "openinference-instrumentation-google-adk"),
}
INTEGRATIONS = {
    "langchain": ("agentotel.instrumentation.langchain", "LangChainInstrumentor"),
    "openai-agents": ("agentotel.instrumentation.openai_agents", "OpenAIAgentsInstrumentor"),
    "pydantic-ai": ("agentotel.instrumentation.pydantic_ai", "PydanticAIInstrumentor"),
    "crewai": ("agentotel.instrumentation.crewai", "CrewAIInstrumentor"),
    "google-adk": ("agentotel.instrumentation.google_adk", "GoogleADKInstrumentor"),
}
CREWAI_OFFLINE = {
    "CREWAI_DISABLE_TELEMETRY": "true",
    "CREWAI_DISABLE_TRACKING": "true",
    "CREWAI_TRACING_ENABLED": "false",
    "CREWAI_DISABLE_VERSION_CHECK": "true",
    "CREWAI_TESTING": "true",
}
"""CrewAI's switches for its telemetry, trace uploads, first-run prompt and version check (as its tests set)."""


class NotRunnable(Exception):
    """The case cannot run here; the message says why (shown in the table)."""


def lookup(customer_id: str) -> str:
    return f"{customer_id}: plan pro, 2 open invoices"


@dataclass
class Driver:
    """One framework's tool call, ready to run: each case makes `tool_calls[case]` tool calls per call."""

    cases: dict[str, Callable[[], Any]]
    tool_calls: dict[str, int]
    begin: Callable[[], None] = lambda: None
    """Opens what a phase's calls run inside (the Agents SDK's trace); `end` closes it."""
    end: Callable[[], None] = lambda: None
    note: str = ""

    def per_tool(self, figures: dict[str, float]) -> float:
        """One tool call's figure from the cases' per-call figures: the one case's, or the difference between the
        widest and the narrowest case over the difference in their tool calls."""
        if len(self.cases) == 1:
            (name,) = self.cases
            return figures[name] / self.tool_calls[name]
        narrow = min(self.cases, key=lambda n: self.tool_calls[n])
        wide = max(self.cases, key=lambda n: self.tool_calls[n])
        return (figures[wide] - figures[narrow]) / (self.tool_calls[wide] - self.tool_calls[narrow])

    @property
    def narrowest(self) -> str:
        return min(self.cases, key=lambda n: self.tool_calls[n])


def _loop_caller(make: Callable[[], Any]) -> Callable[[], Any]:
    """A sync call running the coroutine `make()` makes to its end on an event loop of its own (a task per call: it
    copies the caller's context, where the session and the SDK's trace are current)."""
    loop = asyncio.new_event_loop()
    return lambda: loop.run_until_complete(make())


# --------------------------------------------------------------------------------------------------------------------
# The frameworks


def _langchain() -> Driver:
    from langchain_core.tools import tool

    @tool(TOOL)
    def lookup_customer(customer_id: str) -> str:
        """Looks a customer up by id."""
        return lookup(customer_id)

    call = {"name": TOOL, "args": {"customer_id": MARKER}, "id": "call_bench_1", "type": "tool_call"}
    return Driver({"tool": lambda: lookup_customer.invoke(call)}, {"tool": 1})


def _openai_agents() -> Driver:
    import agents
    from agents.tool_context import ToolContext
    from agents.tracing import function_span

    agents.set_trace_processors([])  # the SDK's default one exports to OpenAI: none here, in every case

    @agents.function_tool(name_override=TOOL)
    def lookup_customer(customer_id: str) -> str:
        """Looks a customer up by id."""
        return lookup(customer_id)

    arguments = json.dumps({"customer_id": MARKER})

    async def one() -> Any:
        # What the Runner does per function tool call (`_run_single_tool`), its tracing included.
        with function_span(lookup_customer.name) as span:
            context = ToolContext(
                context=None, tool_name=lookup_customer.name, tool_call_id="call_bench_1", tool_arguments=arguments
            )
            span.span_data.input = arguments
            result = await lookup_customer.on_invoke_tool(context, arguments)
            span.span_data.output = result
            return result

    call = _loop_caller(one)
    current: list[Any] = []

    def begin() -> None:
        current.append(agents.trace("bench-frameworks"))
        current[-1].start(mark_as_current=True)

    def end() -> None:
        current.pop().finish(reset_current=True)

    note = "the SDK's own trace processors removed in every case (its default exports to OpenAI)"
    return Driver({"tool": call}, {"tool": 1}, begin=begin, end=end, note=note)


def _pydantic_ai() -> Driver:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def model(calls: int) -> FunctionModel:
        def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            if len(messages) == 1:  # the prompt: ask for the tool calls, all in one response
                parts = [ToolCallPart(TOOL, {"customer_id": MARKER}, tool_call_id=f"call_{i}") for i in range(calls)]
                return ModelResponse(parts=parts)
            return ModelResponse(parts=[TextPart("done")])

        return FunctionModel(respond, model_name=f"bench-{calls}")

    agent = Agent(name="bench_agent")

    @agent.tool_plain(name=TOOL)
    def lookup_customer(customer_id: str) -> str:
        """Looks a customer up by id."""
        return lookup(customer_id)

    loop = asyncio.new_event_loop()
    cases: dict[str, Callable[[], Any]] = {}
    tool_calls: dict[str, int] = {}
    for calls in (1, WIDE):
        name, runs_on = f"run, {calls} tool call{'s' if calls > 1 else ''}", model(calls)
        cases[name] = lambda m=runs_on: loop.run_until_complete(agent.run("Look the customer up.", model=m))
        tool_calls[name] = calls
    note = f"per tool call = (run with {WIDE} tool calls - run with 1) / {WIDE - 1}; each run has two model steps"
    return Driver(cases, tool_calls, note=note)


def _crewai() -> Driver:
    os.environ.update(CREWAI_OFFLINE)
    from crewai.events.event_listener import event_listener
    from crewai.tools import tool
    from crewai.utilities.agent_utils import execute_single_native_tool_call, parse_tools
    from crewai.utilities.string_utils import sanitize_tool_name

    event_listener.formatter.verbose = False  # what a crew with verbose=False sets at kickoff

    @tool(TOOL)
    def lookup_customer(customer_id: str) -> str:
        """Looks a customer up by id."""
        return lookup(customer_id)

    tools = [lookup_customer]
    structured = parse_tools(tools)
    available: dict[str, Callable[..., Any]] = {}

    def begin() -> None:
        # An executor takes its tools' bound `run` methods when it starts (after any instrumentor wrapped them).
        available.clear()
        available.update({sanitize_tool_name(t.name): t.run for t in tools})

    call = {
        "id": "call_bench_1",
        "type": "function",
        "function": {"name": TOOL, "arguments": json.dumps({"customer_id": MARKER})},
    }
    source = object()

    def one() -> Any:
        return execute_single_native_tool_call(
            call,
            available_functions=available,
            original_tools=tools,
            structured_tools=structured,
            tools_handler=None,
            agent=None,
            task=None,
            crew=None,
            event_source=source,
        ).result

    return Driver({"tool": one}, {"tool": 1}, begin=begin, note="console output off (a crew's verbose=False)")


def _google_adk() -> Driver:
    from google.adk.agents import LlmAgent
    from google.adk.agents.invocation_context import InvocationContext
    from google.adk.events import Event
    from google.adk.flows.llm_flows.functions import handle_function_calls_async
    from google.adk.sessions import InMemorySessionService
    from google.genai import types

    def lookup_customer(customer_id: str) -> str:
        """Looks a customer up by id."""
        return lookup(customer_id)

    agent = LlmAgent(name="bench_agent", model="gemini-2.0-flash", tools=[lookup_customer])  # never called
    sessions = InMemorySessionService()
    loop = asyncio.new_event_loop()
    session = loop.run_until_complete(sessions.create_session(app_name="bench", user_id="bench"))
    context = InvocationContext(session_service=sessions, invocation_id="e-bench", agent=agent, session=session)
    tools = {t.name: t for t in loop.run_until_complete(agent.canonical_tools(None))}
    function_call = types.FunctionCall(id="call_bench_1", name=TOOL, args={"customer_id": MARKER})
    event = Event(
        author=agent.name,
        invocation_id="e-bench",
        content=types.Content(role="model", parts=[types.Part(function_call=function_call)]),
    )
    if TOOL not in tools:
        raise NotRunnable(f"ADK named the tool {sorted(tools)}")
    return Driver(
        {"tool": lambda: loop.run_until_complete(handle_function_calls_async(context, event, tools))}, {"tool": 1}
    )


FRAMEWORKS: dict[str, Callable[[], Driver]] = {
    "langchain": _langchain,
    "openai-agents": _openai_agents,
    "pydantic-ai": _pydantic_ai,
    "crewai": _crewai,
    "google-adk": _google_adk,
}


# --------------------------------------------------------------------------------------------------------------------
# The peers


def _agentotel(framework: str, provider: TracerProvider, content: bool) -> str:
    os.environ["AGENTOTEL_STORE"] = "off"
    import agentotel

    agentotel.init(capture_content=content)  # adds its processors to the global provider; hooks the framework
    module, name = INTEGRATIONS[framework]
    try:
        instrumentor = getattr(importlib.import_module(module), name)()
    except ImportError as error:
        raise NotRunnable(f"pending: {module} cannot be imported ({error})") from error
    if not instrumentor.applied:
        raise NotRunnable(f"agentotel.init() did not hook {framework}")
    agentotel.start_session(name="bench-frameworks")  # current for the whole run: every tool call belongs to it
    return "in a session"


def _oi_config(content: bool) -> Any:
    from openinference.instrumentation import TraceConfig

    return TraceConfig(hide_inputs=not content, hide_outputs=not content)


def _oi_import(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError as error:
        raise NotRunnable(f"{module} is not installed here: run python benchmarks/peers/setup.py") from error


def _openinference(framework: str, provider: TracerProvider, content: bool) -> str:
    if framework == "pydantic-ai":
        # OpenInference converts Pydantic AI's own spans (its span processor, added first by `pipeline`): Pydantic
        # AI's instrumentation is turned on as its docs say, its defaults but for the content switch.
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings

        Agent.instrument_all(InstrumentationSettings(tracer_provider=provider, include_content=content))
        return "Pydantic AI's instrumentation (its defaults) + OpenInferenceSpanProcessor"
    modules = {
        "langchain": "openinference.instrumentation.langchain",
        "openai-agents": "openinference.instrumentation.openai_agents",
        "crewai": "openinference.instrumentation.crewai",
        "google-adk": "openinference.instrumentation.google_adk",
    }
    names = {
        "langchain": "LangChainInstrumentor",
        "openai-agents": "OpenAIAgentsInstrumentor",
        "crewai": "CrewAIInstrumentor",
        "google-adk": "GoogleADKInstrumentor",
    }
    instrumentor = _oi_import(modules[framework], names[framework])()
    instrumentor.instrument(tracer_provider=provider, config=_oi_config(content))
    return ""


def _first_processors(framework: str, peer: str) -> list[SpanProcessor]:
    """Processors that go in front of the batch processor (they change spans before they are queued)."""
    if framework == "pydantic-ai" and peer == "openinference":
        return [_oi_import("openinference.instrumentation.pydantic_ai", "OpenInferenceSpanProcessor")()]
    return []


SETUPS = {"agentotel": _agentotel, "openinference": _openinference}


def pipeline(first: list[SpanProcessor]) -> tuple[TracerProvider, harness.NullExporter]:
    """The global provider every case gets: `first` (a peer's own processors), then a `BatchSpanProcessor` (SDK
    defaults) in front of the null exporter; the peer may add its own after (agentotel's `init()` does)."""
    if not first:
        provider, null = harness.make_provider()
    else:
        provider, null = TracerProvider(), harness.NullExporter()
        for processor in first:
            provider.add_span_processor(processor)
        provider.add_span_processor(BatchSpanProcessor(null))
    trace.set_tracer_provider(provider)
    return provider, null


def _set_up(framework: str, peer: str, mode: str) -> tuple[TracerProvider, harness.NullExporter, str]:
    """The pipeline and the peer on it, content capture on or off; raises `NotRunnable` when the peer cannot run
    here."""
    provider, null = pipeline(_first_processors(framework, peer))
    note = SETUPS[peer](framework, provider, mode == "on")
    return provider, null, note


# --------------------------------------------------------------------------------------------------------------------
# Checks


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, str)]
    return []


def content_recorded(spans: list[Any]) -> bool:
    """Whether the tool's argument is in any attribute (or event attribute) of `spans`."""
    for span in spans:
        sources = [span.attributes or {}] + [event.attributes or {} for event in span.events]
        for attributes in sources:
            for value in attributes.values():
                if any(MARKER in text for text in _strings(value)):
                    return True
    return False


def check(driver: Driver, provider: TracerProvider, null: harness.NullExporter) -> dict[str, Any]:
    """Runs each case once, traced: the spans it exports, their names, whether the tool's argument is in them."""
    spans_per_call: dict[str, int] = {}
    null.seen, null.keep = [], 256
    for name, func in driver.cases.items():
        provider.force_flush()
        before = null.count
        func()
        provider.force_flush()
        spans_per_call[name] = null.count - before
    seen = list(null.seen)
    null.seen, null.keep = [], 0
    counts = {name: float(n) for name, n in spans_per_call.items()}
    return {
        "spans_per_call": spans_per_call,
        "spans_per_tool_call": round(driver.per_tool(counts), 3),
        "content_recorded": content_recorded(seen),
        "span_names": sorted({span.name for span in seen})[:12],
    }


# --------------------------------------------------------------------------------------------------------------------
# Timing


def _calibrated(cases: dict[str, Callable[[], Any]], warmup: int, block_ms: float) -> int:
    """Warms each case up (`warmup` calls, or 0.3 s of them: at least 3), then times 3 more calls of each; the calls
    per block that make the slowest case's block about `block_ms`."""
    slowest = 0.0
    for func in cases.values():
        started, done = time.perf_counter(), 0
        while done < 3 or (done < warmup and time.perf_counter() - started < 0.3):
            func()
            done += 1
        started = time.perf_counter()
        for _ in range(3):
            func()
        slowest = max(slowest, (time.perf_counter() - started) / 3)
    return max(1, round(block_ms / 1000 / slowest)) if slowest > 0 else 1


def timed(driver: Driver, args: argparse.Namespace) -> dict[str, harness.Blocks]:
    """Each case timed in blocks (cases interleaved block by block), inside the driver's phase."""
    driver.begin()
    try:
        block = _calibrated(driver.cases, args.warmup, args.block_ms)
        return harness.interleaved(driver.cases, block=block, blocks=args.blocks, warmup=0, budget_s=args.budget)
    finally:
        driver.end()


def _figures(measured: dict[str, harness.Blocks]) -> dict[str, float]:
    """Each case's CPU µs per call: its best block's (noise only ever adds time)."""
    return {name: min(found.cpu_us) for name, found in measured.items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The baseline (no tracing set up), then the peer set up and the same calls traced, in this process."""
    result: dict[str, Any] = {"framework": args.framework, "peer": args.peer, "mode": args.mode}
    framework_package, oi_package = PACKAGES[args.framework]
    peer_package = "agentotel" if args.peer == "agentotel" else oi_package
    result["versions"] = harness.versions(framework_package, "opentelemetry-sdk", peer_package)
    try:
        driver = FRAMEWORKS[args.framework]()
    except NotRunnable as reason:
        return {**result, "status": "not-run", "reason": str(reason)}
    except ImportError as error:
        return {**result, "status": "not-run", "reason": f"{framework_package} is not installed here: {error}"[:300]}
    baseline = timed(driver, args)
    try:
        provider, null, note = _set_up(args.framework, args.peer, args.mode)
    except NotRunnable as reason:
        return {**result, "status": "not-run", "reason": str(reason)}
    except Exception as error:
        return {**result, "status": "not-run", "reason": f"setup failed: {type(error).__name__}: {error}"[:300]}
    driver.begin()
    try:
        checks = check(driver, provider, null)
    finally:
        driver.end()
    traced = timed(driver, args)
    base, with_peer = _figures(baseline), _figures(traced)
    narrow = driver.narrowest
    result.update(
        status="ok",
        note="; ".join(n for n in (driver.note, note) if n),
        baseline={name: found.to_dict() for name, found in baseline.items()},
        traced={name: found.to_dict() for name, found in traced.items()},
        tool_calls=driver.tool_calls,
        base_us=round(driver.per_tool(base), 3),
        traced_us=round(driver.per_tool(with_peer), 3),
        added_us=round(driver.per_tool(with_peer) - driver.per_tool(base), 3),
        call_case=narrow,
        call_base_us=round(base[narrow], 3),
        call_added_us=round(with_peer[narrow] - base[narrow], 3),
        **checks,
    )
    if checks["spans_per_tool_call"] <= 0:
        result.update(status="not-run", reason=f"{args.peer} recorded no span for a tool call")
    return result


# --------------------------------------------------------------------------------------------------------------------
# Instructions (callgrind)


def inside(args: argparse.Namespace) -> int:
    """Runs under callgrind: each case's baseline block, the peer's set-up, each case's traced block."""
    import bench_instructions as counting

    folder = Path(args.profiles)
    blocks: dict[str, Any] = {}
    result: dict[str, Any] = {"blocks": blocks}
    try:
        driver = FRAMEWORKS[args.framework]()
    except (NotRunnable, ImportError) as reason:
        result.update(status="not-run", reason=str(reason)[:300])
        sys.stdout.write(counting.INSIDE_PREFIX + json.dumps(result) + "\n")
        return 0
    for phase in ("baseline", "traced"):
        if phase == "traced":
            try:
                provider, null, result["note"] = _set_up(args.framework, args.peer, args.mode)
            except Exception as reason:
                result.update(status="not-run", reason=f"{type(reason).__name__}: {reason}"[:300])
                sys.stdout.write(counting.INSIDE_PREFIX + json.dumps(result) + "\n")
                return 0
        driver.begin()
        try:
            for func in driver.cases.values():
                for _ in range(args.warmup):
                    func()
            if phase == "traced":
                result.update(check(driver, provider, null))
            for name, func in driver.cases.items():
                counting.measure(folder, f"{phase}.{name}", func, args.calls, blocks)
        finally:
            driver.end()
    result.update(status="ok", tool_calls=driver.tool_calls, narrowest=driver.narrowest)
    sys.stdout.write(counting.INSIDE_PREFIX + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()
    return 0


def count_instructions(args: argparse.Namespace) -> dict[str, Any]:
    """Runs this worker under callgrind; instructions per tool call, baseline and traced."""
    import bench_instructions as counting

    result: dict[str, Any] = {"framework": args.framework, "peer": args.peer, "mode": args.mode}
    framework_package, oi_package = PACKAGES[args.framework]
    peer_package = "agentotel" if args.peer == "agentotel" else oi_package
    result["versions"] = harness.versions(framework_package, "opentelemetry-sdk", peer_package)
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return {**result, "status": "not-run", "reason": "valgrind is not installed (Debian: apt-get install valgrind)"}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="agentotel-callgrind-") as scratch:
        folder = Path(scratch)
        command = [
            valgrind,
            *counting.CALLGRIND_OPTIONS,
            f"--callgrind-out-file={folder / 'cg.%p'}",
            sys.executable,
            __file__,
            "--inside",
            "--profiles",
            str(folder),
            *("--framework", args.framework, "--peer", args.peer, "--mode", args.mode),
            *("--calls", str(args.calls), "--warmup", str(args.warmup)),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts, hence the same count, every run
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
        inner = None
        for line in reversed(done.stdout.splitlines()):
            if line.startswith(counting.INSIDE_PREFIX):
                inner = json.loads(line[len(counting.INSIDE_PREFIX) :])
                break
        if inner is None:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            return {**result, "status": "error", "reason": f"callgrind run exit {done.returncode}: {tail}"[:400]}
        blocks = inner.pop("blocks")
        result.update(inner)
        if inner.get("status") == "ok":
            per_call = {label: counting.read_total(folder / b["file"]) / b["calls"] for label, b in blocks.items()}
            driver = Driver({name: lambda: None for name in inner["tool_calls"]}, inner["tool_calls"])
            base = {name: per_call[f"baseline.{name}"] for name in driver.cases}
            traced = {name: per_call[f"traced.{name}"] for name in driver.cases}
            narrow = driver.narrowest
            result.update(
                baseline_instructions=round(driver.per_tool(base)),
                traced_instructions=round(driver.per_tool(traced)),
                added_instructions=round(driver.per_tool(traced) - driver.per_tool(base)),
                call_case=narrow,
                call_base_instructions=round(base[narrow]),
                call_added_instructions=round(traced[narrow] - base[narrow]),
            )
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--framework", required=True, choices=sorted(FRAMEWORKS))
    parser.add_argument("--peer", required=True, choices=PEERS)
    parser.add_argument("--mode", required=True, choices=MODES)
    parser.add_argument("--blocks", type=int, default=20, help="timed blocks per case (each phase)")
    parser.add_argument("--block-ms", type=float, default=20.0, help="about how long a block of the slowest case is")
    parser.add_argument("--warmup", type=int, default=50, help="calls of each case before timing (each phase)")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timing per phase at most")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind instead")
    parser.add_argument("--calls", type=int, default=50, help="instructions: calls counted per case")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--profiles", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inside:
        code = inside(args)
        sys.stdout.flush()
        os._exit(code)  # no atexit hooks, no shutdown flush: nothing of the peer's teardown is counted
    harness.emit(count_instructions(args) if args.instructions else run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
