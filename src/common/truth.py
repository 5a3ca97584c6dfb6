"""Reading the truth from AWS: an execution (DescribeExecution), what it started (its history),
and its tasks (DescribeTasks, or the cluster's tasks by their LOCK_OWNER).

Events are hints; what is read here is what the janitor, the reconciler and the CLI decide on.
Readers return plain, typed values; they raise on errors they cannot interpret, and say "gone"
for the answers that mean the thing no longer exists (a permanent answer retrying cannot change).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from common.task_input import TaskInput

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_stepfunctions import SFNClient

AwsError = (ClientError, BotoCoreError)
"""What an AWS call raises when it fails."""

ALIVE = frozenset({"RUNNING", "PENDING_REDRIVE"})
"""Statuses of an execution that may still hold a lock and run a task."""
MISSING = "MISSING"
"""The status of an execution Step Functions does not know (past retention, machine deleted)."""
NO_SUCH_EXECUTION = frozenset({"ExecutionDoesNotExist", "StateMachineDoesNotExist", "InvalidArn"})
"""What Step Functions answers for an execution that is gone or never was: permanent."""
DESCRIBE_TASKS_LIMIT = 100
STEP_FUNCTIONS_STARTED_BY = "AWS Step Functions"
"""ECS `startedBy` of every task a state machine starts (Step Functions sets it itself)."""
STOP_REASON_LIMIT = 255  # ECS StopTask: reason up to 255 characters
STOP_REASON_PREFIX = "lock-janitor "


def error_code(err: Exception) -> str:
    if isinstance(err, ClientError):
        return str(err.response.get("Error", {}).get("Code", "ClientError"))
    return type(err).__name__


def task_gone(err: Exception) -> bool:
    """StopTask or DescribeTasks errors that mean the task cannot be running."""
    if not isinstance(err, ClientError):
        return False
    code = error_code(err)
    message = str(err.response.get("Error", {}).get("Message", "")).lower()
    if code == "ClusterNotFoundException":
        return True
    return code in {"InvalidParameterException", "ClientException"} and "not found" in message


def millis(value: Any) -> int | None:
    """Epoch milliseconds of a boto3 timestamp."""
    return int(value.timestamp() * 1000) if isinstance(value, datetime) else None


def parse_time(text: str | None) -> datetime | None:
    """An ISO-8601 time as the lock table and Step Functions write it (`...Z` or an offset;
    naive means UTC); None when missing or unreadable."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def machine_of(execution_arn: str) -> str:
    """The state machine ARN an execution ARN belongs to (best effort on a malformed ARN)."""
    parts = execution_arn.split(":")
    if len(parts) < 8:
        return ""
    return ":".join([*parts[:5], "stateMachine", parts[6]])


@dataclass(frozen=True)
class ExecutionTruth:
    """One execution as DescribeExecution says it is now."""

    arn: str
    status: str
    name: str
    state_machine_arn: str
    redrive_count: int = 0
    redrive_ms: int | None = None
    start_ms: int | None = None
    stop_ms: int | None = None
    input: TaskInput = field(default_factory=lambda: TaskInput(None, None))
    error: str | None = None
    cause: str | None = None

    @property
    def alive(self) -> bool:
        return self.status in ALIVE

    @classmethod
    def from_describe(cls, described: Mapping[str, Any]) -> ExecutionTruth:
        arn = str(described["executionArn"])
        return cls(
            arn=arn,
            status=str(described["status"]),
            name=str(described.get("name") or arn.rsplit(":", 1)[-1]),
            state_machine_arn=str(described.get("stateMachineArn") or machine_of(arn)),
            redrive_count=int(described.get("redriveCount") or 0),
            redrive_ms=millis(described.get("redriveDate")),
            start_ms=millis(described.get("startDate")),
            stop_ms=millis(described.get("stopDate")),
            input=TaskInput.parse(described.get("input")),
            error=described.get("error"),
            cause=described.get("cause"),
        )

    @classmethod
    def missing(cls, arn: str) -> ExecutionTruth:
        return cls(arn, MISSING, arn.rsplit(":", 1)[-1], machine_of(arn))


