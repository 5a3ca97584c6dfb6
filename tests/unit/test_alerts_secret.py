"""The Slack webhook secret as the alerts function reads it: GetSecretValue, kept for
SECRET_MAX_AGE seconds in a warm instance, read again after (a rotated webhook is picked up)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from alerts import handler
from common import clients

FIRST = "https://hooks.slack.com/services/T000/B000/first"
SECOND = "https://hooks.slack.com/services/T000/B000/second"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        clients.reset()
        handler.forget_secrets()
        sm = boto3.client("secretsmanager", region_name="us-east-1")
        yield str(sm.create_secret(Name="lock-janitor/slack", SecretString=FIRST)["ARN"])
        handler.forget_secrets()
        clients.reset()


def test_the_secret_is_kept_then_read_again(secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("alerts.handler.time.monotonic", lambda: now[0])
    assert handler.webhook_url(secret) == FIRST
    boto3.client("secretsmanager", region_name="us-east-1").put_secret_value(
        SecretId=secret, SecretString=f'{{"url": "{SECOND}"}}'
    )
    now[0] += handler.SECRET_MAX_AGE - 1
    assert handler.webhook_url(secret) == FIRST, "kept while young"
    now[0] += 2
    assert handler.webhook_url(secret) == SECOND, "read again once old, JSON or not"


def test_an_unreadable_secret_makes_a_slack_that_says_why(secret: str) -> None:
    broken = handler.slack(secret + "-gone", 2.0, "us-east-1")
    assert broken.broken is not None
    assert "ResourceNotFoundException" in str(broken.broken)
    assert handler.slack(secret, 2.0, "us-east-1").broken is None
