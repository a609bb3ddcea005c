"""Step decorators on sync, async, generator and async-generator functions; errors; content capture."""

from __future__ import annotations

import asyncio
import gc
import json
import math
from typing import Any

import pytest

import agentotel
from agentotel import semconv as sc
from agentotel.testing import Capture


def test_each_decorator_makes_its_kind_of_span(cap: Capture) -> None:
    @agentotel.tool(description="looks things up")
    def search(q: str) -> str:
        return q

    @agentotel.agent("planner")
    def plan() -> str:
        return search("x")

    @agentotel.operation
    def tidy() -> None:
        return None

    @agentotel.record_action("classify_intent")
    def classify(message: str) -> str:
        return "billing"

    with agentotel.session("s") as s:
        plan()
        tidy()
        classify("hi")
    by_name = {span.name: span for span in cap.spans}
    assert by_name["execute_tool search"].attributes[sc.GEN_AI_TOOL_NAME] == "search"
    assert by_name["execute_tool search"].attributes[sc.GEN_AI_TOOL_DESCRIPTION] == "looks things up"
    assert by_name["invoke_agent planner"].attributes[sc.GEN_AI_AGENT_NAME] == "planner"
    assert by_name["tidy"].attributes[sc.AGENTOTEL_STEP_KIND] == "operation"
    assert by_name["classify_intent"].attributes[sc.AGENTOTEL_ACTION_TYPE] == "classify_intent"
    assert by_name["execute_tool search"].parent.span_id == by_name["invoke_agent planner"].context.span_id
    assert [e.kind for e in s.events] == ["agent", "tool", "operation", "action"]


def test_exception_is_recorded_on_the_step_and_reraised_unchanged(cap: Capture) -> None:
    class CustomError(Exception):
        pass

    error = CustomError("bad")

    @agentotel.tool
    def broken() -> None:
        raise error

    with pytest.raises(CustomError) as raised:
        broken()
    assert raised.value is error
    span = cap.spans[0]
    assert span.status.is_ok is False
    assert span.attributes[sc.ERROR_TYPE].endswith("CustomError")
    assert span.events[0].name == "exception"


def test_async_tool_and_its_errors(cap: Capture) -> None:
    @agentotel.tool
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        if x < 0:
            raise KeyError(x)
        return x

    async def main() -> None:
        with agentotel.session("a") as s:
            assert await fetch(1) == 1
            with pytest.raises(KeyError):
                await fetch(-1)
        assert len(s.tool_calls) == 2 and s.first_error is not None
        assert s.first_error.error is not None and s.first_error.error.type == "KeyError"

    asyncio.run(main())


def test_generator_step_spans_the_whole_iteration_and_keeps_context_inside(cap: Capture) -> None:
    @agentotel.tool
    def inner() -> int:
        return 1

    @agentotel.operation
    def numbers(n: int) -> Any:
        for i in range(n):
            inner()
            yield i
        return "done"

    with agentotel.session("g") as s:
        got = list(numbers(3))
        outside = agentotel.tool(lambda: None)
        outside()
    assert got == [0, 1, 2]
    gen_span = next(span for span in cap.spans if span.name == "numbers")
    inner_spans = [span for span in cap.spans if span.name == "execute_tool inner"]
    assert len(inner_spans) == 3
    assert all(span.parent.span_id == gen_span.context.span_id for span in inner_spans)
    lambda_span = next(span for span in cap.spans if span.name == "execute_tool <lambda>")
    assert lambda_span.parent.span_id != gen_span.context.span_id
    assert len(s.events) == 5


def test_generator_never_iterated_leaves_no_span_and_closed_early_ends_once(cap: Capture) -> None:
    @agentotel.operation
    def numbers() -> Any:
        yield from range(10)

    numbers()  # never iterated
    gen = numbers()
    assert next(gen) == 0
    gen.close()
    del gen
    gc.collect()
    assert [span.name for span in cap.spans] == ["numbers"]
    assert cap.spans[0].status.is_ok


def test_generator_send_and_throw_pass_through(cap: Capture) -> None:
    @agentotel.operation
    def echo() -> Any:
        received = None
        while True:
            try:
                received = yield received
            except ValueError:
                received = "caught"

    gen = echo()
    next(gen)
    assert gen.send("a") == "a"
    assert gen.throw(ValueError("x")) == "caught"
    gen.close()
    assert len(cap.spans) == 1


def test_generator_error_is_recorded(cap: Capture) -> None:
    @agentotel.tool
    def failing() -> Any:
        yield 1
        raise RuntimeError("mid-stream")

    with pytest.raises(RuntimeError):
        list(failing())
    assert cap.spans[0].attributes[sc.ERROR_TYPE] == "RuntimeError"


def test_async_generator_step(cap: Capture) -> None:
    @agentotel.tool
    async def stream(n: int) -> Any:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    async def main() -> list[int]:
        with agentotel.session("ag"):
            return [i async for i in stream(4)]

    assert asyncio.run(main()) == [0, 1, 2, 3]
    assert [span.name for span in cap.spans] == ["execute_tool stream", "invoke_agent ag"]


