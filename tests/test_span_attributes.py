"""`set_plain_attributes`: the model-call path's cheap attribute write must leave every span exactly as the SDK's
`set_attributes` would (values, order, count limit, length limit, dropped count), take its shortcut only for the
plain values agentotel builds, and never raise."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import attributes as otel_attributes
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import INVALID_SPAN

from agentotel._sdk import set_plain_attributes

scalars = st.one_of(
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
)
values = st.one_of(
    scalars,
    st.lists(st.text(max_size=12), max_size=4),
    st.lists(st.integers(min_value=0, max_value=9), max_size=4).map(tuple),
    st.dictionaries(st.text(min_size=1, max_size=3), st.integers(), max_size=2),  # not plain: the SDK's own checks
    st.none(),
)
keys = st.sampled_from(["a", "b", "c", "d", "gen_ai.response.id", "gen_ai.usage.input_tokens"])


def _span(limits: SpanLimits, start: dict[str, Any]) -> Any:
    tracer = TracerProvider(span_limits=limits).get_tracer("test")
    return tracer.start_span("call", attributes=start)


@settings(max_examples=200, deadline=None)
@given(
    start=st.dictionaries(keys, scalars, max_size=3),
    update=st.dictionaries(keys, values, max_size=5),
    max_attributes=st.one_of(st.none(), st.integers(min_value=0, max_value=6)),
    max_length=st.one_of(st.none(), st.integers(min_value=0, max_value=8)),
)
def test_the_span_ends_up_as_set_attributes_leaves_it(
    start: dict[str, Any], update: dict[str, Any], max_attributes: int | None, max_length: int | None
) -> None:
    limits = SpanLimits(max_span_attributes=max_attributes, max_attribute_length=max_length)
    ours, sdks = _span(limits, start), _span(limits, start)
    set_plain_attributes(ours, update)
    sdks.set_attributes(update)
    assert list(ours.attributes.items()) == list(sdks.attributes.items())
    assert ours.dropped_attributes == sdks.dropped_attributes
    ours.end()
    sdks.end()


FAST_PATH = hasattr(otel_attributes.BoundedAttributes, "_setitem_locked")
"""The SDK's locked insertion the shortcut uses (newer SDKs); without it every write takes the public path."""


@pytest.mark.skipif(not FAST_PATH, reason="this SDK has no BoundedAttributes._setitem_locked: the public path only")
def test_plain_values_skip_the_sdks_per_value_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[Any] = []
    real = otel_attributes._clean_attribute_value

    def counting(value: Any, limit: int | None) -> Any:
        checked.append(value)
        return real(value, limit)

    span = _span(SpanLimits(), {})
    monkeypatch.setattr(otel_attributes, "_clean_attribute_value", counting)
    set_plain_attributes(span, {"id": "chatcmpl-1", "tokens": 12, "cost": 0.5, "stream": False, "reasons": ["stop"]})
    assert checked == []
    assert span.attributes["reasons"] == ("stop",)  # stored as the SDK stores sequences: immutable
    set_plain_attributes(span, {"odd": {"nested": 1}})  # not a plain value: the SDK checks it
    assert checked, "a value of another kind must go through the SDK's checks"
    span.end()


def test_text_over_the_length_limit_is_truncated_by_the_sdk_with_its_warning(caplog: pytest.LogCaptureFixture) -> None:
    span = _span(SpanLimits(max_attribute_length=4), {})
    with caplog.at_level(logging.WARNING):
        set_plain_attributes(span, {"id": "chatcmpl-123"})
    ours = [r.getMessage() for r in caplog.records]
    caplog.clear()
    sdks = _span(SpanLimits(max_attribute_length=4), {})
    with caplog.at_level(logging.WARNING):
        sdks.set_attributes({"id": "chatcmpl-123"})
    assert span.attributes["id"] == sdks.attributes["id"] == "chat"
    assert ours == [r.getMessage() for r in caplog.records]  # the SDK's own warning, if this SDK gives one
    span.end()
    sdks.end()


def test_an_ended_span_is_left_alone_as_the_sdk_leaves_it(caplog: pytest.LogCaptureFixture) -> None:
    span = _span(SpanLimits(), {"a": 1})
    span.end()
    with caplog.at_level(logging.WARNING):
        set_plain_attributes(span, {"b": 2})
    assert dict(span.attributes) == {"a": 1}
    assert any("ended span" in r.getMessage() for r in caplog.records)


class OtherSpan:
    """A span of another SDK: only the public API."""

    def __init__(self, fails: bool = False) -> None:
        self.fails = fails
        self.received: list[dict[str, Any]] = []

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        if self.fails:
            raise RuntimeError("this SDK refuses")
        self.received.append(dict(attributes))


def test_spans_of_other_kinds_get_the_attributes_through_their_own_method() -> None:
    other = OtherSpan()
    set_plain_attributes(other, {"a": "b", "n": 1})
    assert other.received == [{"a": "b", "n": 1}]
    set_plain_attributes(INVALID_SPAN, {"a": "b"})  # a non-recording span keeps nothing, as the API says
    assert not INVALID_SPAN.is_recording()


@pytest.mark.parametrize("span", [OtherSpan(fails=True), object(), None])
def test_a_span_that_cannot_take_attributes_never_raises_and_is_logged(
    span: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="agentotel"):
        set_plain_attributes(span, {"a": "b"})
    assert any("Could not set the attributes of a span" in r.getMessage() for r in caplog.records)
