"""Runs every agentotel benchmark, prints the tables and writes `benchmarks/results/latest.json`.

    .venv/bin/python benchmarks/run.py                 # everything (~10 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --only llm,steps
    .venv/bin/python benchmarks/run.py --smoke         # seconds: correctness only (what CI runs)
    .venv/bin/python benchmarks/run.py --readme        # also writes the tables into benchmarks/README.md

Peers (other tracing SDKs) run in their own venvs, made by `python benchmarks/peers/setup.py`; a peer whose venv
is missing gets a row that says so. Every measurement is a worker process (`bench_*.py`) that prints one JSON
line; LLM-call and step workers run in `--rounds` rounds, in a shuffled order each round, and each figure is the
median over rounds of each process's best block (CPU time per call). Overheads are always against a baseline
measured in the same process: the calls before tracing is set up (LLM calls), or the bare SDK (steps, processors).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _harness as harness  # noqa: E402
import _report as report  # noqa: E402
from peers.setup import FRAMEWORK_VENVS, PEERS, framework_python, is_ready, venv_python  # noqa: E402

SCENARIOS = (
    "llm",
    "instructions",
    "steps",
    "processors",
    "reconstruction",
    "memory",
    "frameworks",
    "framework-instructions",
)
MAIN_SCENARIOS = SCENARIOS[:6]
"""The scenarios of the README's main results block (the framework scenarios have a block of their own)."""
FRAMEWORKS = ("langchain", "openai-agents", "pydantic-ai", "crewai", "google-adk")
FRAMEWORK_PEERS = ("agentotel", "openinference")
LLM_PEERS = (
    "agentotel",
    "otel-openai-v2",
    "otel-genai-openai",
    "traceloop",
    "openinference",
    "openlit",
    "agentops",
)
STEP_PEERS = ("agentotel", "agentops", "traceloop")
RESULTS = HERE / "results" / "latest.json"


@dataclass
class Profile:
    """How much work each worker does: the full run, or the smoke run's few iterations."""

    rounds: int
    llm: list[str]
    instructions: list[str]
    instruction_steps: list[str]
    steps: list[str]
    processors: list[str]
    reconstruction: list[str]
    memory: list[str]
    timeout_s: float
    peers: bool = True
    llm_session: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    frameworks: list[str] = field(default_factory=list)
    framework_instructions: list[str] | None = None
    """None: not run (minutes under valgrind, for the full run only)."""
    framework_venvs: bool = True
    """Whether frameworks in venvs of their own (CrewAI, Google ADK) run, when their venv is there."""
    parallel_frameworks: bool = False
    """Run the framework jobs two at a time (correctness only: CPU time is not comparable then)."""


FULL = Profile(
    rounds=3,
    llm=["--blocks", "30", "--block", "20", "--warmup", "20", "--budget", "2.0"],
    instructions=["--plain", "40", "--stream", "15", "--warmup", "20"],
    instruction_steps=["--calls", "200", "--warmup", "300"],
    steps=["--blocks", "20", "--block", "300", "--warmup", "300", "--budget", "3.0"],
    processors=["--sessions", "1,100,10000", "--spans", "20000", "--block", "1000"],
    reconstruction=["--spans", "100000", "--stored-sessions", "100000", "--events", "10000", "--repeat", "3"],
    memory=["--spans", "1000000", "--sessions", "10000", "--concurrent", "100", "--every", "100000"],
    timeout_s=600,
    frameworks=["--blocks", "30", "--block-ms", "30", "--warmup", "30", "--budget", "1.2"],
    framework_instructions=["--instructions", "--calls", "40", "--warmup", "20"],
)
SMOKE = Profile(
    rounds=1,
    llm=["--blocks", "3", "--block", "2", "--warmup", "1", "--budget", "0.5"],
    instructions=["--plain", "2", "--stream", "1", "--warmup", "1"],
    instruction_steps=["--calls", "5", "--warmup", "5"],
    steps=["--blocks", "3", "--block", "20", "--warmup", "5", "--budget", "0.5"],
    processors=["--sessions", "1,10", "--spans", "200", "--block", "50"],
    reconstruction=["--spans", "2000", "--stored-sessions", "300", "--events", "300", "--repeat", "1"],
    memory=["--spans", "20000", "--sessions", "200", "--concurrent", "20", "--every", "5000"],
    timeout_s=300,  # generous: a job that takes 20 s alone can take minutes on a loaded 2-core machine
    peers=False,
    llm_session=False,
    frameworks=["--blocks", "3", "--block-ms", "2", "--warmup", "2", "--budget", "0.2"],
    framework_venvs=False,
    parallel_frameworks=True,
)


