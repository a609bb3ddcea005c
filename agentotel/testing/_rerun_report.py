"""How a re-run tells where it left the recording: each `Divergence` (the step, why, recorded vs now as a diff),
and `RerunDivergence`, the test failure that names the first divergent step and shows the diff and both text
replays around that step (the recorded session's and this run's, from `replay.text`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model import Session
from ..replay.text import render_text

__all__ = ["DIVERGES", "Divergence", "RerunDivergence", "replay_around"]

DIVERGES = "← DIVERGES HERE"
_CONTEXT = 2
"""Steps shown before and after the divergent one in each replay."""
_MORE_SHOWN = 5


@dataclass
class Divergence:
    """One place a re-run left the recording.

    `kind` is `llm` (a model request), `tool` (a served tool call) or `steps` (the session's tool sequence);
    `step` names it (`LLM call 2 of 3 (chat gpt-4o-mini)`), `reason` says how it differs; `recorded` and `now` are
    the two renderings (`""` for a side that has none) and `diff` their unified diff (`-` recorded, `+` now).
    `recorded_span_id` / `now_index` locate the step in the recorded session (its span) and in this run (the
    index of the LLM call or tool call of its kind), for the replays."""

    kind: str
    step: str
    reason: str
    recorded: str
    now: str
    diff: str
    recorded_span_id: str | None = None
    now_index: int | None = None
    tool_name: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.step}: {self.reason}"


def _entries(text: str) -> tuple[list[str], list[list[str]]]:
    """A text replay split into its header and its entries (one per step, then the end), each a list of lines."""
    lines = text.split("\n")
    try:
        blank = lines.index("")
    except ValueError:
        return lines, []
    header, entries = lines[: blank + 1], list[list[str]]()
    for line in lines[blank + 1 :]:
        if line[:1] not in (" ", "") or not entries:
            entries.append([line])
        else:
            entries[-1].append(line)
    return header, entries


def replay_around(session: Session, span_id: str | None, *, mark: str = DIVERGES, context: int = _CONTEXT) -> str:
    """The session's text replay cut to the step of span `span_id` (marked) and `context` steps each side, with
    its header and its end; the last steps and the end when `span_id` is `None` or not in the session."""
    events = session.events
    header, entries = _entries(render_text(session))
    step_entries, end = entries[: len(events)], entries[len(events) :]
    index = next((i for i, e in enumerate(events) if e.span_id == span_id), None)
    if index is None:
        low, high = max(0, len(step_entries) - 2 * context - 1), len(step_entries)
    else:
        low, high = max(0, index - context), min(len(step_entries), index + context + 1)
        step_entries = [list(e) for e in step_entries]
        step_entries[index][0] += f"   {mark}"
    shown = list(header)
    if low > 0:
        shown.append(f"           … {low} earlier step(s)")
    for entry in step_entries[low:high]:
        shown += entry
    if high < len(step_entries):
        shown.append(f"           … {len(step_entries) - high} later step(s)")
    for entry in end:
        shown += entry
    return "\n".join(shown)


def _indented(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def _now_span(divergence: Divergence, session: Session | None) -> str | None:
    """The span of the divergent step in this run's session, when it made one."""
    if session is None or divergence.now_index is None:
        return None
    if divergence.kind == "llm":
        from ..sessions_file import model_calls

        calls = model_calls(session)
    elif divergence.kind == "tool":
        calls = [e for e in session.action_events if e.action_type == divergence.tool_name]
    else:
        calls = session.action_events
    return calls[divergence.now_index].span_id if 0 <= divergence.now_index < len(calls) else None


class RerunDivergence(AssertionError):
    """A re-run (`strict=True`) left the recording. The message names the first divergent step, shows recorded vs
    now as a diff and both replays around the step; `divergences` holds every one found."""

    def __init__(self, source: str, divergences: list[Divergence], recording: Session, session: Session | None) -> None:
        self.source = source
        self.divergences = list(divergences)
        self.recording = recording
        self.session = session
        super().__init__(self._message())

    def _message(self) -> str:
        first = self.divergences[0]
        lines = [f"agentotel re-run of {self.source} diverged at {first.step}: {first.reason}.", ""]
        if first.diff:
            lines += ["Recorded (-) vs this run (+):", _indented(first.diff), ""]
        elif first.recorded or first.now:
            lines += [
                "Recorded:",
                _indented(first.recorded or "(nothing)"),
                "This run:",
                _indented(first.now or "(nothing)"),
                "",
            ]
        lines += [
            "The recorded session, around that step:",
            _indented(replay_around(self.recording, first.recorded_span_id)),
            "",
        ]
        if self.session is not None:
            now = replay_around(self.session, _now_span(first, self.session))
            lines += ["This run, around that step:", _indented(now)]
        else:
            lines.append("This run recorded no session.")
        more = self.divergences[1:]
        if more:
            lines += ["", f"{len(more)} more divergence(s):"]
            lines += [f"  - {d}" for d in more[:_MORE_SHOWN]]
            if len(more) > _MORE_SHOWN:
                lines.append(f"  - … and {len(more) - _MORE_SHOWN} more")
        return "\n".join(lines)
