"""What is read from an execution's history, and the incident document."""

from __future__ import annotations

import json
from typing import Any

import pytest

from common.healing import aws_time
from common.incident import Execution, Incident, Repairs, Severity, incident_id
from common.settings import JanitorSettings, SettingsError
from common.truth import (
    TaskRef,
    TaskTruth,
    history_events,
    parse_history,
    stop_reason,
    task_truth,
)

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


def test_every_submitted_task_is_found_retries_and_redrives_included() -> None:
    t1 = "arn:aws:ecs:us-east-1:123456789012:task/c/1"
    t2 = "arn:aws:ecs:us-east-1:123456789012:task/c/2"
    t3 = "arn:aws:ecs:us-east-1:123456789012:task/c/3"
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
        {"type": "ExecutionAborted", "executionAbortedEventDetails": {"error": "E"}},
        {"type": "ExecutionRedriven"},
        submitted(t3),
    ]
    found = parse_history(history)
    assert found.tasks == (TaskRef(CLUSTER, t1), TaskRef(CLUSTER, t2), TaskRef(CLUSTER, t3, 1))
    assert found.unsure_starts == ()
    assert found.error == "E"


def scheduled(cluster: str) -> dict[str, Any]:
    return {
        "type": "TaskScheduled",
        "taskScheduledEventDetails": {
            "resourceType": "ecs",
            "parameters": json.dumps({"Cluster": cluster, "TaskDefinition": "td"}),
        },
    }


def failed(error: str) -> dict[str, Any]:
    return {"type": "TaskFailed", "taskFailedEventDetails": {"error": error, "cause": "c"}}


def test_a_run_task_whose_answer_was_lost_is_an_unsure_start() -> None:
    """ECS.ServerException: the task may have started; a refusal: it did not."""
    assert parse_history([scheduled(CLUSTER), failed("ECS.ServerException")]).unsure_starts == (
        CLUSTER,
    )
    for refusal in ("ECS.ClientException", "ECS.AmazonECSException", "ECS.AccessDeniedException"):
        assert parse_history([scheduled(CLUSTER), failed(refusal)]).unsure_starts == ()
    t = "arn:aws:ecs:us-east-1:123456789012:task/c/1"
    found = parse_history([scheduled(CLUSTER), submitted(t), failed("States.TaskFailed")])
    assert found.unsure_starts == (), "a task it knows of is not unsure"


def test_terminal_error_is_the_last_terminal_event() -> None:
    history: list[dict[str, Any]] = [
        {"type": "ExecutionStarted"},
        {"type": "ExecutionFailed", "executionFailedEventDetails": {"error": "E", "cause": "C"}},
    ]
    found = parse_history(history)
    assert (found.error, found.cause) == ("E", "C")
    assert parse_history([{"type": "ExecutionTimedOut"}]).error is None


def described(task: str, last_status: str = "STOPPED", **more: Any) -> str:
    """A task as Step Functions' ECS integration writes it into a history (PascalCase)."""
    return json.dumps(
        {
            "TaskArn": task,
            "LastStatus": last_status,
            "DesiredStatus": "STOPPED",
            "StoppedReason": "Essential container in task exited",
            "Overrides": {
                "ContainerOverrides": [
                    {"Name": "job", "Environment": [{"Name": "LOCK_OWNER", "Value": ARN}]}
                ]
            },
            **more,
        }
    )


def ecs_event(kind: str, **details: Any) -> dict[str, Any]:
    key = {"TaskFailed": "taskFailedEventDetails", "TaskSucceeded": "taskSucceededEventDetails"}
    return {"type": kind, key[kind]: {"resourceType": "ecs", **details}}


def test_a_task_the_history_shows_stopped_is_known_without_asking_ecs() -> None:
    """The ECS integration writes the described task into TaskFailed's cause and
    TaskSucceeded's output; only a task described STOPPED (final) counts as ended. moto's
    `null` output for an aborted run's task, a refusal's message, a task still RUNNING in the
    document, or a task the history never submitted are no evidence."""
    t1, t2, t3, t4 = (f"arn:aws:ecs:us-east-1:123456789012:task/c/{n}" for n in range(1, 5))
    history = [
        submitted(t1),
        ecs_event("TaskFailed", error="States.TaskFailed", cause=described(t1)),
        {"type": "ExecutionRedriven"},
        submitted(t2),
        ecs_event("TaskSucceeded", output="null"),
        {"type": "ExecutionRedriven"},
        submitted(t3),
        ecs_event("TaskFailed", error="ECS.AmazonECSException", cause="capacity: try again"),
        ecs_event("TaskSucceeded", output=described(t3, "RUNNING")),
        ecs_event("TaskSucceeded", output=described(t4)),
    ]
    found = parse_history(history)
    assert found.attempt == 2
    assert set(found.ended) == {t1}
    truth = task_truth(found.ended[t1], found.tasks[0])
    assert (truth.last_status, truth.desired_status, truth.running) == ("STOPPED", "STOPPED", False)
    assert truth.stopped_reason == "Essential container in task exited"
    assert truth.lock_owner == ARN, "the environment is read in the history's spelling too"


