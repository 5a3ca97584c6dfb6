"""The locking state machine's promises, each on the real ASL under moto."""

from __future__ import annotations

import json

import pytest

from local.harness import finish_task, running_task_arns, wait_for
from tests.support.faults import ecs_run_task_fails
from tests.support.machine import Machine


def env_of(machine: Machine, task_arn: str) -> dict[str, str]:
    task = machine.ecs.describe_tasks(cluster=machine.stack.cluster_arn, tasks=[task_arn])["tasks"][
        0
    ]
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == machine.stack.container
    return {e["name"]: e["value"] for e in override["environment"]}


def test_a_run_succeeds_frees_the_lock_and_fences_the_task(machine: Machine) -> None:
    first = machine.start("first")
    task = machine.wait_task_of(first)
    held = machine.lock()
    assert held["Owner"] == first
    assert held["Token"] == "1"
    assert held["StateMachineArn"] == machine.stack.state_machine_arn
    assert held["TimeoutSeconds"] == str(machine.input()["timeoutSeconds"])
    assert held["AcquiredAt"]
    assert held["AcquiredBy"] == "state-machine"
    assert env_of(machine, task) == {"LOCK_ID": "sample", "LOCK_OWNER": first, "LOCK_TOKEN": "1"}

    finish_task(machine.stack, task, exit_code=0)
    done = machine.wait_done(first)
    assert done["status"] == "SUCCEEDED"
    lock = machine.lock()
    assert "Owner" not in lock
    assert lock["LastOwner"] == first
    assert lock["LastOutcome"] == "SUCCEEDED"
    assert lock["LastReleasedBy"] == "state-machine"
    assert lock["LastReleasedAt"]
    assert machine.transitions(first) == 3, "AcquireLock, RunTask, ReleaseLock"

    second = machine.start("second")
    task2 = machine.wait_task_of(second)
    assert machine.lock()["Token"] == "2", "every acquisition increments the fencing token"
    assert env_of(machine, task2)["LOCK_TOKEN"] == "2"
    finish_task(machine.stack, task2)
    assert machine.wait_done(second)["status"] == "SUCCEEDED"


def test_an_overlapping_run_is_a_skip_that_names_the_holder(machine: Machine) -> None:
    holder = machine.start("holder")
    task = machine.wait_task_of(holder)
    before = machine.lock()

    skipped = machine.start("overlap")
    done = machine.wait_done(skipped)
    assert done["status"] == "SUCCEEDED"
    output = json.loads(done["output"])
    assert output["skipped"]["holder"]["Item"]["Owner"]["S"] == holder
    assert output["skipped"]["holder"]["Item"]["Token"]["N"] == before["Token"]
    assert "task" not in output, "a skipped run starts no task"
    assert machine.lock() == before, "the holder's lock is untouched"
    assert machine.transitions(skipped) == 2, "AcquireLock, LockHeld"
    assert running_task_arns(machine.stack) == [task]

    finish_task(machine.stack, task)
    assert machine.wait_done(holder)["status"] == "SUCCEEDED"


def test_a_task_that_outruns_its_timeout_fails_and_keeps_its_lock(machine: Machine) -> None:
    """AWS does not document that Step Functions stops the task on a state timeout: the lock
    stays with the execution, so no run starts beside a task that may still be running, and the
    janitor stops the task before it releases the lock."""
    arn = machine.start("slow", timeoutSeconds=1)
    task = machine.wait_task_of(arn)  # and never finish it
    done = machine.wait_done(arn)
    assert done["status"] == "FAILED"
    assert done["error"] == "Task.Timeout"
    assert "States.Timeout" in done["cause"]
    assert machine.lock()["Owner"] == arn
    assert task in running_task_arns(machine.stack), "moto, like AWS may, leaves it running"
    assert machine.transitions(arn) == 3, "AcquireLock, RunTask, TaskTimedOut"