def test_content_is_off_by_default(cap: Capture) -> None:
    @agentotel.tool
    def secret(password: str) -> str:
        return "token-xyz"

    secret("hunter2")
    agentotel.record(agentotel.ActionEvent(action_type="a", params={"p": "hunter2"}, returns="token-xyz"))
    for span in cap.spans:
        text = repr(dict(span.attributes))
        assert "hunter2" not in text and "token-xyz" not in text


def test_content_on_records_arguments_and_results_as_json(cap_content: Capture) -> None:
    class Method:
        @agentotel.tool
        def call(self, a: int, b: str = "x") -> dict[str, Any]:
            return {"sum": a, "b": b}

    Method().call(1, b="y")
    span = cap_content.spans[0]
    assert span.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"a":1,"b":"y"}'
    assert span.attributes[sc.GEN_AI_TOOL_CALL_RESULT] == '{"sum":1,"b":"y"}'


def test_unserialisable_and_huge_content_is_bounded_and_never_raises(cap_content: Capture) -> None:
    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    loop: list[Any] = []
    loop.append(loop)

    @agentotel.tool
    def weird(a: Any, b: Any, c: Any, d: Any) -> Any:
        return "x" * 1_000_000

    assert weird(BadRepr(), loop, b"\x00\x01", math.nan) == "x" * 1_000_000
    span = cap_content.spans[0]
    assert len(span.attributes[sc.GEN_AI_TOOL_CALL_RESULT]) <= agentotel._config.settings.content_max_length
    assert span.attributes[sc.AGENTOTEL_CONTENT_TRUNCATED] is True
    assert "<2 bytes>" in span.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS]


