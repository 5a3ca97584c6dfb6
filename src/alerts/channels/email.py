"""Email, through an SNS topic of its own (AlertsEmailTopic) whose subscriber is on-call's
address: the alerts function publishes one readable mail per incident, or one digest in a
storm, exactly like Slack. The alarms about the alerts path itself are published to that topic
by CloudWatch directly, so they reach on-call even when this function cannot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from alerts.channels import Rejected, RetryLater
from alerts.digest import Digest, task_of
from alerts.messages import Notification
from common.incident import SUBJECT_LIMIT, incident_text, is_console_url, subject_of
from common.text import ascii_line, cut, utf8_len, without_controls

BODY_LIMIT = 200_000
"""Bytes of one mail's text (SNS takes 262,144 for the whole message)."""
RETRY_CODES = {
    "Throttling",
    "ThrottlingException",
    "Throttled",
    "InternalError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottling",
    "KMSThrottlingException",
    "RequestTimeout",
}
PAYLOAD_CODES = {"InvalidParameter", "InvalidParameterValue", "ValidationError"}


def _console(url: Any, region: str | None) -> str | None:
    return str(url) if is_console_url(url, region) else None


@dataclass
class Email:
    sns: Any
    topic_arn: str
    high_only: bool = False
    region: str | None = None
    """The function's region: only links to its console are mailed."""
    min_interval: float = 0.0
    post_timeout: float = 10.0
    name: str = "email"
    metric: str = "Email"

    def accepts(self, note: Notification) -> bool:
        if note.kind != "incident" or not self.high_only:
            return True
        return str(note.document.get("severity")) == "high"

    def incident(self, incident: Mapping[str, Any]) -> Any:
        return (subject_of(dict(incident)), incident_text(dict(incident), self.region))

    def minimal(self, incident: Mapping[str, Any]) -> Any:
        execution = incident.get("execution") or {}
        body = (
            f"{incident.get('severity')} {incident.get('status')} {task_of(incident)}\n"
            f"Incident {incident.get('id')}\nExecution {execution.get('arn')}\n"
            "(the full mail was refused; the alerts log group has the incident)"
        )
        return (subject_of(dict(incident)), body)

    def digest(self, digest: Digest) -> Any:
        subject = f"[lock-janitor] {digest.total} incidents at once: {digest.severity_text}"
        lines = [
            f"{digest.total} incidents arrived together ({digest.severity_text}).",
            f"All of them, with their details: {digest.logs_url or 'the janitor log group'}",
            "",
            "By task and status:",
        ]
        lines += [f"  {task}  {status}  {n}" for task, status, n in digest.rows]
        lines += [f"  total  {digest.total}", "", "Every incident, worst first:"]
        used = utf8_len("\n".join(lines))
        for i, incident in enumerate(digest.incidents):
            execution = incident.get("execution") or {}
            entry = (
                f"- {incident.get('summary') or task_of(incident)} [{incident.get('severity')}, "
                f"{incident.get('status')}]\n"
                f"  {_console(execution.get('consoleUrl'), self.region) or execution.get('arn')}\n"
                f"  incident {incident.get('id')}"
            )
            if used + utf8_len(entry) > BODY_LIMIT - 200:
                lines.append(f"+{digest.total - i} more: see the link above")
                break
            lines.append(entry)
            used += utf8_len(entry) + 1
        return (ascii_line(subject, SUBJECT_LIMIT), without_controls("\n".join(lines)))

    def minimal_digest(self, digest: Digest) -> Any:
        subject = f"[lock-janitor] {digest.total} incidents at once"
        ids = "\n".join(f"{i.get('id')} {i.get('status')}" for i in digest.incidents)
        return (ascii_line(subject, SUBJECT_LIMIT), cut(ids, BODY_LIMIT, units="utf8"))

    def alarm(self, alarm: Mapping[str, Any], subject: str | None) -> Any:
        name = alarm.get("AlarmName") or "?"
        state = alarm.get("NewStateValue") or "?"
        lines = [
            f"{state}: {name} (was {alarm.get('OldStateValue') or '?'})",
            f"Reason: {alarm.get('NewStateReason') or '-'}",
            f"What it watches: {alarm.get('AlarmDescription') or '-'}",
            f"Changed at: {alarm.get('StateChangeTime') or '-'}",
            f"Region: {alarm.get('Region') or '-'}",
        ]
        title = subject or f"{state}: {name}"
        return (ascii_line(title, SUBJECT_LIMIT), without_controls("\n".join(map(str, lines))))

    def other(self, subject: str | None, text: str) -> Any:
        title = subject or "Message on the lock-janitor alerts topic"
        return (
            ascii_line(title, SUBJECT_LIMIT),
            cut(without_controls(text), BODY_LIMIT, units="utf8"),
        )

    def post(self, message: Any, timeout: float) -> None:
        subject, body = message
        try:
            self.sns.publish(
                TopicArn=self.topic_arn,
                Subject=subject or "lock-janitor",
                Message=cut(body, BODY_LIMIT, units="utf8") or "-",
            )
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code") or "ClientError")
            if code in RETRY_CODES:
                raise RetryLater(f"SNS answered {code}") from None
            raise Rejected(f"SNS refused the mail: {code}", payload=code in PAYLOAD_CODES) from None
        except BotoCoreError as err:
            raise RetryLater(f"cannot reach SNS: {type(err).__name__}") from None
