"""How processes end: `multiprocessing` workers (fork and spawn, `Process` and `Pool`, `Pool.terminate()`) and
SIGTERM (as `docker stop` sends it). Sessions that ended before are stored; sessions still open end `Indeterminate`
with a reason; what could not be exported in the bounded time is counted and said; the app's own SIGTERM handler
and exit code are kept (issue 13, items 10 and 11)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import SpanProcessor

import agentotel
from agentotel import configure

from .support import HANG, FaultyOTLPBackend, child_env, run_child

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fork")

NO_CLIENTS = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "openai,anthropic"}


def stored(db: Path) -> dict[str, tuple[str | None, str | None, int]]:
    """name -> (end state, reason, tool calls) of every session in the store."""
    connection = sqlite3.connect(db)
    try:
        rows = connection.execute("SELECT name, end_state, end_state_reason, tool_calls FROM sessions").fetchall()
    finally:
        connection.close()
    return {name: (state, reason, calls) for name, state, reason, calls in rows}


@dataclass
class Child:
    """A child interpreter whose output is read as it comes."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        """Waits until a line of stdout holds `text` (or fails with what the child said)."""
        with self._changed:
            if not self._changed.wait_for(lambda: any(text in line for line in self.lines), timeout):
                raise AssertionError(f"no {text!r} from the child: {''.join(self.lines)} {''.join(self.errors)}")

    def finish(self, timeout: float = 60.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the child did not exit: {''.join(self.lines)} {''.join(self.errors)}") from None

    @property
    def stdout(self) -> str:
        return "".join(self.lines)

    @property
    def stderr(self) -> str:
        return "".join(self.errors)


@contextmanager
def child(code: str, env: dict[str, str], tmp_path: Path, *args: str) -> Iterator[Child]:
    script = tmp_path / f"app_{abs(hash(code)) % 10**8}.py"
    script.write_text(textwrap.dedent(code))
    process = subprocess.Popen(
        [sys.executable, str(script), *args],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    found = Child(process)

    def read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with found._changed:
                into.append(line)
                found._changed.notify_all()

    readers = [
        threading.Thread(target=read, args=(process.stdout, found.lines), daemon=True),
        threading.Thread(target=read, args=(process.stderr, found.errors), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        yield found
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for reader in readers:
            reader.join(10)


# --- multiprocessing (item 10) ----------------------------------------------------------------------------------------

WORKERS = """
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import agentotel

agentotel.init()


@agentotel.tool
def step(n):
    return n


def task(n):
    with agentotel.session(f"{sys.argv[1]}-{n}"):
        for i in range(3):
            step(i)
    return n


def stuck_task(n):
    with agentotel.session(f"stuck-{n}"):
        step(0)
        Path(os.environ["WORK_DIR"], f"started-{n}").write_text("")
        time.sleep(600)  # the pool is terminated while this runs


