"""`rerun(session_or_path)`: run the agent again against a recorded session, offline and deterministic.

    with rerun("tests/sessions/charged_twice.jsonl") as run:
        run_support_agent("I was charged twice for my subscription")
    assert run.session.end_state == "Fail"          # the new run's session, rebuilt from its spans

While the block runs, every model request the agent makes through the openai or anthropic SDK (and so through any
framework built on them) is answered in-process from the recording, in the provider's own wire format (OpenAI chat
completions and Responses, Anthropic messages; plain and streamed: the `LLMServer` wire code), so the real SDK and
framework run unchanged, with no API key, no network and no cost; the recorded usage is served, so the run's tokens
and cost are the recording's. The n-th request is compared with the n-th recorded call: model, messages (system
instructions included) and tools offered, both rendered by `_rerun_requests` as the instrumentation records them.

- `tools="real"` (default): tools run for real. `tools="recorded"`: `@agentotel.tool` / `@record_action` steps and
  LangChain tools are answered from the recording instead (`_rerun_tools`), and not run.
- `strict=True` (default): at the first divergence (another request, a call the recording lacks) the run stops:
  that request, and every later one, gets an error in the provider's format (the SDK raises it), a served tool
  raises `RerunStopped`, and the block ends raising `RerunDivergence`, which names the step and shows the diff and
  both replays around it. `strict=False`: the recorded reply is served anyway and the run goes on; `.divergences`
  lists them all and nothing is raised.
- At the block's end, recorded calls that were not made, and a tool sequence that differs from the recording's,
  are divergences too.

The session the block records is captured with content on (`capture(capture_content=True)`): `.session`, `.sessions`.
One re-run at a time per process (its interception is process-wide).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from .. import _rerun_hook
from ..model import Event, Session
from ..sessions_file import MissingContentError, call_label, content_problems, load_session, model_calls
from ._rerun_replies import NO_RETRY, TransportFailure, embeddings_reply, recorded_reply
from ._rerun_report import Divergence, RerunDivergence
from ._rerun_requests import RequestView, diff_lines, recorded_view, request_view, tools_compared, value_lines
from ._rerun_tools import RerunStopped, ToolCallCheck, ToolReplay, patch_langchain
from ._rerun_transport import Intercepted, Interception
from .capture import Capture, capture
from .llm_server import Reply, WireReply, wire_reply

__all__ = ["RecordingError", "Rerun", "RerunCall", "RerunDivergence", "RerunStopped", "rerun", "resolve"]

Tools = Literal["real", "recorded"]

_KEY_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
_NO_KEY = "agentotel-rerun-no-key"
"""Set for the block when unset: an SDK client made without a key refuses to start, and this one never leaves."""

_active: Rerun | None = None
_active_lock = threading.Lock()


class RecordingError(MissingContentError):
    """A recording a re-run cannot use: not a session file, or a session without the content a re-run needs. The
    message is one line."""


@dataclass
class RerunCall:
    """One model request the re-run answered."""

    index: int
    """1 for the first request of the block."""
    endpoint: str
    """`chat.completions`, `responses` or `messages`."""
    request: RequestView
    recorded: Event | None
    """The recorded call it was compared with (`None`: a call the recording does not have)."""
    matched: bool
    served: bool
    """Whether the recorded reply was sent (`False`: an error, the re-run stopped there)."""
    divergence: Divergence | None = None

    @property
    def model(self) -> str | None:
        return self.request.model


def _why_unusable(recording: Session) -> list[str]:
    """What a re-run cannot do without (messages of model calls); a session still running or with dropped events
    can still be re-run as far as it goes."""
    return [p for p in content_problems(recording) if "messages" in p]


class Rerun:
    """A re-run of the agent against `recording`: a context manager (see the module's docstring). Attributes:

    - `recording`: the recorded session;
    - `calls`: each model request answered, in order (`RerunCall`);
    - `divergences`: where the run left the recording (`Divergence`), in the order found;
    - `session` / `sessions`: what the block recorded."""

    def __init__(
        self, recording: Session | str | os.PathLike[str], *, strict: bool = True, tools: Tools = "real"
    ) -> None:
        if tools not in ("real", "recorded"):
            raise ValueError(f"tools must be 'real' or 'recorded', not {tools!r}")
        if isinstance(recording, Session):
            self.source = f"session {recording.id}"
            self.recording = recording
        else:
            self.source = str(recording)
            try:
                self.recording = load_session(recording)
            except RecordingError:
                raise
            except MissingContentError as error:
                raise RecordingError(str(error)) from None
            except Exception as error:
                raise RecordingError(f"cannot re-run {recording}: {error}") from None
        problems = _why_unusable(self.recording)
        if problems:
            raise RecordingError(
                f"cannot re-run {self.source}: it lacks what a re-run needs: {'; '.join(problems)} (record it with "
                "content capture on: agentotel.init(capture_content=True))"
            )
        self.strict = strict
        self.tools: Tools = tools
        self.calls: list[RerunCall] = []
        self.divergences: list[Divergence] = []
        self._recorded_calls = model_calls(self.recording)
        replayed = {id(e) for e in self._recorded_calls}
        self._embeddings = [e for e in self.recording.llm_calls if id(e) not in replayed]
        self._embeddings_used = 0
        self._views: dict[int, RequestView] = {}
        self._lock = threading.Lock()
        self._stopped = False
        self._capture: Any = None
        self._captured: Capture | None = None
        self._interception = Interception(self._answer)
        self._undo: list[Callable[[], None]] = []
        self._keys: dict[str, str | None] = {}
        self._tool_totals: dict[str, int] = {}
        for event in self.recording.action_events:
            if event.action_type:
                self._tool_totals[event.action_type] = self._tool_totals.get(event.action_type, 0) + 1
        self._finished = False

    # --- the block ------------------------------------------------------------------------------------------------

    def __enter__(self) -> Rerun:
        global _active
        with _active_lock:
            if _active is not None:
                raise RuntimeError("a re-run is already running in this process; one at a time")
            _active = self
        try:
            self._capture = capture(capture_content=True)
            self._captured = self._capture.__enter__()
            for name in _KEY_VARIABLES:
                self._keys[name] = os.environ.get(name)
                if not os.environ.get(name):
                    os.environ[name] = _NO_KEY
            self._interception.install()
            self._undo.append(self._interception.uninstall)
            if self.tools == "recorded":
                replay = ToolReplay(
                    self.recording, strict=self.strict, on_call=self._tool_called, stopped=self._is_stopped
                )
                _rerun_hook.serve_with(replay.hook)
                self._undo.append(lambda: _rerun_hook.serve_with(None))
                undo = patch_langchain(replay)
                if undo is not None:
                    self._undo.append(undo)
        except BaseException:
            self._leave()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._leave()
        self._finish()
        if error is not None and not isinstance(error, Exception):
            return  # an interrupt (KeyboardInterrupt, SystemExit) goes on as it is
        if self.strict and self.divergences:
            raise RerunDivergence(self.source, self.divergences, self.recording, self._session_or_none()) from error

    def _leave(self) -> None:
        """Puts back everything the block changed (each step even when another fails)."""
        global _active
        for undo in reversed(self._undo):
            try:
                undo()
            except Exception:
                pass
        self._undo = []
        for name, value in self._keys.items():
            if os.environ.get(name) == _NO_KEY:
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        self._keys = {}
        if self._capture is not None:
            capture_block, self._capture = self._capture, None
            capture_block.__exit__(None, None, None)
        with _active_lock:
            if _active is self:
                _active = None

    # --- what it recorded -----------------------------------------------------------------------------------------

    @property
    def sessions(self) -> list[Session]:
        """The sessions the block recorded (outermost ones), in the order they started; those that ended so far
        while it runs."""
        return [] if self._captured is None else self._captured.root_sessions

    @property
    def session(self) -> Session:
        """The session the block recorded: the last one named as the recording, else the last one. Raises
        `LookupError` when it recorded none."""
        found = self._session_or_none()
        if found is None:
            raise LookupError(f"the re-run of {self.source} recorded no session (did the agent run in the block?)")
        return found

    def _session_or_none(self) -> Session | None:
        sessions = self.sessions
        named = [s for s in sessions if s.name == self.recording.name]
        found = named or sessions
        return found[-1] if found else None

    # --- answering model requests ---------------------------------------------------------------------------------

    def _is_stopped(self) -> bool:
        return self._stopped

    def _recorded_view(self, index: int) -> RequestView:
        view = self._views.get(index)
        if view is None:
            event = self._recorded_calls[index]
            view = recorded_view(event, with_tools=tools_compared(event))
            self._views[index] = view
        return view

    def _label(self, index: int) -> str:
        total = len(self._recorded_calls)
        if index <= total:
            return call_label(self._recorded_calls[index - 1], index, total)
        return f"LLM call {index} (the recording has {total})"

    def _answer(self, request: Intercepted) -> WireReply | BaseException:
        """Answers one intercepted model request (see the module's docstring). Never raises."""
        try:
            body = json.loads(request.content) if request.content else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return wire_reply(request.endpoint, body, Reply(), 0)
        if request.endpoint == "embeddings":
            return self._answer_embeddings(body)
        try:
            reply, index = self._match(request, body)
        except Exception as error:  # a fault of ours: the SDK gets an error, the run does not hang
            reply, index = _error_reply(f"agentotel re-run could not answer: {type(error).__name__}: {error}"), 0
        if isinstance(reply, TransportFailure):
            return self._interception.transport_error(reply.kind, reply.message, request.url)
        try:
            return wire_reply(request.endpoint, body, reply, index)
        except Exception as error:
            return wire_reply(
                request.endpoint, body, _error_reply(f"agentotel re-run could not build a reply: {error}"), 0
            )

    def _match(self, request: Intercepted, body: Mapping[str, Any]) -> tuple[Reply | TransportFailure, int]:
        with self._lock:
            if request.retry:
                # The SDK sending a request again (after a recorded timeout): the same call, answered the same.
                for call in reversed(self.calls):
                    if call.request == self._view_for(request.endpoint, body, call.index) and call.recorded is not None:
                        return (recorded_reply(call.recorded) if call.served else _stopped_reply(call)), call.index
            index = len(self.calls) + 1
            recorded = self._recorded_calls[index - 1] if index <= len(self._recorded_calls) else None
            view = self._view_for(request.endpoint, body, index)
            call = RerunCall(index, request.endpoint, view, recorded, matched=False, served=False)
            self.calls.append(call)
            if recorded is None:
                call.divergence = self._diverged(
                    Divergence(
                        "llm",
                        self._label(index),
                        "a call the recording does not have",
                        "",
                        view.text(),
                        diff_lines([], view.lines),
                        None,
                        index - 1,
                    )
                )
                return _stopped_reply(call), index
            expected = self._recorded_view(index - 1)
            call.matched = view.lines == expected.lines
            if not call.matched:
                call.divergence = self._diverged(
                    Divergence(
                        "llm",
                        self._label(index),
                        "the request differs from the recorded one",
                        expected.text(),
                        view.text(),
                        diff_lines(expected.lines, view.lines),
                        recorded.span_id,
                        index - 1,
                    )
                )
            if self._stopped:
                return _stopped_reply(call), index
            call.served = True
            return recorded_reply(recorded), index

    def _view_for(self, endpoint: str, body: Mapping[str, Any], index: int) -> RequestView:
        with_tools = True
        if index <= len(self._recorded_calls):
            with_tools = tools_compared(self._recorded_calls[index - 1])
        return request_view(endpoint, body, with_tools=with_tools)

    def _diverged(self, divergence: Divergence) -> Divergence:
        """Notes a divergence (call holding `_lock`); a strict re-run stops at it."""
        self.divergences.append(divergence)
        if self.strict:
            self._stopped = True
        return divergence

    def _answer_embeddings(self, body: Mapping[str, Any]) -> WireReply:
        with self._lock:
            event = self._embeddings[self._embeddings_used] if self._embeddings_used < len(self._embeddings) else None
            self._embeddings_used += 1
        return wire_reply("embeddings", body, embeddings_reply(event), self._embeddings_used)

    # --- served tools ---------------------------------------------------------------------------------------------

    def _tool_called(self, check: ToolCallCheck) -> None:
        if check.matched:
            return
        with self._lock:
            total = self._tool_totals.get(check.name, 0)
            step = f"tool call {check.name} ({check.number} of {total} recorded)"
            now = "\n".join(value_lines(check.arguments))
            if check.recorded is None:
                divergence = Divergence(
                    "tool",
                    step,
                    "a call the recording does not have",
                    "",
                    now,
                    diff_lines([], value_lines(check.arguments)),
                    None,
                    check.number - 1,
                    check.name,
                )
            else:
                recorded_lines = value_lines(check.recorded.params)
                divergence = Divergence(
                    "tool",
                    step,
                    "the arguments differ from the recorded ones",
                    "\n".join(recorded_lines),
                    now,
                    diff_lines(recorded_lines, value_lines(check.arguments)),
                    check.recorded.span_id,
                    check.number - 1,
                    check.name,
                )
            self._diverged(divergence)

    # --- the end --------------------------------------------------------------------------------------------------

    def _finish(self) -> None:
        """The divergences only the block's end shows: recorded calls not made, another tool sequence."""
        if self._finished:
            return
        self._finished = True
        with self._lock:
            made = len(self.calls)
            for index in range(made + 1, len(self._recorded_calls) + 1):
                expected = self._recorded_view(index - 1)
                self.divergences.append(
                    Divergence(
                        "llm",
                        self._label(index),
                        "the recorded call was not made",
                        expected.text(),
                        "",
                        diff_lines(expected.lines, []),
                        self._recorded_calls[index - 1].span_id,
                        None,
                    )
                )
            if self.divergences:
                return
        session = self._session_or_none()
        if session is None:
            return
        recorded = [e.action_type or e.name for e in self.recording.action_events]
        now = [e.action_type or e.name for e in session.action_events]
        if recorded != now:
            first = next(
                (i for i, (a, b) in enumerate(zip(recorded, now, strict=False)) if a != b), min(len(recorded), len(now))
            )
            span = self.recording.action_events[first].span_id if first < len(recorded) else None
            self.divergences.append(
                Divergence(
                    "steps",
                    "the tool sequence",
                    f"the tools and actions differ from step {first + 1} on",
                    "\n".join(recorded),
                    "\n".join(now),
                    diff_lines(recorded, now),
                    span,
                    first,
                )
            )


def _error_reply(message: str) -> Reply:
    return Reply(text=message, status=400, headers=dict(NO_RETRY))


def _stopped_reply(call: RerunCall) -> Reply:
    why = call.divergence.reason if call.divergence is not None else "the re-run stopped at an earlier divergence"
    return _error_reply(
        f"agentotel re-run: {call.divergence.step if call.divergence else f'LLM call {call.index}'} is not answered: "
        f"{why} (strict=True stops the run at the first divergence; the rerun block raises RerunDivergence)"
    )


def rerun(recording: Session | str | os.PathLike[str], *, strict: bool = True, tools: Tools = "real") -> Rerun:
    """A re-run of the agent against a recorded session (a `Session`, or a file `Session.save` / `agentotel
    export` wrote), used as a context manager: see the module's docstring. Raises `RecordingError` (one line) for
    a file that is not a session, or a session without the content a re-run needs."""
    return Rerun(recording, strict=strict, tools=tools)


def resolve(path: str | os.PathLike[str], *bases: Path) -> Path:
    """`path` as given when it exists or is absolute, else the first of `bases / path` that exists."""
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    for base in bases:
        if (base / candidate).exists():
            return base / candidate
    return candidate