def test_stop_reason_says_who_and_fits_ecs() -> None:
    reason = stop_reason("janitor", "x" * 80, 0, "ended ABORTED" + "!" * 300)
    assert len(reason) <= 255
    assert TaskTruth(TaskRef(CLUSTER, "t"), "RUNNING", "STOPPED", reason).stopped_by == "janitor"
    short = stop_reason("reconciler", "run", 2, "ended TIMED_OUT; its task must not run on")
    assert short.startswith("lock-janitor reconciler: execution run (attempt 2) ended TIMED_OUT")
    task = TaskTruth(TaskRef(CLUSTER, "t"), "RUNNING", "STOPPED", short)
    assert (task.stopped_by, task.stopped_for) == ("reconciler", 2)
    assert (
        TaskTruth(TaskRef(CLUSTER, "t"), "STOPPED", "STOPPED", "Essential container").stopped_by
        is None
    )


def test_aws_time_sorts_like_step_functions_times() -> None:
    t = aws_time()
    assert t.endswith("Z")
    assert len(t) == len("2026-11-29T00:21:13.935Z")


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


def test_incident_id_is_stable_per_execution_status_redrive_subject_and_repairs() -> None:
    assert incident().id == incident(detected_at="later").id
    assert incident().id == incident(action="other words", severity=Severity.LOW).id
    assert incident().id != incident(status="FAILED").id
    redriven = Execution(ARN, "run", "sm", redrive_count=1)
    assert incident().id != incident(execution=redriven).id
    assert incident().id == incident_id("execution", ARN, "ABORTED", 0)
    one = incident(incident_key="t1")
    assert one.id != incident(incident_key="t2").id, "two subjects, two ids"
    more = Repairs("released", "x", claims=("stopped t1 by janitor", "stopped t2 by janitor"))
    less = Repairs("released", "x", claims=("stopped t1 by janitor",))
    assert incident(repairs=more).id != incident(repairs=less).id, "a further repair, a new id"


def test_subject_fits_sns_whatever_the_names() -> None:
    long = incident(lock_id="x" * 200, execution=Execution(ARN, "a\nb\r\nc" * 50, "sm"))
    for subject in (incident().subject(), long.subject()):
        assert len(subject) < 100
        assert "\n" not in subject
        assert "\r" not in subject
    assert incident().subject() == "[lock-janitor] HIGH ABORTED sample: aborted (execution)"


def test_subjects_are_clean_printable_ascii_whatever_the_text() -> None:
    """SNS refuses a subject with control characters or over 100 characters."""
    odd = incident(lock_id="caf\u00e9\x00\x1b[31m \u2028 😀 x" * 20)
    subject = odd.subject()
    assert len(subject) <= 100
    assert all(32 <= ord(ch) < 127 for ch in subject)
    assert subject.startswith("[lock-janitor] HIGH ABORTED cafe")


def test_publish_args_carry_json_for_queues_and_text_for_people() -> None:
    args = incident().sns_publish_args("arn:topic")
    assert args["MessageStructure"] == "json"
    message = json.loads(args["Message"])
    doc = json.loads(message["sqs"])
    assert doc == json.loads(message["lambda"])
    assert doc["id"] == incident().id
    assert doc["durationSeconds"] == 3722.0
    assert doc["repairs"]["tasksStopped"] == ["t1"]
    assert set(message) == {"default", "sqs", "lambda"}
    assert "What to do: Check it." in message["default"]
    assert "Duration: 1h02m02s" in message["default"]
    attrs = {k: v["StringValue"] for k, v in args["MessageAttributes"].items()}
    assert attrs == {
        "severity": "high",
        "status": "ABORTED",
        "lockId": "sample",
        "kind": "execution",
    }


def test_a_cause_of_8000_astral_characters_fits_sns() -> None:
    """JSON-escaped as \\ud83d\\ude00 four times over, it once made a 419 KB message."""
    args = incident(cause="😀" * 8000).sns_publish_args("arn:topic")
    assert len(args["Message"].encode()) <= 256 * 1024
    assert len(args["Subject"]) <= 100
    doc = json.loads(json.loads(args["Message"])["sqs"])
    assert doc["cause"].startswith("😀" * 100), "kept as characters, not escapes"
    assert len(doc["cause"].encode()) <= 8000


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

    found = parse_history(history_events(client, ARN)).tasks  # type: ignore[arg-type]
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