@dataclass
class Job:
    scenario: str
    script: str
    python: str
    args: list[str]
    label: dict[str, Any]


def _peer_python(peer: str) -> tuple[str | None, str | None]:
    """(the interpreter that runs `peer`, or None and why not)."""
    if peer == "agentotel":
        return sys.executable, None
    if peer not in PEERS:
        return None, f"unknown peer {peer}"
    if not is_ready(peer):
        return None, "venv missing or out of date: run python benchmarks/peers/setup.py"
    return str(venv_python(peer)), None


def run_job(job: Job, timeout_s: float) -> dict[str, Any]:
    """Runs one worker; its result (or why there is none), with the job's label."""
    command = [job.python, str(HERE / job.script), *job.args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AGENTOPS_", "TRACELOOP_"))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    started = time.perf_counter()
    try:
        # A scratch working directory: some peers write files into it (AgentOps: agentops.log).
        with tempfile.TemporaryDirectory(prefix="agentotel-bench-") as scratch:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=scratch)
    except subprocess.TimeoutExpired:
        return {**job.label, "status": "error", "reason": f"timed out after {timeout_s:.0f}s"}
    result = harness.parse_result(done.stdout)
    if result is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {**job.label, "status": "error", "reason": f"exit {done.returncode}: {' | '.join(tail)}"[:400]}
    result.setdefault("process_s", round(time.perf_counter() - started, 2))
    return {**result, **job.label}


def _llm_peer_jobs(
    profile: Profile, scenario: str, script: str, extra: list[str], *, session_row: bool
) -> tuple[list[Job], list[dict[str, Any]]]:
    """A job per (LLM peer, content mode) running `script`, and the peers that cannot run (with why); with
    `session_row`, one more agentotel job with every call inside a session."""
    jobs: list[Job] = []
    missing: list[dict[str, Any]] = []
    for peer in LLM_PEERS if profile.peers else ("agentotel",):
        python, reason = _peer_python(peer)
        if python is None:
            missing.append({"peer": peer, "status": "not-run", "reason": reason})
            continue
        modes = [("off", False), ("on", False)] + ([("off", True)] if session_row and peer == "agentotel" else [])
        for mode, in_session in modes:
            args = ["--peer", peer, "--mode", mode, *(["--session"] if in_session else []), *extra]
            label: dict[str, Any] = {"peer": peer, "mode": mode}
            if scenario == "llm":
                label["session"] = in_session
            jobs.append(Job(scenario, script, python, args, label))
    return jobs, missing


def llm_jobs(profile: Profile) -> tuple[list[Job], list[dict[str, Any]]]:
    return _llm_peer_jobs(profile, "llm", "bench_llm.py", profile.llm, session_row=profile.llm_session)


def instruction_jobs(profile: Profile) -> tuple[list[Job], list[dict[str, Any]]]:
    """One callgrind run per (peer, content mode): instruction counts are the same from run to run, so one
    round is enough."""
    return _llm_peer_jobs(profile, "instructions", "bench_instructions.py", profile.instructions, session_row=False)


