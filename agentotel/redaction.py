"""The content policy, for every span whoever made it: content leaves the process only when capture is on, and
then only redacted.

Content is prompts, completions, tool arguments and results, action params and returns: every attribute
`semconv.CONTENT_ATTRIBUTES` names, the indexed families `conventions.CONTENT_PREFIXES` names (OpenInference's
`llm.input_messages.*`, the older `gen_ai.prompt.*`, ...) and the GenAI message events
(`conventions.CONTENT_EVENTS`). Both rules run in the span processor's `_on_ending` hook, so every exporter, the
store and the live sessions see the result — for agentotel's spans and for any other instrumentation's:

- capture off (`strip_foreign_content`): agentotel's own spans hold no content; another library's spans lose
  their content attributes and content events — unless the user asked to keep what that library records
  (`init(keep_content_from=[...])` / `AGENTOTEL_KEEP_CONTENT_FROM`, by instrumentation scope name);
- capture on (`RedactionSpanProcessor`): built-in patterns replace common secrets and e-mail addresses with
  `[REDACTED:<kind>]`, then the application's own hook (`init(redact=...)`) sees the text and returns what to keep.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.sdk.trace import Event, Span
from opentelemetry.trace import Status, StatusCode

from . import semconv as sc
from ._config import settings
from ._sdk import (
    EndingProcessor,
    drop_attributes_on_ending,
    event_with,
    may_hold_errors,
    rewrite_events_on_ending,
    set_attributes_on_ending,
    set_status_on_ending,
    span_attributes,
)
from .conventions import is_content_event, is_content_key
from .semconv import CONTENT_ATTRIBUTES

log = logging.getLogger("agentotel")

Redactor = Callable[[str, str], "str | None"]
"""`hook(attribute_name, text) -> text`: what to keep of a content attribute; `None` drops the attribute."""

BUILTIN_PATTERNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (
        "private_key",
        # to its END line, or to the end of the text: a key cut by a length limit is still a key
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*?)(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        ("PRIVATE KEY",),
    ),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}", ("sk-ant-",)),
    ("openai_key", r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{20,}", ("sk-",)),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", ("AKIA", "ASIA")),
    (
        "aws_secret_key",
        # a 40-character secret named as one (`aws_secret_access_key = ...`, `"SecretAccessKey": "..."`)
        r"(?i:secret_?access_?key|aws_?secret(?:_?key)?)[\"']?\s*[:=]\s*[\"']?(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])",
        ("ecret", "ECRET"),
    ),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+",
        ("hooks.slack.com",),
    ),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", ("xox",)),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}\b", ("AIza",)),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", ("eyJ",)),
    ("bearer_token", r"(?i:\bbearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", ("earer", "EARER")),
    # a secret in a URL's query (`?api_key=...`, `&token=...`, `&sig=...`): the value, not the name
    (
        "query_secret",
        r"(?i:[?&;](?:api[_-]?key|apikey|key|token|access[_-]?token|auth|secret|password|passwd|sig|signature)=)"
        r"(?P<secret>[^&;\s#'\"<>]+)",
        ("key=", "token=", "auth=", "secret=", "sig=", "signature=", "password=", "passwd=", "KEY=", "TOKEN="),
    ),
    # user:password in a URL (`https://user:secret@host/...`): the credentials, not the host
    ("url_credentials", r"(?<=://)[^\s/?#@:'\"]+:[^\s/?#@'\"]+(?=@)", ("://",)),
    ("email", r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b", ("@",)),
)
"""The secrets redacted by default, most specific first: (name, pattern, substrings one of which a match must
contain). Each match is replaced with `[REDACTED:<name>]` (only its group `secret`, when it has one: the name the
text gave the secret stays)."""


# A pattern runs only when one of its substrings is in the text: a regex scan costs ~1.5 µs a pattern on a short
# message, a substring test a few dozen nanoseconds, and most content holds no secret at all. One search for any of
# the substrings comes first: most texts hold none, and one scan of them costs a third less than a test each.
def _replacement(name: str, pattern: re.Pattern[str]) -> str | Callable[[re.Match[str]], str]:
    mark = f"[REDACTED:{name}]"
    if "secret" not in pattern.groupindex:
        return mark

    def replace(match: re.Match[str]) -> str:
        whole, start = match.group(0), match.start()
        return whole[: match.start("secret") - start] + mark + whole[match.end("secret") - start :]

    return replace


_BUILTIN = tuple(
    (name, compiled, triggers, _replacement(name, compiled))
    for name, pattern, triggers in BUILTIN_PATTERNS
    for compiled in [re.compile(pattern)]
)
_ANY_TRIGGER = re.compile("|".join(re.escape(t) for _, _, triggers in BUILTIN_PATTERNS for t in triggers))


def redact_builtin(text: str) -> str:
    """`text` with every built-in pattern replaced by its `[REDACTED:<name>]` mark."""
    if _ANY_TRIGGER.search(text) is None:
        return text
    for _name, pattern, triggers, replacement in _BUILTIN:
        for trigger in triggers:
            if trigger in text:
                text = pattern.sub(replacement, text)
                break
    return text


_URL_QUERY = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s?#'\"<>]+)\?[^\s#'\"<>]*")
_INPUT_VALUE = re.compile(r"(\binput_value=)(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\{[^}]*\}|\[[^\]]*\]|[^,\]\s]+)")
_LONG_QUOTED = re.compile(r"'[^'\n]{33,}'|(?<!File )\"[^\"\n]{33,}\"")
"""Quoted texts longer than 32 characters, but not a traceback's `File "/path/to/app.py"`: where code is, not what
went in (the frames shown are the user's own; without their files a traceback says nothing)."""


def scrub_error_text(text: str) -> str:
    """Error text as it may leave the process with content capture off. An error message is content when it
    quotes what went in: an API key a provider's 401 echoes, a URL's query string in an HTTP client's error, the
    input value a pydantic `ValidationError` quotes, a completion or argument a message repeats. Replaced: the
    built-in secret patterns, URL query strings, pydantic's `input_value=...`, and quoted texts longer than 32
    characters (a traceback's file names excepted); the exception's type and the rest of its message stay, so the
    failing step is still told apart."""
    text = redact_builtin(text)
    text = _URL_QUERY.sub(r"\1?[REDACTED:query]", text)
    text = _INPUT_VALUE.sub(r"\1[REDACTED:input]", text)
    return _LONG_QUOTED.sub("'[REDACTED:quoted]'", text)


class Redaction:
    """What to redact: the built-in patterns (on unless turned off) and the application's hook."""

    def __init__(self, hook: Redactor | None = None, *, builtin: bool = True) -> None:
        self.hook = hook
        self.builtin = builtin

    @property
    def active(self) -> bool:
        return self.builtin or self.hook is not None

    def apply(self, key: str, text: str) -> str | None:
        """The text to keep for a content attribute; `None` drops it. A hook that raises drops the attribute
        (failing closed: content that could not be checked is not recorded)."""
        if self.builtin:
            text = redact_builtin(text)
        if self.hook is not None:
            try:
                kept = self.hook(key, text)
            except Exception:
                log.warning("The redaction hook raised on %s; the attribute is dropped", key, exc_info=True)
                return None
            if kept is None:
                return None
            text = kept if isinstance(kept, str) else str(kept)
        return text


redaction = Redaction()
"""The process-wide redaction `init(redact=..., redact_builtin=...)` configures."""


def redacted_attributes(
    attributes: Mapping[str, Any], keys: Iterable[str] = CONTENT_ATTRIBUTES
) -> tuple[dict[str, Any], list[str]]:
    """The content attributes of `attributes` (those of `keys`) that redaction changes (new values) and those it
    drops."""
    changed: dict[str, Any] = {}
    dropped: list[str] = []
    for key in keys:
        value = attributes.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            kept = redaction.apply(key, value)
            if kept is None:
                dropped.append(key)
            elif kept != value:
                changed[key] = kept
        elif isinstance(value, (list, tuple)):
            items = [redaction.apply(key, item) if isinstance(item, str) else item for item in value]
            kept_items = [item for item in items if item is not None]
            if kept_items != list(value):
                changed[key] = kept_items
    return changed, dropped


_CONTENT_KEYS = tuple(
    sorted(
        {
            sc.GEN_AI_INPUT_MESSAGES,
            sc.GEN_AI_OUTPUT_MESSAGES,
            sc.GEN_AI_SYSTEM_INSTRUCTIONS,
            sc.GEN_AI_TOOL_DEFINITIONS,
            sc.GEN_AI_TOOL_CALL_ARGUMENTS,
            sc.GEN_AI_TOOL_CALL_RESULT,
            sc.AGENTOTEL_ACTION_PARAMS,
            sc.AGENTOTEL_ACTION_RETURNS,
        }
    )
)
"""The content attributes agentotel's own spans can hold: the only ones looked for on them."""


def is_agentotel_span(span: Any) -> bool:
    """Whether agentotel's own tracers made the span (by its instrumentation scope). Never raises."""
    try:
        scope = span.instrumentation_scope
        name = scope.name if scope is not None else ""
    except Exception:
        return False
    return name == "agentotel" or name.startswith("agentotel.")


def _content_kept_for(span: Any) -> bool:
    """Whether the user asked to keep the content of the library that made the span, with agentotel's off."""
    keep = settings.keep_content_from
    if not keep:
        return False
    try:
        name = span.instrumentation_scope.name or ""
    except Exception:
        return False
    return any(name == prefix or name.startswith(prefix + ".") for prefix in keep)


def _content_keys(span: Any, attributes: Mapping[str, Any]) -> list[str]:
    """The content attributes a span holds, in a fixed order (sorted)."""
    if is_agentotel_span(span):
        return [key for key in _CONTENT_KEYS if key in attributes]
    return sorted(key for key in attributes if is_content_key(key))


def _events_of(span: Any) -> tuple[Any, ...]:
    try:
        return tuple(span.events or ())
    except Exception:
        return ()


_content_key_cache: dict[str, bool] = {}
"""Attribute name -> whether it holds content: other libraries' spans repeat the same names, and a dict lookup is a
fraction of the prefix test it saves. Bounded (`_CONTENT_KEY_CACHE_LIMIT`): past it, names are tested each time."""
_CONTENT_KEY_CACHE_LIMIT = 4096


def _learn_content_key(key: str) -> bool:
    found = is_content_key(key)
    if len(_content_key_cache) < _CONTENT_KEY_CACHE_LIMIT:
        _content_key_cache[key] = found
    return found


def strip_foreign_content(span: Span) -> None:
    """With content capture off: removes the content attributes and content events another instrumentation put on
    an ending span (agentotel's own spans have none then). Never raises: a span whose content cannot be removed
    is logged at debug."""
    try:
        if is_agentotel_span(span) or _content_kept_for(span):
            return
        attributes = span_attributes(span)
        known = _content_key_cache
        keys = [key for key in attributes if (known[key] if key in known else _learn_content_key(key))]
        if keys:
            drop_attributes_on_ending(span, keys)
        if may_hold_errors(span) and any(is_content_event(event.name) for event in _events_of(span)):
            rewrite_events_on_ending(span, lambda event: None if is_content_event(event.name) else event)
    except Exception:
        log.debug("Could not remove the content of a span", exc_info=True)


def _redacted_event(event: Event) -> Event | None:
    """A content event with each text attribute redacted (`<event name>.<attribute>` is the name the hook sees);
    other events unchanged."""
    if not is_content_event(event.name):
        return event
    attributes = event.attributes or {}
    keys = [f"{event.name}.{key}" for key in attributes]
    changed, dropped = redacted_attributes({f"{event.name}.{k}": v for k, v in attributes.items()}, keys)
    if not changed and not dropped:
        return event
    prefix = len(event.name) + 1
    kept = {k: v for k, v in attributes.items() if f"{event.name}.{k}" not in dropped}
    kept.update({k[prefix:]: v for k, v in changed.items()})
    return event_with(event, kept)


_STATUS_DESCRIPTION = "status.description"
"""The name the redaction hook sees for a span's status description."""
_REASON = sc.AGENTOTEL_SESSION_END_STATE_REASON
_EXCEPTION_TEXT = (sc.EXCEPTION_MESSAGE, sc.EXCEPTION_STACKTRACE)


def _guarded(key: str, text: str, capture: bool) -> str | None:
    """Error text as it may leave: scrubbed with content capture off, redacted (patterns, then the hook) with it
    on."""
    if not capture:
        return scrub_error_text(text)
    return redaction.apply(key, text) if redaction.active else text


def _guarded_exception(event: Event, capture: bool) -> Event | None:
    if event.name != "exception":
        return event
    attributes = dict(event.attributes or {})
    changed = False
    for key in _EXCEPTION_TEXT:
        value = attributes.get(key)
        if isinstance(value, str):
            kept = _guarded(key, value, capture)
            if kept != value:
                changed = True
                if kept is None:
                    del attributes[key]
                else:
                    attributes[key] = kept
    return event_with(event, attributes) if changed else event


def guard_error_text(span: Span) -> None:
    """Error messages are content: they quote what went in (a key a 401 echoes, a URL's query, a validation
    error's input). With content capture off, the text of a span's exception events, its status description and a
    session's end-state reason is scrubbed (`scrub_error_text`: the type and the rest of the message stay); with it
    on, redaction runs on it as on content (the hook sees `exception.message`, `exception.stacktrace`,
    `status.description`, `agentotel.session.end_state_reason`). For every span, whoever made it. Never raises."""
    try:
        if not may_hold_errors(span):
            attributes = span_attributes(span)
            if _REASON not in attributes:
                return  # most spans: no events, not failed, no session's reason
        else:
            attributes = span_attributes(span)
        capture = settings.capture_content
        if capture and not redaction.active:
            return
        reason = attributes.get(_REASON)
        if isinstance(reason, str):
            kept = _guarded(_REASON, reason, capture)
            if kept is None:
                drop_attributes_on_ending(span, [_REASON])
            elif kept != reason:
                set_attributes_on_ending(span, {_REASON: kept})
        status = span.status
        if status.status_code is StatusCode.ERROR and status.description:
            description = _guarded(_STATUS_DESCRIPTION, status.description, capture)
            if description != status.description:
                set_status_on_ending(span, Status(StatusCode.ERROR, description))
        if any(event.name == "exception" for event in _events_of(span)):
            rewrite_events_on_ending(span, lambda event: _guarded_exception(event, capture))
    except Exception:
        log.debug("Could not guard the error text of a span", exc_info=True)


class RedactionSpanProcessor(EndingProcessor):
    """Redacts the content (attributes and content events) of every span before any exporter, the store or the
    live sessions see it.

    Does nothing while content capture is off (`strip_foreign_content` applies then). Never raises: a span that
    cannot be redacted loses its content attributes rather than leaking them."""

    def on_ending(self, span: Span) -> None:
        if not settings.capture_content:
            return
        hook, builtin = redaction.hook, redaction.builtin  # `redaction.active`, without a property call per span
        if hook is None and not builtin:
            return
        # The SDK's plain dict where it keeps one (this runs for every span): a lookup of an absent key costs
        # nanoseconds, not a `KeyError` raised and caught.
        attributes = span_attributes(span)
        if not is_agentotel_span(span):
            self._redact_foreign(span, attributes)
            return
        if hook is None:
            # The built-in patterns alone: most content holds none of their triggers, and then they change nothing
            # (`redact_builtin` starts with the same search). One search per content text, no list built.
            search = _ANY_TRIGGER.search
            for key in _CONTENT_KEYS:
                if key in attributes:
                    value = attributes[key]
                    if type(value) is not str or search(value) is not None:
                        break  # a trigger, or a list of texts: the full pass below
            else:
                return
        present = [key for key in _CONTENT_KEYS if key in attributes]  # looked up once: this runs for every span
        if not present:
            return
        try:
            changed, dropped = redacted_attributes(attributes, present)
        except Exception:
            log.warning("Could not redact a span's content; its content attributes are dropped", exc_info=True)
            changed, dropped = {}, present
        if dropped:
            drop_attributes_on_ending(span, dropped)
        if changed:
            set_attributes_on_ending(span, changed)

    def _redact_foreign(self, span: Span, attributes: Mapping[str, Any]) -> None:
        """Another instrumentation's span: every content attribute it may hold, whatever its name, and its
        content events."""
        present = _content_keys(span, attributes)
        if present:
            try:
                changed, dropped = redacted_attributes(attributes, present)
            except Exception:
                log.warning("Could not redact a span's content; its content attributes are dropped", exc_info=True)
                changed, dropped = {}, present
            if dropped:
                drop_attributes_on_ending(span, dropped)
            if changed:
                set_attributes_on_ending(span, changed)
        has_events = any(is_content_event(event.name) for event in _events_of(span))
        if has_events and not rewrite_events_on_ending(span, _redacted_event):
            log.debug("Could not redact the content events of a span")