def test_a_broken_tracer_never_breaks_the_call(cap: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentotel import steps

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("tracer is broken")

    @agentotel.tool
    def add(a: int, b: int) -> int:
        return a + b

    monkeypatch.setattr(steps.tracer, "start_span", explode)
    assert add(2, 3) == 5


def test_record_events_of_every_agentops_type(cap_content: Capture) -> None:
    with agentotel.session("r") as s:
        agentotel.record(agentotel.ActionEvent(action_type="session_complete", params={"intent": "x"}, returns=3))
        agentotel.record(agentotel.ToolEvent(name="search", params={"q": 1}, returns=[1]))
        agentotel.record(agentotel.LLMEvent(model="gpt-4o", provider="openai", prompt_tokens=10, completion_tokens=2))
        agentotel.record(agentotel.ErrorEvent(exception=ValueError("nope")))
        agentotel.record(object())  # unknown: recorded as an action named after its type, never raises
    kinds = [(e.kind, e.action_type or e.name) for e in s.events]
    assert kinds == [
        ("action", "session_complete"),
        ("tool", "search"),
        ("llm", "chat gpt-4o"),
        ("operation", "ValueError"),
        ("action", "object"),
    ]
    assert s.events[0].params == {"intent": "x"} and s.events[0].returns == 3
    assert s.llm_calls[0].cost == pytest.approx(10 * 2.5e-6 + 2 * 10e-6)
    assert s.events[3].error is not None and s.events[3].error.message == "nope"


# --- the content fast paths: the same text and attributes as the general ones ---------------------------------------


class _Model:
    def model_dump(self) -> dict[str, Any]:
        return {"m": [1, 2]}


class _ReprRaises:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _stdlib_to_json(value: Any, limit: int) -> tuple[str, bool]:
    """What `to_json` gave before its fast paths: the one `JSONEncoder`, then the sanitising fallback."""
    from agentotel import _content

    try:
        text = _content._encode(value)
    except Exception:
        try:
            text = json.dumps(_content._sanitize(value, set(), 0), ensure_ascii=False, separators=(",", ":"))
        except Exception:
            text = json.dumps(f"<unrepresentable {type(value).__name__}>")
    return _content.truncate(text, limit)


def _odd_values() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    return [
        "",
        "plain",
        'é\n"\\\t\x00',
        "bad \ud800 text",
        "x" * 20_000,
        "\n" * 20_000,
        0,
        -7,
        10**5000,  # past int's digit limit: the encoder raises, the fallback names it
        True,
        False,
        None,
        1.5,
        math.nan,
        -math.inf,
        {"a": 1, "b": [1, "two", None]},
        {"k": "é" * 20_000},
        [1, "a", {"b": 2.5}],
        (1, 2),
        {1, 2},
        b"\x00\x01",
        _Model(),
        _ReprRaises(),
        loop,
        cycle,
        {(1, 2): "a", None: "b", 3.5: "c"},
        {"nan": math.nan},
        [int, len],
    ]


@pytest.mark.parametrize("limit", [64, 16_384, 10**9])
def test_to_json_writes_what_the_standard_encoder_writes(limit: int) -> None:
    from agentotel._content import to_json

    for value in _odd_values():
        assert to_json(value, limit) == _stdlib_to_json(value, limit), repr(value)[:60]


def test_to_json_after_a_failed_encoding_still_finds_cycles_and_shared_values() -> None:
    """A C encoder is used again only after an encoding that succeeded: one that raised part-way may have left the
    containers it was inside in its markers, which would make them look circular the next time."""
    from agentotel._content import to_json

    shared = [1, 2]
    assert to_json([shared, _ReprRaises()], 10**6) == ('[[1,2],"<unrepresentable _ReprRaises>"]', False)
    assert to_json([shared, shared], 10**6) == ("[[1,2],[1,2]]", False)
    loop: list[Any] = []
    loop.append(loop)
    assert to_json(loop, 10**6) == ('["<recursive>"]', False)
    assert to_json({"a": shared}, 10**6) == ('{"a":[1,2]}', False)


def test_to_json_nested_in_a_values_own_conversion() -> None:
    """A pydantic model whose serializer records content itself (a nested `to_json` while the outer one encodes)."""
    import pydantic

    from agentotel._content import to_json

    class Nested(pydantic.BaseModel):
        @pydantic.model_serializer
        def dump(self) -> dict[str, Any]:
            return {"inner": to_json({"x": [1]}, 100)[0]}

    assert to_json([Nested(), Nested()], 10**6) == ('[{"inner":"{\\"x\\":[1]}"},{"inner":"{\\"x\\":[1]}"}]', False)


def test_bind_arguments_by_name_without_self_or_cls() -> None:
    from agentotel._content import bind_arguments

    class Thing:
        def method(self, a: int, b: int = 2) -> None: ...

        @classmethod
        def build(cls, a: int) -> None: ...

    def plain(a: int, b: int, c: int = 3) -> None: ...

    def varargs(a: int, *rest: int, **options: int) -> None: ...

    thing = Thing()
    assert bind_arguments(Thing.method, (thing, 1), {}) == {"a": 1}
    assert bind_arguments(Thing.method, (thing,), {"a": 1, "b": 5}) == {"a": 1, "b": 5}
    assert bind_arguments(Thing.build.__func__, (Thing, 4), {}) == {"a": 4}  # type: ignore[attr-defined]
    assert bind_arguments(plain, (1, 2), {}) == {"a": 1, "b": 2}
    assert bind_arguments(plain, (1,), {"b": 2, "self": 9}) == {"a": 1, "b": 2}
    assert bind_arguments(varargs, (1, 2, 3), {"k": 4}) == {"a": 1, "rest": (2, 3), "options": {"k": 4}}
    assert bind_arguments(plain, (1, 2, 3, 4), {}) == {"args": [1, 2, 3, 4]}  # too many: as passed


def _sdk_span(**limits: Any) -> Any:
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider

    provider = TracerProvider(span_limits=SpanLimits(**limits))
    return provider.get_tracer("t").start_span("s", attributes={"first": "1", "second": "2"})


@pytest.mark.parametrize(
    ("limits", "key", "text"),
    [
        ({}, "new", "text"),
        ({}, "first", "replaced"),  # an existing key: moved to the end, as the SDK does
        ({"max_span_attributes": 2}, "new", "text"),  # full: the oldest is dropped and counted
        ({"max_span_attribute_length": 3}, "new", "longer"),  # cut to the length limit
        ({"max_span_attribute_length": 6}, "new", "longer"),
    ],
)
def test_set_text_attribute_leaves_the_span_as_set_attribute_does(limits: dict[str, Any], key: str, text: str) -> None:
    from agentotel._sdk import set_text_attribute

    ours, theirs = _sdk_span(**limits), _sdk_span(**limits)
    set_text_attribute(ours, key, text)
    theirs.set_attribute(key, text)
    assert list(ours.attributes.items()) == list(theirs.attributes.items())
    assert ours.dropped_attributes == theirs.dropped_attributes


def test_set_text_attribute_writes_a_recording_sdk_spans_new_text_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentotel._sdk import set_text_attribute

    span = _sdk_span()
    monkeypatch.setattr(span, "set_attribute", None)  # not called: the write goes straight in, under the span's lock
    set_text_attribute(span, "new", "text")
    assert span.attributes["new"] == "text"


def test_set_text_attribute_on_an_ended_or_non_sdk_span_writes_nothing() -> None:
    from opentelemetry import trace

    from agentotel._sdk import set_text_attribute

    span = _sdk_span()
    span.end()
    set_text_attribute(span, "late", "text")
    assert "late" not in span.attributes
    set_text_attribute(trace.INVALID_SPAN, "key", "text")  # a non-recording span: accepted, kept nowhere


def test_content_on_records_positional_keyword_and_long_content(cap_content: Capture) -> None:
    @agentotel.tool
    def lookup(customer_id: str, *, verbose: bool = False) -> str:
        return "y" * 50_000

    assert lookup("cust_42", verbose=True) == "y" * 50_000
    (span,) = cap_content.spans
    assert span.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] == '{"customer_id":"cust_42","verbose":true}'
    result = span.attributes[sc.GEN_AI_TOOL_CALL_RESULT]
    assert result.startswith('"yyy') and len(result) == agentotel._config.settings.content_max_length
    assert span.attributes[sc.AGENTOTEL_CONTENT_TRUNCATED] is True
