"""The incident: one JSON document per thing on-call should hear about (DESIGN.md, "Alerts").

Published once to AlertsTopic with `MessageStructure: json`: subscribers over SQS and Lambda get
the JSON document; email and everything else get `default`, a readable text. Message attributes
`severity`, `status` and `lockId` let subscriptions filter. README.md, "Incidents", documents the
format for subscribers; `version` changes if a field ever changes meaning."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

FORMAT_VERSION = 1
SUBJECT_LIMIT = 99  # SNS: under 100 characters, no line breaks
CAUSE_LIMIT = 8000  # keeps the message (text + JSON) far below SNS's 256 KB


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Execution:
    arn: str
    name: str
    state_machine_arn: str
    redrive_count: int = 0

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]

    @property
    def console_url(self) -> str:
        region = self.region
        partition = self.arn.split(":")[1]
        domain = "amazonaws.cn" if partition == "aws-cn" else "aws.amazon.com"
        return (
            f"https://{region}.console.{domain}/states/home?region={region}"
            f"#/v2/executions/details/{self.arn}"
        )


@dataclass(frozen=True)
class Repairs:
    """What was repaired, as it really happened."""

    lock: str
    """released | already_free | held_by_other | no_lock | reacquired | taken_over |
    redrive_stopped | left_held"""
    lock_detail: str
    holder: str | None = None
    tasks_stopped: tuple[str, ...] = ()
    tasks_already_stopped: tuple[str, ...] = ()
    tasks_gone: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": self.lock,
            "lockDetail": self.lock_detail,
            "holder": self.holder,
            "tasksStopped": list(self.tasks_stopped),
            "tasksAlreadyStopped": list(self.tasks_already_stopped),
            "tasksGone": list(self.tasks_gone),
        }


def iso_from_millis(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def incident_id(kind: str, execution_arn: str, status: str, redrive_count: int) -> str:
    """Stable for the same execution, status and redrive count: a second delivery of the same
    event yields the same id, so subscribers can de-duplicate."""
    name = f"lock-janitor:{kind}:{execution_arn}:{status}:{redrive_count}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


@dataclass(frozen=True)
class Incident:
    kind: str
    """execution (an execution ended badly) | redrive (a redriven execution and its lock)"""
    severity: Severity
    status: str
    lock_id: str | None
    execution: Execution
    repairs: Repairs
    action: str
    """What on-call should do about it."""
    error: str | None = None
    cause: str | None = None
    start_ms: int | None = None
    stop_ms: int | None = None
    reported_by: str = "janitor"
    incident_key: str | None = None
    """What the incident is about when it is not the execution itself (an orphan task's ARN)."""
    detected_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )

    @property
    def id(self) -> str:
        return incident_id(self.kind, self.execution.arn, self.status, self.execution.redrive_count)

    @property
    def duration_seconds(self) -> float | None:
        if self.start_ms is None or self.stop_ms is None:
            return None
        return round((self.stop_ms - self.start_ms) / 1000, 3)

    @property
    def task(self) -> str:
        return self.lock_id or "unknown task"

    def to_json(self) -> dict[str, Any]:
        cause = self.cause
        if cause is not None and len(cause) > CAUSE_LIMIT:
            cause = cause[: CAUSE_LIMIT - 1] + "…"
        return {
            "version": FORMAT_VERSION,
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity.value,
            "status": self.status,
            "lockId": self.lock_id,
            "execution": {
                "arn": self.execution.arn,
                "name": self.execution.name,
                "stateMachineArn": self.execution.state_machine_arn,
                "consoleUrl": self.execution.console_url,
                "redriveCount": self.execution.redrive_count,
            },
            "error": self.error,
            "cause": cause,
            "startedAt": iso_from_millis(self.start_ms),
            "stoppedAt": iso_from_millis(self.stop_ms),
            "durationSeconds": self.duration_seconds,
            "repairs": self.repairs.to_json(),
            "action": self.action,
            "reportedBy": self.reported_by,
            "detectedAt": self.detected_at,
        }

    def subject(self) -> str:
        text = f"[lock-janitor] {self.severity.value.upper()} {self.status} {self.task}: "
        text += self.execution.name
        text = " ".join(text.split())  # no line breaks, whatever the names hold
        return text if len(text) <= SUBJECT_LIMIT else text[: SUBJECT_LIMIT - 1] + "…"

    def text(self) -> str:
        """The readable text email and pager subscribers receive."""
        doc = self.to_json()
        r = self.repairs
        lines = [
            f"{self.status}: task {self.task}, execution {self.execution.name}",
            f"Severity: {self.severity.value}",
            f"What to do: {self.action}",
            "",
            f"Lock: {r.lock_detail}",
            f"Tasks stopped: {', '.join(r.tasks_stopped) or 'none'}",
        ]
        if r.tasks_already_stopped or r.tasks_gone:
            done = r.tasks_already_stopped + r.tasks_gone
            lines.append(f"Tasks already stopped or gone: {', '.join(done)}")
        lines += [
            "",
            f"Error: {self.error or '-'}",
            f"Cause: {doc['cause'] or '-'}",
            f"Started: {doc['startedAt'] or '-'}   Stopped: {doc['stoppedAt'] or '-'}"
            f"   Duration: {self._duration_text()}",
            f"Execution: {self.execution.arn}",
            f"Console: {self.execution.console_url}",
            f"Incident {self.id}, reported by {self.reported_by} at {self.detected_at}",
        ]
        return "\n".join(lines)

    def _duration_text(self) -> str:
        seconds = self.duration_seconds
        if seconds is None:
            return "-"
        minutes, secs = divmod(int(seconds), 60)
        hours, minutes = divmod(minutes, 60)
        return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"

    def sns_publish_args(self, topic_arn: str) -> dict[str, Any]:
        """Arguments of sns.publish for this incident."""
        document = json.dumps(self.to_json(), separators=(",", ":"))
        text = self.text()
        return {
            "TopicArn": topic_arn,
            "Subject": self.subject(),
            "MessageStructure": "json",
            "Message": json.dumps(
                {"default": text, "email": text, "sqs": document, "lambda": document}
            ),
            "MessageAttributes": {
                "severity": {"DataType": "String", "StringValue": self.severity.value},
                "status": {"DataType": "String", "StringValue": self.status},
                "lockId": {"DataType": "String", "StringValue": self.lock_id or "unknown"},
                "kind": {"DataType": "String", "StringValue": self.kind},
            },
        }
