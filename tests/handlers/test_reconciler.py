"""ReconcilerFunction against real executions of the locking machine under moto: what the events
missed, healed from the truth; what it cannot read, skipped and reported."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from common import clients
from common.settings import ReconcilerSettings
from local.bridges import status_change_event
from local.harness import counted_calls, function_environment, received_incidents
from reconciler.reconcile import BadInput, Reconciler
from tests.handlers.conftest import Janitor, Reconcile
from tests.support.faults import before_call, failing_call, with_params
from tests.support.logs import captured
from tests.support.machine import Machine


def incidents(machine: Machine) -> list[dict[str, Any]]:
    return [json.loads(n["Message"]) for n in received_incidents(machine.stack)]


def running(machine: Machine, task: str) -> bool:
    return bool(machine.task_status(task)["lastStatus"] != "STOPPED")


def test_what_lost_events_left_behind_is_healed_and_reported_once(
    reconcile: Reconcile, machine: Machine
) -> None:
    aborted = {}
    for lock in ("a", "b", "c"):
        aborted[lock] = machine.abort(f"lost-{lock}", lockId=lock)
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
        assert stopped["stoppedReason"].startswith("lock-janitor reconciler: ")
    assert machine.lock("d")["Owner"] == live, "a live run's lock stays"
    assert running(machine, live_task)
    published = incidents(machine)
    assert sorted(i["lockId"] for i in published) == ["a", "b", "c"], "one report per execution"
    for incident in published:
        assert (incident["kind"], incident["reportedBy"]) == ("execution", "reconciler")
        assert incident["severity"] == "high"
        assert "The reconciler did this, not the janitor" in incident["action"]
        assert incident["repairs"]["lock"] == "released"
        assert len(incident["repairs"]["tasksStopped"]) == 1

    again = reconcile()
    assert (again["released"], again["stopped"], again["overdue"]) == ([], [], [])
    assert received_incidents(machine.stack) == []


def test_each_incident_is_one_incident_log_line_for_the_digests_query(
    reconcile: Reconcile, machine: Machine
) -> None:
    from reconciler.handler import logger

    arn, _ = machine.abort("logged", lockId="logged")
    with captured(logger) as buffer:
        reconcile()
    (published,) = incidents(machine)
    lines = [json.loads(x) for x in buffer.getvalue().splitlines() if x.startswith("{")]
    (line,) = [x for x in lines if x.get("message") == "Incident"]
    assert (line["incidentId"], line["executionArn"]) == (published["id"], arn)
    assert (line["lockId"], line["severity"], line["published"]) == ("logged", "high", True)


def test_a_late_janitor_event_reports_the_reconcilers_repairs_under_the_same_id(
    reconcile: Reconcile, janitor: Janitor, machine: Machine
) -> None:
    arn, _ = machine.abort("late")
    reconcile()
    (first,) = incidents(machine)
    janitor(status_change_event(machine.sfn, arn))
    (second,) = incidents(machine)
    assert second["id"] == first["id"], "subscribers see one incident"
    assert second["repairs"]["claims"] == first["repairs"]["claims"]


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
    assert running(machine, task)
    assert received_incidents(machine.stack) == []


@pytest.mark.parametrize("event", [{"dryRun": "yes"}, ["dryRun"], {"dryRun": 1}])
def test_bad_input_is_an_error(reconcile: Reconcile, event: Any) -> None:
    with pytest.raises(BadInput):
        reconcile(event)


def set_acquired(machine: Machine, when: datetime, lock_id: str = "sample") -> None:
    machine.ddb.update_item(
        TableName=machine.stack.table_name,
        Key={"LockId": {"S": lock_id}},
        UpdateExpression="SET AcquiredAt = :t",
        ExpressionAttributeValues={":t": {"S": when.strftime("%Y-%m-%dT%H:%M:%S.000Z")}},
    )


def test_a_stuck_run_is_reported_once_and_keeps_its_lock(
    reconcile: Reconcile, machine: Machine
) -> None:
    arn = machine.start("stuck")
    task = machine.wait_task_of(arn)
    set_acquired(machine, datetime.now(UTC) - timedelta(hours=3))
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
    assert running(machine, task)

    second = reconcile()
    assert len(second["overdue"]) == 1, "still overdue"
    assert received_incidents(machine.stack) == [], "but reported only once"


def test_an_ended_run_that_a_lagging_list_shows_running_is_never_reported_stuck(
    reconcile: Reconcile, machine: Machine
) -> None:
    """Case 13: ListExecutions still lists an execution that has ended; DescribeExecution is
    the truth: no `stuck` incident with status RUNNING, the run is healed instead."""
    arn, task = machine.abort("ended")
    set_acquired(machine, datetime.now(UTC) - timedelta(hours=3))
    sfn = clients.stepfunctions()

    def lag(parsed: dict[str, Any], **_: Any) -> None:
        parsed["executions"] = [{"executionArn": arn, "status": "RUNNING", "redriveCount": 0}]

    sfn.meta.events.register("after-call.sfn.ListExecutions", lag)
    try:
        summary = reconcile()
    finally:
        sfn.meta.events.unregister("after-call.sfn.ListExecutions", lag)
    assert summary["overdue"] == []
    assert all(i["kind"] != "stuck" for i in incidents(machine))
    assert "Owner" not in machine.lock()
    assert not running(machine, task)


def test_tasks_without_lock_owner_are_never_touched(reconcile: Reconcile, machine: Machine) -> None:
    from local.harness import default_network

    subnets, groups = default_network(machine.stack.region)
    network = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}}
    foreign = [
        machine.ecs.run_task(
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
        assert running(machine, task)


def template_reconciler(machine: Machine, now: datetime | None = None) -> Reconciler:
    """The reconciler with the template's own settings (grace period included)."""
    clients.reset()
    settings = ReconcilerSettings.from_env(
        function_environment(machine.stack, "ReconcilerFunction")
    )
    assert settings.grace_seconds > 0
    return Reconciler(settings, clients.aws(), now=now or datetime.now(UTC))