def test_a_task_that_exits_non_zero_fails_with_the_cause_and_leaves_the_lock_to_the_janitor(
    machine: Machine,
) -> None:
    arn = machine.start("crash")
    finish_task(machine.stack, machine.wait_task_of(arn), exit_code=3)
    done = machine.wait_done(arn)
    assert done["status"] == "FAILED"
    assert done["error"] == "Task.Failed"
    assert done["cause"].startswith("States.TaskFailed: ")
    assert '"ExitCode": 3' in done["cause"], "the cause carries the original cause"
    assert machine.lock()["Owner"] == arn
    assert machine.transitions(arn) == 3, "AcquireLock, RunTask, TaskFailed"


def test_a_task_that_cannot_start_fails_with_the_start_error(
    machine: Machine,
) -> None:
    missing = machine.stack.task_definition_arn.rsplit(":", 1)[0] + "-missing:1"
    arn = machine.start("nostart", taskDefinition=missing)
    done = machine.wait_done(arn)
    assert done["status"] == "FAILED"
    assert done["error"] == "Task.Failed"
    assert done["cause"].startswith("ECS.ClientException: ")
    assert "Unable to describe task definition" in done["cause"]
    assert machine.lock()["Owner"] == arn, "the janitor releases it"
    assert running_task_arns(machine.stack) == []
    failures = [e for e in machine.history(arn) if e["type"] == "TaskFailed"]
    assert len(failures) == 1, "a client error is not retried"


def test_a_server_error_is_not_retried_and_keeps_the_lock(machine: Machine) -> None:
    """ECS.ServerException: the task may have started and only the answer been lost. A retry
    would start a second task under the same lock; instead the run fails with the lock held, and
    the janitor looks for the task among the cluster's (by LOCK_OWNER) before releasing it."""
    with ecs_run_task_fails("ServerException", "try again", times=1) as raised:
        arn = machine.start("unsure")
        done = machine.wait_done(arn)
    assert raised == ["ServerException"]
    assert (done["status"], done["error"]) == ("FAILED", "Task.Failed")
    assert done["cause"].startswith("ECS.ServerException: ")
    assert machine.lock()["Owner"] == arn


@pytest.mark.filterwarnings("ignore:Exception.ECSException. with code ThrottlingException")
@pytest.mark.parametrize(
    ("code", "error"),
    [("ThrottlingException", "ECS.AmazonECSException")],
)
def test_refused_starts_are_retried_first(machine: Machine, code: str, error: str) -> None:
    with ecs_run_task_fails(code, "try again", times=2) as raised:
        arn = machine.start("flaky")
        task = machine.wait_task_of(arn, timeout=60)
    assert raised == [code, code]
    failures = [
        e["taskFailedEventDetails"]["error"]
        for e in machine.history(arn)
        if e["type"] == "TaskFailed"
    ]
    assert failures == [error, error]
    assert machine.lock()["Owner"] == arn
    finish_task(machine.stack, task)
    assert machine.wait_done(arn)["status"] == "SUCCEEDED"
    assert "Owner" not in machine.lock()


def test_stop_execution_mid_run_leaves_the_lock_held(machine: Machine) -> None:
    """The hole the janitor closes: an ABORTED execution runs no Catch, so its lock stays held
    (and its task may keep running) until the janitor or the reconciler releases it."""
    arn = machine.start("aborted")
    task = machine.wait_task_of(arn)
    machine.sfn.stop_execution(executionArn=arn, error="Operator", cause="redeploy")
    done = machine.wait_done(arn)
    assert done["status"] == "ABORTED"
    assert machine.lock()["Owner"] == arn, "nothing in the state machine released it"
    assert task in running_task_arns(machine.stack)


