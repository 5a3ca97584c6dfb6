"""The incident: one JSON document per thing on-call should hear about.

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
    """What was repaired, as the durable state shows it (the lock item's Last*/Acquired*
    attributes, the tasks' stop reasons), whoever did it and whenever: a second look at the same
    state gives the same repairs, so a retry or a duplicate reports exactly what the first did."""

    lock: str
    """released | already_free | held_by_other | no_lock | held | reacquired | taken_over |
    redrive_stopped | left_held"""
    lock_detail: str
    holder: str | None = None
    released_by: str | None = None
    tasks_stopped: tuple[str, ...] = ()
    """Stopped by the janitor or the reconciler because their execution had ended."""
    tasks_already_stopped: tuple[str, ...] = ()
    tasks_gone: tuple[str, ...] = ()
    tasks_running: tuple[str, ...] = ()
    """Tasks of the execution's live attempt, left running."""
    claims: tuple[str, ...] = ()
    """Each repair the janitor or the reconciler did, as one sorted line ("released <lock> by
    janitor", "stopped <task> by reconciler", ...): part of the incident id."""

    def to_json(self) -> dict[str, Any]:
        return {
            "lock": self.lock,
            "lockDetail": self.lock_detail,
            "holder": self.holder,
            "releasedBy": self.released_by,
            "tasksStopped": list(self.tasks_stopped),
            "tasksAlreadyStopped": list(self.tasks_already_stopped),
            "tasksGone": list(self.tasks_gone),
            "tasksRunning": list(self.tasks_running),
            "claims": list(self.claims),
        }


def iso_from_millis(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def incident_id(
    kind: str,
    execution_arn: str,
    status: str,
    redrive_count: int,
    *,
    key: str | None = None,
    claims: tuple[str, ...] = (),
) -> str:
    """Stable for the same execution, status, attempt, subject (`key`: a lock or a task, when
    the incident is about one) and repairs: a duplicate event, a retry, the janitor and the
    reconciler looking at the same state all yield the same id, so subscribers de-duplicate;
    a further repair yields a new id, so it is never dropped as a duplicate."""
    name = "\n".join(
        ["lock-janitor", kind, execution_arn, status, str(redrive_count), key or "", *claims]
    )
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


@dataclass(frozen=True)
class Incident:
    kind: str
    """execution (an execution ended badly) | redrive (a redriven execution and its lock) |
    unlocked (a live run found without its lock) | stuck (running past its timeout) |
    unreadable (something the reconciler could not read, skipped)"""
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
    """What the incident is about when it is not the execution itself (a lock id, a task ARN):
    part of the id."""
    detected_at: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds")
    )

    @property
    def id(self) -> str:
        return incident_id(
            self.kind,
            self.execution.arn,
            self.status,
            self.execution.redrive_count,
            key=self.incident_key,
            claims=self.repairs.claims,
        )

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