def test_the_grace_period_counts_from_when_the_run_ended(machine: Machine) -> None:
    """Case 12: an old lock whose run was aborted a second ago, and its task, are the janitor's
    for the grace period: no false `the janitor failed` incident; after it, they are healed."""
    arn, task = machine.abort("just-ended")
    set_acquired(machine, datetime.now(UTC) - timedelta(hours=5))
    reconciler = template_reconciler(machine)
    summary = reconciler.run()
    assert (summary.released, summary.stopped) == ([], [])
    assert {x["why"] for x in summary.left_alone} == {"young"}
    assert machine.lock()["Owner"] == arn
    assert running(machine, task)
    assert received_incidents(machine.stack) == []

    later = datetime.now(UTC) + timedelta(seconds=reconciler.settings.grace_seconds + 1)
    summary = template_reconciler(machine, later).run()
    assert [r["owner"] for r in summary.released] == [arn]
    assert [s["taskArn"] for s in summary.stopped] == [task]


# --- Races -------------------------------------------------------------------------------------


def test_a_lock_taken_by_a_new_execution_after_the_read_is_never_released(
    reconcile: Reconcile, machine: Machine
) -> None:
    machine.abort("dead")
    new_owner = (
        "arn:aws:states:us-east-1:123456789012:execution:lock-janitor-LockingStateMachine:new"
    )
    ddb = clients.dynamodb()
    taken: list[bool] = []

    def take_it_first(**_: Any) -> None:
        if not taken:  # between the reconciler's read and its release
            taken.append(True)
            machine.ddb.update_item(
                TableName=machine.stack.table_name,
                Key={"LockId": {"S": "sample"}},
                UpdateExpression="SET #o = :n ADD #t :one",
                ExpressionAttributeNames={"#o": "Owner", "#t": "Token"},
                ExpressionAttributeValues={":n": {"S": new_owner}, ":one": {"N": "1"}},
            )

    with before_call(ddb, "UpdateItem", take_it_first):
        summary = reconcile()
    assert taken
    assert machine.lock()["Owner"] == new_owner
    assert summary["released"] == []
    assert all(i["repairs"]["lock"] != "released" for i in incidents(machine))


