"""Redaction: built-in patterns for secrets and e-mail addresses, and the application's hook, applied to content
before any exporter, the store or the live session sees it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentotel import semconv as sc
from agentotel._config import settings
from agentotel.redaction import Redaction, RedactionSpanProcessor, redact_builtin, redaction

SECRETS = {
    "openai_key": "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "anthropic_key": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
    "aws_access_key": "AKIAIOSFODNN7EXAMPLE",
    "github_token": "ghp_" + "a1" * 18,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "bearer_token": "Bearer abcdef0123456789",
    "email": "ada.lovelace@example.co.uk",
    "private_key": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
}


@pytest.mark.parametrize(("kind", "secret"), sorted(SECRETS.items()))
def test_builtin_patterns_replace_each_kind_of_secret(kind: str, secret: str) -> None:
    text = f"please use {secret} for this"
    assert redact_builtin(text) == f"please use [REDACTED:{kind}] for this"


def test_ordinary_text_is_left_alone() -> None:
    text = "Refund the duplicate charge of $99.00 on account C-1042, skip-the-line task sk-1"
    assert redact_builtin(text) == text


@pytest.fixture
def pipeline() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    saved = (settings.capture_content, redaction.hook, redaction.builtin)
    settings.capture_content = True
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(RedactionSpanProcessor())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider, exporter
    finally:
        settings.capture_content, redaction.hook, redaction.builtin = saved
        provider.shutdown()


def _span_with_content(provider: TracerProvider, text: str) -> None:
    with provider.get_tracer("t").start_as_current_span("chat x") as span:
        span.set_attribute(sc.GEN_AI_INPUT_MESSAGES, text)
        span.set_attribute(sc.GEN_AI_REQUEST_MODEL, f"model mailed to {SECRETS['email']}")  # not content: kept


def test_content_is_redacted_before_export_and_other_attributes_are_not(pipeline: tuple) -> None:  # type: ignore[type-arg]
    provider, exporter = pipeline
    _span_with_content(provider, f'[{{"role":"user","content":"my key is {SECRETS["openai_key"]}"}}]')
    (span,) = exporter.get_finished_spans()
    assert span.attributes[sc.GEN_AI_INPUT_MESSAGES] == '[{"role":"user","content":"my key is [REDACTED:openai_key]"}]'
    assert SECRETS["email"] in span.attributes[sc.GEN_AI_REQUEST_MODEL]


def test_the_hook_sees_redacted_text_and_decides_what_to_keep(pipeline: tuple) -> None:  # type: ignore[type-arg]
    provider, exporter = pipeline
    seen: list[tuple[str, str]] = []

    def hook(key: str, text: str) -> str | None:
        seen.append((key, text))
        return None if "DROP" in text else text.replace("Ada", "[name]")

    redaction.hook = hook
    _span_with_content(provider, f"Ada here, mail {SECRETS['email']}")
    _span_with_content(provider, "DROP me")
    first, second = exporter.get_finished_spans()
    assert first.attributes[sc.GEN_AI_INPUT_MESSAGES] == "[name] here, mail [REDACTED:email]"
    assert sc.GEN_AI_INPUT_MESSAGES not in second.attributes
    assert seen[0] == (sc.GEN_AI_INPUT_MESSAGES, "Ada here, mail [REDACTED:email]")


def test_a_hook_that_raises_drops_the_content_and_never_the_span(pipeline: tuple) -> None:  # type: ignore[type-arg]
    provider, exporter = pipeline

    def broken(key: str, text: str) -> str:
        raise RuntimeError("bug in the hook")

    redaction.hook = broken
    _span_with_content(provider, "anything")
    (span,) = exporter.get_finished_spans()
    assert sc.GEN_AI_INPUT_MESSAGES not in span.attributes
    assert span.name == "chat x"


def test_builtin_patterns_can_be_turned_off(pipeline: tuple) -> None:  # type: ignore[type-arg]
    provider, exporter = pipeline
    redaction.builtin = False
    _span_with_content(provider, SECRETS["email"])
    assert exporter.get_finished_spans()[0].attributes[sc.GEN_AI_INPUT_MESSAGES] == SECRETS["email"]


def test_redaction_object_without_builtins_or_hook_is_inactive() -> None:
    assert not Redaction(builtin=False).active
    assert Redaction(builtin=False, hook=lambda k, t: t).active


def test_init_redacts_what_a_real_session_records(cap_content: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: `init(redact=...)` wired into the provider; the tool's arguments reach the exported span, the
    live session and the replay only in redacted form."""
    import agentotel

    monkeypatch.setattr(redaction, "hook", None)
    monkeypatch.setattr(redaction, "builtin", True)
    agentotel.init(redact=lambda key, text: text.replace("C-1042", "[account]"))

    @agentotel.tool
    def email_customer(address: str, account: str, api_key: str) -> str:
        return f"sent to {address}"

    with agentotel.session("redact") as s:
        email_customer("ada@example.com", "C-1042", SECRETS["openai_key"])
    (tool_span,) = [span for span in cap_content.spans if span.name == "execute_tool email_customer"]  # type: ignore[attr-defined]
    recorded = tool_span.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] + tool_span.attributes[sc.GEN_AI_TOOL_CALL_RESULT]
    for secret in ("ada@example.com", "C-1042", SECRETS["openai_key"]):
        assert secret not in recorded
        assert secret not in s.replay()
    assert s.tool_calls[0].params == {
        "address": "[REDACTED:email]",
        "account": "[account]",
        "api_key": "[REDACTED:openai_key]",
    }


