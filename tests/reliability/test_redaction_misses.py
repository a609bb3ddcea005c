"""What redaction used to miss (issue 13, item 2): a private key cut by the length limit before its END line, AWS
secret access keys (only the key id was caught), credentials in URLs, Slack webhook URLs, a secret in a URL's
query — in content recorded through a real step, with content capture on."""

from __future__ import annotations

from typing import Any

import pytest

import agentotel
from agentotel._config import settings
from agentotel.testing import capture

PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\n" + "MIIEowIBAAKCAQEA" * 80 + "\n-----END RSA PRIVATE KEY-----"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SLACK = "https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX"
URL_PASSWORD = "hunter2-s3cret"
QUERY_TOKEN = "tok_9f8e7d6c5b4a3210"


@agentotel.tool
def deploy(config: Any) -> str:
    return "deployed"


def _recorded(config: Any) -> str:
    with capture(capture_content=True) as cap, agentotel.session("secrets"):
        deploy(config)
    (step,) = cap.session("secrets").tool_calls
    (span,) = [s for s in cap.spans if s.name == "execute_tool deploy"]
    return str(dict(span.attributes or {})) + str(step.params)


def test_a_private_key_cut_by_the_length_limit_is_still_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "content_max_length", 256)  # the key's END line is past the cut
    recorded = _recorded({"key": PRIVATE_KEY})
    assert "MIIEowIBAAKCAQEA" not in recorded and "[REDACTED:private_key]" in recorded


@pytest.mark.parametrize(
    ("config", "secret", "mark"),
    [
        ({"aws_secret_access_key": AWS_SECRET}, AWS_SECRET, "[REDACTED:aws_secret_key]"),
        ("export AWS_SECRET_ACCESS_KEY=" + AWS_SECRET, AWS_SECRET, "[REDACTED:aws_secret_key]"),
        ({"notify": SLACK}, "B0000000/XXXXXXXX", "[REDACTED:slack_webhook]"),
        ({"db": f"postgres://deploy:{URL_PASSWORD}@db.internal:5432/app"}, URL_PASSWORD, "[REDACTED:url_credentials]"),
        (
            {"feed": f"https://api.example.com/feed?user=ada&token={QUERY_TOKEN}"},
            QUERY_TOKEN,
            "[REDACTED:query_secret]",
        ),
    ],
)
def test_secrets_redaction_used_to_miss(config: Any, secret: str, mark: str) -> None:
    recorded = _recorded(config)
    assert secret not in recorded and mark in recorded


def test_the_name_a_secret_was_given_stays_readable() -> None:
    recorded = _recorded({"aws_secret_access_key": AWS_SECRET, "region": "eu-west-1"})
    assert "aws_secret_access_key" in recorded and "eu-west-1" in recorded
    assert "db.internal" in _recorded({"db": f"postgres://deploy:{URL_PASSWORD}@db.internal/app"})
