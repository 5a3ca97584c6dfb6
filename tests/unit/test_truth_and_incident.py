"""The janitor's pure decisions and the incident it writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.incident import Execution, Incident, Repairs, Severity, incident_id
from common.lock_table import Lock, ReleaseResult
from common.settings import JanitorSettings, SettingsError
from janitor.decide import (
    LOCK_HELD_ERROR,
    TaskRef,
    assess_ended,
    aws_time,
    stop_reason,
    task_refs,
    terminal_error,
)
from janitor.heal import _history

ARN = "arn:aws:states:us-east-1:123456789012:execution:lock-janitor-LockingStateMachine:run"
CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/c"


def submitted(*tasks: str, cluster: bool = True) -> dict[str, Any]:
    output = {
        "Tasks": [{"TaskArn": t, **({"ClusterArn": CLUSTER} if cluster else {})} for t in tasks]
    }
    return {
        "type": "TaskSubmitted",
        "taskSubmittedEventDetails": {"resourceType": "ecs", "output": json.dumps(output)},
    }


def test_every_submitted_task_is_found_retries_included() -> None:
    t1 = "arn:aws:ecs:us-east-1:123456789012:task/c/1"
    t2 = "arn:aws:ecs:us-east-1:123456789012:task/c/2"
    history = [
        {"type": "ExecutionStarted"},
        submitted(t1),
        {"type": "TaskFailed"},
        submitted(t2, cluster=False),
        submitted(t2),
        {"type": "TaskSubmitted", "taskSubmittedEventDetails": {"resourceType": "dynamodb"}},
        {
            "type": "TaskSubmitted",
            "taskSubmittedEventDetails": {"resourceType": "ecs", "output": "{"},
        },
    ]
    assert task_refs(history) == [TaskRef(CLUSTER, t1), TaskRef(CLUSTER, t2)]


def test_terminal_error_is_the_last_terminal_event() -> None:
    history = [
        {"type": "ExecutionStarted"},
        {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "E", "cause": "C"}},
    ]
    assert terminal_error(history) == ("E", "C")
    assert terminal_error([{"type": "ExecutionTimedOut"}]) == (None, None)


def test_stop_reason_names_the_execution_and_fits_ecs() -> None:
    reason = stop_reason("x" * 400, "ABORTED")
    assert len(reason) <= 255
    assert stop_reason("run", "TIMED_OUT").startswith("lock-janitor: execution run ended TIMED_OUT")


def test_aws_time_sorts_like_step_functions_times() -> None:
    t = aws_time()
    assert t.endswith("Z")
    assert len(t) == len("2026-11-29T00:21:13.935Z")


RELEASED = ReleaseResult("released", Lock("sample", owner=ARN))
FREE = ReleaseResult("already_free", Lock("sample", last_released_by="state-machine"))
OTHER = ReleaseResult("held_by_other", Lock("sample", owner="arn:other"), holder="arn:other")


@pytest.mark.parametrize(
    ("status", "error", "release", "stopped", "severity", "lock"),
    [
        ("ABORTED", "Operator", RELEASED, 1, Severity.HIGH, "released"),
        ("TIMED_OUT", None, RELEASED, 1, Severity.HIGH, "released"),
        ("FAILED", "Task.Failed", FREE, 0, Severity.MEDIUM, "already_free"),
        ("FAILED", "DynamoDB.ThrottlingException", RELEASED, 0, Severity.HIGH, "released"),
        ("FAILED", "Task.Failed", OTHER, 0, Severity.MEDIUM, "held_by_other"),
        ("ABORTED", LOCK_HELD_ERROR, OTHER, 0, Severity.LOW, "held_by_other"),
    ],
)
def test_assessment(
    status: str,
    error: str | None,
    release: ReleaseResult,
    stopped: int,
    severity: Severity,
    lock: str,
) -> None:
    a = assess_ended(status, error, "sample", release, stopped)
    assert (a.severity, a.lock) == (severity, lock)
    assert a.action


def test_no_lock_id_means_no_lock() -> None:
    assert assess_ended("FAILED", None, None, None, 0).lock == "no_lock"


def incident(**overrides: Any) -> Incident:
    values: dict[str, Any] = {
        "kind": "execution",
        "severity": Severity.HIGH,
        "status": "ABORTED",
        "lock_id": "sample",
        "execution": Execution(
            ARN, "run", ARN.replace("execution", "stateMachine").rsplit(":", 1)[0]
        ),
        "repairs": Repairs("released", "sample: released", tasks_stopped=("t1",)),
        "action": "Check it.",
        "error": "Operator",
        "cause": "redeploy",
        "start_ms": 1_000,
        "stop_ms": 3_723_000,
    }
    values.update(overrides)
    return Incident(**values)


def test_incident_id_is_stable_per_execution_status_and_redrive() -> None:
    assert incident().id == incident(detected_at="later").id
    assert incident().id != incident(status="FAILED").id
    redriven = Execution(ARN, "run", "sm", redrive_count=1)
    assert incident().id != incident(execution=redriven).id
    assert incident().id == incident_id("execution", ARN, "ABORTED", 0)


def test_subject_fits_sns_whatever_the_names() -> None:
    long = incident(lock_id="x" * 200, execution=Execution(ARN, "a\nb\r\nc" * 50, "sm"))
    for subject in (incident().subject(), long.subject()):
        assert len(subject) < 100
        assert "\n" not in subject
        assert "\r" not in subject
    assert incident().subject() == "[lock-janitor] HIGH ABORTED sample: run"


def test_publish_args_carry_json_for_queues_and_text_for_people() -> None:
    args = incident().sns_publish_args("arn:topic")
    assert args["MessageStructure"] == "json"
    message = json.loads(args["Message"])
    doc = json.loads(message["sqs"])
    assert doc == json.loads(message["lambda"])
    assert doc["id"] == incident().id
    assert doc["durationSeconds"] == 3722.0
    assert doc["repairs"]["tasksStopped"] == ["t1"]
    assert message["default"] == message["email"]
    assert "What to do: Check it." in message["default"]
    assert "Duration: 1h02m02s" in message["default"]
    attrs = {k: v["StringValue"] for k, v in args["MessageAttributes"].items()}
    assert attrs == {
        "severity": "high",
        "status": "ABORTED",
        "lockId": "sample",
        "kind": "execution",
    }


def test_a_huge_cause_is_cut_so_the_message_fits_sns() -> None:
    args = incident(cause="x" * 300_000).sns_publish_args("arn:topic")
    assert len(args["Message"].encode()) < 256 * 1024
    assert json.loads(json.loads(args["Message"])["sqs"])["cause"].endswith("…")


class PagedHistory:
    """A Step Functions client that answers GetExecutionHistory in pages."""

    def __init__(self, events: list[dict[str, Any]], size: int) -> None:
        self.pages = [events[i : i + size] for i in range(0, len(events), size)]
        self.calls: list[dict[str, Any]] = []

    def get_execution_history(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.append(kwargs)
        index = int(kwargs.get("nextToken", "0"))
        page: dict[str, Any] = {"events": self.pages[index]}
        if index + 1 < len(self.pages):
            page["nextToken"] = str(index + 1)
        return page


def test_history_is_read_across_pages() -> None:
    t = "arn:aws:ecs:us-east-1:123456789012:task/c/"
    events = [{"type": "Noise"}] * 5 + [submitted(t + "1")] + [{"type": "Noise"}] * 5
    events += [submitted(t + "2")]
    client = PagedHistory(events, size=4)

    class Clients:
        stepfunctions = client

    found = task_refs(_history(Clients(), ARN))  # type: ignore[arg-type]
    assert [r.task_arn for r in found] == [t + "1", t + "2"]
    assert len(client.calls) == 3
    assert [c.get("nextToken") for c in client.calls] == [None, "1", "2"]


def test_settings_fail_fast() -> None:
    env = {
        "LOCK_TABLE_NAME": "t",
        "ALERTS_TOPIC_ARN": "arn:topic",
        "LOCKING_STATE_MACHINE_ARN": "arn:sm",
    }
    assert JanitorSettings.from_env(env).lock_table == "t"
    with pytest.raises(SettingsError, match="ALERTS_TOPIC_ARN"):
        JanitorSettings.from_env({**env, "ALERTS_TOPIC_ARN": " "})