def test_a_redrive_that_retakes_the_lock_after_the_read_keeps_it(
    reconcile: Reconcile, machine: Machine
) -> None:
    """Case 5: the owner was redriven and took its lock again between the reconciler's reads
    and its write. The release is fenced on the token it read, not the owner alone: refused."""
    arn, _ = machine.abort("redriven-meanwhile")
    ddb = clients.dynamodb()
    retaken: list[bool] = []

    def redrive_first(**_: Any) -> None:
        if not retaken:
            retaken.append(True)
            machine.ddb.update_item(  # what the janitor's redrive handling writes
                TableName=machine.stack.table_name,
                Key={"LockId": {"S": "sample"}},
                UpdateExpression="SET RedriveCount = :one, AcquiredBy = :j",
                ExpressionAttributeValues={":one": {"N": "1"}, ":j": {"S": "janitor"}},
            )

    with before_call(ddb, "UpdateItem", redrive_first):
        summary = reconcile()
    assert retaken
    assert machine.lock()["Owner"] == arn
    assert machine.lock()["RedriveCount"] == "1"
    assert summary["released"] == []


def test_an_execution_missing_from_the_list_is_confirmed_alive_before_anything(
    reconcile: Reconcile, machine: Machine
) -> None:
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
    assert running(machine, task)


# --- What it cannot read never stops the rest ----------------------------------------------


