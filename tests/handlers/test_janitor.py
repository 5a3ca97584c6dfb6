"""JanitorFunction on the events in events/, against the real state machine under moto."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest

from common import clients
from common.status_event import MalformedEvent
from janitor.heal import ForeignEvent, RepairIncomplete
from local.deploy import finish_task, received_incidents
from tests.handlers.conftest import EVENTS, Janitor, load_event
from tests.support.faults import captured_params, counted_calls, failing_call
from tests.support.logs import captured
from tests.support.machine import Machine

ENDED = [
    ("janitor-failed.json", "FAILED"),
    ("janitor-timed-out.json", "TIMED_OUT"),
    ("janitor-aborted.json", "ABORTED"),
    ("janitor-failed-legacy-shape.json", "FAILED"),
    ("janitor-aborted-input-not-included.json", "ABORTED"),
    ("janitor-failed-input-not-json.json", "FAILED"),
]


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


@pytest.mark.parametrize(("file", "status"), ENDED)
def test_an_execution_that_ended_badly_is_healed_and_reported(
    janitor: Janitor, machine: Machine, file: str, status: str
) -> None:
    arn, task = machine.abort("run-1")
    event = janitor.event_for(file, arn)

    result = janitor(event)

    lock = machine.lock()
    assert "Owner" not in lock
    assert lock["LastOwner"] == arn
    assert lock["LastOutcome"] == status
    assert lock["LastReleasedBy"] == "janitor"
    stopped = machine.task_status(task)
    assert stopped["lastStatus"] == "STOPPED"
    assert "run-1" in stopped["stoppedReason"]
    assert status in stopped["stoppedReason"]

    note, incident = one_incident(machine)
    assert len(note["Subject"]) < 100
    assert "\n" not in note["Subject"]
    attrs = {k: v["Value"] for k, v in note["MessageAttributes"].items()}
    assert attrs["status"] == status
    assert attrs["lockId"] == "sample"
    assert attrs["severity"] == incident["severity"] == "high"
    assert incident["status"] == status
    assert incident["lockId"] == "sample"
    assert incident["execution"]["arn"] == arn
    assert incident["execution"]["consoleUrl"].endswith(arn)
    assert incident["repairs"]["lock"] == "released"
    assert incident["repairs"]["tasksStopped"] == [task]
    assert incident["durationSeconds"] is not None
    assert result["incidentId"] == incident["id"]


def test_the_same_event_twice_gives_the_same_end_state_and_incident_id(
    janitor: Janitor, machine: Machine
) -> None:
    arn, task = machine.abort("twice")
    event = janitor.event_for("janitor-aborted.json", arn)
    first = janitor(event)
    lock_after_first = machine.lock()
    second = janitor(event)

    assert machine.lock() == lock_after_first
    assert machine.task_status(task)["lastStatus"] == "STOPPED"
    notes = received_incidents(machine.stack)
    ids = [json.loads(n["Message"])["id"] for n in notes]
    assert ids == [first["incidentId"], second["incidentId"]]
    assert ids[0] == ids[1]
    again = json.loads(notes[1]["Message"])["repairs"]
    assert again["lock"] == "already_free"
    assert "released by janitor" in again["lockDetail"]
    assert again["tasksStopped"] == [], "the second pass does not claim the first's repairs"
    assert again["tasksAlreadyStopped"] == [task]


def test_a_lock_already_free_is_left_free(janitor: Janitor, machine: Machine) -> None:
    arn = machine.start("crashed")
    finish_task(machine.stack, machine.wait_task_of(arn), exit_code=2)
    assert machine.wait_done(arn)["status"] == "FAILED"
    before = machine.lock()

    janitor(janitor.event_for("janitor-failed.json", arn))

    assert machine.lock() == before, "released by the state machine; not overwritten"
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "already_free"
    assert "state-machine" in incident["repairs"]["lockDetail"]
    assert incident["severity"] == "medium", "the machine cleaned up: nothing was repaired"
    assert incident["error"] == "Task.Failed"


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

    janitor(janitor.event_for("janitor-aborted.json", old))

    assert machine.lock() == taken
    assert machine.task_status(new_task)["lastStatus"] == "RUNNING"
    assert machine.task_status(old_task)["lastStatus"] == "STOPPED"
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "held_by_other"
    assert incident["repairs"]["holder"] == new


def test_an_input_without_lock_id_took_no_lock_and_is_still_reported(
    janitor: Janitor, machine: Machine
) -> None:
    arn = machine.start_raw("no-lock-run", "{}")
    assert machine.wait_done(arn)["status"] == "FAILED"

    result = janitor(janitor.event_for("janitor-failed-input-without-lock-id.json", arn))

    assert result["lockId"] is None
    assert machine.lock() == {}
    note, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "no_lock"
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
    event = janitor.event_for("janitor-aborted.json", arn)
    capsys.readouterr()
    janitor(event)
    logs.write(capsys.readouterr().out)
    lines = log_lines(logs)
    logs = [line for line in lines if "level" in line]
    assert logs
    for line in logs:
        assert line["correlation_id"] == event["id"]
        assert line["execution_arn"] == arn
        assert line["lock_id"] == "sample"
    emf = [line for line in lines if "_aws" in line]
    (repairs,) = [m for m in emf if "LocksReleased" in m]
    assert repairs["LocksReleased"] == [1.0]
    assert repairs["TasksStopped"] == [1.0]
    assert repairs["service"] == "janitor"
    (incidents,) = [m for m in emf if "Incidents" in m]
    assert incidents["Status"] == "ABORTED"
    assert incidents["service"] == "janitor"
    namespace = incidents["_aws"]["CloudWatchMetrics"][0]["Namespace"]
    assert namespace == repairs["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "LockJanitor"


def aws_clients() -> tuple[Any, ...]:
    return clients.dynamodb(), clients.stepfunctions(), clients.ecs(), clients.sns()


def test_calls_per_incident(janitor: Janitor, machine: Machine) -> None:
    """An ended execution with no orphan: at most 4 AWS calls; each orphan adds its StopTask."""
    clean = machine.start("clean")
    finish_task(machine.stack, machine.wait_task_of(clean), exit_code=1)
    machine.wait_done(clean)
    with counted_calls(*aws_clients()) as calls:
        janitor(janitor.event_for("janitor-failed.json", clean))
    assert calls == [
        "dynamodb.UpdateItem",
        "sfn.GetExecutionHistory",
        "ecs.DescribeTasks",
        "sns.Publish",
    ]

    orphaned, _ = machine.abort("orphaned")
    with counted_calls(*aws_clients()) as calls:
        janitor(janitor.event_for("janitor-aborted.json", orphaned))
    assert len(calls) == 5
    assert calls.count("ecs.StopTask") == 1

    hidden, _ = machine.abort("hidden")
    with counted_calls(*aws_clients()) as calls:
        janitor(janitor.event_for("janitor-aborted-input-not-included.json", hidden))
    assert calls[0] == "sfn.DescribeExecution", "input left out of the event: one more call"
    assert len(calls) == 6


# --- Faults: finish what can be done, raise for the rest, never report what did not happen. --


def test_dynamodb_throttling_leaves_the_release_to_the_retry(
    janitor: Janitor, machine: Machine
) -> None:
    arn, task = machine.abort("throttled")
    event = janitor.event_for("janitor-aborted.json", arn)
    with failing_call(clients.dynamodb(), "UpdateItem", "ThrottlingException") as raised:
        with pytest.raises(RepairIncomplete, match="release sample: ThrottlingException"):
            janitor(event)
    assert raised == ["ThrottlingException"]
    assert machine.lock()["Owner"] == arn
    assert machine.task_status(task)["lastStatus"] == "STOPPED", "the rest was done"
    assert received_incidents(machine.stack) == [], "no report of a repair not done"

    janitor(event)  # the platform's retry
    assert "Owner" not in machine.lock()
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "released"
    assert incident["repairs"]["tasksAlreadyStopped"] == [task]


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
        janitor(janitor.event_for("janitor-aborted.json", arn))
    _, incident = one_incident(machine)
    assert incident["repairs"]["tasksStopped"] == []
    assert incident["repairs"]["tasksGone"] == [task]
    assert incident["repairs"]["lock"] == "released"


def test_a_stop_task_failure_is_retried_not_reported(janitor: Janitor, machine: Machine) -> None:
    arn, task = machine.abort("stubborn")
    event = janitor.event_for("janitor-aborted.json", arn)
    with failing_call(clients.ecs(), "StopTask", "AccessDeniedException"):
        with pytest.raises(RepairIncomplete, match="AccessDeniedException"):
            janitor(event)
    assert "Owner" not in machine.lock(), "the lock was still released"
    assert machine.task_status(task)["lastStatus"] == "RUNNING"
    assert received_incidents(machine.stack) == []
    janitor(event)
    assert machine.task_status(task)["lastStatus"] == "STOPPED"
    _, incident = one_incident(machine)
    assert incident["repairs"]["tasksStopped"] == [task]


def test_an_sns_failure_raises_after_the_repairs(janitor: Janitor, machine: Machine) -> None:
    arn, task = machine.abort("unheard")
    event = janitor.event_for("janitor-aborted.json", arn)
    with failing_call(clients.sns(), "Publish", "KMSThrottlingException"):
        with pytest.raises(Exception, match="KMSThrottlingException"):
            janitor(event)
    assert "Owner" not in machine.lock()
    assert machine.task_status(task)["lastStatus"] == "STOPPED"
    first_id = janitor(event)["incidentId"]
    _, incident = one_incident(machine)
    assert incident["id"] == first_id


def test_a_history_read_failure_is_retried(janitor: Janitor, machine: Machine) -> None:
    arn, task = machine.abort("no-history")
    event = janitor.event_for("janitor-aborted.json", arn)
    with failing_call(clients.stepfunctions(), "GetExecutionHistory", "ThrottlingException"):
        with pytest.raises(RepairIncomplete, match="read history"):
            janitor(event)
    assert machine.task_status(task)["lastStatus"] == "RUNNING"
    janitor(event)
    assert machine.task_status(task)["lastStatus"] == "STOPPED"


# --- Redrive: moto cannot redrive, so these send the status change a redrive emits. ---------


def force_release(machine: Machine) -> None:
    machine.ddb.update_item(
        TableName=machine.stack.table_name,
        Key={"LockId": {"S": "sample"}},
        UpdateExpression="REMOVE #o SET LastReleasedBy = :j",
        ExpressionAttributeNames={"#o": "Owner"},
        ExpressionAttributeValues={":j": {"S": "janitor"}},
    )


def test_a_redriven_execution_takes_its_free_lock_again(janitor: Janitor, machine: Machine) -> None:
    redriven = machine.start("redriven-run")
    machine.wait_task_of(redriven)
    token = int(machine.lock()["Token"])
    force_release(machine)  # as the janitor did when it first ended

    janitor(janitor.event_for("janitor-running-redriven.json", redriven))

    lock = machine.lock()
    assert lock["Owner"] == redriven
    assert lock["RedriveCount"] == "1"
    assert int(lock["Token"]) == token + 1
    _, incident = one_incident(machine)
    assert (incident["kind"], incident["severity"]) == ("redrive", "low")
    assert incident["repairs"]["lock"] == "reacquired"

    # A late FAILED event of the run before the redrive must not free the redriven run's lock.
    janitor(janitor.event_for("janitor-failed.json", redriven, redriveCount=0))
    assert machine.lock()["Owner"] == redriven
    _, late = one_incident(machine)
    assert late["repairs"]["lock"] == "left_held"


def test_a_redriven_execution_is_stopped_while_a_live_run_holds_the_lock(
    janitor: Janitor, machine: Machine
) -> None:
    redriven = machine.start("redriven-run")
    machine.wait_task_of(redriven)
    force_release(machine)
    holder = machine.start("holder")
    machine.wait_task_of(holder)
    held = machine.lock()

    with captured_params(clients.stepfunctions(), "StopExecution") as stops:
        janitor(janitor.event_for("janitor-running-redriven.json", redriven))

    assert machine.wait_done(redriven)["status"] == "ABORTED"
    # moto drops StopExecution's error and cause; what the janitor asked for is checked here.
    (stop,) = stops
    assert stop["error"] == "Lock.Held"
    assert holder in stop["cause"]
    assert machine.lock() == held
    _, incident = one_incident(machine)
    assert incident["severity"] == "high"
    assert incident["repairs"]["lock"] == "redrive_stopped"
    assert incident["repairs"]["holder"] == holder

    # Its ABORTED event follows: the janitor leaves the holder alone and says why it stopped.
    janitor(
        janitor.event_for(
            "janitor-aborted.json",
            redriven,
            redriveCount=1,
            error="Lock.Held",
            cause=stop["cause"],
        )
    )
    assert machine.lock() == held
    _, follow_up = one_incident(machine)
    assert follow_up["severity"] == "low"
    assert follow_up["repairs"]["lock"] == "held_by_other"


def test_a_redriven_execution_takes_over_from_a_dead_holder(
    janitor: Janitor, machine: Machine
) -> None:
    redriven = machine.start("redriven-run")
    machine.wait_task_of(redriven)
    force_release(machine)
    dead, _ = machine.abort("dead-holder")
    assert machine.lock()["Owner"] == dead

    janitor(janitor.event_for("janitor-running-redriven.json", redriven))

    assert machine.lock()["Owner"] == redriven
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "taken_over"
    assert incident["repairs"]["holder"] == dead
    assert incident["severity"] == "medium"


def test_every_sample_event_is_used_by_a_test() -> None:
    sources = "".join(p.read_text() for p in (EVENTS.parent / "tests").rglob("test_*.py"))
    for path in EVENTS.glob("*.json"):
        assert path.name in sources, f"events/{path.name} is exercised by no test"


@pytest.mark.parametrize("machine_name", ["lock-janitor-LockingStateMachine", "a-deleted-machine"])
def test_an_execution_long_gone_still_has_its_lock_released(
    janitor: Janitor, machine: Machine, machine_name: str
) -> None:
    """Past Step Functions' retention (or never known to it): no history to read, which retrying
    cannot change; the lock is released and the incident says the tasks were not checked."""
    gone = f"arn:aws:states:us-east-1:123456789012:execution:{machine_name}:long-gone"
    machine.ddb.put_item(
        TableName=machine.stack.table_name,
        Item={"LockId": {"S": "sample"}, "Owner": {"S": gone}, "Token": {"N": "9"}},
    )
    event = load_event("janitor-aborted.json")
    event["detail"].update(executionArn=gone, name="long-gone")
    event["resources"] = [gone]
    janitor(event)
    assert "Owner" not in machine.lock()
    _, incident = one_incident(machine)
    assert incident["repairs"]["lock"] == "released"
    assert "history no longer exists" in incident["repairs"]["lockDetail"]