@pytest.mark.parametrize(("exit_code", "status"), [(0, "SUCCEEDED"), (1, "FAILED")])
def test_a_late_release_never_touches_the_next_holder(
    machine: Machine, exit_code: int, status: str
) -> None:
    old = machine.start("old")
    old_task = machine.wait_task_of(old)
    # An operator force-releases the lock while `old` is still in RunTask ...
    machine.ddb.update_item(
        TableName=machine.stack.table_name,
        Key={"LockId": {"S": "sample"}},
        UpdateExpression="REMOVE #o SET LastOutcome = :f, LastReleasedBy = :op",
        ExpressionAttributeNames={"#o": "Owner"},
        ExpressionAttributeValues={":f": {"S": "FORCED"}, ":op": {"S": "operator"}},
    )
    # ... and a new execution takes it.
    new = machine.start("new")
    new_task = machine.wait_task_of(new)
    taken = machine.lock()
    assert taken["Owner"] == new

    finish_task(machine.stack, old_task, exit_code=exit_code)
    done = machine.wait_done(old)
    assert done["status"] == status, "the old run still ends as it would have"
    if status == "FAILED":
        assert done["error"] == "Task.Failed"
    assert machine.lock() == taken, "the old run's release left the new holder alone"

    finish_task(machine.stack, new_task)
    assert machine.wait_done(new)["status"] == "SUCCEEDED"
    assert machine.lock()["LastOwner"] == new


def test_a_retried_acquire_that_already_landed_is_not_a_skip(machine: Machine) -> None:
    """AcquireLock's condition admits the execution's own lock: a retry after a write whose
    answer was lost takes the lock again instead of skipping while holding it."""
    arn = "arn:aws:states:us-east-1:123456789012:execution:lock-janitor-LockingStateMachine:own"
    machine.ddb.put_item(
        TableName=machine.stack.table_name,
        Item={"LockId": {"S": "sample"}, "Owner": {"S": arn}, "Token": {"N": "7"}},
    )
    started = machine.start("own")
    assert started == arn
    task = machine.wait_task_of(started)
    assert machine.lock()["Token"] == "8"
    finish_task(machine.stack, task)
    assert machine.wait_done(started)["status"] == "SUCCEEDED"
    wait_for(lambda: "Owner" not in machine.lock())


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"lockId": "  "}, "lockId must be a non-blank string"),
        ({"lockId": "x" * 2049}, "at most 2048 bytes"),
        ({"lockId": "#nightly"}, "not starting with #"),
        ({"lockId": "é" * 1025}, "at most 2048 bytes"),
        ({"timeoutSeconds": "300"}, "timeoutSeconds must be a whole number from 1 to"),
        ({"taskDefinition": None}, "taskDefinition must be a non-blank string"),
        ({"timeoutSeconds": 1.5}, "timeoutSeconds must be a whole number from 1 to"),
        ({"timeoutSeconds": 10**6}, "timeoutSeconds must be a whole number from 1 to"),
        ({"container": ""}, "container must be a non-blank string"),
        ({"lockId": "😀 nightly"}, None),
        ({"lockId": "x" * 2048}, None),
        ({"lockId": "é" * 1024}, None),
        ({"lockId": "nightly#1"}, None),
    ],
)
def test_a_bad_input_fails_before_any_lock_is_taken(
    machine: Machine, change: dict[str, object], problem: str | None
) -> None:
    arn = machine.start("checked", **change)
    if problem is None:  # valid, whatever its characters
        finish_task(machine.stack, machine.wait_task_of(arn))
        assert machine.wait_done(arn)["status"] == "SUCCEEDED"
        assert machine.lock(str(change["lockId"]))["LastOutcome"] == "SUCCEEDED", "its own item"
        return
    done = machine.wait_done(arn)
    assert (done["status"], done["error"]) == ("FAILED", "Input.Invalid")
    said, _, _ = done["cause"].partition(". Input: ")
    assert problem in said
    assert "$states" not in said, "the problems alone, not the words around the thrown error"
    assert "Input: {" in done["cause"], "the cause quotes the input"
    assert machine.lock(str(change.get("lockId", "sample"))) == {}, "no lock item, no lock"
    assert machine.transitions(arn) == 2, "AcquireLock, InvalidInput"
    kinds = [e["type"] for e in machine.history(arn)]
    assert "TaskScheduled" not in kinds, "no call was made: the input was refused first"


def test_an_input_that_is_not_an_object_is_refused(machine: Machine) -> None:
    arn = machine.start_raw("list", "[1, 2]")
    done = machine.wait_done(arn)
    assert (done["status"], done["error"]) == ("FAILED", "Input.Invalid")
    assert done["cause"].startswith("the input must be a JSON object")
