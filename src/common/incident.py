"""The incident: one JSON document per thing on-call should hear about.

Published once to AlertsTopic with `MessageStructure: json`: subscribers over SQS and Lambda get
the JSON document; email and everything else get `default`, a readable text. Message attributes
`severity`, `status` and `lockId` let subscriptions filter. docs/operations.md, "Incidents",
documents the format for subscribers; `version` changes if a field ever changes meaning."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from common.ecs_task import StoppedTask
from common.text import ascii_line, cut, one_line, utf8_len, without_controls

FORMAT_VERSION = 1
SUBJECT_LIMIT = 99
"""SNS: a subject under 100 characters, no line breaks or control characters; AWS's own SNS
receivers treat non-ASCII as invalid too, so subjects are printable ASCII."""
CAUSE_LIMIT_BYTES = 8000
"""The cause kept in the document, in UTF-8 bytes."""
SNS_MESSAGE_BUDGET = 240_000
"""SNS takes 262,144 bytes (message, subject and attributes together); this leaves room."""


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
    unreadable (something the reconciler could not read, skipped) | forced (an operator
    released the lock of a live run by hand)"""
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
    headline: str = ""
    """What happened in one line (from common.triage), without the task's name."""
    task: StoppedTask | None = None
    """The failed run's task as its cause describes it (container, exit code, logs)."""
    timeout_seconds: int | None = None
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
    def summary(self) -> str:
        """The task's name and what happened, in one line."""
        what = self.headline or f"{self.status.lower()} ({self.kind})"
        if self.lock_id is None:
            return what[:1].upper() + what[1:]
        return f"{self.lock_id}: {what}"

    def to_json(self, cause_limit: int = CAUSE_LIMIT_BYTES) -> dict[str, Any]:
        cause = None
        if self.cause is not None:
            cause = cut(without_controls(self.cause), cause_limit, units="utf8")
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
            "summary": self.summary,
            "error": self.error,
            "cause": cause,
            "task": self.task.to_json() if self.task else None,
            "timeoutSeconds": self.timeout_seconds,
            "startedAt": iso_from_millis(self.start_ms),
            "stoppedAt": iso_from_millis(self.stop_ms),
            "durationSeconds": self.duration_seconds,
            "repairs": self.repairs.to_json(),
            "action": self.action,
            "reportedBy": self.reported_by,
            "detectedAt": self.detected_at,
        }

    def subject(self) -> str:
        return subject_of(self.to_json())

    def log_fields(self) -> dict[str, Any]:
        """The incident's "Incident" log line: what a digest's Logs Insights link lists."""
        return {
            "incidentId": self.id,
            "kind": self.kind,
            "severity": self.severity.value,
            "status": self.status,
            "lockId": self.lock_id,
            "summary": cut(one_line(self.summary), 500),
            "executionArn": self.execution.arn,
        }

    def sns_publish_args(self, topic_arn: str) -> dict[str, Any]:
        """Arguments of sns.publish for this incident: the document for SQS and Lambda
        subscribers, the readable text for every other protocol; within SNS's size limit
        whatever the cause holds (the cause is cut further until it fits)."""
        limit = CAUSE_LIMIT_BYTES
        while True:
            document = self.to_json(cause_limit=limit)
            raw = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
            text = incident_text(document)
            message = json.dumps(
                {"default": text, "sqs": raw, "lambda": raw},
                separators=(",", ":"),
                ensure_ascii=False,
            )
            if utf8_len(message) <= SNS_MESSAGE_BUDGET or limit <= 0:
                break
            limit //= 2
        return {
            "TopicArn": topic_arn,
            "Subject": subject_of(document),
            "MessageStructure": "json",
            "Message": message,
            "MessageAttributes": {
                "severity": {"DataType": "String", "StringValue": self.severity.value},
                "status": {"DataType": "String", "StringValue": ascii_line(self.status, 256)},
                "lockId": {
                    "DataType": "String",
                    "StringValue": cut(self.lock_id or "unknown", 1024, units="utf8"),
                },
                "kind": {"DataType": "String", "StringValue": self.kind},
            },
        }