def test_an_owner_it_may_not_describe_is_skipped_and_reported(
    reconcile: Reconcile, machine: Machine
) -> None:
    """Case 6: a lock of another state machine (AccessDenied under the real IAM policy, which
    moto does not enforce: the denial is simulated here) is skipped and reported; the stale lock
    beside it is healed all the same."""
    foreign = "arn:aws:states:us-east-1:123456789012:execution:another-machine:theirs"
    machine.ddb.put_item(
        TableName=machine.stack.table_name,
        Item={
            "LockId": {"S": "theirs"},
            "Owner": {"S": foreign},
            "Token": {"N": "2"},
            "AcquiredAt": {"S": "2026-01-01T00:00:00.000Z"},
        },
    )
    ours, task = machine.abort("ours")
    sfn = clients.stepfunctions()

    def deny(params: dict[str, Any], **_: Any) -> None:
        if params.get("executionArn") == foreign:
            raise sfn.exceptions.ClientError(
                {"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}},
                "DescribeExecution",
            )

    sfn.meta.events.register("provide-client-params.sfn.DescribeExecution", deny)
    try:
        summary = reconcile()
    finally:
        sfn.meta.events.unregister("provide-client-params.sfn.DescribeExecution", deny)
    assert [r["owner"] for r in summary["released"]] == [ours]
    assert not running(machine, task)
    assert machine.lock("theirs")["Owner"] == foreign, "what it cannot read, it leaves alone"
    (skipped,) = summary["unreadable"]
    assert "theirs" in skipped["what"]
    assert skipped["why"].startswith("AccessDeniedException")
    kinds = sorted(i["kind"] for i in incidents(machine))
    assert kinds == ["execution", "unreadable"]


@pytest.mark.parametrize(
    "odd",
    [
        {"TimeoutSeconds": {"N": "1.5"}},
        {"Token": {"S": "seven"}},
        {"Owner": {"N": "4"}},
    ],
)
def test_an_odd_item_is_skipped_and_reported(
    reconcile: Reconcile, machine: Machine, odd: dict[str, Any]
) -> None:
    machine.ddb.put_item(
        TableName=machine.stack.table_name,
        Item={"LockId": {"S": "hand-edited"}, "Owner": {"S": "x"}, **odd},
    )
    ours, _ = machine.abort("ours")
    summary = reconcile()
    assert [r["owner"] for r in summary["released"]] == [ours]
    (skipped,) = summary["unreadable"]
    assert "hand-edited" in skipped["what"]
    (unreadable,) = [i for i in incidents(machine) if i["kind"] == "unreadable"]
    assert unreadable["severity"] == "high"
    assert "hand-edited" in unreadable["repairs"]["lockDetail"]


def test_a_failed_publish_is_kept_and_published_by_the_next_run(
    reconcile: Reconcile, machine: Machine
) -> None:
    """Case 7: the reconciler repaired, then Publish failed: the report is kept, and the next
    run publishes it (before, nothing was left to report and the incident was lost)."""
    arn, task = machine.abort("unheard")
    with failing_call(clients.sns(), "Publish", "InternalError", times=10):
        first = reconcile()
    assert [r["owner"] for r in first["released"]] == [arn]
    assert received_incidents(machine.stack) == []
    with failing_call(clients.sns(), "Publish", "InternalError", times=10):
        still = reconcile()
    assert still["reportsFlushed"] == 0
    assert [u["error"] for u in still["unpublished"]] == ["InternalError"], "said, and kept"

    second = reconcile()

    assert second["reportsFlushed"] == 1
    assert second["unpublished"] == []
    (incident,) = incidents(machine)
    assert incident["repairs"]["tasksStopped"] == [task]
    assert incident["repairs"]["lock"] == "released"
    assert reconcile()["reportsFlushed"] == 0


def test_two_orphan_tasks_of_one_execution_are_both_stopped_and_reported(
    reconcile: Reconcile, machine: Machine
) -> None:
    """Case 9: two orphan tasks of one execution: both stopped, both in the report; a task
    stopped later is a further repair, under a new incident id (never dropped as a duplicate)."""
    arn, first = machine.abort("two-tasks")
    second = machine.redrive(arn)
    machine.sfn.stop_execution(executionArn=arn)
    machine.wait_done(arn)
    assert running(machine, first)
    assert running(machine, second)

    reconcile()

    assert not running(machine, first)
    assert not running(machine, second)
    (incident,) = incidents(machine)
    assert sorted(incident["repairs"]["tasksStopped"]) == sorted([first, second])
    assert {c for c in incident["repairs"]["claims"] if c.startswith("stopped")} == {
        f"stopped {first} by reconciler",
        f"stopped {second} by reconciler",
    }


def test_a_redriven_run_whose_event_was_lost_takes_its_lock(
    reconcile: Reconcile, machine: Machine, janitor: Janitor
) -> None:
    """Case 4: the redrive's RUNNING event is lost. The reconciler finds the live run's task
    running without its lock and takes the lock for it, so the next tick skips."""
    arn, _ = machine.abort("lost-redrive")
    janitor(status_change_event(machine.sfn, arn))  # released after the abort
    received_incidents(machine.stack)
    task = machine.redrive(arn)

    summary = reconcile()

    assert [t["owner"] for t in summary["taken"]] == [arn]
    lock = machine.lock()
    assert (lock["Owner"], lock["RedriveCount"], lock["AcquiredBy"]) == (arn, "1", "reconciler")
    assert running(machine, task)
    (incident,) = incidents(machine)
    assert (incident["kind"], incident["repairs"]["lock"]) == ("redrive", "reacquired")
    skipped = machine.start("next-tick")
    assert machine.wait_done(skipped)["status"] == "SUCCEEDED"
    assert "skipped" in machine.describe(skipped)["output"]


def test_a_redriven_run_without_its_lock_is_stopped_when_a_live_run_holds_it(
    reconcile: Reconcile, machine: Machine, janitor: Janitor
) -> None:
    arn, _ = machine.abort("lost-redrive")
    janitor(status_change_event(machine.sfn, arn))
    holder = machine.start("holder")
    holder_task = machine.wait_task_of(holder)
    received_incidents(machine.stack)
    task = machine.redrive(arn)

    reconcile()

    assert machine.wait_done(arn)["status"] == "ABORTED"
    assert not running(machine, task)
    assert running(machine, holder_task)
    assert machine.lock()["Owner"] == holder


# --- Cost ----------------------------------------------------------------------------------


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
        + 3  # one DescribeExecution per candidate: the 3 stale owners
        + 3 * 5  # each stale owner healed: GetExecutionHistory, DescribeTasks, StopTask,
        # UpdateItem (conditioned on it holding the lock: no read first), Publish (its task,
        # listed again from the cluster, costs nothing)
    )
    assert calls.count("sfn.ListExecutions") == 1
    assert calls.count("sfn.DescribeExecution") == 3
    assert len(calls) == formula, calls
    print(f"\n2,000 locks: {len(calls)} AWS calls ({pages} scan pages): {sorted(set(calls))}")