def run_parallel(jobs: list[Job], timeout_s: float, log: Any, workers: int = 2) -> list[dict[str, Any]]:
    """Each job once, `workers` at a time: for instruction counts, which another process on the core cannot
    change (CPU-time jobs always run one at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    def one(job: Job) -> dict[str, Any]:
        found = run_job(job, timeout_s)
        log(f"  {job.scenario} {json.dumps(job.label)}: {found.get('status')}")
        return found

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(one, jobs))


def step_jobs(profile: Profile) -> tuple[list[Job], list[dict[str, Any]]]:
    jobs: list[Job] = []
    missing: list[dict[str, Any]] = []
    for peer in STEP_PEERS if profile.peers else ("agentotel",):
        python, reason = _peer_python(peer)
        if python is None:
            missing.append({"peer": peer, "status": "not-run", "reason": reason})
            continue
        jobs.append(Job("steps", "bench_steps.py", python, ["--peer", peer, *profile.steps], {"peer": peer}))
    return jobs, missing


def run_rounds(jobs: list[Job], rounds: int, timeout_s: float, log: Any) -> list[list[dict[str, Any]]]:
    """Each job once per round, in a different order each round; the results of each job, by job index."""
    results: list[list[dict[str, Any]]] = [[] for _ in jobs]
    for number in range(rounds):
        order = list(range(len(jobs)))
        random.Random(number).shuffle(order)
        for index in order:
            job = jobs[index]
            found = run_job(job, timeout_s)
            results[index].append(found)
            log(f"  round {number + 1}/{rounds} {job.scenario} {json.dumps(job.label)}: {found.get('status')}")
    return results


def _framework_python(framework: str) -> tuple[str | None, str | None]:
    """(the interpreter that runs `framework`, or None and why not)."""
    spec = FRAMEWORK_VENVS.get(framework)
    if spec is None:
        return sys.executable, None
    python = framework_python(framework)
    if not python.exists():
        return None, f"venv missing: bash {spec.script} makes {python.parent.parent}"
    return str(python), None


def framework_jobs(profile: Profile, extra: list[str], modes: Sequence[str]) -> tuple[list[Job], list[dict[str, Any]]]:
    """A job per (framework, peer, content mode) running `bench_frameworks.py`, and the frameworks that cannot run
    here (with why)."""
    jobs: list[Job] = []
    missing: list[dict[str, Any]] = []
    for framework in FRAMEWORKS:
        if framework in FRAMEWORK_VENVS and not profile.framework_venvs:
            continue
        python, reason = _framework_python(framework)
        if python is None:
            missing.append({"framework": framework, "status": "not-run", "reason": reason})
            continue
        for peer in FRAMEWORK_PEERS if profile.peers else ("agentotel",):
            for mode in modes:
                args = ["--framework", framework, "--peer", peer, "--mode", mode, *extra]
                label = {"framework": framework, "peer": peer, "mode": mode}
                jobs.append(Job("frameworks", "bench_frameworks.py", python, args, label))
    return jobs, missing


def _begun() -> dict[str, Any]:
    """When a scenario starts: its date, the load average and the clock (for `_stamped`)."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": [round(x, 2) for x in os.getloadavg()],
        "clock": time.perf_counter(),
    }