_CONSOLE = re.compile(
    r"^https://[a-z]{2}(-[a-z]+)+-\d\.console\.(aws\.amazon\.com|amazonaws\.cn)/[^\s<>|]*$"
)


_EMPTY_CAUSE = re.compile(r"^\s*([A-Za-z][\w.]*:?\s*)?$")


def shown_cause(doc: dict[str, Any]) -> str | None:
    """The cause worth showing: none when the task was read from it (its fields say more) or
    when it says nothing but an error's name (`States.Timeout: `)."""
    cause = doc.get("cause")
    if not isinstance(cause, str) or doc.get("task") or _EMPTY_CAUSE.match(cause):
        return None
    return cause


def is_console_url(url: object, region: str | None = None) -> bool:
    """An https link to the AWS console of a real-looking region (of `region`, when given: the
    function's own), with nothing that could end a Slack link early."""
    if not isinstance(url, str) or _CONSOLE.match(url) is None:
        return False
    return region is None or url.startswith(
        (f"https://{region}.console.aws.amazon.com/", f"https://{region}.console.amazonaws.cn/")
    )


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def subject_of(document: dict[str, Any]) -> str:
    """An email subject for an incident document: severity, status and summary."""
    severity = str(document.get("severity") or "?").upper()
    summary = document.get("summary") or f"{document.get('lockId')}: {document.get('status')}"
    return ascii_line(
        f"[lock-janitor] {severity} {document.get('status')} {summary}", SUBJECT_LIMIT
    )


def incident_text(doc: dict[str, Any], region: str | None = None) -> str:
    """The readable text of an incident document (email, and SNS's default for every
    protocol without a document of its own); links only to the console of `region`, when
    given."""
    repairs = doc.get("repairs") or {}
    execution = doc.get("execution") or {}
    task = doc.get("task") or {}
    lines = [
        str(doc.get("summary") or doc.get("status")),
        f"Severity: {doc.get('severity')}   Status: {doc.get('status')}",
        f"What to do: {doc.get('action')}",
        "",
        f"Lock: {repairs.get('lockDetail') or '-'}",
        f"Tasks stopped: {', '.join(repairs.get('tasksStopped') or []) or 'none'}",
    ]
    done = (repairs.get("tasksAlreadyStopped") or []) + (repairs.get("tasksGone") or [])
    if done:
        lines.append(f"Tasks already stopped or gone: {', '.join(done)}")
    if task:
        lines += [
            "",
            f"Task: {task.get('arn')}",
            f"Container: {task.get('container') or '-'}   Exit code: "
            f"{'-' if task.get('exitCode') is None else task.get('exitCode')}",
            f"Stopped: {task.get('stoppedReason') or '-'} ({task.get('stopCode') or '-'})",
        ]
        if task.get("containerReason"):
            lines.append(f"Container reason: {task['containerReason']}")
        if is_console_url(task.get("consoleUrl"), region):
            lines.append(f"Task in the console: {task['consoleUrl']}")
        if is_console_url(task.get("logUrl"), region):
            lines.append(f"Logs: {task['logUrl']}")
    lines += ["", f"Error: {doc.get('error') or '-'}"]
    if cause := shown_cause(doc):
        lines.append(f"Cause: {cause}")
    lines += [
        f"Started: {doc.get('startedAt') or '-'}   Stopped: {doc.get('stoppedAt') or '-'}"
        f"   Duration: {duration_text(doc.get('durationSeconds'))}",
        f"Execution: {execution.get('arn')}",
        f"Console: {url if is_console_url(url := execution.get('consoleUrl'), region) else '-'}",
        f"Incident {doc.get('id')}, reported by {doc.get('reportedBy')} at {doc.get('detectedAt')}",
    ]
    return without_controls("\n".join(str(line) for line in lines))
