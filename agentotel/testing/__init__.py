"""Testing agents with agentotel: capture sessions, assert on their behaviour, run variations, deterministic
clocks and ids for snapshots, and a pytest plugin (registered automatically) that records each test phase's
report and summarises sessions, and `rerun()`: the agent run again against a recorded session."""

from typing import TYPE_CHECKING

from .assertions import (
    SessionAssertionError,
    assert_call_order,
    assert_called_before,
    assert_cost_below,
    assert_llm_calls_at_most,
    assert_no_errors,
    assert_tokens_below,
    assert_tool_called,
    assert_tool_not_called,
)
from .baselines import BaselineError, assert_matches_baseline
from .capture import Capture, capture
from .deterministic import CountingIdGenerator, SteppingClock, deterministic
from .variations import VariationReport, VariationResult, run_variations

if TYPE_CHECKING:
    from .reruns import RecordingError, Rerun, RerunDivergence, RerunStopped, rerun

__all__ = [
    "BaselineError",
    "Capture",
    "CountingIdGenerator",
    "RecordingError",
    "Rerun",
    "RerunDivergence",
    "RerunStopped",
    "SessionAssertionError",
    "SteppingClock",
    "VariationReport",
    "VariationResult",
    "assert_call_order",
    "assert_called_before",
    "assert_cost_below",
    "assert_llm_calls_at_most",
    "assert_matches_baseline",
    "assert_no_errors",
    "assert_tokens_below",
    "assert_tool_called",
    "assert_tool_not_called",
    "capture",
    "deterministic",
    "rerun",
    "run_variations",
]

_RERUN_NAMES = frozenset({"RecordingError", "Rerun", "RerunDivergence", "RerunStopped", "rerun"})


def __getattr__(name: str) -> object:
    # The re-run (and the SDK converters it needs) is imported when first used: this package is imported by the
    # pytest plugin in every test run.
    if name in _RERUN_NAMES:
        from . import reruns

        return getattr(reruns, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