def test_a_dead_holders_task_its_history_never_named_is_stopped_before_its_lock_is_freed(
    reconcile: Reconcile, machine: Machine
) -> None:
    """A task with a dead run's LOCK_OWNER that the run's history does not name (a RunTask
    whose answer was lost unmarked, a copy started by hand): the reconciler stops it with the
    one the history names, and frees the lock only then, in one repair and one report. Were it
    left running, the next run would take the free lock beside it."""
    arn, named = machine.abort("holder-with-a-copy")
    unseen = machine.unseen_copy(named)
    assert unseen not in machine.tasks_of(arn)

    summary = reconcile()

    assert summary["tasksChecked"] == 2
    assert not running(machine, named)
    assert not running(machine, unseen), "no task of a dead holder outlives its lock"
    assert {s["taskArn"] for s in summary["stopped"]} == {named, unseen}
    assert "Owner" not in machine.lock()
    (incident,) = incidents(machine)
    assert sorted(incident["repairs"]["tasksStopped"]) == sorted([named, unseen])


def test_a_dead_holders_lock_waits_for_the_stop_of_every_task_found_with_its_owner(
    reconcile: Reconcile, machine: Machine
) -> None:
    arn, named = machine.abort("copy-cannot-stop")
    unseen = machine.unseen_copy(named)

    refused: list[str] = []

    def refuse_the_copy(params: dict[str, Any], **_: Any) -> None:
        if params.get("task") == unseen:
            refused.append(unseen)
            raise ClientError({"Error": {"Code": "ServerException", "Message": "no"}}, "StopTask")

    with with_params(clients.ecs(), "StopTask", refuse_the_copy):
        reconcile()
    assert refused == [unseen]
    assert running(machine, unseen)
    assert machine.lock()["Owner"] == arn, "held while a task of its dead holder may run"

    reconcile()
    assert not running(machine, unseen)
    assert "Owner" not in machine.lock()


def test_no_lock_is_released_while_the_cluster_cannot_be_listed(
    reconcile: Reconcile, machine: Machine
) -> None:
    """The listing of the cluster fails (throttled): the copy its history never names could be
    running, so the dead holder's named task is stopped but its lock stays, said as left
    undone; the next run lists the cluster, stops the copy, and only then frees the lock."""
    arn, named = machine.abort("cluster-unlisted")
    unseen = machine.unseen_copy(named)

    with failing_call(clients.ecs(), "ListTasks", "ThrottlingException") as raised:
        reconcile()
    assert raised == ["ThrottlingException"]
    assert not running(machine, named)
    assert running(machine, unseen)
    assert machine.lock()["Owner"] == arn, "held while a task no history names may run"

    reconcile()
    assert not running(machine, unseen)
    assert "Owner" not in machine.lock()


def test_a_task_found_after_its_owners_lock_was_released_is_stopped_and_reported_anew(
    reconcile: Reconcile, machine: Machine, janitor: Janitor
) -> None:
    """The janitor healed the run from its history (the copy unseen: the janitor does not list
    the cluster), then the reconciler finds the copy: stopped, a new incident id."""
    arn, named = machine.abort("released-then-found")
    unseen = machine.unseen_copy(named)
    janitor(status_change_event(machine.sfn, arn))
    (first,) = incidents(machine)
    assert "Owner" not in machine.lock()
    assert running(machine, unseen), "the window: the janitor reads the history, not the cluster"

    reconcile()

    assert not running(machine, unseen)
    (second,) = incidents(machine)
    assert second["id"] != first["id"]
    assert unseen in second["repairs"]["tasksStopped"]
