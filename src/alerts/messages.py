"""What arrives on AlertsQueue: SNS notifications (the envelope SNS wraps around each message
for an SQS subscriber) carrying an incident, a CloudWatch alarm, or anything else someone
published on the topic."""

from __future__ import annotations

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
        """What de-duplicates it: the incident id, else SNS's message id."""
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
    message_id = str(envelope.get("MessageId") or "")
    subject = envelope.get("Subject")
    document = _json(message)
    if isinstance(document, dict) and document.get("id") and "repairs" in document:
        return Notification("incident", message_id, subject, document)
    if isinstance(document, dict) and "AlarmName" in document and "NewStateValue" in document:
        return Notification("alarm", message_id, subject, document)
    return Notification("other", message_id, subject, {"text": message})
