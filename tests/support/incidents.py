"""Incidents of every kind, built as the janitor and the reconciler build them (common.triage for
severity, action and headline; common.ecs_task for a failed task read from its cause), for the
alerts tests and golden files."""

from __future__ import annotations

import json
from typing import Any

from common import triage
from common.ecs_task import LogTarget, stopped_task
from common.incident import Execution, Incident, Repairs
from common.task_input import INVALID_INPUT_ERROR

ACCOUNT = "123456789012"
MACHINE = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:lock-janitor-LockingStateMachine"
CLUSTER = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/lock-janitor-Cluster"
START_MS = 1_764_374_400_000


def task_arn(n: int = 0) -> str:
    return f"arn:aws:ecs:us-east-1:{ACCOUNT}:task/lock-janitor-Cluster/0a1b2c3d4e5f{n:04d}"


def failed_task_cause(exit_code: int = 3, n: int = 0) -> str:
    """The cause of a run whose task exited non-zero, as the state machine's Fail state writes
    it: the caught error, then the cause Step Functions gave the failed `ecs:runTask.sync` (the
    described task in the integration's PascalCase; abridged to the fields that matter, plus
    the noise that buries them)."""
    return "States.TaskFailed: " + json.dumps(
        {
            "Attachments": [
                {
                    "Details": [{"Name": "subnetId", "Value": "subnet-0abc"}],
                    "Id": "a1",
                    "Status": "DELETED",
                    "Type": "eni",
                }
            ],
            "Attributes": [{"Name": "ecs.cpu-architecture", "Value": "x86_64"}],
            "AvailabilityZone": "us-east-1a",
            "ClusterArn": CLUSTER,
            "Connectivity": "CONNECTED",
            "Containers": [
                {
                    "ContainerArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:container/x/1",
                    "ExitCode": exit_code,
                    "LastStatus": "STOPPED",
                    "Name": "job",
                    "TaskArn": task_arn(n),
                },
                {"ExitCode": 0, "LastStatus": "STOPPED", "Name": "log-router"},
            ],
            "Cpu": "256",
            "DesiredStatus": "STOPPED",
            "LastStatus": "STOPPED",
            "LaunchType": "FARGATE",
            "Memory": "512",
            "StopCode": "EssentialContainerExited",
            "StoppedReason": "Essential container in task exited",
            "TaskArn": task_arn(n),
            "TaskDefinitionArn": f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/nightly:7",
        }
    )


def execution(name: str, redrive_count: int = 0) -> Execution:
    return Execution(
        MACHINE.replace("stateMachine", "execution") + f":{name}", name, MACHINE, redrive_count
    )


def released(lock: str, *, stopped: tuple[str, ...] = (), by: str = "janitor") -> Repairs:
    claims = tuple(sorted([f"released {lock} by {by}", *(f"stopped {t} by {by}" for t in stopped)]))
    return Repairs(
        "released",
        f"{lock}: released by the {by} (it was still held)",
        released_by=by,
        tasks_stopped=stopped,
        claims=claims,
    )


def made(
    kind: str,
    t: triage.Triage,
    lock: str,
    n: int,
    repairs: Repairs,
    *,
    status: str,
    **extra: Any,
) -> Incident:
    """An incident of run `n` of `lock`, triaged as `t`, detected at a fixed moment."""
    return Incident(
        kind=kind,
        severity=t.severity,
        status=status,
        lock_id=lock,
        execution=execution(f"{lock}-{n}"),
        repairs=repairs,
        action=t.action,
        headline=t.headline,
        detected_at="2026-11-29T02:00:01+00:00",
        **extra,
    )


def _ended(
    n: int,
    status: str,
    *,
    lock: str = "nightly-report",
    error: str | None = None,
    cause: str | None = None,
    repairs: Repairs | None = None,
    by: str = "janitor",
    timeout: int | None = None,
    seconds: int = 120,
) -> Incident:
    task = stopped_task(cause)
    if task is not None:
        task = type(task)(
            **{
                **task.__dict__,
                "logs": {"job": LogTarget("/ecs/nightly", "us-east-1", "ecs")},
            }
        )
    repairs = repairs or released(lock, by=by)
    t = triage.ended(status, error, repairs, by, task=task, timeout_seconds=timeout)
    return made(
        "execution",
        t,
        lock,
        n,
        repairs,
        status=status,
        error=error,
        cause=cause,
        task=task,
        timeout_seconds=timeout,
        start_ms=START_MS,
        stop_ms=START_MS + seconds * 1000,
        reported_by=by,
    )


def failed(n: int = 1, *, lock: str = "nightly-report", exit_code: int = 3) -> Incident:
    """A task that exited non-zero; the janitor found the lock held and released it."""
    return _ended(
        n, "FAILED", lock=lock, error="Task.Failed", cause=failed_task_cause(exit_code, n)
    )


def run_timeout(n: int = 1, *, lock: str = "nightly-report") -> Incident:
    return _ended(
        n,
        "FAILED",
        lock=lock,
        error=triage.RUN_TIMEOUT_ERROR,
        cause="The task ran past its timeoutSeconds (3600 s) and was stopped.",
        repairs=released(lock, stopped=(task_arn(n),)),
        timeout=3600,
        seconds=3605,
    )


def aborted(n: int = 1, *, lock: str = "nightly-report", by: str = "janitor") -> Incident:
    return _ended(
        n,
        "ABORTED",
        lock=lock,
        error="Operator",
        cause="stopped during a redeploy",
        repairs=released(lock, stopped=(task_arn(n),), by=by),
        by=by,
    )


