"""Testing agents with agentotel: capture sessions, assert on their behaviour, run variations, deterministic
clocks and ids for snapshots, and a pytest plugin (registered automatically) that records each test phase's
report and summarises sessions."""

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
from .capture import Capture, capture
from .deterministic import CountingIdGenerator, SteppingClock, deterministic
from .variations import VariationReport, VariationResult, run_variations

__all__ = [
    "Capture",
    "CountingIdGenerator",
    "SessionAssertionError",
    "SteppingClock",
    "VariationReport",
    "VariationResult",
    "assert_call_order",
    "assert_called_before",
    "assert_cost_below",
    "assert_llm_calls_at_most",
    "assert_no_errors",
    "assert_tokens_below",
    "assert_tool_called",
    "assert_tool_not_called",
    "capture",
    "deterministic",
    "run_variations",
]
