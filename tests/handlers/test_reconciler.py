"""ReconcilerFunction against real executions of the locking machine under moto."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from common import clients
from janitor.reconcile import BadInput, Clients, Reconciler, ReconcilerSettings
from local.deploy import function_environment, received_incidents
from tests.handlers.conftest import Reconcile
from tests.support.faults import counted_calls
from tests.support.machine import Machine


def incidents(machine: Machine) -> list[dict[str, Any]]:
    return [json.loads(n["Message"]) for n in received_incidents(machine.stack)]


def test_stale_locks_are_released_and_orphans_stopped_then_nothing_is_left(
    reconcile: Reconcile, machine: Machine
) -> None:
    aborted = {}
    for lock in ("a", "b", "c"):
        arn, task = machine.abort(f"lost-{lock}", lockId=lock)
        aborted[lock] = (arn, task)
    live = machine.start("live", lockId="d")
    live_task = machine.wait_task_of(live)

    summary = reconcile()

    assert {r["lockId"] for r in summary["released"]} == {"a", "b", "c"}
    assert {s["taskArn"] for s in summary["stopped"]} == {t for _, t in aborted.values()}
    for lock, (arn, task) in aborted.items():
        item = machine.lock(lock)
        assert "Owner" not in item
        assert (item["LastOutcome"], item["LastReleasedBy"], item["LastOwner"]) == (
            "STALE",
            "reconciler",
            arn,
        )
        stopped = machine.task_status(task)
        assert stopped["lastStatus"] == "STOPPED"
        assert "reconciler" in stopped["stoppedReason"]
    assert machine.lock("d")["Owner"] == live, "a live run's lock stays"
    assert machine.task_status(live_task)["lastStatus"] == "RUNNING"
    published = incidents(machine)
    assert all(i["reportedBy"] == "reconciler" for i in published)
    kinds = sorted((i["kind"], i["lockId"]) for i in published)
    assert kinds == sorted([("stale", k) for k in "abc"] + [("orphan-task", k) for k in "abc"])
    assert all(
        i["reportedBy"] == "reconciler"
        for i in incidents(machine) or [{"reportedBy": "reconciler"}]
    )

    again = reconcile()
    assert (again["released"], again["stopped"], again["overdue"]) == ([], [], [])
    assert received_incidents(machine.stack) == []


def test_dry_run_reports_and_changes_nothing(reconcile: Reconcile, machine: Machine) -> None:
    arn, task = machine.abort("lost")
    before = machine.lock()
    summary = reconcile({"dryRun": True})
    assert summary["dryRun"] is True
    assert [r["owner"] for r in summary["released"]] == [arn]
    assert [s["taskArn"] for s in summary["stopped"]] == [task]
    assert summary["checked"] == 1
    assert summary["held"] == 1
    assert machine.lock() == before
    assert machine.task_status(task)["lastStatus"] == "RUNNING"
    assert received_incidents(machine.stack) == []


@pytest.mark.parametrize("event", [{"dryRun": "yes"}, ["dryRun"], {"dryRun": 1}])
def test_bad_input_is_an_error(reconcile: Reconcile, event: Any) -> None:
    with pytest.raises(BadInput):
        reconcile(event)


def test_a_stuck_run_is_reported_once_and_keeps_its_lock(
    reconcile: Reconcile, machine: Machine
) -> None:
    arn = machine.start("stuck")
    task = machine.wait_task_of(arn)
    long_ago = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    machine.ddb.update_item(
        TableName=machine.stack.table_name,
        Key={"LockId": {"S": "sample"}},
        UpdateExpression="SET AcquiredAt = :t",
        ExpressionAttributeValues={":t": {"S": long_ago}},
    )
    first = reconcile()
    assert [o["owner"] for o in first["overdue"]] == [arn]
    assert first["released"] == []
    (incident,) = incidents(machine)
    assert (incident["kind"], incident["severity"], incident["status"]) == (
        "stuck",
        "medium",
        "RUNNING",
    )
    assert incident["repairs"]["lock"] == "left_held"
    assert machine.lock()["Owner"] == arn
    assert machine.task_status(task)["lastStatus"] == "RUNNING"

    second = reconcile()
    assert len(second["overdue"]) == 1, "still overdue"
    assert received_incidents(machine.stack) == [], "but reported only once"


def test_tasks_without_lock_owner_are_never_touched(reconcile: Reconcile, machine: Machine) -> None:
    ecs = machine.ecs
    from local.deploy import default_network

    subnets, groups = default_network(machine.stack.region)
    network = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}}
    foreign = [
        ecs.run_task(
            cluster=machine.stack.cluster_arn,
            taskDefinition=machine.stack.task_definition_arn,
            launchType="FARGATE",
            networkConfiguration=network,
            startedBy=started_by,
        )["tasks"][0]["taskArn"]
        for started_by in ("AWS Step Functions", "someone-else")
    ]
    summary = reconcile()
    assert summary["stopped"] == []
    assert summary["tasksChecked"] == 1, "only Step Functions' tasks are listed"
    for task in foreign:
        assert machine.task_status(task)["lastStatus"] == "RUNNING"


def test_a_lock_younger_than_the_grace_period_is_left_alone(machine: Machine) -> None:
    """With the template's grace period: a fresh lock of a dead owner waits (the janitor's event
    may be on its way); once the lock is older than the grace period, it is released. The orphan
    task of a dead owner is stopped at once: the issue sets no grace for tasks."""
    env = function_environment(machine.stack, "ReconcilerFunction")
    arn, task = machine.abort("just-ended")
    clients.reset()
    settings = ReconcilerSettings.from_env(env)
    assert settings.grace_seconds > 0
    aws = Clients(clients.dynamodb(), clients.stepfunctions(), clients.ecs(), clients.sns())
    summary = Reconciler(settings, aws).run()
    assert summary.released == []
    assert [x["why"] for x in summary.left_alone] == ["young"]
    assert [s["taskArn"] for s in summary.stopped] == [task]
    assert machine.lock()["Owner"] == arn
    later = datetime.now(UTC) + timedelta(seconds=settings.grace_seconds + 1)
    summary = Reconciler(settings, aws, now=later).run()
    assert [r["owner"] for r in summary.released] == [arn]
    assert summary.stopped == [], "already stopped"


# --- Races ------------------------------------------------------------------------------------


def test_a_lock_taken_by_a_new_execution_after_the_scan_is_never_released(
    reconcile: Reconcile, machine: Machine
) -> None:
    dead, _ = machine.abort("dead")
    new_owner = (
        "arn:aws:states:us-east-1:123456789012:execution:lock-janitor-LockingStateMachine:new"
    )
    ddb = clients.dynamodb()
    taken: list[bool] = []

    def take_it_first(**_: Any) -> None:
        if not taken:  # between the reconciler's scan and its release
            taken.append(True)
            machine.ddb.update_item(
                TableName=machine.stack.table_name,
                Key={"LockId": {"S": "sample"}},
                UpdateExpression="SET #o = :n",
                ExpressionAttributeNames={"#o": "Owner"},
                ExpressionAttributeValues={":n": {"S": new_owner}},
            )

    ddb.meta.events.register("before-call.dynamodb.UpdateItem", take_it_first)
    try:
        summary = reconcile()
    finally:
        ddb.meta.events.unregister("before-call.dynamodb.UpdateItem", take_it_first)
    assert taken
    assert machine.lock()["Owner"] == new_owner
    assert machine.lock()["Owner"] != dead
    assert summary["released"] == []
    assert [x["why"] for x in summary["leftAlone"]] == ["held_by_other"]
    assert all(i["kind"] != "stale" for i in incidents(machine))


def test_an_execution_that_ends_between_the_list_and_the_describe(
    reconcile: Reconcile, machine: Machine
) -> None:
    arn = machine.start("ending")
    task = machine.wait_task_of(arn)
    sfn = clients.stepfunctions()

    def end_it(**_: Any) -> None:
        machine.sfn.stop_execution(executionArn=arn)
        machine.wait_done(arn)

    sfn.meta.events.register("after-call.sfn.ListExecutions", end_it)
    try:
        first = reconcile()
    finally:
        sfn.meta.events.unregister("after-call.sfn.ListExecutions", end_it)
    assert first["released"] == [], "listed as running: left for the next run"
    assert machine.lock()["Owner"] == arn
    second = reconcile()
    assert [r["owner"] for r in second["released"]] == [arn]
    assert [s["taskArn"] for s in second["stopped"]] == [task]


def test_an_execution_missing_from_the_list_is_confirmed_alive_before_anything(
    reconcile: Reconcile, machine: Machine
) -> None:
    """ListExecutions is eventually consistent: a running owner it leaves out is described, and
    found alive."""
    arn = machine.start("new-run")
    task = machine.wait_task_of(arn)
    sfn = clients.stepfunctions()

    def hide(parsed: dict[str, Any], **_: Any) -> None:
        parsed["executions"] = [e for e in parsed.get("executions", []) if e["executionArn"] != arn]

    sfn.meta.events.register("after-call.sfn.ListExecutions", hide)
    try:
        with counted_calls(sfn) as calls:
            summary = reconcile()
    finally:
        sfn.meta.events.unregister("after-call.sfn.ListExecutions", hide)
    assert "sfn.DescribeExecution" in calls
    assert summary["released"] == []
    assert summary["stopped"] == []
    assert machine.lock()["Owner"] == arn
    assert machine.task_status(task)["lastStatus"] == "RUNNING"


# --- Cost -------------------------------------------------------------------------------------


def test_cost_grows_with_pages_not_items(reconcile: Reconcile, machine: Machine) -> None:
    """2,000 locks: a few stale (their tasks orphaned), a few live, most free."""
    stale = [machine.abort(f"stale-{n}", lockId=f"stale-{n}") for n in range(3)]
    live = [machine.start(f"live-{n}", lockId=f"live-{n}") for n in range(3)]
    for arn in live:
        machine.wait_task_of(arn)
    ddb = boto3.client("dynamodb", region_name=machine.stack.region)
    free = 2000 - len(stale) - len(live)
    for start in range(0, free, 25):
        ddb.batch_write_item(
            RequestItems={
                machine.stack.table_name: [
                    {
                        "PutRequest": {
                            "Item": {
                                "LockId": {"S": f"free-{n:04d}"},
                                "Token": {"N": "3"},
                                "LastOutcome": {"S": "SUCCEEDED"},
                                "LastReleasedBy": {"S": "state-machine"},
                            }
                        }
                    }
                    for n in range(start, min(start + 25, free))
                ]
            }
        )

    aws = (clients.dynamodb(), clients.stepfunctions(), clients.ecs(), clients.sns())
    with counted_calls(*aws) as calls:
        summary = reconcile()

    assert summary["checked"] == 2000
    assert len(summary["released"]) == 3
    assert len(summary["stopped"]) == 3
    pages = calls.count("dynamodb.Scan")
    tasks = summary["tasksChecked"]
    formula = (
        pages  # table scan pages
        + calls.count("sfn.ListExecutions")  # one page set per state machine
        + calls.count("ecs.ListTasks")  # one page set for the cluster
        + math.ceil(tasks / 100)  # DescribeTasks, 100 at a time
        + 3  # one DescribeExecution per candidate: the 3 stale owners (their tasks share them)
        + 3 * 2  # each stale lock: UpdateItem + Publish
        + 3 * 2  # each orphan task: StopTask + Publish
    )
    assert calls.count("sfn.ListExecutions") == 1
    assert calls.count("sfn.DescribeExecution") == 3
    assert len(calls) == formula, calls
    print(f"\n2,000 locks: {len(calls)} AWS calls ({pages} scan pages): {sorted(set(calls))}")


def test_a_lock_of_a_deleted_state_machine_is_released(
    reconcile: Reconcile, machine: Machine
) -> None:
    gone = "arn:aws:states:us-east-1:123456789012:execution:deleted-machine:old-run"
    machine.ddb.put_item(
        TableName=machine.stack.table_name,
        Item={
            "LockId": {"S": "orphaned"},
            "Owner": {"S": gone},
            "StateMachineArn": {
                "S": "arn:aws:states:us-east-1:123456789012:stateMachine:deleted-machine"
            },
            "AcquiredAt": {"S": "2026-01-01T00:00:00.000Z"},
            "TimeoutSeconds": {"N": "60"},
            "Token": {"N": "4"},
        },
    )
    summary = reconcile()
    assert [(r["lockId"], r["ownerStatus"]) for r in summary["released"]] == [
        ("orphaned", "MISSING")
    ]
    assert "Owner" not in machine.lock("orphaned")
    (incident,) = incidents(machine)
    assert (incident["kind"], incident["status"]) == ("stale", "MISSING")