def timed_out(n: int = 1, *, lock: str = "nightly-report") -> Incident:
    return _ended(
        n,
        "TIMED_OUT",
        lock=lock,
        repairs=released(lock, stopped=(task_arn(n),)),
        seconds=7200,
    )


def invalid_input(n: int = 1) -> Incident:
    return _ended(
        n,
        "FAILED",
        lock="nightly-report",
        error=INVALID_INPUT_ERROR,
        cause="timeoutSeconds must be a whole number of seconds between 1 and 86400, not 1.5",
        repairs=Repairs("no_lock", "no lock was taken"),
        seconds=0,
    )


def missing(n: int = 1) -> Incident:
    return _ended(
        n, "MISSING", repairs=released("nightly-report", by="reconciler"), by="reconciler"
    )


def redrive(n: int = 1) -> Incident:
    repairs = Repairs(
        "taken_over",
        "nightly-report: taken over from a dead holder by the redriven run",
        holder=execution(f"nightly-report-{n}").arn,
        tasks_stopped=(task_arn(n),),
        claims=("took over nightly-report by janitor", f"stopped {task_arn(n)} by janitor"),
    )
    t = triage.redriven(repairs, "janitor")
    return Incident(
        kind="redrive",
        severity=t.severity,
        status="RUNNING",
        lock_id="nightly-report",
        execution=execution(f"nightly-report-{n}", redrive_count=1),
        repairs=repairs,
        action=t.action,
        headline=t.headline,
        start_ms=START_MS,
        detected_at="2026-11-29T02:00:01+00:00",
    )


def _found_by_reconciler(
    kind: str,
    t: triage.Triage,
    lock: str,
    n: int,
    repairs: Repairs,
    *,
    status: str = "RUNNING",
    **extra: Any,
) -> Incident:
    return made(
        kind,
        t,
        lock,
        n,
        repairs,
        status=status,
        reported_by="reconciler",
        incident_key=lock,
        **extra,
    )


def unlocked(n: int = 1) -> Incident:
    repairs = Repairs(
        "reacquired",
        "nightly-report: taken for the run found without it",
        holder=execution(f"nightly-report-{n}").arn,
        claims=("took nightly-report by reconciler",),
    )
    t = triage.unlocked(repairs)
    return _found_by_reconciler("unlocked", t, "nightly-report", n, repairs, start_ms=START_MS)


def stuck(n: int = 1) -> Incident:
    repairs = Repairs("left_held", "nightly-report: left held (its run is alive)")
    return _found_by_reconciler(
        "stuck",
        triage.stuck(3600),
        "nightly-report",
        n,
        repairs,
        timeout_seconds=3600,
        start_ms=START_MS,
    )


def unreadable(n: int = 1) -> Incident:
    what = "the lock item billing-sync (TimeoutSeconds is not a whole number: '1.5')"
    repairs = Repairs("left_held", "billing-sync: skipped (unreadable)")
    t = triage.unreadable(what)
    return _found_by_reconciler("unreadable", t, "billing-sync", n, repairs, status="UNREADABLE")


def forced(n: int = 1) -> Incident:
    """As `lock-janitor release --force` builds it (the run goes on without its lock)."""
    from dataclasses import replace

    from common.lock_table import Lock
    from common.task_input import TaskInput
    from common.truth import ExecutionTruth
    from lock_janitor_cli.operations import ReleaseCase, forced_incident

    holder = execution(f"nightly-report-{n}")
    case = ReleaseCase(
        "nightly-report",
        Lock("nightly-report", owner=holder.arn, token=12, timeout_seconds=3600),
        ExecutionTruth(
            holder.arn,
            "RUNNING",
            holder.name,
            MACHINE,
            start_ms=START_MS,
            input=TaskInput("nightly-report", 3600),
        ),
    )
    return replace(forced_incident(case), detected_at="2026-11-29T02:00:01+00:00")


KINDS = {
    "failed": failed,
    "run-timeout": run_timeout,
    "aborted": aborted,
    "timed-out": timed_out,
    "invalid-input": invalid_input,
    "missing": missing,
    "redrive": redrive,
    "unlocked": unlocked,
    "stuck": stuck,
    "unreadable": unreadable,
    "forced": forced,
}
"""Every kind of incident on-call can get: name -> a builder taking the run's number."""


def document(incident: Incident, **overrides: Any) -> dict[str, Any]:
    """The incident as subscribers receive it (to_json), with fields overridden."""
    return {**incident.to_json(), **overrides}


ALARM = {
    "AlarmName": "lock-janitor-AlertsDeadLetterQueueAlarm",
    "AlarmDescription": "Notifications that were never delivered wait in AlertsDeadLetterQueue.",
    "AWSAccountId": ACCOUNT,
    "NewStateValue": "ALARM",
    "OldStateValue": "OK",
    "NewStateReason": "Threshold Crossed: 1 datapoint [2.0] was greater than the threshold (0.0).",
    "StateChangeTime": "2026-11-29T04:05:00.000+0000",
    "Region": "US East (N. Virginia)",
    "Trigger": {
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Namespace": "AWS/SQS",
        "Statistic": "MAXIMUM",
        "Dimensions": [{"name": "QueueName", "value": "lock-janitor-AlertsDeadLetterQueue"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.0,
    },
}
