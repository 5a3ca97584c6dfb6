"""JanitorFunction on the events in events/ and on events of real executions (the real ASL under
moto, redrives included), in any order: the event is a hint, the truth decides."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from common import clients
from common.lock_table import ReleasedBy, get_lock, take
from common.status_event import MalformedEvent
from common.triage import OPERATOR_STOP_ERROR
from janitor.heal import ForeignEvent, RepairIncomplete
from local.bridges import status_change_event
from local.harness import counted_calls, finish_task, received_incidents, wait_for
from tests.handlers.conftest import EVENTS, Janitor, Reconcile, load_event
from tests.support.faults import (
    before_call,
    ecs_run_task_starts_then_fails,
    failing_call,
)
from tests.support.logs import captured
from tests.support.machine import Machine

ENDED_SHAPES = [
    "janitor-failed.json",
    "janitor-timed-out.json",
    "janitor-aborted.json",
    "janitor-failed-legacy-shape.json",
    "janitor-aborted-input-not-included.json",
    "janitor-failed-input-not-json.json",
]


def incidents(machine: Machine) -> list[dict[str, Any]]:
    """Every incident the topic delivered since the last look (drains the inbox)."""
    return [json.loads(n["Message"]) for n in received_incidents(machine.stack)]


def one_incident(machine: Machine) -> tuple[dict[str, Any], dict[str, Any]]:
    """The single notification the topic delivered, and the incident document in it."""
    (note,) = received_incidents(machine.stack)
    return note, json.loads(note["Message"])


def log_lines(logs: io.StringIO) -> list[dict[str, Any]]:
    """The structured log lines (and EMF metric lines) written so far."""
    return [json.loads(line) for line in logs.getvalue().splitlines() if line.startswith("{")]


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[io.StringIO]:
    """The janitor's log lines: Powertools binds its stream when the module loads, so the
    test points it at a buffer; EMF metrics are printed, so stdout is copied in too."""
    from janitor.handler import logger

    with captured(logger) as buffer:
        yield buffer
        buffer.write(capsys.readouterr().out)


def event(machine: Machine, arn: str, **overrides: Any) -> dict[str, Any]:
    """The status change AWS sends for the execution as it is now; `status` and
    `redrive_count` make it an older (late) one."""
    return status_change_event(machine.sfn, arn, **overrides)


def running(machine: Machine, task: str) -> bool:
    return bool(machine.task_status(task)["lastStatus"] != "STOPPED")


# --- An execution that ended ---------------------------------------------------------------


@pytest.mark.parametrize("file", ENDED_SHAPES)
def test_every_event_shape_heals_the_execution_as_it_really_ended(
    janitor: Janitor, machine: Machine, file: str
) -> None:
    """Whatever status and shape the event has, the janitor records and reports what
    DescribeExecution says (here: ABORTED), stops the task first, then releases the lock."""
    arn, task = machine.abort("run-1")
    result = janitor(janitor.event_for(file, arn))

    lock = machine.lock()
    assert "Owner" not in lock
    assert (lock["LastOwner"], lock["LastOutcome"], lock["LastReleasedBy"]) == (
        arn,
        "ABORTED",
        "janitor",
    )
    stopped = machine.task_status(task)
    assert stopped["lastStatus"] == "STOPPED"
    assert stopped["stoppedReason"] == (
        "lock-janitor janitor: execution run-1 (attempt 0) ended ABORTED; its task must not run on"
    )

    note, incident = one_incident(machine)
    assert len(note["Subject"]) < 100
    assert "\n" not in note["Subject"]
    attrs = {k: v["Value"] for k, v in note["MessageAttributes"].items()}
    assert attrs["status"] == incident["status"] == "ABORTED"
    assert attrs["lockId"] == incident["lockId"] == "sample"
    assert attrs["severity"] == incident["severity"] == "high"
    assert incident["execution"]["arn"] == arn
    assert incident["repairs"]["lock"] == "released"
    assert incident["repairs"]["releasedBy"] == "janitor"
    assert incident["repairs"]["tasksStopped"] == [task]
    assert sorted(incident["repairs"]["claims"]) == sorted(
        [f"released sample of {arn} by janitor", f"stopped {task} by janitor"]
    )
    assert incident["durationSeconds"] is not None
    assert result["incidentId"] == incident["id"]


def test_a_failed_run_keeps_its_lock_until_the_janitor_sees_its_task_stopped(
    janitor: Janitor, machine: Machine
) -> None:
    arn, task = machine.fail("crashed", exit_code=2)
    assert machine.lock()["Owner"] == arn

    janitor(event(machine, arn))

    lock = machine.lock()
    assert "Owner" not in lock
    assert (lock["LastOutcome"], lock["LastReleasedBy"]) == ("FAILED", "janitor")
    _, incident = one_incident(machine)
    assert incident["severity"] == "medium", "the task exited; nothing was left running"
    assert incident["repairs"]["tasksStopped"] == []
    assert incident["repairs"]["tasksAlreadyStopped"] == [task]
    assert incident["error"] == "Task.Failed"


def test_the_same_event_twice_reports_the_same_repairs_under_the_same_id(
    janitor: Janitor, machine: Machine
) -> None:
    arn, _ = machine.abort("twice")
    first = janitor(event(machine, arn))
    lock_after_first = machine.lock()
    second = janitor(event(machine, arn))

    assert machine.lock() == lock_after_first
    one, two = incidents(machine)
    assert one["id"] == two["id"] == first["incidentId"] == second["incidentId"]
    assert one["repairs"] == two["repairs"], "the second look reports what the first did"
    assert one["severity"] == two["severity"] == "high"


def test_a_lock_released_by_an_operator_is_left_alone(janitor: Janitor, machine: Machine) -> None:
    arn, _ = machine.fail("crashed")
    machine.ddb.update_item(
        TableName=machine.stack.table_name,
        Key={"LockId": {"S": "sample"}},
        UpdateExpression="REMOVE #o SET LastOwner = :me, LastReleasedBy = :op, LastOutcome = :f",
        ExpressionAttributeNames={"#o": "Owner"},
        ExpressionAttributeValues={
            ":me": {"S": arn},
            ":op": {"S": "operator"},
            ":f": {"S": "FORCED"},
        },
    )
    before = machine.lock()
    janitor(event(machine, arn))
    assert machine.lock() == before
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "already_free"
    assert incident["repairs"]["claims"] == []
    assert "operator" in incident["repairs"]["lockDetail"]


def test_an_operators_forced_stop_healed_by_the_janitor_first_is_recorded_and_told_as_forced(
    janitor: Janitor, machine: Machine
) -> None:
    """`release --force --stop` stops the run, then waits for it to end before it stops the
    task and releases: the janitor, woken by the ABORTED event, may do both first. The lock
    still records FORCED (read from the execution's error, not from who got there first), and
    the incident is the forced stop itself, not a follow-up of a report nobody made."""
    arn = machine.start("forced")
    task = machine.wait_task_of(arn)
    machine.sfn.stop_execution(
        executionArn=arn, error=OPERATOR_STOP_ERROR, cause="lock-janitor release --force --stop"
    )
    machine.wait_done(arn)

    janitor(event(machine, arn))

    lock = machine.lock()
    assert (lock["LastOwner"], lock["LastOutcome"], lock["LastReleasedBy"]) == (
        arn,
        "FORCED",
        "janitor",
    )
    assert not running(machine, task)
    _, incident = one_incident(machine)
    assert incident["severity"] == "medium"
    assert incident["repairs"]["lock"] == "released"
    assert "an operator stopped" in incident["summary"]
    assert "1 task stopped" in incident["summary"]
    assert "follow-up" not in incident["action"].lower()


def test_a_lock_held_by_the_next_run_is_never_touched(janitor: Janitor, machine: Machine) -> None:
    old, old_task = machine.abort("old")
    machine.ddb.update_item(
        TableName=machine.stack.table_name,
        Key={"LockId": {"S": "sample"}},
        UpdateExpression="REMOVE #o",
        ExpressionAttributeNames={"#o": "Owner"},
    )
    new = machine.start("new")
    new_task = machine.wait_task_of(new)
    taken = machine.lock()

    janitor(event(machine, old))

    assert machine.lock() == taken
    assert running(machine, new_task)
    assert not running(machine, old_task)
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "held_by_other"
    assert incident["repairs"]["holder"] == new


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{}", "lockId must be"),
        (
            '{"lockId": "   ", "taskDefinition": "t", "timeoutSeconds": 60, "container": "c"}',
            "lockId",
        ),
        (json.dumps({"lockId": "x" * 2049}), "at most 2048 bytes"),
    ],
)
def test_an_input_the_state_machine_refused_took_no_lock_and_says_what_to_fix(
    janitor: Janitor, machine: Machine, raw: str, problem: str
) -> None:
    """Case 10: a blank or over-long lockId is refused before any lock is taken (no
    ValidationException retried three times into the dead-letter queue); the janitor, by the
    same rule, knows no lock was taken, and tells on-call what to fix."""
    arn = machine.start_raw("refused", raw)
    assert machine.wait_done(arn)["error"] == "Input.Invalid"

    with counted_calls(*aws_clients()) as calls:
        result = janitor(janitor.event_for("janitor-failed-input-without-lock-id.json", arn))

    assert result["lockId"] is None
    assert "dynamodb.UpdateItem" not in calls
    assert machine.ddb.scan(TableName=machine.stack.table_name)["Items"] == []
    note, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "no_lock"
    assert incident["severity"] == "high"
    assert problem in incident["cause"]
    assert "Fix the schedule's input" in incident["action"]
    assert note["MessageAttributes"]["lockId"]["Value"] == "unknown"


@pytest.mark.parametrize(
    "file",
    [
        "malformed-not-a-status-change.json",
        "malformed-no-execution-arn.json",
        "ignored-succeeded.json",
        "ignored-running-first.json",
    ],
)
def test_a_malformed_or_unexpected_event_raises_with_a_clear_log_line(
    janitor: Janitor, logs: io.StringIO, file: str
) -> None:
    with pytest.raises(MalformedEvent):
        janitor(load_event(file))
    errors = [line for line in log_lines(logs) if line.get("level") == "ERROR"]
    assert errors, "the failure is logged"
    assert any("MalformedEvent" in json.dumps(line) for line in errors)


def test_another_state_machines_event_is_refused(janitor: Janitor) -> None:
    with pytest.raises(ForeignEvent):
        janitor(load_event("ignored-failed-other-machine.json"))


def test_every_log_line_carries_the_execution_the_lock_and_the_event_id(
    janitor: Janitor, machine: Machine, logs: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    arn, _ = machine.abort("logged")
    evt = janitor.event_for("janitor-aborted.json", arn)
    capsys.readouterr()
    janitor(evt)
    logs.write(capsys.readouterr().out)
    lines = log_lines(logs)
    records = [line for line in lines if "level" in line]
    assert records
    for line in records:
        assert line["correlation_id"] == evt["id"]
        assert line["execution_arn"] == arn
        assert line["lock_id"] == "sample"
    emf = [line for line in lines if "_aws" in line]
    (repairs,) = [m for m in emf if "LocksReleased" in m]
    assert repairs["LocksReleased"] == [1.0]
    assert repairs["TasksStopped"] == [1.0]
    assert repairs["service"] == "janitor"
    (counted,) = [m for m in emf if "Incidents" in m]
    assert counted["Status"] == "ABORTED"
    namespace = counted["_aws"]["CloudWatchMetrics"][0]["Namespace"]
    assert namespace == repairs["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LockJanitor"


def test_each_incident_is_one_incident_log_line_for_the_digests_query(
    janitor: Janitor, machine: Machine, logs: io.StringIO
) -> None:
    """A digest links a Logs Insights query for `message = "Incident"`: the janitor logs one
    such line per incident it reports, with what the query shows."""
    from alerts.digest import INCIDENTS_QUERY

    arn, _ = machine.abort("logged-incident")
    janitor(janitor.event_for("janitor-aborted.json", arn))
    _, incident = one_incident(machine)
    (line,) = [x for x in log_lines(logs) if x.get("message") == "Incident"]
    assert line["incidentId"] == incident["id"]
    assert line["executionArn"] == arn
    assert (line["severity"], line["status"], line["lockId"]) == ("high", "ABORTED", "sample")
    assert line["summary"] == incident["summary"]
    assert line["published"] is True
    shown = INCIDENTS_QUERY.splitlines()[0].removeprefix("fields ").split(", ")
    assert all(field in line for field in shown if not field.startswith("@"))


def aws_clients() -> tuple[Any, ...]:
    return clients.dynamodb(), clients.stepfunctions(), clients.ecs(), clients.sns()


def test_calls_per_incident(janitor: Janitor, machine: Machine) -> None:
    """The truth read once (DescribeExecution and the history at the same time, the tasks the
    history does not show stopped), then the writes: the release of an ended run's lock is
    conditioned on the run holding it for the attempt read, and its answer says how the lock
    stands, so the lock is not read first. A failed run whose task exited costs 4 calls (its
    task's end is in the history: STOPPED is final), and a 5th the first time a warm function
    sees its task definition revision (where its logs go, for the incident's link). An aborted
    run's task is described, then stopped."""
    from common.ecs_task import LOG_CONFIGS

    LOG_CONFIGS.clear()
    clean, _ = machine.fail("clean")
    with counted_calls(*aws_clients()) as calls:
        janitor(event(machine, clean))
    assert sorted(calls[:2]) == ["sfn.DescribeExecution", "sfn.GetExecutionHistory"]
    assert calls[2:] == ["dynamodb.UpdateItem", "ecs.DescribeTaskDefinition", "sns.Publish"]
    again, _ = machine.fail("again")
    with counted_calls(*aws_clients()) as calls:
        janitor(event(machine, again))
    assert "ecs.DescribeTaskDefinition" not in calls, "a revision is read once"
    assert len(calls) == 4

    orphaned, _ = machine.abort("orphaned")
    with counted_calls(*aws_clients()) as calls:
        janitor(janitor.event_for("janitor-aborted-input-not-included.json", orphaned))
    assert sorted(calls[:2]) == ["sfn.DescribeExecution", "sfn.GetExecutionHistory"]
    assert calls[2:] == ["ecs.DescribeTasks", "ecs.StopTask", "dynamodb.UpdateItem", "sns.Publish"]


# --- Faults: finish what can be done safely, raise for the rest, report what happened. -----


def test_dynamodb_throttling_leaves_the_release_to_the_retry(
    janitor: Janitor, machine: Machine
) -> None:
    arn, task = machine.abort("throttled")
    evt = event(machine, arn)
    with failing_call(clients.dynamodb(), "UpdateItem", "ThrottlingException") as raised:
        with pytest.raises(RepairIncomplete, match="ThrottlingException"):
            janitor(evt)
    assert raised == ["ThrottlingException"]
    assert machine.lock()["Owner"] == arn
    assert not running(machine, task), "the task was stopped first"
    assert received_incidents(machine.stack) == [], "no report of a repair not done"

    janitor(evt)  # the platform's retry
    assert "Owner" not in machine.lock()
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "released"
    assert incident["repairs"]["tasksStopped"] == [task], "the first attempt's stop is reported"
    assert incident["severity"] == "high"


def test_a_stop_whose_heal_never_completed_is_reported_by_the_release_of_a_later_attempt(
    janitor: Janitor, machine: Machine
) -> None:
    """The janitor stops attempt 0's task, then cannot release (throttled); the run is
    redriven and ends again before the retry. The release for attempt 1 reports both stops:
    attempt 0's heal never completed, so nothing else ever will."""
    arn, first = machine.abort("redriven-before-the-retry")
    with failing_call(clients.dynamodb(), "UpdateItem", "ThrottlingException"):
        with pytest.raises(RepairIncomplete):
            janitor(event(machine, arn))
    assert not running(machine, first)
    second = machine.redrive(arn)
    machine.sfn.stop_execution(executionArn=arn, error="Operator", cause="again")
    machine.wait_done(arn)

    janitor(event(machine, arn))

    assert not running(machine, second)
    assert "Owner" not in machine.lock()
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "released"
    assert sorted(incident["repairs"]["tasksStopped"]) == sorted([first, second])
    assert f"stopped {first} by janitor" in incident["repairs"]["claims"]


def test_stops_reported_by_an_earlier_attempts_release_are_not_reported_again(
    janitor: Janitor, machine: Machine
) -> None:
    """Attempt 0's heal completed (its stop reported with its release); the redriven run's
    lock was taken again for attempt 1, which ends: its release reports its own stops only."""
    arn, first = machine.abort("reported-once")
    janitor(event(machine, arn))
    assert one_incident(machine)[1]["repairs"]["tasksStopped"] == [first]
    second = machine.redrive(arn)
    janitor(event(machine, arn))  # the redrive's event: the lock taken for attempt 1
    assert machine.lock()["RedriveCount"] == "1"
    incidents(machine)
    machine.sfn.stop_execution(executionArn=arn, error="Operator", cause="again")
    machine.wait_done(arn)

    janitor(event(machine, arn))

    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "released"
    assert incident["repairs"]["tasksStopped"] == [second], "attempt 0's stop was reported"


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("InvalidParameterException", "The referenced task was not found."),
        ("ClusterNotFoundException", "Cluster not found."),
    ],
)
def test_a_task_already_gone_is_not_an_error(
    janitor: Janitor, machine: Machine, code: str, message: str
) -> None:
    arn, task = machine.abort("gone")
    with failing_call(clients.ecs(), "StopTask", code, message):
        janitor(event(machine, arn))
    _, incident = one_incident(machine)
    assert incident["repairs"]["tasksStopped"] == []
    assert incident["repairs"]["tasksGone"] == [task]
    assert incident["repairs"]["lock"] == "released"


def test_a_task_that_cannot_be_stopped_keeps_the_lock(janitor: Janitor, machine: Machine) -> None:
    """A lock is free only when no task of its holder can still run: StopTask denied, the lock
    stays (the next run is skipped rather than overlapping), and the retry finishes it."""
    arn, task = machine.abort("stubborn")
    evt = event(machine, arn)
    with failing_call(clients.ecs(), "StopTask", "AccessDeniedException"):
        with pytest.raises(RepairIncomplete, match="AccessDeniedException"):
            janitor(evt)
    assert machine.lock()["Owner"] == arn, "not released under a task that may run"
    assert running(machine, task)
    assert received_incidents(machine.stack) == []
    janitor(evt)
    assert not running(machine, task)
    assert "Owner" not in machine.lock()
    _, incident = one_incident(machine)
    assert incident["repairs"]["tasksStopped"] == [task]


def test_a_failed_publish_is_kept_and_published_by_the_reconciler(
    janitor: Janitor, reconcile: Reconcile, machine: Machine
) -> None:
    """Case 7/8: the repairs happened, SNS failed: the report is kept in the table and the
    reconciler's next run publishes it, exactly as it was."""
    arn, task = machine.abort("unheard")
    with failing_call(clients.sns(), "Publish", "KMSThrottlingException"):
        result = janitor(event(machine, arn))
    assert result["reportKept"] is True
    assert "Owner" not in machine.lock()
    assert received_incidents(machine.stack) == []

    summary = reconcile()

    assert summary["reportsFlushed"] == 1
    _, incident = one_incident(machine)
    assert incident["id"] == result["incidentId"]
    assert incident["repairs"]["tasksStopped"] == [task]
    assert incident["severity"] == "high"
    assert reconcile()["reportsFlushed"] == 0, "published once, then forgotten"


def test_a_retry_after_a_partial_success_reports_the_repairs_it_did(
    janitor: Janitor, machine: Machine
) -> None:
    """Case 8: release and stop done, Publish failed and the report could not be kept either:
    the janitor raises, and its retry reports the same repairs (read back from the lock's
    LastReleasedBy and the task's stop reason), with the same severity and id."""
    arn, task = machine.abort("partial")
    evt = event(machine, arn)
    with (
        failing_call(clients.sns(), "Publish", "InternalError"),
        failing_call(clients.dynamodb(), "PutItem", "InternalServerError"),
        pytest.raises(Exception, match="InternalError"),
    ):
        janitor(evt)
    assert "Owner" not in machine.lock()
    assert not running(machine, task)

    janitor(evt)

    _, incident = one_incident(machine)
    assert incident["severity"] == "high"
    assert incident["repairs"]["lock"] == "released"
    assert incident["repairs"]["tasksStopped"] == [task]


def test_a_history_read_failure_is_retried(janitor: Janitor, machine: Machine) -> None:
    arn, task = machine.abort("no-history")
    evt = event(machine, arn)
    with failing_call(clients.stepfunctions(), "GetExecutionHistory", "ThrottlingException"):
        with pytest.raises(Exception, match="ThrottlingException"):
            janitor(evt)
    assert running(machine, task)
    assert machine.lock()["Owner"] == arn
    janitor(evt)
    assert not running(machine, task)


def test_a_run_timeout_stops_the_task_before_the_lock_is_freed(
    janitor: Janitor, machine: Machine
) -> None:
    """Case 11: nothing in AWS's documentation says Step Functions stops the task when RunTask
    times out. The state machine keeps the lock; the janitor stops the task, then releases."""
    arn = machine.start("slow", timeoutSeconds=1)
    task = machine.wait_task_of(arn)
    assert machine.wait_done(arn)["error"] == "Task.Timeout"
    assert machine.lock()["Owner"] == arn
    assert running(machine, task)

    with counted_calls(*aws_clients()) as calls:
        janitor(event(machine, arn))

    assert calls.index("ecs.StopTask") < calls.index("dynamodb.UpdateItem")
    assert not running(machine, task)
    assert "Owner" not in machine.lock()
    _, incident = one_incident(machine)
    assert incident["severity"] == "high"
    assert incident["repairs"]["tasksStopped"] == [task]
    assert "outran its timeoutSeconds" in incident["action"]


def test_a_task_started_by_a_run_task_whose_answer_was_lost_is_found_and_stopped(
    janitor: Janitor, machine: Machine
) -> None:
    """Case 14: ECS started the task but answered ServerException. The state machine does not
    retry (a second task would run under the same lock) and keeps the lock; the janitor finds
    the task by its LOCK_OWNER, stops it, then releases."""
    with ecs_run_task_starts_then_fails() as started:
        arn = machine.start("lost-answer")
        assert machine.wait_done(arn)["status"] == "FAILED"
    (task,) = started
    assert running(machine, task)
    assert machine.tasks_of(arn) == [], "no history names it"

    janitor(event(machine, arn))

    assert not running(machine, task)
    assert "Owner" not in machine.lock()
    _, incident = one_incident(machine)
    assert incident["repairs"]["tasksStopped"] == [task]
    assert incident["severity"] == "high"


def held_by_an_unknown_execution(machine: Machine, owner: str) -> dict[str, Any]:
    """The sample lock held by `owner`, which Step Functions does not know; its ABORTED event."""
    machine.ddb.put_item(
        TableName=machine.stack.table_name,
        Item={"LockId": {"S": "sample"}, "Owner": {"S": owner}, "Token": {"N": "9"}},
    )
    evt = load_event("janitor-aborted.json")
    evt["detail"].update(executionArn=owner, name=owner.rsplit(":", 1)[1])
    evt["resources"] = [owner]
    return evt


def test_an_execution_long_gone_still_has_its_lock_released(
    janitor: Janitor, machine: Machine
) -> None:
    """Past Step Functions' retention: no history to read, which retrying cannot change; the
    lock is released and the incident says the tasks were not checked."""
    gone = "arn:aws:states:us-east-1:123456789012:execution:lock-janitor-LockingStateMachine:gone"
    janitor(held_by_an_unknown_execution(machine, gone))
    assert "Owner" not in machine.lock()
    _, incident = one_incident(machine)
    assert incident["status"] == "MISSING"
    assert incident["repairs"]["lock"] == "released"
    assert "history no longer exists" in incident["repairs"]["lockDetail"]


def test_an_event_whose_execution_is_of_another_machine_is_refused(
    janitor: Janitor, machine: Machine
) -> None:
    """The execution's own ARN says which machine it belongs to; an event whose
    stateMachineArn claims this machine for another's execution is not believed (the
    reconciler looks after a lock such an owner holds)."""
    other = "arn:aws:states:us-east-1:123456789012:execution:a-deleted-machine:long-gone"
    evt = held_by_an_unknown_execution(machine, other)
    with pytest.raises(ForeignEvent):
        janitor(evt)
    assert machine.lock()["Owner"] == other
    assert received_incidents(machine.stack) == []


# --- Redrive, with the redrive bridge (same ARN, RUNNING again, redriveCount 1) --------------


def test_a_redriven_execution_takes_its_free_lock_again(janitor: Janitor, machine: Machine) -> None:
    arn, first = machine.abort("redriven-run")
    janitor(event(machine, arn))  # the ABORTED event: task stopped, lock released
    token = int(machine.lock()["Token"])
    incidents(machine)
    second = machine.redrive(arn)

    janitor(janitor.event_for("janitor-running-redriven.json", arn))  # the redrive's RUNNING event

    lock = machine.lock()
    assert (lock["Owner"], lock["RedriveCount"], lock["AcquiredBy"]) == (arn, "1", "janitor")
    assert int(lock["Token"]) == token + 1
    assert running(machine, second)
    _, incident = one_incident(machine)
    assert (incident["kind"], incident["severity"]) == ("redrive", "low")
    assert incident["repairs"]["lock"] == "reacquired"
    assert incident["repairs"]["tasksRunning"] == [second]
    assert incident["repairs"]["tasksAlreadyStopped"] == [first]


def test_a_late_event_of_the_attempt_before_a_redrive_never_touches_the_redriven_run(
    janitor: Janitor, machine: Machine
) -> None:
    """Case 1: the ABORTED event of attempt 0 arrives after the redrive. The redriven run is
    RUNNING: its task runs on and its lock stays; attempt 0's task, still running beside it, is
    stopped."""
    arn, first = machine.abort("redriven-run")
    late = event(machine, arn)  # built now, delivered after the redrive
    second = machine.redrive(arn)
    assert running(machine, first)

    janitor(late)

    assert running(machine, second), "a live run's task is never killed"
    assert not running(machine, first), "the earlier attempt's task must not run beside it"
    lock = machine.lock()
    assert lock["Owner"] == arn
    assert lock["RedriveCount"] == "1", "the lock is recorded for the live attempt"
    assert lock["Token"] == "1", "still its own tenure: the redriven task's token is valid"
    _, incident = one_incident(machine)
    assert incident["kind"] == "redrive"
    assert incident["repairs"]["tasksStopped"] == [first]


def test_a_run_redriven_between_the_janitors_read_and_its_release_keeps_its_lock(
    janitor: Janitor, machine: Machine
) -> None:
    """The janitor reads the run ended (attempt 0) and does not read the lock: its release is
    conditioned on the run holding the lock for attempt 0 or earlier. While it stops attempt
    0's task, the run is redriven and another janitor, woken by the redrive, takes the lock
    for attempt 1 (a redrive resumes at the failed state: the state machine does not take it
    again): the release fails, the live attempt keeps its lock and its task runs on."""
    arn, first = machine.abort("redriven-meanwhile")
    late = event(machine, arn)
    redriven: list[str] = []

    def redrive_now(**_: Any) -> None:
        if not redriven:
            redriven.append(machine.redrive(arn))
            table = machine.stack.table_name
            held = get_lock(machine.ddb, table, "sample")
            taken = take(
                machine.ddb,
                table,
                "sample",
                expected=held,
                owner=arn,
                state_machine_arn=machine.stack.state_machine_arn,
                timeout_seconds=None,
                redrive_count=1,
                by=ReleasedBy.JANITOR,
                now="2026-12-01T00:00:00.000Z",
            )
            assert taken.kind == "done"

    with before_call(clients.ecs(), "StopTask", redrive_now):
        janitor(late)

    (second,) = redriven
    lock = machine.lock()
    assert (lock["Owner"], lock["RedriveCount"]) == (arn, "1"), "the live attempt's lock"
    assert running(machine, second), "a live run's task is never killed"
    assert not running(machine, first)


def test_a_run_redriven_between_the_janitors_two_reads_keeps_its_task_and_its_lock(
    janitor: Janitor, machine: Machine
) -> None:
    """The janitor reads the execution (ABORTED, attempt 0), and the run is redriven before the
    janitor reads its history: the history then names attempt 1's task, running. That task is
    not the ended attempt's: it runs on, and the lock is not released under it. The truth
    moved while it was read, so the janitor reads the execution again and heals what it is now:
    a redriven run that takes its lock for attempt 1."""
    arn, first = machine.abort("redriven-between-reads")
    late = event(machine, arn)
    redriven: list[str] = []

    def redrive_now(**_: Any) -> None:
        if not redriven:
            redriven.append(machine.redrive(arn))

    with before_call(clients.stepfunctions(), "GetExecutionHistory", redrive_now):
        janitor(late)

    (second,) = redriven
    assert running(machine, second), "a live run's task is never killed"
    assert not running(machine, first), "the ended attempt's task must not run beside it"
    lock = machine.lock()
    assert (lock["Owner"], lock["RedriveCount"]) == (arn, "1"), "the live attempt's lock"
    _, incident = one_incident(machine)
    assert incident["kind"] == "redrive"
    assert incident["repairs"]["tasksRunning"] == [second]


def test_redrive_events_out_of_order_never_free_the_live_attempts_lock(
    janitor: Janitor, machine: Machine
) -> None:
    """Case 2: RUNNING redrive 2, then a delayed RUNNING redrive 1, then FAILED redrive 1."""
    arn, _ = machine.abort("many-redrives")
    janitor(event(machine, arn))
    machine.redrive(arn)
    running_1 = event(machine, arn)
    machine.sfn.stop_execution(executionArn=arn, error="Operator", cause="again")
    machine.wait_done(arn)
    ended_1 = event(machine, arn)
    machine.redrive(arn)
    assert machine.describe(arn)["redriveCount"] == 2
    running_2 = event(machine, arn)

    for delivered in (running_2, running_1, ended_1):
        janitor(delivered)

    lock = machine.lock()
    assert lock["Owner"] == arn
    assert lock["RedriveCount"] == "2", "never written back down"
    live = machine.tasks_of(arn)[-1]
    assert running(machine, live)
    assert all(not running(machine, t) for t in machine.tasks_of(arn)[:-1])


def test_a_redrive_event_handled_after_the_redriven_run_ended_frees_the_lock(
    janitor: Janitor, machine: Machine
) -> None:
    """Case 3: the redriven run failed again before its RUNNING event was handled: the janitor
    sees it has ended, and releases its lock instead of taking it for a dead run."""
    arn, _ = machine.abort("short-redrive")
    janitor(event(machine, arn))
    second = machine.redrive(arn)
    redrive_event = event(machine, arn)
    finish_task(machine.stack, second, exit_code=1)
    assert machine.wait_done(arn)["status"] == "FAILED"

    janitor(redrive_event)

    lock = machine.lock()
    assert "Owner" not in lock
    assert lock["LastOwner"] == arn
    incidents(machine)


def test_a_redriven_execution_is_stopped_while_a_live_run_holds_the_lock(
    janitor: Janitor, machine: Machine
) -> None:
    redriven, _ = machine.abort("redriven-run")
    janitor(event(machine, redriven))
    holder = machine.start("holder")
    holder_task = machine.wait_task_of(holder)
    held = machine.lock()
    incidents(machine)
    second = machine.redrive(redriven)

    janitor(event(machine, redriven))

    assert machine.wait_done(redriven)["status"] == "ABORTED"
    assert not running(machine, second), "its task is stopped too, not left to overlap"
    assert running(machine, holder_task)
    aborted = [e for e in machine.history(redriven) if e["type"] == "ExecutionAborted"][-1]
    assert aborted["executionAbortedEventDetails"]["error"] == "Lock.Held"
    assert holder in aborted["executionAbortedEventDetails"]["cause"]
    assert machine.lock() == held
    _, incident = one_incident(machine)
    assert incident["severity"] == "high"
    assert incident["repairs"]["lock"] == "redrive_stopped"
    assert incident["repairs"]["holder"] == holder

    # Its ABORTED event follows: told as the follow-up of the stop above, the holder untouched.
    janitor(event(machine, redriven))
    assert machine.lock() == held
    _, follow_up = one_incident(machine)
    assert follow_up["severity"] == "low"
    assert follow_up["id"] != incident["id"]
    assert "Follow-up" in follow_up["action"]


def test_a_redriven_execution_takes_over_from_a_dead_holder(
    janitor: Janitor, machine: Machine
) -> None:
    redriven, _ = machine.abort("redriven-run")
    janitor(event(machine, redriven))
    dead, dead_task = machine.abort("dead-holder")  # its event is lost
    assert machine.lock()["Owner"] == dead
    incidents(machine)
    machine.redrive(redriven)

    janitor(event(machine, redriven))

    assert not running(machine, dead_task), "the dead holder's task is stopped first"
    assert machine.lock()["Owner"] == redriven
    found = {i["execution"]["arn"]: i for i in incidents(machine)}
    assert found[dead]["repairs"]["lock"] == "released"
    assert found[redriven]["repairs"]["lock"] == "taken_over"
    assert found[redriven]["repairs"]["holder"] == dead
    assert found[redriven]["severity"] == "medium"


def test_every_sample_event_is_used_by_a_test() -> None:
    sources = "".join(p.read_text() for p in (EVENTS.parent / "tests").rglob("test_*.py"))
    for path in EVENTS.glob("*.json"):
        assert path.name in sources, f"events/{path.name} is exercised by no test"


# --- Contradictions: loud, then healed from the truth ---------------------------------------


def warnings(logs: io.StringIO) -> list[str]:
    return [
        str(line.get("contradiction"))
        for line in log_lines(logs)
        if line.get("level") == "WARNING" and "contradicts" in str(line.get("message"))
    ]


def test_an_event_true_to_its_execution_warns_of_nothing(
    janitor: Janitor, machine: Machine, logs: io.StringIO
) -> None:
    arn, _ = machine.abort("consistent")
    janitor(event(machine, arn))
    assert warnings(logs) == []


def test_an_event_naming_another_machine_for_this_machines_execution_is_healed_and_said(
    janitor: Janitor, machine: Machine, logs: io.StringIO
) -> None:
    """The execution's own ARN says which machine it is of; the event's stateMachineArn says
    another: something upstream is broken. The execution is healed from its truth, loudly."""
    arn, task = machine.abort("claimed-elsewhere")
    other = machine.stack.state_machine_arn.rsplit(":", 1)[0] + ":someone-elses-machine"
    janitor(
        event(machine, arn)
        | {"detail": {**event(machine, arn)["detail"], "stateMachineArn": other}}
    )
    assert "Owner" not in machine.lock(), "healed from the truth"
    assert not running(machine, task)
    (said,) = warnings(logs)
    assert other in said
    assert arn in said
    assert machine.stack.state_machine_arn in said


def test_an_event_with_a_status_the_execution_never_had_is_healed_as_it_really_ended(
    janitor: Janitor, machine: Machine, logs: io.StringIO
) -> None:
    arn, _ = machine.fail("failed-not-aborted")
    janitor(event(machine, arn, status="ABORTED"))
    lock = machine.lock()
    assert (lock.get("Owner"), lock["LastOutcome"]) == (None, "FAILED"), "the truth's status"
    _, incident = one_incident(machine)
    assert incident["status"] == "FAILED"
    (said,) = warnings(logs)
    assert "ABORTED" in said
    assert "FAILED" in said
    assert arn in said


def test_an_event_that_a_live_first_run_ended_touches_nothing_and_says_so(
    janitor: Janitor, machine: Machine, logs: io.StringIO
) -> None:
    arn = machine.start("still-running")
    task = machine.wait_task_of(arn)
    held = machine.lock()
    janitor(event(machine, arn, status="TIMED_OUT"))
    assert machine.lock() == held
    assert running(machine, task), "a live run's task is never killed"
    (said,) = warnings(logs)
    assert "TIMED_OUT" in said
    assert "RUNNING" in said


def test_an_event_of_an_attempt_the_execution_never_had_is_said(
    janitor: Janitor, machine: Machine, logs: io.StringIO
) -> None:
    arn, _ = machine.abort("never-redriven")
    janitor(event(machine, arn, redrive_count=3))
    assert "Owner" not in machine.lock()
    (said,) = warnings(logs)
    assert "redriveCount 3" in said
    assert "0 time(s)" in said


def test_an_event_whose_name_is_not_its_executions_is_said(
    janitor: Janitor, machine: Machine, logs: io.StringIO
) -> None:
    arn, _ = machine.abort("named")
    evt = event(machine, arn)
    evt["detail"]["name"] = "someone-else"
    janitor(evt)
    (said,) = warnings(logs)
    assert "'someone-else'" in said


def test_a_foreign_event_is_refused_naming_both_machines(janitor: Janitor) -> None:
    evt = load_event("ignored-failed-other-machine.json")
    with pytest.raises(ForeignEvent) as refused:
        janitor(evt)
    assert evt["detail"]["executionArn"] in str(refused.value)


def test_a_redrive_landing_after_the_history_was_read_and_before_the_execution_was_stops_its_task(
    janitor: Janitor, machine: Machine
) -> None:
    """The model's counterexample, the other way round from the test above: the history is
    read (attempt 0), the run is redriven, then DescribeExecution says RUNNING, attempt 1. The
    two reads disagree, so the history is read again: its new task is known, and when another
    live run holds the lock, the redriven run is stopped with that task, never left beside the
    holder's."""
    arn, _ = machine.abort("redriven-between-reads-other-way")
    janitor(event(machine, arn))
    late = event(machine, arn)
    incidents(machine)
    holder = machine.start("holder-meanwhile")
    holder_task = machine.wait_task_of(holder)
    held = machine.lock()
    read: list[str] = []
    redriven: list[str] = []

    def history_read(**_: Any) -> None:
        read.append("history")

    def redrive_once_the_history_is_read(**_: Any) -> None:
        if not redriven:
            wait_for(lambda: bool(read), timeout=10)
            redriven.append(machine.redrive(arn))

    sfn = clients.stepfunctions()
    sfn.meta.events.register("after-call.sfn.GetExecutionHistory", history_read)
    try:
        with before_call(sfn, "DescribeExecution", redrive_once_the_history_is_read):
            janitor(late)
    finally:
        sfn.meta.events.unregister("after-call.sfn.GetExecutionHistory", history_read)

    (second,) = redriven
    assert machine.wait_done(arn)["status"] == "ABORTED", "stopped for the holder's sake"
    assert not running(machine, second), "its new task does not run beside the holder's"
    assert running(machine, holder_task), "a live run's task is never killed"
    assert machine.lock() == held
    (incident,) = incidents(machine)
    assert incident["repairs"]["lock"] == "redrive_stopped"
    assert second in incident["repairs"]["tasksStopped"]


def test_a_redriven_run_stopped_for_the_holders_sake_has_the_task_it_started_unread_stopped(
    janitor: Janitor, machine: Machine
) -> None:
    """A redriven run read before its new attempt's RunTask was in its history (both reads at
    attempt 1, neither naming the task yet): stopped for the live holder's sake, its history is
    read again after the stop, and the task found there is stopped too."""
    from dataclasses import replace

    from common.healing import Healer
    from common.repair import decide

    arn, _ = machine.abort("redriven-task-unread")
    janitor(event(machine, arn))
    incidents(machine)
    holder = machine.start("holder-of-the-lock")
    holder_task = machine.wait_task_of(holder)
    second = machine.redrive(arn)
    healer = Healer(clients.aws(), machine.stack.table_name, ReleasedBy.JANITOR)
    read = healer.snapshot(arn)
    before = replace(read, tasks=tuple(t for t in read.tasks if t.arn != second))
    plan = decide(before)
    assert plan.stop_execution
    assert second not in {t.arn for t in plan.stop}, "the plan cannot know it"

    done = healer.carry_out(before, plan)

    assert done.undone == []
    assert second in done.stopped
    assert not running(machine, second)
    assert running(machine, holder_task)


def test_reads_that_still_disagree_act_on_the_later_attempt_and_are_retried(
    janitor: Janitor, machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step Functions says attempt 1; the history, read again and again, still ends before the
    redrive: the janitor acts on the later attempt (the redriven run takes its free lock) and
    raises so that Lambda retries, which then reports it."""
    from common import healing
    from common.truth import history_events, parse_history, read_history

    arn, _ = machine.abort("reads-disagree")
    janitor(event(machine, arn))
    incidents(machine)
    machine.redrive(arn)
    reads: list[int] = []

    def lagging(sfn: Any, execution_arn: str) -> Any:
        reads.append(1)
        events = list(history_events(sfn, execution_arn))
        cut = next(i for i, e in enumerate(events) if e["type"] == "ExecutionRedriven")
        return parse_history(events[:cut])

    monkeypatch.setattr(healing, "read_history", lagging)
    with pytest.raises(RepairIncomplete, match="had not caught up"):
        janitor(event(machine, arn))
    assert len(reads) == 1 + healing.READS, "read again, a bounded number of times"
    lock = machine.lock()
    assert (lock["Owner"], lock["RedriveCount"]) == (arn, "1"), "the later attempt's lock"
    assert incidents(machine) == []

    monkeypatch.setattr(healing, "read_history", read_history)
    janitor(event(machine, arn))
    (incident,) = incidents(machine)
    assert incident["kind"] == "redrive"
