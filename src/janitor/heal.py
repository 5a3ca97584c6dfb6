"""The janitor: a status-change event says an execution of the locking machine ended badly or
was redriven. The event is a hint: the janitor heals the execution as the truth shows it now
(common.healing), then reports what the state after shows, so a late, duplicated or
out-of-order event, or a retry after a partial success, reports exactly what was done.

A repair that cannot be done now (StopTask denied, DynamoDB throttled) is left for the retry:
the rest is done first, nothing is released while a task of the execution may still run, and
`RepairIncomplete` is raised so Lambda retries (then the dead-letter queue keeps the event)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.clients import Aws
from common.healing import Healed, Healer, aws_time
from common.lock_table import ReleasedBy
from common.pending import publish
from common.repair import Snapshot
from common.settings import JanitorSettings
from common.status_event import MalformedEvent, StatusChange
from common.task_input import TaskInput
from common.truth import MISSING


class ForeignEvent(MalformedEvent):
    """A status change of a state machine this janitor does not look after."""


class RepairIncomplete(RuntimeError):
    """Some repair could not be done now; the rest was. Raised so the platform retries."""

    def __init__(self, execution_arn: str, undone: list[str], done: Result) -> None:
        super().__init__(f"{execution_arn}: left undone for the retry: {'; '.join(undone)}")
        self.undone = undone
        self.done = done


@dataclass
class Result:
    """What happened, for the return value, the logs and the metrics."""

    execution_arn: str
    status: str
    lock_id: str | None = None
    lock: str = "unknown"
    locks_released: int = 0
    tasks_stopped: list[str] = field(default_factory=list)
    incident_id: str | None = None
    severity: str | None = None
    kept: bool = False
    """The incident could not be published now and is kept for the reconciler to publish."""
    reported: list[dict[str, Any]] = field(default_factory=list)
    """Each incident published (or kept), as its "Incident" log line."""
    contradictions: list[str] = field(default_factory=list)
    """Where the event contradicts itself or the truth read (logged as a WARNING): something
    upstream is broken. The execution was healed from the truth all the same."""

    def summary(self) -> dict[str, Any]:
        return {
            "executionArn": self.execution_arn,
            "status": self.status,
            "lockId": self.lock_id,
            "lock": self.lock,
            "tasksStopped": self.tasks_stopped,
            "incidentId": self.incident_id,
            "severity": self.severity,
            "reportKept": self.kept,
        }


def contradictions(change: StatusChange, truth: Snapshot) -> list[str]:
    """Where the event's fields contradict each other or the truth read: each said with both
    sides. Pure; the execution is healed from the truth whatever the event says."""
    arn = change.execution_arn
    said: list[str] = []
    claimed = change.claimed_state_machine_arn
    if claimed is not None and claimed != change.state_machine_arn:
        said.append(
            f"the event's stateMachineArn is {claimed}, but its executionArn {arn} is an "
            f"execution of {change.state_machine_arn}: healed as the latter's"
        )
    if change.claimed_name is not None and change.claimed_name != change.name:
        said.append(f"the event's name is {change.claimed_name!r}, but its executionArn {arn}")
    e = truth.execution
    if e.status == MISSING or truth.history_missing:
        return said  # nothing to compare with: Step Functions no longer knows it
    had = truth.history_statuses | {e.status}
    if change.ended and change.status not in had:
        said.append(
            f"the event says {change.status}, but {arn} never was: it is {e.status}, and its "
            f"history ends no attempt {change.status}"
        )
    attempts = max(e.redrive_count, truth.history_attempt)
    if change.redrive_count > attempts:
        said.append(
            f"the event says redriveCount {change.redrive_count}, but {arn} was redriven "
            f"{attempts} time(s)"
        )
    return said


def heal(change: StatusChange, settings: JanitorSettings, aws: Aws) -> Result:
    if change.state_machine_arn != settings.state_machine_arn:
        claimed = change.claimed_state_machine_arn
        says = f" (its stateMachineArn says {claimed})" if claimed else ""
        raise ForeignEvent(
            f"status change of {change.execution_arn}, an execution of "
            f"{change.state_machine_arn}{says}, not of {settings.state_machine_arn}"
        )
    if not (change.ended or change.redriven):
        raise MalformedEvent(
            f"nothing to heal for status {change.status} with redriveCount "
            f"{change.redrive_count}: the rule should not have sent it"
        )
    healer = Healer(aws, settings.lock_table, ReleasedBy.JANITOR)
    healed = healer.heal(change.execution_arn, hint=TaskInput.parse(change.input))
    result = Result(change.execution_arn, change.status)
    undone: list[str] = []
    for one in healed:
        undone += one.undone
        result.tasks_stopped += one.stopped
        result.locks_released += int(one.released)
    mine = healed[-1]
    result.status = mine.after.execution.status
    result.lock_id = mine.after.lock_id
    result.contradictions = contradictions(change, mine.plan_input)
    if undone:
        raise RepairIncomplete(change.execution_arn, undone, result)
    for one in healed:
        _report(healer, one, settings, aws, result)
    return result


def _report(
    healer: Healer, one: Healed, settings: JanitorSettings, aws: Aws, result: Result
) -> None:
    incident = healer.report(one, "janitor")
    if incident is None:
        return
    published = publish(
        aws.sns,
        aws.dynamodb,
        settings.lock_table,
        incident,
        topic_arn=settings.alerts_topic_arn,
        now=aws_time(),
    )
    result.reported.append({**incident.log_fields(), "published": published})
    if one.after.execution.arn == result.execution_arn:
        result.lock = incident.repairs.lock
        result.incident_id, result.severity = incident.id, incident.severity.value
        result.kept = not published