def _stamped(part: dict[str, Any], begun: dict[str, Any], command: str) -> dict[str, Any]:
    """A scenario's results with when, how long and by which command they were measured (they may be kept in
    `latest.json` past later runs of other scenarios)."""
    part.update(
        date=begun["date"],
        command=command,
        elapsed_s=round(time.perf_counter() - begun["clock"], 1),
        load_average=[begun["load"], [round(x, 2) for x in os.getloadavg()]],
    )
    return part


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 0
    return {
        "nproc": cores,
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few iterations of each scenario, no peers")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--rounds", type=int, help="rounds of LLM-call and step workers (default 3; smoke 1)")
    parser.add_argument("--out", type=Path, default=None, help=f"where to write the JSON (default {RESULTS})")
    parser.add_argument("--readme", action="store_true", help="write the tables into benchmarks/README.md")
    parser.add_argument("--quiet", action="store_true", help="print only the tables")
    args = parser.parse_args(argv)
    profile = SMOKE if args.smoke else FULL
    rounds = args.rounds or profile.rounds
    wanted = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")

    def log(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    started = time.perf_counter()
    command = "python benchmarks/run.py" + (" --smoke" if args.smoke else "")
    if set(wanted) != set(SCENARIOS):
        command += f" --only {','.join(wanted)}"
    data: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
        "smoke": args.smoke,
        "machine": machine(),
        "peers": {name: {"note": peer.note, "openai": peer.openai} for name, peer in PEERS.items()},
    }
    if "llm" in wanted:
        log("LLM-call overhead ...")
        jobs, missing = llm_jobs(profile)
        data["llm"] = report.llm_rows(jobs, run_rounds(jobs, rounds, profile.timeout_s, log), missing)
    if "instructions" in wanted:
        log("LLM-call instructions (callgrind) ...")
        jobs, missing = instruction_jobs(profile)
        steps_args = ["--peer", "agentotel", "--mode", "off", "--what", "steps", *profile.instruction_steps]
        steps = Job("instructions", "bench_instructions.py", sys.executable, steps_args, {"what": "steps"})
        found = run_parallel([*jobs, steps], profile.timeout_s * 2, log)
        data["instructions"] = report.instruction_rows(found[:-1], missing)
        data["instruction_steps"] = found[-1]
    if "steps" in wanted:
        log("Step overhead ...")
        jobs, missing = step_jobs(profile)
        data["steps"] = report.step_rows(run_rounds(jobs, rounds, profile.timeout_s, log), missing)
    for scenario, script, extra in (
        ("processors", "bench_processors.py", profile.processors),
        ("reconstruction", "bench_reconstruction.py", profile.reconstruction),
        ("memory", "bench_memory.py", profile.memory),
    ):
        if scenario in wanted:
            log(f"{scenario} ...")
            data[scenario] = run_job(Job(scenario, script, sys.executable, extra, {}), profile.timeout_s)
    if "frameworks" in wanted:
        log("Framework tool calls ...")
        begun = _begun()
        jobs, missing = framework_jobs(profile, profile.frameworks, ("off", "on"))
        if profile.parallel_frameworks:
            found = [[r] for r in run_parallel(jobs, profile.timeout_s, log)]
        else:
            found = run_rounds(jobs, rounds, profile.timeout_s, log)
        data["frameworks"] = _stamped(report.framework_rows(jobs, found, missing), begun, command)
    if "framework-instructions" in wanted and profile.framework_instructions is not None:
        log("Framework tool calls, instructions (callgrind) ...")
        begun = _begun()
        # Content capture off only: each job spends minutes importing its framework under valgrind.
        counted = dataclasses.replace(profile, framework_venvs=False)
        jobs, missing = framework_jobs(counted, profile.framework_instructions, ("off",))
        found = run_parallel(jobs, profile.timeout_s * 2, log)
        rows = report.framework_instruction_rows(jobs, found, missing)
        data["framework_instructions"] = _stamped(rows, begun, command)
    data["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    data["elapsed_s"] = round(time.perf_counter() - started, 1)
    out = args.out or RESULTS
    if not args.smoke and out.exists() and set(wanted) != set(SCENARIOS):
        _carry_over(data, out)
    data["targets"] = report.targets(data)
    text = report.render(data)
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1, default=str) + "\n")
    log(f"wrote {out}")
    if args.readme:
        if any(s in wanted for s in MAIN_SCENARIOS):
            report.update_readme(HERE / "README.md", report.render(data, main=True))
        if any(s in wanted for s in ("frameworks", "framework-instructions")):
            block = report.render_frameworks(data)
            report.update_readme(HERE / "README.md", block, report.FRAMEWORKS_START, report.FRAMEWORKS_END)
        log(f"wrote {HERE / 'README.md'}")
    return 0


RESULT_KEYS = ("llm", "instructions", "instruction_steps", "steps", "processors", "reconstruction", "memory")
RESULT_KEYS += ("frameworks", "framework_instructions")


def _carry_over(data: dict[str, Any], previous_path: Path) -> None:
    """Keeps the results of the scenarios this run did not measure from the previous results file (a subset run
    must not erase them), noting when they were measured."""
    try:
        previous = json.loads(previous_path.read_text())
    except (OSError, ValueError):
        return
    if previous.get("smoke"):
        return
    kept = {}
    for key in RESULT_KEYS:
        if key not in data and key in previous:
            data[key] = previous[key]
            kept[key] = previous.get("carried_over", {}).get(key) or previous.get("date")
    if kept:
        data["carried_over"] = kept
        data["carried_over_machine"] = previous.get("carried_over_machine") or previous.get("machine")


if __name__ == "__main__":
    sys.exit(main())