# --- the fast path (built-in patterns alone, no trigger in any text) decides as the full pass does -------------------


def _ended_span(provider: TracerProvider, attributes: dict[str, object]) -> None:
    provider.get_tracer("t").start_span("tool x", attributes=attributes).end()  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "attributes",
    [
        {sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"a":1,"b":2}', sc.GEN_AI_TOOL_CALL_RESULT: "3"},  # no trigger: unchanged
        {sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"to":"ada@example.com"}', sc.GEN_AI_TOOL_CALL_RESULT: '"sent"'},
        {sc.GEN_AI_TOOL_CALL_ARGUMENTS: '{"a":1}', sc.GEN_AI_TOOL_CALL_RESULT: f'"{SECRETS["openai_key"]}"'},
        {sc.GEN_AI_INPUT_MESSAGES: ["plain", f"key {SECRETS['aws_access_key']}"]},  # a list of texts: the full pass
        {sc.GEN_AI_INPUT_MESSAGES: ["plain", "text"], sc.AGENTOTEL_ACTION_RETURNS: "ok"},
        {sc.AGENTOTEL_ACTION_PARAMS: "sk-1 is not a key", "other": SECRETS["email"]},  # a trigger, nothing to redact
        {"other": SECRETS["email"]},  # no content attribute: left alone
    ],
)
def test_each_content_attribute_is_redacted_as_redact_builtin_says(
    pipeline: tuple,  # type: ignore[type-arg]
    attributes: dict[str, object],
) -> None:
    provider, exporter = pipeline
    _ended_span(provider, attributes)
    (span,) = exporter.get_finished_spans()
    expected = {
        key: (
            (tuple(redact_builtin(item) for item in value) if isinstance(value, list) else redact_builtin(value))  # type: ignore[arg-type]
            if key in sc.CONTENT_ATTRIBUTES
            else (tuple(value) if isinstance(value, list) else value)
        )
        for key, value in attributes.items()
    }
    assert dict(span.attributes) == expected


def test_the_hook_sees_every_content_attribute_in_a_fixed_order_even_without_triggers(
    pipeline: tuple,  # type: ignore[type-arg]
) -> None:
    provider, exporter = pipeline
    seen: list[str] = []
    redaction.hook = lambda key, text: seen.append(key) or text.upper()  # type: ignore[func-returns-value]
    _ended_span(provider, {sc.GEN_AI_TOOL_CALL_RESULT: "r", sc.GEN_AI_TOOL_CALL_ARGUMENTS: "a", "other": "o"})
    (span,) = exporter.get_finished_spans()
    assert seen == sorted([sc.GEN_AI_TOOL_CALL_ARGUMENTS, sc.GEN_AI_TOOL_CALL_RESULT])
    assert span.attributes[sc.GEN_AI_TOOL_CALL_ARGUMENTS] == "A" and span.attributes["other"] == "o"


def test_nothing_is_redacted_with_capture_off_or_redaction_inactive(pipeline: tuple) -> None:  # type: ignore[type-arg]
    provider, exporter = pipeline
    settings.capture_content = False
    _ended_span(provider, {sc.GEN_AI_TOOL_CALL_RESULT: SECRETS["email"]})
    settings.capture_content = True
    redaction.builtin = False
    _ended_span(provider, {sc.GEN_AI_TOOL_CALL_RESULT: SECRETS["email"]})
    assert [span.attributes[sc.GEN_AI_TOOL_CALL_RESULT] for span in exporter.get_finished_spans()] == [
        SECRETS["email"],
        SECRETS["email"],
    ]


def test_a_span_whose_attributes_cannot_be_read_as_the_sdks_is_still_redacted(
    pipeline: tuple,  # type: ignore[type-arg]
) -> None:
    """A span of another kind (no SDK attribute dict inside): read through its `attributes`, as before."""

    class OtherSpan:
        def __init__(self) -> None:
            self.attributes = {sc.GEN_AI_TOOL_CALL_RESULT: f"mail {SECRETS['email']}"}
            self.written: dict[str, object] = {}

        def is_recording(self) -> bool:
            return True

        def set_attributes(self, attributes: dict[str, object]) -> None:
            self.written.update(attributes)

    span = OtherSpan()
    RedactionSpanProcessor()._on_ending(span)  # type: ignore[arg-type]
    assert span.written == {sc.GEN_AI_TOOL_CALL_RESULT: "mail [REDACTED:email]"}
