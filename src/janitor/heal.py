"""Heal what an execution left behind: release its lock, stop its orphan tasks, report it.

Every step is idempotent, so a second delivery of the same event does no harm. A step that
cannot be done is left for the retry: the others are done first, then `RepairIncomplete` is
raised, and no incident is published until every repair really happened."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from common.incident import Execution, Incident, Repairs, Severity
from common.lock_table import AcquireResult, Outcome, ReleasedBy, ReleaseResult, acquire, release
from common.settings import JanitorSettings
from common.status_event import (
    MalformedEvent,
    StatusChange,
    lock_id_from_input,
    timeout_from_input,
)
from janitor.decide import (
    LOCK_HELD_ERROR,
    TaskRef,
    assess_ended,
    aws_time,
    stop_reason,
    task_refs,
    terminal_error,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient

AwsError = (ClientError, BotoCoreError)
NO_SUCH_EXECUTION = frozenset({"ExecutionDoesNotExist", "StateMachineDoesNotExist", "InvalidArn"})
"""What Step Functions answers for an execution that is gone (past its retention) or never was:
permanent, so retrying cannot help."""
DESCRIBE_TASKS_LIMIT = 100
ALIVE = frozenset({"RUNNING", "PENDING_REDRIVE"})
"""Statuses of an execution that may still hold a lock and run a task."""


class ForeignEvent(MalformedEvent):
    """A status change of a state machine this janitor does not look after."""


class RepairIncomplete(RuntimeError):
    """Some repair could not be done now; the rest was. Raised so the platform retries."""

    def __init__(self, execution_arn: str, undone: list[str], done: Result) -> None:
        super().__init__(f"{execution_arn}: left undone for the retry: {'; '.join(undone)}")
        self.undone = undone
        self.done = done


@dataclass(frozen=True)
class Aws:
    """The clients the janitor works with."""

    dynamodb: DynamoDBClient
    stepfunctions: SFNClient
    ecs: ECSClient
    sns: SNSClient


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

    def summary(self) -> dict[str, Any]:
        return {
            "executionArn": self.execution_arn,
            "status": self.status,
            "lockId": self.lock_id,
            "lock": self.lock,
            "tasksStopped": self.tasks_stopped,
            "incidentId": self.incident_id,
            "severity": self.severity,
        }


def error_code(err: Exception) -> str:
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "ClientError"))
    return type(err).__name__


def heal(change: StatusChange, settings: JanitorSettings, aws: Aws) -> Result:
    if change.state_machine_arn != settings.state_machine_arn:
        raise ForeignEvent(
            f"status change of {change.state_machine_arn}, not of {settings.state_machine_arn}"
        )
    if change.ended:
        return heal_ended(change, settings, aws)
    if change.redriven:
        return heal_redrive(change, settings, aws)
    raise MalformedEvent(
        f"nothing to heal for status {change.status} with redriveCount {change.redrive_count}: "
        "the rule should not have sent it"
    )


@dataclass
class _Input:
    raw: str | None
    error: str | None = None
    cause: str | None = None


def _execution_input(change: StatusChange, aws: Aws) -> _Input:
    """The input that names the lock: the event's, else DescribeExecution's (input left out of
    the event, or one without a lockId)."""
    if lock_id_from_input(change.input) is not None:
        return _Input(change.input)
    status, described = execution_status(aws.stepfunctions, change.execution_arn)
    if status == "MISSING":
        return _Input(change.input)
    return _Input(described.get("input"), described.get("error"), described.get("cause"))


def _history(aws: Aws, execution_arn: str) -> Iterator[dict[str, Any]]:
    token: str | None = None
    for _ in range(10_000):  # bounded: 25,000 events per execution at most, 1,000 a page
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = aws.stepfunctions.get_execution_history(**kwargs)
        yield from page["events"]  # type: ignore[misc]
        token = page.get("nextToken")
        if not token:
            return


@dataclass
class _Stops:
    stopped: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    undone: list[str] = field(default_factory=list)


def task_gone(err: Exception) -> bool:
    """StopTask or DescribeTasks errors that mean the task cannot be running."""
    if not isinstance(err, ClientError):
        return False
    code = error_code(err)
    message = str(err.response.get("Error", {}).get("Message", "")).lower()
    if code == "ClusterNotFoundException":
        return True
    return code in {"InvalidParameterException", "ClientException"} and "not found" in message


def stop_orphans(aws: Aws, refs: list[TaskRef], reason: str) -> _Stops:
    """Stop every task in `refs` that is not STOPPED; tell stopped, already stopped, gone and
    undone apart."""
    out = _Stops()
    by_cluster: dict[str, list[str]] = {}
    for ref in refs:
        by_cluster.setdefault(ref.cluster_arn, []).append(ref.task_arn)
    for cluster, arns in by_cluster.items():
        for i in range(0, len(arns), DESCRIBE_TASKS_LIMIT):
            _stop_batch(aws, cluster, arns[i : i + DESCRIBE_TASKS_LIMIT], reason, out)
    return out


def _stop_batch(aws: Aws, cluster: str, batch: list[str], reason: str, out: _Stops) -> None:
    try:
        described = aws.ecs.describe_tasks(cluster=cluster, tasks=batch)
    except AwsError as err:
        if task_gone(err):
            out.gone += batch
        else:
            out.undone += [f"describe {a}: {error_code(err)}" for a in batch]
        return
    found = {t["taskArn"]: t for t in described.get("tasks", [])}
    for arn in batch:
        task = found.get(arn)
        if task is None:
            out.gone.append(arn)
        elif task.get("lastStatus") == "STOPPED":
            out.already.append(arn)
        else:
            try:
                aws.ecs.stop_task(cluster=cluster, task=arn, reason=reason)
                out.stopped.append(arn)
            except AwsError as err:
                if task_gone(err):
                    out.gone.append(arn)
                else:
                    out.undone.append(f"stop {arn}: {error_code(err)}")


def heal_ended(change: StatusChange, settings: JanitorSettings, aws: Aws) -> Result:
    result = Result(change.execution_arn, change.status)
    undone: list[str] = []
    error, cause = change.error, change.cause

    source = _execution_input(change, aws)
    lock_id = lock_id_from_input(source.raw)
    result.lock_id = lock_id
    error, cause = error or source.error, cause or source.cause

    released: ReleaseResult | None = None
    if lock_id is not None:
        try:
            released = release(
                aws.dynamodb,
                settings.lock_table,
                lock_id,
                owner=change.execution_arn,
                outcome=Outcome(change.status),
                by=ReleasedBy.JANITOR,
                now=aws_time(),
                redrive_count=change.redrive_count,
            )
            if released.kind == "released":
                result.locks_released = 1
        except AwsError as err:
            undone.append(f"release {lock_id}: {error_code(err)}")

    refs: list[TaskRef] = []
    history_missing = False
    try:
        events = list(_history(aws, change.execution_arn))
        refs = task_refs(events)
        if error is None and cause is None:
            error, cause = terminal_error(events)
    except AwsError as err:
        if error_code(err) in NO_SUCH_EXECUTION:
            history_missing = True
        else:
            undone.append(f"read history: {error_code(err)}")

    stops = stop_orphans(aws, refs, stop_reason(change.name, change.status)) if refs else _Stops()
    undone += stops.undone
    result.tasks_stopped = stops.stopped
    if undone:
        raise RepairIncomplete(change.execution_arn, undone, result)

    assessment = assess_ended(change.status, error, lock_id, released, len(stops.stopped))
    result.lock = assessment.lock
    detail = assessment.lock_detail
    if history_missing:
        detail += "; the execution's history no longer exists, so its tasks were not checked"
    incident = Incident(
        kind="execution",
        severity=assessment.severity,
        status=change.status,
        lock_id=lock_id,
        execution=Execution(
            change.execution_arn, change.name, change.state_machine_arn, change.redrive_count
        ),
        repairs=Repairs(
            lock=assessment.lock,
            lock_detail=detail,
            holder=released.holder if released else None,
            tasks_stopped=tuple(stops.stopped),
            tasks_already_stopped=tuple(stops.already),
            tasks_gone=tuple(stops.gone),
        ),
        action=assessment.action,
        error=error,
        cause=cause,
        start_ms=change.start_ms,
        stop_ms=change.stop_ms,
    )
    aws.sns.publish(**incident.sns_publish_args(settings.alerts_topic_arn))
    result.incident_id, result.severity = incident.id, incident.severity.value
    return result


def execution_status(sfn: SFNClient, arn: str) -> tuple[str, dict[str, Any]]:
    """The truth about one execution (DescribeExecution is consistent): its status, MISSING
    when Step Functions does not know it, and what DescribeExecution said."""
    try:
        described: dict[str, Any] = dict(sfn.describe_execution(executionArn=arn))
    except ClientError as err:
        if error_code(err) in NO_SUCH_EXECUTION:
            return "MISSING", {}
        raise
    return str(described["status"]), described


def heal_redrive(change: StatusChange, settings: JanitorSettings, aws: Aws) -> Result:
    """A redriven execution is RUNNING again, from the state that failed, without its lock:
    take the lock for it again, or stop it if another live run holds the lock."""
    result = Result(change.execution_arn, change.status)
    source = _execution_input(change, aws)
    lock_id = lock_id_from_input(source.raw)
    result.lock_id = lock_id
    execution = Execution(
        change.execution_arn, change.name, change.state_machine_arn, change.redrive_count
    )

    def taken(replacing: str | None = None) -> AcquireResult:
        assert lock_id is not None
        return acquire(
            aws.dynamodb,
            settings.lock_table,
            lock_id,
            owner=change.execution_arn,
            state_machine_arn=change.state_machine_arn,
            timeout_seconds=timeout_from_input(source.raw),
            now=aws_time(),
            redrive_count=change.redrive_count,
            replacing=replacing,
        )

    if lock_id is None:
        severity, lock, detail = Severity.MEDIUM, "no_lock", "none: the input names no lockId"
        action = "A redriven execution whose input names no lock: it will fail again. Check it."
        holder = None
    else:
        got = taken()
        holder = got.holder if got.kind == "held_by_other" else None
        if got.kind == "acquired":
            severity, lock = Severity.LOW, "reacquired"
            token = got.lock.token if got.lock else "?"
            detail = f"{lock_id}: re-acquired for the redriven execution (token {token})"
            action = "A redriven execution holds its lock again. Nothing to do."
        elif holder is not None and execution_status(aws.stepfunctions, holder)[0] in ALIVE:
            since = got.lock.acquired_at if got.lock else None
            cause = f"lock {lock_id} is held by {holder}" + (f" since {since}" if since else "")
            try:
                aws.stepfunctions.stop_execution(
                    executionArn=change.execution_arn, error=LOCK_HELD_ERROR, cause=cause
                )
            except ClientError as err:
                if error_code(err) not in NO_SUCH_EXECUTION:
                    raise
            severity, lock = Severity.HIGH, "redrive_stopped"
            detail = f"{lock_id}: held by {holder}, a live run; the redriven execution was stopped"
            action = (
                "The redriven execution was stopped so two runs never overlap. To re-run the "
                "task, start a new execution once the holder has finished."
            )
        else:
            again = taken(replacing=holder) if holder is not None else taken()
            if again.kind != "acquired":
                raise RepairIncomplete(
                    change.execution_arn,
                    [f"take over {lock_id}: its holder changed to {again.holder}"],
                    result,
                )
            severity, lock = Severity.MEDIUM, "taken_over"
            detail = (
                f"{lock_id}: held by {holder}, which is no longer running; taken over for the "
                "redriven execution"
            )
            action = (
                "A dead execution still held the lock; it now belongs to the redriven run. "
                "Check why the dead holder's lock was not released (janitor errors, lost event)."
            )
    result.lock = lock
    incident = Incident(
        kind="redrive",
        severity=severity,
        status=change.status,
        lock_id=lock_id,
        execution=execution,
        repairs=Repairs(lock=lock, lock_detail=detail, holder=holder),
        action=action,
        error=change.error,
        cause=change.cause,
        start_ms=change.start_ms,
        stop_ms=change.stop_ms,
    )
    aws.sns.publish(**incident.sns_publish_args(settings.alerts_topic_arn))
    result.incident_id, result.severity = incident.id, incident.severity.value
    return result
