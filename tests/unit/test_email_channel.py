"""The email channel: one readable mail per incident kind (golden files), digests that list
every incident, subjects SNS accepts, and SNS's errors told apart as retry-later or rejected.

Regenerate the golden files after a deliberate change: UPDATE_GOLDEN=1 make pytest"""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest
from moto import mock_aws

from alerts.channels import Rejected, RetryLater
from alerts.channels.email import Email
from alerts.digest import digest_of
from local.template import ROOT
from tests.support.faults import failing_call
from tests.support.incidents import ALARM, KINDS, aborted, document

GOLDEN = ROOT / "tests" / "golden" / "alerts"


def email(sns: Any = None) -> Email:
    return Email(sns, "arn:aws:sns:us-east-1:123456789012:lock-janitor-AlertsEmailTopic")


def mail_text(message: tuple[str, str]) -> str:
    subject, body = message
    return f"Subject: {subject}\n\n{body}\n"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_of_mail_matches_its_golden_file(kind: str) -> None:
    rendered = mail_text(email().incident(KINDS[kind](1).to_json()))
    path = GOLDEN / f"email-{kind}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert rendered == path.read_text(), f"{path.name} changed: see the module docstring"


def test_a_digest_mail_lists_every_incident_and_the_alarm_reads_as_one() -> None:
    storm = [aborted(n, lock=f"job-{n % 7}").to_json() for n in range(300)]
    subject, body = email().digest(digest_of(storm, region="us-east-1", log_groups=["g"]))
    assert subject == "[lock-janitor] 300 incidents at once: 300 high"
    assert body.count("\n  incident ") == 300
    assert "logs-insights" in body
    subject, body = email().alarm(ALARM, None)
    assert subject == "ALARM: lock-janitor-AlertsDeadLetterQueueAlarm"
    assert "Threshold Crossed" in body


def test_subjects_are_what_sns_accepts_whatever_the_text() -> None:
    doc = document(aborted(), summary="caf\u00e9 \x00\x1b[31m\u2028" + "😀" * 200)
    subject, body = email().incident(doc)
    assert len(subject) <= 100
    assert all(32 <= ord(ch) < 127 for ch in subject)
    assert "\x00" not in body
    assert "\x1b" not in body


def test_a_hostile_console_link_is_not_mailed() -> None:
    doc = document(aborted())
    doc["execution"]["consoleUrl"] = "https://evil.example/phish"
    _, body = email().incident(doc)
    assert "evil.example" not in body


@pytest.mark.parametrize(
    ("code", "error", "payload"),
    [
        ("Throttling", RetryLater, None),
        ("InternalError", RetryLater, None),
        ("KMSThrottlingException", RetryLater, None),
        ("InvalidParameter", Rejected, True),
        ("AuthorizationError", Rejected, False),
        ("KMSDisabledException", Rejected, False),
        ("NotFound", Rejected, False),
    ],
)
def test_sns_errors_are_retry_later_or_rejected(
    code: str, error: type[Exception], payload: bool | None
) -> None:
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="lock-janitor-AlertsEmailTopic")["TopicArn"]
        channel = Email(sns, topic)
        with failing_call(sns, "Publish", code), pytest.raises(error) as raised:
            channel.post(("subject", "body"), 10)
        if payload is not None:
            assert isinstance(raised.value, Rejected)
            assert raised.value.payload is payload
        channel.post(("subject", "body"), 10)  # and once SNS answers again, it is mailed
