"""The reconciler: the level-triggered safety net behind the edge-triggered janitor.

Every few minutes it checks every held lock and every running task against the truth (is the
owner execution still RUNNING?), because status-change events are best effort and the janitor
can fail. Its cost grows with pages, not items: one scan of the table, one ListExecutions
(RUNNING) per state machine, one ListTasks; DescribeExecution only for candidates, since
ListExecutions is eventually consistent; then the calls of each repair."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from common.incident import Execution, Incident, Repairs, Severity
from common.lock_table import (
    Lock,
    Outcome,
    ReleasedBy,
    mark_overdue_reported,
    release,
    scan_pages,
)
from common.settings import require, require_int
from janitor.decide import aws_time
from janitor.heal import (
    ALIVE,
    DESCRIBE_TASKS_LIMIT,
    NO_SUCH_EXECUTION,
    error_code,
    execution_status,
    task_gone,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_stepfunctions import SFNClient

STEP_FUNCTIONS_STARTED_BY = "AWS Step Functions"


@dataclass(frozen=True)
class ReconcilerSettings:
    lock_table: str
    alerts_topic_arn: str
    state_machine_arn: str
    cluster_arn: str
    grace_seconds: int
    overdue_margin_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ReconcilerSettings:
        return cls(
            lock_table=require(environ, "LOCK_TABLE_NAME"),
            alerts_topic_arn=require(environ, "ALERTS_TOPIC_ARN"),
            state_machine_arn=require(environ, "LOCKING_STATE_MACHINE_ARN"),
            cluster_arn=require(environ, "CLUSTER_ARN"),
            grace_seconds=require_int(environ, "RECONCILE_GRACE_SECONDS"),
            overdue_margin_seconds=require_int(environ, "OVERDUE_MARGIN_SECONDS"),
        )


@dataclass(frozen=True)
class Clients:
    dynamodb: DynamoDBClient
    stepfunctions: SFNClient
    ecs: ECSClient
    sns: SNSClient


@dataclass
class Summary:
    dry_run: bool
    checked: int = 0
    held: int = 0
    tasks_checked: int = 0
    released: list[dict[str, str]] = field(default_factory=list)
    stopped: list[dict[str, str]] = field(default_factory=list)
    overdue: list[dict[str, str]] = field(default_factory=list)
    left_alone: list[dict[str, str]] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    """The status of each incident published."""

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "checked": self.checked,
            "held": self.held,
            "tasksChecked": self.tasks_checked,
            "released": self.released,
            "stopped": self.stopped,
            "overdue": self.overdue,
            "leftAlone": self.left_alone,
            "incidents": len(self.incidents),
        }


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def running_executions(sfn: SFNClient, state_machine_arn: str) -> set[str]:
    """RUNNING executions of one state machine (eventually consistent: a hint, not the truth)."""
    found: set[str] = set()
    try:
        for page in sfn.get_paginator("list_executions").paginate(
            stateMachineArn=state_machine_arn, statusFilter="RUNNING"
        ):
            found.update(e["executionArn"] for e in page["executions"])
    except ClientError as err:
        # A lock recorded by a state machine since deleted: none of its executions runs; each
        # owner is still confirmed with DescribeExecution before anything is released.
        if error_code(err) not in NO_SUCH_EXECUTION:
            raise
    return found


@dataclass(frozen=True)
class OrphanTask:
    task_arn: str
    cluster_arn: str
    owner: str
    lock_id: str | None


def lock_env(task: dict[str, Any]) -> dict[str, str]:
    """The LOCK_* environment overrides of a task (empty when it has none)."""
    env: dict[str, str] = {}
    for override in (task.get("overrides") or {}).get("containerOverrides") or []:
        for pair in override.get("environment") or []:
            name = pair.get("name")
            if isinstance(name, str) and name.startswith("LOCK_"):
                env[name] = str(pair.get("value", ""))
    return env


def running_lock_tasks(ecs: ECSClient, cluster_arn: str) -> tuple[int, list[OrphanTask]]:
    """Tasks Step Functions started in the cluster that are not STOPPED and carry LOCK_OWNER."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(
        cluster=cluster_arn, startedBy=STEP_FUNCTIONS_STARTED_BY
    ):
        arns.extend(page["taskArns"])
    found: list[OrphanTask] = []
    for i in range(0, len(arns), DESCRIBE_TASKS_LIMIT):
        batch = arns[i : i + DESCRIBE_TASKS_LIMIT]
        described = ecs.describe_tasks(cluster=cluster_arn, tasks=batch)
        for task in described.get("tasks", []):
            if task.get("lastStatus") == "STOPPED":
                continue
            env = lock_env(dict(task))
            if env.get("LOCK_OWNER"):
                owner, lock_id = env["LOCK_OWNER"], env.get("LOCK_ID")
                found.append(OrphanTask(task["taskArn"], cluster_arn, owner, lock_id))
    return len(arns), found


