"""The janitor's decisions, apart from I/O: which tasks an execution started, how severe an
incident is, what on-call should do. Pure functions over plain values."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.incident import Severity
from common.lock_table import ReleaseResult

STOP_REASON_LIMIT = 255  # ECS StopTask: reason up to 255 characters


def aws_time(moment: datetime | None = None) -> str:
    """An ISO-8601 UTC time with milliseconds and Z, as Step Functions writes
    `$$.State.EnteredTime` (so lock times compare as strings)."""
    moment = moment or datetime.now(UTC)
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


@dataclass(frozen=True)
class TaskRef:
    cluster_arn: str
    task_arn: str


def task_refs(history: Iterable[Mapping[str, Any]]) -> list[TaskRef]:
    """Every ECS task the execution started: all TaskSubmitted entries of ecs resources (a
    retried RunTask leaves several). Output that cannot be read is skipped: the reconciler
    finds such tasks by their LOCK_OWNER."""
    found: dict[str, TaskRef] = {}
    for event in history:
        if event.get("type") != "TaskSubmitted":
            continue
        details = event.get("taskSubmittedEventDetails") or {}
        if details.get("resourceType") != "ecs":
            continue
        try:
            output = json.loads(details.get("output") or "{}")
        except ValueError:
            continue
        tasks = output.get("Tasks") if isinstance(output, dict) else None
        for task in tasks if isinstance(tasks, list) else []:
            arn = task.get("TaskArn") if isinstance(task, dict) else None
            if not isinstance(arn, str):
                continue
            cluster = task.get("ClusterArn")
            if not isinstance(cluster, str):
                # task/<cluster>/<id> in the long ARN format
                parts = arn.split(":task/", 1)[-1].split("/")
                prefix = arn.split(":task/", 1)[0]
                cluster = f"{prefix}:cluster/{parts[0]}" if len(parts) == 2 else ""
            found.setdefault(arn, TaskRef(cluster, arn))
    return list(found.values())


_TERMINAL = {
    "ExecutionFailed": "executionFailedEventDetails",
    "ExecutionAborted": "executionAbortedEventDetails",
    "ExecutionTimedOut": "executionTimedOutEventDetails",
}


def terminal_error(history: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """Error and cause of the execution's last terminal event, when the history has one."""
    error = cause = None
    for event in history:
        key = _TERMINAL.get(str(event.get("type")))
        if key:
            details = event.get(key) or {}
            error, cause = details.get("error"), details.get("cause")
    return error, cause


def stop_reason(execution_name: str, status: str) -> str:
    reason = f"lock-janitor: execution {execution_name} ended {status}; its task must not run on"
    return reason[:STOP_REASON_LIMIT]


LOCK_HELD_ERROR = "Lock.Held"
"""The error with which the janitor stops a redriven execution whose lock another run holds."""


@dataclass(frozen=True)
class Assessment:
    severity: Severity
    lock: str
    lock_detail: str
    action: str


def assess_ended(
    status: str,
    error: str | None,
    lock_id: str | None,
    release: ReleaseResult | None,
    stopped: int,
) -> Assessment:
    """Severity, what the janitor did to the lock, and what on-call should do, for an
    execution that ended FAILED, TIMED_OUT or ABORTED."""
    if lock_id is None:
        lock, detail = "no_lock", "none: the execution input names no lockId, so it took no lock"
    elif release is None:
        lock, detail = "no_lock", f"{lock_id}: no lock item"
    elif release.kind == "released":
        lock, detail = "released", f"{lock_id}: released by the janitor (it was still held)"
    elif release.kind == "already_free":
        last = release.lock
        if last is not None and last.last_released_by:
            detail = (
                f"{lock_id}: already free (released by {last.last_released_by}"
                f"{' at ' + last.last_released_at if last.last_released_at else ''})"
            )
        else:
            detail = f"{lock_id}: already free"
        lock = "already_free"
    elif release.kind == "reacquired_since":
        lock = "left_held"
        detail = f"{lock_id}: held again by this execution since it was redriven; left alone"
    else:
        lock = "held_by_other"
        detail = f"{lock_id}: held by {release.holder}, the next run; left alone"

    repaired = lock == "released" or stopped > 0
    if status == "ABORTED" and error == LOCK_HELD_ERROR:
        return Assessment(
            Severity.LOW,
            lock,
            detail,
            "Follow-up of a redrive the janitor stopped because another run held the lock "
            "(see that incident). Nothing more to do.",
        )
    if status == "ABORTED":
        action = (
            "Someone or something stopped this execution (StopExecution, a redeploy). "
            "The janitor cleaned up after it. If the stop was not expected, find who called "
            "StopExecution in CloudTrail."
        )
        return Assessment(Severity.HIGH, lock, detail, action)
    if status == "TIMED_OUT":
        action = (
            "The execution outlived the state machine's ExecutionTimeoutSeconds. The janitor "
            "released the lock and stopped the task. Find out why the run took so long; if it "
            "legitimately does, raise the task's timeoutSeconds and ExecutionTimeoutSeconds."
        )
        return Assessment(Severity.HIGH, lock, detail, action)
    if repaired:
        action = (
            "The run failed without cleaning up after itself; the janitor did it. Read the "
            "error and cause, then the task's logs."
        )
        return Assessment(Severity.HIGH, lock, detail, action)
    action = (
        "The task failed and the state machine released its lock: the next scheduled run will "
        "try again. Read the error and cause, then the task's logs; fix the job if it keeps "
        "failing."
    )
    return Assessment(Severity.MEDIUM, lock, detail, action)