def describe_execution(sfn: SFNClient, arn: str) -> ExecutionTruth:
    """The truth about one execution (DescribeExecution is strongly consistent)."""
    try:
        described = sfn.describe_execution(executionArn=arn)
    except ClientError as err:
        if error_code(err) in NO_SUCH_EXECUTION:
            return ExecutionTruth.missing(arn)
        raise
    return ExecutionTruth.from_describe(described)


@dataclass(frozen=True)
class TaskRef:
    """An ECS task an execution started, and in which attempt (0 = the first run, n = the n-th
    redrive)."""

    cluster_arn: str
    task_arn: str
    attempt: int = 0


@dataclass(frozen=True)
class History:
    """What an execution's history says about its tasks."""

    tasks: tuple[TaskRef, ...]
    ended: Mapping[str, Mapping[str, Any]]
    """Task ARN -> the task as the ECS integration described it once it was STOPPED (a
    TaskFailed's cause, a TaskSucceeded's output). STOPPED is final: such a task needs no
    DescribeTasks to know it cannot run."""
    unsure_starts: tuple[str, ...]
    """Clusters in which a RunTask may have started a task whose answer never came (a RunTask
    that failed with an error other than a refusal): its task is in no TaskSubmitted."""
    error: str | None = None
    cause: str | None = None
    attempt: int = 0
    """The attempt the history has reached (how many ExecutionRedriven it holds)."""
    statuses: frozenset[str] = frozenset()
    """Every status an attempt of the execution ended with (FAILED, TIMED_OUT, ABORTED)."""


REFUSALS = frozenset(
    {
        "ECS.AmazonECSException",
        "ECS.ClientException",
        "ECS.InvalidParameterException",
        "ECS.AccessDeniedException",
        "ECS.ClusterNotFoundException",
        "ECS.PlatformUnknownException",
        "ECS.PlatformTaskDefinitionIncompatibilityException",
        "ECS.UnsupportedFeatureException",
        "ECS.BlockedException",
        "ECS.ConflictException",
    }
)
"""RunTask errors that mean ECS started no task (the state machine releases the lock on them)."""

_TERMINAL = {
    "ExecutionFailed": ("FAILED", "executionFailedEventDetails"),
    "ExecutionAborted": ("ABORTED", "executionAbortedEventDetails"),
    "ExecutionTimedOut": ("TIMED_OUT", "executionTimedOutEventDetails"),
}
"""The history events that end an attempt badly: the status, and where its error is."""


def _cluster_of(task_arn: str) -> str:
    """arn:...:task/<cluster>/<id> -> arn:...:cluster/<cluster> (long ARN format)."""
    prefix, _, rest = task_arn.partition(":task/")
    parts = rest.split("/")
    return f"{prefix}:cluster/{parts[0]}" if len(parts) == 2 else ""


def parse_history(events: Iterable[Mapping[str, Any]]) -> History:
    """Every ECS task the execution started (a retried or redriven RunTask leaves several),
    with its attempt; RunTask calls whose task may exist unseen; the last terminal error.
    Output that cannot be read is skipped: the reconciler finds such tasks by LOCK_OWNER."""
    found: dict[str, TaskRef] = {}
    ended: dict[str, Mapping[str, Any]] = {}
    unsure: list[str] = []
    attempt = 0
    scheduled_cluster: str | None = None
    error = cause = None
    statuses: set[str] = set()
    for event in events:
        kind = str(event.get("type"))
        if kind == "ExecutionRedriven":
            attempt += 1
        elif kind == "TaskScheduled":
            details = event.get("taskScheduledEventDetails") or {}
            scheduled_cluster = None
            if details.get("resourceType") == "ecs":
                try:
                    parameters = json.loads(details.get("parameters") or "{}")
                except ValueError:
                    parameters = {}
                cluster = parameters.get("Cluster") if isinstance(parameters, dict) else None
                scheduled_cluster = cluster if isinstance(cluster, str) else ""
        elif kind == "TaskSubmitted":
            scheduled_cluster = None
            for ref in _submitted(event, attempt):
                found.setdefault(ref.task_arn, ref)
        elif kind in {"TaskFailed", "TaskTimedOut"} and scheduled_cluster is not None:
            details = event.get("taskFailedEventDetails") or event.get("taskTimedOutEventDetails")
            name = (details or {}).get("error")
            if name not in REFUSALS:
                unsure.append(scheduled_cluster)
            scheduled_cluster = None
        if kind in {"TaskFailed", "TaskSucceeded"}:
            stopped = _stopped_task(event)
            if stopped is not None:
                ended[str(stopped["TaskArn"])] = stopped
        elif kind in _TERMINAL:
            status, key = _TERMINAL[kind]
            statuses.add(status)
            details = event.get(key) or {}
            error, cause = details.get("error"), details.get("cause")
    tasks = tuple(found.values())
    known = {ref.task_arn for ref in tasks}
    ends = {arn: task for arn, task in ended.items() if arn in known}
    return History(
        tasks, ends, tuple(dict.fromkeys(unsure)), error, cause, attempt, frozenset(statuses)
    )


