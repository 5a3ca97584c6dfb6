"""What arrives on AlertsQueue: SNS notifications (the envelope SNS wraps around each message
for an SQS subscriber) carrying an incident, a CloudWatch alarm, or anything else someone
published on the topic."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["incident", "alarm", "other"]


class UnreadableRecord(ValueError):
    """The record's body is not an SNS notification."""


@dataclass(frozen=True)
class Notification:
    kind: Kind
    message_id: str
    subject: str | None
    document: dict[str, Any]
    """The incident, the alarm, or {"text": ...} for anything else."""

    @property
    def key(self) -> str:
        """What de-duplicates it: the incident id, else SNS's message id (a notification
        without one: the digest of its content, so two such never share a key)."""
        if self.kind == "incident":
            return f"incident:{self.document['id']}"
        return f"sns:{self.message_id}"


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_notification(body: str) -> Notification:
    envelope = _json(body)
    if not isinstance(envelope, dict) or envelope.get("Type") != "Notification":
        raise UnreadableRecord("the record is not an SNS notification")
    message = str(envelope.get("Message") or "")
    message_id = envelope.get("MessageId")
    if not isinstance(message_id, str) or not message_id.strip():
        message_id = "body-" + hashlib.sha256(body.encode("utf-8", "replace")).hexdigest()
    raw_subject = envelope.get("Subject")
    subject = raw_subject if isinstance(raw_subject, str) and raw_subject.strip() else None
    document = _json(message)
    if (
        isinstance(document, dict)
        and isinstance(document.get("id"), str)
        and document["id"].strip()
        and isinstance(document.get("repairs"), dict)
    ):
        return Notification("incident", message_id, subject, incident_document(document))
    if isinstance(document, dict) and "AlarmName" in document and "NewStateValue" in document:
        return Notification("alarm", message_id, subject, alarm_document(document))
    return Notification("other", message_id, subject, {"text": message})


TEXT_FIELDS = (
    "id",
    "kind",
    "severity",
    "status",
    "lockId",
    "summary",
    "error",
    "cause",
    "action",
    "reportedBy",
    "detectedAt",
    "startedAt",
    "stoppedAt",
)
SUB_TEXT_FIELDS = {
    "execution": ("arn", "name", "stateMachineArn", "consoleUrl"),
    "repairs": ("lock", "lockDetail", "holder", "releasedBy"),
    "task": (
        "arn",
        "consoleUrl",
        "container",
        "containerReason",
        "stoppedReason",
        "stopCode",
        "logUrl",
    ),
}
LIST_FIELDS = ("tasksStopped", "tasksAlreadyStopped", "tasksGone", "tasksRunning", "claims")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, default=str)[:10_000]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if abs(value) < 1e15 else None


def incident_document(document: dict[str, Any]) -> dict[str, Any]:
    """The incident with every field of the type the renderers expect: a field of the wrong
    type (a list for a status, a string for the execution) becomes text or is dropped, so one
    odd document renders instead of failing its batch."""
    doc: dict[str, Any] = dict(document)
    for name in TEXT_FIELDS:
        doc[name] = _text(document.get(name))
    for name, fields in SUB_TEXT_FIELDS.items():
        part = document.get(name)
        if not isinstance(part, dict):
            doc[name] = None if name == "task" else {}
            continue
        doc[name] = {**part, **{f: _text(part.get(f)) for f in fields}}
    repairs = doc["repairs"]
    for name in LIST_FIELDS:
        items = repairs.get(name)
        repairs[name] = [_text(i) or "" for i in items] if isinstance(items, list) else []
    doc["durationSeconds"] = _number(document.get("durationSeconds"))
    if isinstance(doc.get("task"), dict):
        code = doc["task"].get("exitCode")
        doc["task"]["exitCode"] = (
            code if isinstance(code, int) and not isinstance(code, bool) else None
        )
    return doc


ALARM_TEXT_FIELDS = (
    "AlarmName",
    "AlarmDescription",
    "NewStateValue",
    "OldStateValue",
    "NewStateReason",
    "StateChangeTime",
    "Region",
)


def alarm_document(document: dict[str, Any]) -> dict[str, Any]:
    """The alarm with every field the renderers read of the type they expect (CloudWatch's
    shape; anything else published with an AlarmName is made to fit or dropped)."""
    doc: dict[str, Any] = dict(document)
    for name in ALARM_TEXT_FIELDS:
        doc[name] = _text(document.get(name))
    trigger = document.get("Trigger")
    trigger = dict(trigger) if isinstance(trigger, dict) else {}
    for name in ("Namespace", "MetricName", "ComparisonOperator"):
        trigger[name] = _text(trigger.get(name))
    trigger["Threshold"] = _number(trigger.get("Threshold"))
    dimensions = trigger.get("Dimensions")
    trigger["Dimensions"] = [
        {k: _text(v) for k, v in d.items()}
        for d in (dimensions if isinstance(dimensions, list) else [])
        if isinstance(d, dict)
    ]
    doc["Trigger"] = trigger
    return doc
