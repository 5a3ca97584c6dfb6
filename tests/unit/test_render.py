"""Slack messages against golden files (single incident, digest, alarm), and the rules every
message keeps: escaping, Block Kit limits, a plain-text fallback.

Regenerate the golden files after a deliberate change: UPDATE_GOLDEN=1 make pytest"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from alerts.messages import parse_notification
from alerts.render import alarm_message, digest_message, escape, incident_message
from common.incident import Execution, Incident, Repairs, Severity
from local.template import ROOT

GOLDEN = ROOT / "tests" / "golden"
MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:lock-janitor-LockingStateMachine"


def incident(n: int, **overrides: Any) -> dict[str, Any]:
    name = f"nightly-{n}"
    values: dict[str, Any] = {
        "kind": "execution",
        "severity": Severity.HIGH,
        "status": "TIMED_OUT",
        "lock_id": "nightly-report",
        "execution": Execution(
            MACHINE.replace("stateMachine", "execution") + f":{name}", name, MACHINE
        ),
        "repairs": Repairs(
            "released",
            "nightly-report: released by the janitor (it was still held)",
            tasks_stopped=("arn:aws:ecs:us-east-1:123456789012:task/c/0a1b",),
        ),
        "action": "Find out why the run took so long.",
        "start_ms": 1_764_374_400_000,
        "stop_ms": 1_764_381_600_000,
        "detected_at": "2026-11-29T04:00:01+00:00",
    }
    values.update(overrides)
    return Incident(**values).to_json()


ALARM = {
    "AlarmName": "lock-janitor-AlertsDeadLetterQueueAlarm",
    "AlarmDescription": "Notifications that never reached Slack wait in AlertsDeadLetterQueue.",
    "NewStateValue": "ALARM",
    "OldStateValue": "OK",
    "NewStateReason": "Threshold Crossed: 1 datapoint [2.0] was greater than the threshold (0.0).",
    "StateChangeTime": "2026-11-29T04:05:00.000+0000",
    "Region": "US East (N. Virginia)",
    "Trigger": {
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Namespace": "AWS/SQS",
        "Dimensions": [{"name": "QueueName", "value": "lock-janitor-AlertsDeadLetterQueue"}],
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.0,
    },
}


def storm() -> list[dict[str, Any]]:
    out = []
    for n in range(12):
        status = ("FAILED", "ABORTED", "TIMED_OUT")[n % 3]
        out.append(
            incident(
                n,
                status=status,
                lock_id=("nightly-report", "billing-sync")[n % 2],
                severity=Severity.HIGH if status != "FAILED" else Severity.MEDIUM,
                error="Task.Failed" if status == "FAILED" else None,
                cause="States.TaskFailed: exit 1" if status == "FAILED" else None,
            )
        )
    return out


CASES = {
    "slack-single.json": lambda: incident_message(
        incident(
            1,
            error="Task.Timeout",
            cause='States.Timeout: {"TaskArn": "arn:aws:ecs:...:task/c/0a1b"} <!channel> & co',
        )
    ),
    "slack-digest.json": lambda: digest_message(storm()),
    "slack-alarm.json": lambda: alarm_message(ALARM),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    rendered = CASES[name]()
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(rendered, indent=2, ensure_ascii=False) + "\n")
    assert rendered == json.loads(path.read_text()), f"{name} changed: see the module docstring"


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_message_keeps_block_kit_limits_and_has_a_fallback(name: str) -> None:
    message = CASES[name]()
    assert message["text"]
    assert len(message["blocks"]) <= 50
    assert message["blocks"][0]["type"] == "header"
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    for block in message["blocks"]:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        assert len(block.get("fields", [])) <= 10


def test_escape() -> None:
    assert escape("<!channel> & <http://x|y>") == "&lt;!channel&gt; &amp; &lt;http://x|y&gt;"


def test_digest_counts_by_task_and_status() -> None:
    message = digest_message(storm())
    table = next(
        b for b in message["blocks"] if "By task and status" in b.get("text", {}).get("text", "")
    )
    text = table["text"]["text"]
    assert "billing-sync" in text
    assert "nightly-report" in text
    assert "12 incidents" in message["blocks"][0]["text"]["text"]
    worst = [b for b in message["blocks"] if b["type"] == "section"][2:5]
    assert all("TIMED_OUT" in b["text"]["text"] for b in worst[:2]), "the worst come first"


def test_notifications_are_told_apart() -> None:
    def envelope(message: str, subject: str | None = None) -> str:
        return json.dumps(
            {"Type": "Notification", "MessageId": "m-1", "Message": message, "Subject": subject}
        )

    assert parse_notification(envelope(json.dumps(incident(1)))).kind == "incident"
    assert parse_notification(envelope(json.dumps(ALARM), "ALARM: x")).kind == "alarm"
    other = parse_notification(envelope("hello", "Test"))
    assert (other.kind, other.document["text"], other.key) == ("other", "hello", "sns:m-1")