if __name__ == "__main__":
    import faulthandler

    faulthandler.dump_traceback_later(150, exit=True)  # a hang shows where it is before the test gives up
    mode = sys.argv[1]
    if mode == "fork-process":
        ctx = mp.get_context("fork")
        workers = [ctx.Process(target=task, args=(n,)) for n in range(3)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        print("EXIT CODES", [worker.exitcode for worker in workers])
    elif mode in ("fork-pool", "spawn-pool"):
        with mp.get_context(mode.split("-")[0]).Pool(2) as pool:  # its __exit__ terminates the workers
            assert pool.map(task, range(4)) == [0, 1, 2, 3]
    elif mode in ("fork-pool-closed", "spawn-pool-closed"):
        pool = mp.get_context(mode.split("-")[0]).Pool(2)
        assert pool.map(task, range(4)) == [0, 1, 2, 3]
        pool.close()
        pool.join()
    elif mode == "terminate":
        pool = mp.get_context("fork").Pool(2)
        for n in range(2):
            pool.apply_async(stuck_task, (n,))
        deadline = time.monotonic() + 120
        while not all(Path(os.environ["WORK_DIR"], f"started-{n}").exists() for n in range(2)):
            assert time.monotonic() < deadline, "the tasks never started"
            time.sleep(0.01)
        started = time.monotonic()
        pool.terminate()
        pool.join()
        print("TERMINATED IN", round(time.monotonic() - started, 2))
    print("READY-TO-EXIT")
"""


@pytest.mark.parametrize("mode", ["fork-process", "fork-pool", "spawn-pool", "fork-pool-closed", "spawn-pool-closed"])
def test_sessions_of_multiprocessing_workers_are_stored(mode: str, tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    env = child_env(tmp_path, AGENTOTEL_STORE=str(db), **NO_CLIENTS)
    run = run_child(WORKERS, env, tmp_path, timeout=180, args=(mode,))
    assert run.returncode == 0, run.stderr[-3000:]
    count = 3 if mode == "fork-process" else 4
    wanted = {f"{mode}-{n}": ("Success", None, 3) for n in range(count)}
    assert {name: row for name, row in stored(db).items() if name.startswith(mode)} == wanted, run.stderr[-3000:]
    if mode == "fork-process":
        assert "EXIT CODES [0, 0, 0]" in run.stdout
    assert "Traceback" not in run.stderr, run.stderr[-3000:]


def test_a_terminated_pool_stores_what_its_workers_did_and_ends_their_sessions(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    env = child_env(tmp_path, AGENTOTEL_STORE=str(db), WORK_DIR=str(tmp_path), **NO_CLIENTS)
    run = run_child(WORKERS, env, tmp_path, timeout=180, args=("terminate",))
    assert run.returncode == 0, run.stderr[-3000:]
    reason = "the process was terminated (SIGTERM) with the session open"
    assert {name: row for name, row in stored(db).items() if name.startswith("stuck")} == {
        "stuck-0": ("Indeterminate", reason, 1),
        "stuck-1": ("Indeterminate", reason, 1),
    }, run.stderr[-3000:]


# --- SIGTERM (item 11) ------------------------------------------------------------------------------------------------

SERVICE = """
import os
import signal
import sys
import threading
import time

import agentotel

mode = sys.argv[1]
if mode == "app-handler":
    def on_term(signum, frame):
        print("APP-HANDLER", signum, flush=True)
        os._exit(7)  # the app's own way out, which skips atexit
    signal.signal(signal.SIGTERM, on_term)
elif mode == "ignored":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

if mode == "init-in-a-thread":
    starter = threading.Thread(target=agentotel.init)
    starter.start()
    starter.join()
else:
    agentotel.init()
handler = signal.getsignal(signal.SIGTERM)
names = {signal.SIG_DFL: "SIG_DFL", signal.SIG_IGN: "SIG_IGN"}
print("HANDLER", names.get(handler) or ("function" if callable(handler) else repr(handler)), flush=True)


@agentotel.tool
def step(n):
    return n


for i in range(int(os.environ.get("SESSIONS", "30"))):
    with agentotel.session(f"done-{i}"):
        step(i)
agentotel.start_session(name="open-at-sigterm")
step(99)
print("READY", flush=True)
for line in sys.stdin:  # the app serves until it is stopped
    print("PONG", line.strip(), flush=True)
print("STDIN-CLOSED", flush=True)
"""


def run_service(
    tmp_path: Path, mode: str, *, env: dict[str, str] | None = None, stop: bool = True
) -> tuple[int, Child, float]:
    """Starts the service, waits until it serves, sends SIGTERM; returns its exit code, the child and the seconds
    from SIGTERM to exit."""
    with child(
        SERVICE, env or child_env(tmp_path, AGENTOTEL_STORE=str(tmp_path / "sessions.db"), **NO_CLIENTS), tmp_path, mode
    ) as running:
        running.wait_for("READY")
        sent = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        if not stop:
            assert running.process.stdin is not None
            running.process.stdin.write("ping\n")
            running.process.stdin.flush()
            running.wait_for("PONG ping")  # it survived the signal
            running.process.stdin.close()
        code = running.finish(60)
        return code, running, time.monotonic() - sent


def test_sigterm_with_the_default_handler_flushes_ends_open_sessions_then_dies_by_the_signal(tmp_path: Path) -> None:
    code, running, seconds = run_service(tmp_path, "default")
    assert code == -signal.SIGTERM, running.stderr  # dies by the signal, as without agentotel
    rows = stored(tmp_path / "sessions.db")
    assert {name: rows[name] for name in rows if name.startswith("done-")} == {
        f"done-{i}": ("Success", None, 1) for i in range(30)
    }, running.stderr
    assert rows["open-at-sigterm"] == ("Indeterminate", "the process was terminated (SIGTERM) with the session open", 1)
    assert "HANDLER function" in running.stdout
    assert seconds < 15
    assert "Traceback" not in running.stderr, running.stderr


def test_sigterm_flushes_before_the_apps_own_handler_runs_and_keeps_its_exit(tmp_path: Path) -> None:
    code, running, _ = run_service(tmp_path, "app-handler")
    assert code == 7 and "APP-HANDLER 15" in running.stdout, running.stdout + running.stderr
    rows = stored(tmp_path / "sessions.db")
    assert sum(1 for name in rows if name.startswith("done-")) == 30, running.stderr
    # The app's handler decides what happens next (here it leaves at once): the open session is the app's, not
    # ended by agentotel before the app's handler ran.
    assert rows["open-at-sigterm"][0] is None


def test_an_ignored_sigterm_stays_ignored(tmp_path: Path) -> None:
    code, running, _ = run_service(tmp_path, "ignored", stop=False)
    assert code == 0 and "HANDLER SIG_IGN" in running.stdout, running.stdout + running.stderr
    assert "STDIN-CLOSED" in running.stdout


def test_init_in_another_thread_leaves_sigterm_alone(tmp_path: Path) -> None:
    code, running, _ = run_service(tmp_path, "init-in-a-thread")
    assert "HANDLER SIG_DFL" in running.stdout, running.stdout + running.stderr
    assert code == -signal.SIGTERM
    assert "Traceback" not in running.stderr, running.stderr


def test_the_sigterm_flush_is_bounded_and_counts_what_it_could_not_send(tmp_path: Path) -> None:
    with FaultyOTLPBackend(lambda _n: HANG) as backend:
        env = child_env(tmp_path, AGENTOTEL_STORE="off", OTEL_EXPORTER_OTLP_ENDPOINT=backend.base_url, **NO_CLIENTS)
        code, running, seconds = run_service(tmp_path, "default", env=env)
    assert code == -signal.SIGTERM, running.stderr
    assert seconds < 15, f"SIGTERM to exit took {seconds:.1f}s with a backend that never answers"
    assert "agentotel lost" in running.stderr and "span(s)" in running.stderr, running.stderr


def test_sigterm_handling_can_be_turned_off(tmp_path: Path) -> None:
    env = child_env(tmp_path, AGENTOTEL_STORE=str(tmp_path / "sessions.db"), AGENTOTEL_SIGTERM="off", **NO_CLIENTS)
    code, running, _ = run_service(tmp_path, "default", env=env)
    assert "HANDLER SIG_DFL" in running.stdout, running.stdout
    assert code == -signal.SIGTERM


def test_a_fork_child_killed_by_sigterm_flushes_its_own_sessions(tmp_path: Path) -> None:
    code = """
    import os, signal, sys, time
    import agentotel

    agentotel.init()

    @agentotel.tool
    def step(n):
        return n

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        with agentotel.session("child-done"):
            step(1)
        os.write(write, b"x")
        time.sleep(600)
        os._exit(0)
    os.read(read, 1)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print("CHILD", os.waitstatus_to_exitcode(status))
    print("READY-TO-EXIT")
    """
    db = tmp_path / "sessions.db"
    run = run_child(code, child_env(tmp_path, AGENTOTEL_STORE=str(db), **NO_CLIENTS), tmp_path, timeout=120)
    assert f"CHILD {-signal.SIGTERM}" in run.stdout, run.stdout + run.stderr
    assert stored(db)["child-done"] == ("Success", None, 1), run.stderr
    assert os.name == "posix"


# --- one deadline for every exporter ----------------------------------------------------------------------------------


class StuckFlush(SpanProcessor):
    """A processor whose flush takes all the time it is given (a backend that never answers)."""

    def __init__(self) -> None:
        self.given: list[int] = []

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        self.given.append(timeout_millis)
        threading.Event().wait(timeout_millis / 1000)
        return False


def test_a_flush_shares_one_deadline_between_exporters() -> None:
    """`agentotel.force_flush(t)` (and so the flush at exit) waits `t` in all, not `t` for each exporter: before, two
    stuck exporters held the exit 2 x 5 s."""
    stuck = [StuckFlush(), StuckFlush()]
    for processor in stuck:
        configure.add_export_processor(processor)
    try:
        started = time.monotonic()
        assert agentotel.force_flush(600) is False
        took = time.monotonic() - started
    finally:
        for processor in stuck:
            configure.remove_export_processor(processor)
    given = [t for processor in stuck for t in processor.given]
    assert sum(given) <= 600, given
    assert took < 1.1, f"two stuck exporters held a 0.6 s flush {took:.2f}s"
