"""A failed run's task read from its cause, and the links on-call follows from it."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from common.ecs_task import LogConfigs, log_stream_url, stopped_task
from tests.support.incidents import failed_task_cause, task_arn


def test_the_cause_the_state_machine_writes_is_read_as_a_task() -> None:
    task = stopped_task(failed_task_cause(exit_code=137))
    assert task is not None
    assert task.arn == task_arn(0)
    assert task.stop_code == "EssentialContainerExited"
    assert task.stopped_reason == "Essential container in task exited"
    failed = task.failed_container
    assert failed is not None
    assert (failed.name, failed.exit_code) == ("job", 137)
    assert task.console_url == (
        "https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/lock-janitor-Cluster/tasks/"
        "0a1b2c3d4e5f0000/configuration?region=us-east-1"
    )


def test_the_bare_cause_step_functions_gives_is_read_too() -> None:
    bare = failed_task_cause().split(": ", 1)[1]
    task = stopped_task(bare)
    assert task is not None
    assert task.failed_container is not None


@pytest.mark.parametrize(
    "cause",
    [
        None,
        "",
        "States.Timeout: the task did not finish in time",
        "States.TaskFailed: {not json",
        "States.TaskFailed: [1, 2]",
        '{"Containers": []}',
        '{"TaskArn": 5}',
        'oops: {"TaskArn": "x"} trailing',
    ],
)
def test_a_cause_that_is_not_a_task_is_not_one(cause: str | None) -> None:
    assert stopped_task(cause) is None


def test_odd_container_fields_do_not_break_the_reading() -> None:
    cause = (
        'States.TaskFailed: {"TaskArn": "arn:aws:ecs:eu-west-1:1:task/c/t", "Containers": '
        '[{"Name": null, "ExitCode": "1"}, 7, {"Name": "b", "ExitCode": true}]}'
    )
    task = stopped_task(cause)
    assert task is not None
    assert [(c.name, c.exit_code) for c in task.containers] == [("?", None), ("b", None)]
    assert task.failed_container is None
    assert task.console_url is None, "no cluster: no link"


def test_log_links_are_encoded_as_the_cloudwatch_console_expects() -> None:
    url = log_stream_url("us-east-1", "/ecs/nightly", "ecs/job/abc")
    assert url == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#logsV2:log-groups/log-group/$252Fecs$252Fnightly/log-events/ecs$252Fjob$252Fabc"
    )


def test_log_configurations_are_read_once_per_revision_and_failures_give_no_links() -> None:
    with mock_aws():
        ecs = boto3.client("ecs", region_name="us-east-1")
        arn = ecs.register_task_definition(
            family="nightly",
            containerDefinitions=[
                {
                    "name": "job",
                    "image": "busybox",
                    "memory": 128,
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": "/ecs/nightly",
                            "awslogs-region": "us-east-1",
                            "awslogs-stream-prefix": "ecs",
                        },
                    },
                },
                {"name": "sidecar", "image": "busybox", "memory": 64},
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        calls: list[str] = []
        ecs.meta.events.register(
            "before-call.ecs.DescribeTaskDefinition", lambda **_: calls.append("x")
        )
        configs = LogConfigs()
        first = configs.lookup(ecs, arn, "us-east-1")
        assert set(first) == {"job"}
        assert first["job"].stream_prefix == "ecs"
        assert configs.lookup(ecs, arn, "us-east-1") == first
        assert len(calls) == 1, "a revision never changes: read once"
        assert configs.lookup(ecs, arn.replace(":1", ":99"), "us-east-1") == {}