def _millis(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


@dataclass
class Reconciler:
    settings: ReconcilerSettings
    clients: Clients
    dry_run: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    page_size: int | None = None
    _truth: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    _published: list[str] = field(default_factory=list)

    def _status(self, arn: str) -> tuple[str, dict[str, Any]]:
        if arn not in self._truth:
            self._truth[arn] = execution_status(self.clients.stepfunctions, arn)
        return self._truth[arn]

    def run(self) -> Summary:
        summary = Summary(self.dry_run)
        held: list[Lock] = []
        for page in scan_pages(self.clients.dynamodb, self.settings.lock_table, self.page_size):
            summary.checked += len(page)
            held.extend(lock for lock in page if lock.held)
        summary.held = len(held)

        machines = {lock.state_machine_arn or self.settings.state_machine_arn for lock in held}
        machines.add(self.settings.state_machine_arn)
        listed: set[str] = set()
        for machine in sorted(machines):
            listed |= running_executions(self.clients.stepfunctions, machine)

        self._locks(held, listed, summary)
        cluster = self.settings.cluster_arn
        summary.tasks_checked, tasks = running_lock_tasks(self.clients.ecs, cluster)
        self._tasks(tasks, listed, summary)
        summary.incidents = list(self._published)
        return summary

    def _locks(self, held: Iterable[Lock], listed: set[str], summary: Summary) -> None:
        grace = timedelta(seconds=self.settings.grace_seconds)
        margin = timedelta(seconds=self.settings.overdue_margin_seconds)
        for lock in held:
            owner = lock.owner
            assert owner is not None
            acquired = parse_time(lock.acquired_at)
            age = self.now - acquired if acquired else None
            if owner in listed:
                if (
                    acquired is not None
                    and lock.timeout_seconds is not None
                    and age is not None
                    and age > timedelta(seconds=lock.timeout_seconds) + margin
                ):
                    self._overdue(lock, summary)
                continue
            if age is not None and age < grace:
                summary.left_alone.append({"lockId": lock.lock_id, "owner": owner, "why": "young"})
                continue
            status, described = self._status(owner)
            if status in ALIVE:
                # Listed as not running, but it is (ListExecutions lags): the truth wins.
                summary.left_alone.append({"lockId": lock.lock_id, "owner": owner, "why": "alive"})
                continue
            self._release_stale(lock, owner, status, described, summary)

    def _release_stale(
        self,
        lock: Lock,
        owner: str,
        status: str,
        described: dict[str, Any],
        summary: Summary,
    ) -> None:
        entry = {"lockId": lock.lock_id, "owner": owner, "ownerStatus": status}
        if self.dry_run:
            summary.released.append(entry)
            return
        result = release(
            self.clients.dynamodb,
            self.settings.lock_table,
            lock.lock_id,
            owner=owner,
            outcome=Outcome.STALE,
            by=ReleasedBy.RECONCILER,
            now=aws_time(self.now),
        )
        if result.kind != "released":
            # Re-acquired or released since the scan: someone else's now; leave it.
            summary.left_alone.append({**entry, "why": result.kind})
            return
        summary.released.append(entry)
        self._report(
            "stale",
            Severity.HIGH,
            status,
            lock.lock_id,
            owner,
            described,
            Repairs(
                "released",
                f"{lock.lock_id}: held by an execution that is {status}; released by the "
                "reconciler (STALE)",
                holder=owner,
            ),
            "The janitor never released this lock: its status-change event was lost, or the "
            "janitor failed (check JanitorDeadLetterQueue and its errors). The lock is free "
            "again; nothing more to do for the lock.",
        )

    def _overdue(self, lock: Lock, summary: Summary) -> None:
        owner = lock.owner
        assert owner is not None
        entry = {"lockId": lock.lock_id, "owner": owner, "acquiredAt": lock.acquired_at or ""}
        summary.overdue.append(entry)
        if self.dry_run or lock.overdue_reported_at:
            return
        if not mark_overdue_reported(
            self.clients.dynamodb,
            self.settings.lock_table,
            lock.lock_id,
            owner=owner,
            now=aws_time(self.now),
        ):
            return
        _, described = self._status(owner)
        self._report(
            "stuck",
            Severity.MEDIUM,
            "RUNNING",
            lock.lock_id,
            owner,
            described,
            Repairs(
                "left_held",
                f"{lock.lock_id}: held since {lock.acquired_at} by an execution still running "
                f"past its {lock.timeout_seconds}s timeout; the lock stays",
                holder=owner,
            ),
            "A run outlived its timeoutSeconds and the state machine has not stopped it. Look "
            "at the execution: if it is stuck, stop it (the janitor then releases the lock and "
            "stops the task).",
        )

    def _tasks(self, tasks: Iterable[OrphanTask], listed: set[str], summary: Summary) -> None:
        for task in tasks:
            if task.owner in listed:
                continue
            status, described = self._status(task.owner)
            if status in ALIVE:
                continue
            entry = {"taskArn": task.task_arn, "owner": task.owner, "ownerStatus": status}
            if self.dry_run:
                summary.stopped.append(entry)
                continue
            name = task.owner.rsplit(":", 1)[-1]
            reason = f"lock-janitor reconciler: owner execution {name} is {status}"
            try:
                self.clients.ecs.stop_task(
                    cluster=task.cluster_arn, task=task.task_arn, reason=reason[:255]
                )
            except ClientError as err:
                if task_gone(err):
                    continue
                raise
            summary.stopped.append(entry)
            self._report(
                "orphan-task",
                Severity.HIGH,
                status,
                task.lock_id,
                task.owner,
                described,
                Repairs(
                    "no_lock",
                    f"task {task.task_arn} kept running after its execution ended {status}; "
                    "stopped by the reconciler",
                    tasks_stopped=(task.task_arn,),
                ),
                "An ECS task outlived its execution and nothing stopped it (a lost event, or the "
                "janitor failed). It is stopped now; check the task's logs for what it did "
                "meanwhile.",
                incident_key=task.task_arn,
            )

    def _report(  # noqa: PLR0917 - the parts of one incident
        self,
        kind: str,
        severity: Severity,
        status: str,
        lock_id: str | None,
        owner: str,
        described: dict[str, Any],
        repairs: Repairs,
        action: str,
        incident_key: str | None = None,
    ) -> None:
        """Publish one reconciler incident about `owner`, as DescribeExecution described it."""
        parts = owner.split(":")
        incident = Incident(
            kind=kind,
            severity=severity,
            status=status,
            lock_id=lock_id,
            execution=Execution(
                owner,
                str(described.get("name") or parts[-1]),
                str(
                    described.get("stateMachineArn")
                    or ":".join([*parts[:5], "stateMachine", parts[6]])
                ),
                int(described.get("redriveCount") or 0),
            ),
            repairs=repairs,
            action=action,
            error=described.get("error"),
            cause=described.get("cause"),
            start_ms=_millis(described.get("startDate")),
            stop_ms=_millis(described.get("stopDate")),
            reported_by="reconciler",
            incident_key=incident_key,
        )
        self.clients.sns.publish(**incident.sns_publish_args(self.settings.alerts_topic_arn))
        self._published.append(incident.status)


class BadInput(ValueError):
    """The reconciler's input is not {} or {"dryRun": true|false}."""


def dry_run_from(event: Any) -> bool:
    if event is None or event == {}:
        return False
    if not isinstance(event, dict):
        raise BadInput(
            f'expected a JSON object like {{"dryRun": true}}, got {type(event).__name__}'
        )
    value = event.get("dryRun", False)
    if not isinstance(value, bool):
        raise BadInput(f"dryRun must be true or false, got {value!r}")
    return value