def _stopped_task(event: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ECS task a RunTask's TaskFailed (cause) or TaskSucceeded (output) describes, when it
    describes one that is STOPPED. Step Functions writes the described task there
    (`States.TaskFailed`: the cause is the task; `.sync` success: the output is); anything else
    (a refusal's message, an output of `null`) is no evidence and is left to DescribeTasks."""
    details = event.get("taskFailedEventDetails") or event.get("taskSucceededEventDetails")
    if not isinstance(details, Mapping) or details.get("resourceType") != "ecs":
        return None
    text = details.get("cause") if "cause" in details else details.get("output")
    if not isinstance(text, str) or '"STOPPED"' not in text:
        return None
    try:
        task = json.loads(text)
    except ValueError:
        return None
    if not isinstance(task, dict) or task.get("LastStatus") != "STOPPED":
        return None
    return task if isinstance(task.get("TaskArn"), str) else None


def _submitted(event: Mapping[str, Any], attempt: int) -> Iterator[TaskRef]:
    details = event.get("taskSubmittedEventDetails") or {}
    if details.get("resourceType") != "ecs":
        return
    try:
        output = json.loads(details.get("output") or "{}")
    except ValueError:
        return
    tasks = output.get("Tasks") if isinstance(output, dict) else None
    for task in tasks if isinstance(tasks, list) else []:
        arn = task.get("TaskArn") if isinstance(task, dict) else None
        if not isinstance(arn, str):
            continue
        cluster = task.get("ClusterArn")
        yield TaskRef(cluster if isinstance(cluster, str) else _cluster_of(arn), arn, attempt)


def history_events(sfn: SFNClient, execution_arn: str) -> Iterator[dict[str, Any]]:
    """Every event of an execution's history, page by page (1,000 a page)."""
    token: str | None = None
    for _ in range(10_000):  # bounded: 25,000 events per execution at most
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        if token:
            kwargs["nextToken"] = token
        page = sfn.get_execution_history(**kwargs)
        yield from page["events"]  # type: ignore[misc]
        token = page.get("nextToken")
        if not token:
            return


def read_history(sfn: SFNClient, execution_arn: str) -> History | None:
    """The execution's history, read; None when Step Functions no longer has it."""
    try:
        return parse_history(history_events(sfn, execution_arn))
    except ClientError as err:
        if error_code(err) in NO_SUCH_EXECUTION:
            return None
        raise


@dataclass(frozen=True)
class TaskTruth:
    """One ECS task as DescribeTasks says it is now."""

    ref: TaskRef
    last_status: str
    desired_status: str
    stopped_reason: str | None = None
    lock_owner: str | None = None
    lock_id: str | None = None

    @property
    def arn(self) -> str:
        return self.ref.task_arn

    @property
    def running(self) -> bool:
        """Not stopped yet: it may still be doing work (stopping included)."""
        return self.last_status not in {"STOPPED", "DELETED"}

    @property
    def needs_stop(self) -> bool:
        """Running and nobody asked it to stop yet."""
        return self.running and self.desired_status != "STOPPED"

    @property
    def stopped_by(self) -> str | None:
        """janitor | reconciler | operator when one of them stopped it (from its stop reason)."""
        found = _STOPPED_BY.match(self.stopped_reason or "")
        return found.group(1) if found and self.desired_status == "STOPPED" else None

    @property
    def stopped_for(self) -> int | None:
        """The attempt of its execution on whose behalf it was stopped (from its stop reason)."""
        found = _STOPPED_BY.match(self.stopped_reason or "")
        return int(found.group(2)) if found and self.desired_status == "STOPPED" else None


_STOPPED_BY = re.compile(r"^lock-janitor ([a-z-]+): execution \S+ \(attempt (\d+)\) ")


def stop_reason(by: str, execution_name: str, attempt: int, why: str) -> str:
    """The reason given to StopTask: who, for which execution and attempt, why. Execution names
    have no spaces or parentheses, so `TaskTruth.stopped_by` reads it back exactly."""
    text = f"{STOP_REASON_PREFIX}{by}: execution {execution_name} (attempt {attempt}) {why}"
    return text[:STOP_REASON_LIMIT]


def _field(document: Any, name: str) -> Any:
    """`name` of a task document as ECS's API spells it (camelCase), or as Step Functions'
    ECS integration does in a history (PascalCase)."""
    if not isinstance(document, Mapping):
        return None
    value = document.get(name)
    return document.get(name[:1].upper() + name[1:]) if value is None else value


def lock_env(task: Mapping[str, Any]) -> dict[str, str]:
    """The LOCK_* environment overrides of a task (empty when it has none)."""
    env: dict[str, str] = {}
    containers = _field(_field(task, "overrides"), "containerOverrides")
    for override in containers if isinstance(containers, list) else []:
        pairs = _field(override, "environment")
        for pair in pairs if isinstance(pairs, list) else []:
            name = _field(pair, "name")
            if isinstance(name, str) and name.startswith("LOCK_"):
                env[name] = str(_field(pair, "value") or "")
    return env


def task_truth(task: Mapping[str, Any], ref: TaskRef) -> TaskTruth:
    """A task as DescribeTasks or StopTask answers it, or as a history recorded it stopped."""
    env = lock_env(task)
    reason = _field(task, "stoppedReason")
    return TaskTruth(
        ref=ref,
        last_status=str(_field(task, "lastStatus") or "UNKNOWN"),
        desired_status=str(_field(task, "desiredStatus") or "UNKNOWN"),
        stopped_reason=reason if isinstance(reason, str) else None,
        lock_owner=env.get("LOCK_OWNER"),
        lock_id=env.get("LOCK_ID"),
    )


def describe_tasks(ecs: ECSClient, refs: Iterable[TaskRef]) -> tuple[list[TaskTruth], list[str]]:
    """The tasks as they are now, and the ARNs of those that are gone (ECS no longer knows them,
    or their cluster is gone). Other errors are raised."""
    by_cluster: dict[str, list[TaskRef]] = {}
    for ref in refs:
        by_cluster.setdefault(ref.cluster_arn, []).append(ref)
    found: list[TaskTruth] = []
    gone: list[str] = []
    for cluster, group in by_cluster.items():
        for i in range(0, len(group), DESCRIBE_TASKS_LIMIT):
            batch = {r.task_arn: r for r in group[i : i + DESCRIBE_TASKS_LIMIT]}
            try:
                described = ecs.describe_tasks(cluster=cluster, tasks=list(batch))
            except AwsError as err:
                if not task_gone(err):
                    raise
                gone += list(batch)
                continue
            seen = {str(t.get("taskArn")): t for t in described.get("tasks", [])}
            for arn, ref in batch.items():
                if arn in seen:
                    found.append(task_truth(seen[arn], ref))
                else:
                    gone.append(arn)
    return found, gone


def cluster_lock_tasks(ecs: ECSClient, cluster_arn: str) -> tuple[int, list[TaskTruth]]:
    """Every task Step Functions started in the cluster that carries LOCK_OWNER and is not
    STOPPED, and how many tasks were listed. Tasks without LOCK_OWNER are never returned."""
    arns: list[str] = []
    for page in ecs.get_paginator("list_tasks").paginate(
        cluster=cluster_arn, startedBy=STEP_FUNCTIONS_STARTED_BY
    ):
        arns.extend(page["taskArns"])
    refs = [TaskRef(cluster_arn, arn) for arn in arns]
    tasks, _ = describe_tasks(ecs, refs)
    return len(arns), [t for t in tasks if t.running and t.lock_owner]
