"""Each bridge over a moto gap, on its own: the gap shows without it, and is filled with it."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.backends import get_backend
from moto.moto_api import state_manager
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (  # noqa: E501
    StateTaskServiceEcs,
)

from local import bridges as moto_bridges
from local.bridges import (
    all_bridges,
    ecs_integration_errors,
    ecs_integration_shapes,
    ecs_sync_fails_on_nonzero_exit,
    status_change_event,
)
from local.harness import default_network, exit_container, wait_for
from tests.support.ecs import cluster_and_task_definition

REGION = "us-east-1"


class World:
    def __init__(self) -> None:
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.ecs = boto3.client("ecs", region_name=REGION)
        self.cluster, self.taskdef = cluster_and_task_definition(self.ecs, "bridges")
        subnets, groups = default_network(REGION)
        definition = {
            "StartAt": "Run",
            "States": {
                "Run": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::ecs:runTask.sync",
                    "Parameters": {
                        "Cluster": self.cluster,
                        "LaunchType": "FARGATE",
                        "TaskDefinition.$": "$.taskDefinition",
                        "NetworkConfiguration": {
                            "AwsvpcConfiguration": {"Subnets": subnets, "SecurityGroups": groups}
                        },
                        "Overrides": {
                            "ContainerOverrides": [
                                {"Name": "job", "Environment": [{"Name": "A", "Value": "1"}]}
                            ]
                        },
                    },
                    "End": True,
                }
            },
        }
        self.machine = self.sfn.create_state_machine(
            name="bridges",
            definition=json.dumps(definition),
            roleArn="arn:aws:iam::123456789012:role/bridges",
        )["stateMachineArn"]
        self.role = "arn:aws:iam::123456789012:role/bridges"
        self.runs = 0

    def run(self, taskdef: str | None = None, exit_code: int | None = 0) -> dict[str, Any]:
        """Start an execution; end its task (if one starts) with exit_code; return the end."""
        self.runs += 1
        before = set(self.ecs.list_tasks(cluster=self.cluster)["taskArns"])
        arn = self.sfn.start_execution(
            stateMachineArn=self.machine,
            name=f"run{self.runs}",
            input=json.dumps({"taskDefinition": taskdef or self.taskdef}),
        )["executionArn"]

        def ended_or_new_task() -> Any:
            if self.sfn.describe_execution(executionArn=arn)["status"] != "RUNNING":
                return True
            return set(self.ecs.list_tasks(cluster=self.cluster)["taskArns"]) - before

        wait_for(ended_or_new_task, timeout=20)
        tasks = get_backend("ecs")["123456789012"][REGION].tasks.get("bridges", {})
        for task in tasks.values():
            if task.last_status != "STOPPED" and exit_code is not None:
                for c in task.containers:
                    c.exitCode = exit_code
                task.last_status = "STOPPED"
        result: dict[str, Any] = wait_for(
            lambda: (
                (d := self.sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d
            ),
            timeout=20,
        )
        return result


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        state_manager.set_transition(
            model_name="ecs::task", transition={"progression": "manual", "times": 10**9}
        )
        try:
            yield World()
        finally:
            state_manager.unset_transition(model_name="ecs::task")


def test_integration_shapes_gap_and_bridge(world: World) -> None:
    gap = world.run()
    assert gap["status"] == "FAILED", "without the bridge moto cannot even call RunTask"
    with ecs_integration_shapes():
        filled = world.run()
    assert filled["status"] == "SUCCEEDED", filled
    output = json.loads(filled["output"])
    assert output["LastStatus"] == "STOPPED", "the answer is in Step Functions' casing"
    env = output["Overrides"]["ContainerOverrides"][0]["Environment"]
    assert env == [{"Name": "A", "Value": "1"}], "the overrides reached ECS"


def test_integration_errors_gap_and_bridge(world: World) -> None:
    missing = world.taskdef.replace("bridges:1", "missing:1")
    with ecs_integration_shapes():
        gap = world.run(taskdef=missing)
        assert gap["error"] == "States.Runtime", "the gap: uncatchable, unlike AWS"
        with ecs_integration_errors():
            filled = world.run(taskdef=missing)
    assert filled["status"] == "FAILED"
    assert filled["error"] == "ECS.ClientException"
    assert "Unable to describe task definition" in filled["cause"]


def test_nonzero_exit_gap_and_bridge(world: World) -> None:
    with ecs_integration_shapes():
        gap = world.run(exit_code=2)
        assert gap["status"] == "SUCCEEDED", "the gap: moto ignores the exit code"
        with ecs_sync_fails_on_nonzero_exit():
            filled = world.run(exit_code=2)
            ok = world.run(exit_code=0)
    assert filled["status"] == "FAILED"
    assert filled["error"] == "States.TaskFailed"
    assert json.loads(filled["cause"])["Containers"][0]["ExitCode"] == 2
    assert ok["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("ServerException", "ECS.ServerException"),
        ("ClientException", "ECS.ClientException"),
        ("ThrottlingException", "ECS.AmazonECSException"),
        ("SomethingNew", "ECS.AmazonECSException"),
    ],
)
def test_ecs_error_names_follow_the_sdk_exceptions(code: str, name: str) -> None:
    assert moto_bridges._ecs_error_name(code) == name


def test_bridges_undo_themselves() -> None:
    before = {n: StateTaskServiceEcs.__dict__.get(n) for n in dir(StateTaskServiceEcs)}
    with contextlib.suppress(RuntimeError), moto_bridges.all_bridges():
        assert "_normalise_parameters" in StateTaskServiceEcs.__dict__
        raise RuntimeError("leave through an error")
    after = {n: StateTaskServiceEcs.__dict__.get(n) for n in dir(StateTaskServiceEcs)}
    assert after == before


def test_status_change_event_gap_and_bridge(world: World) -> None:
    """moto emits no status-change event; the bridge builds AWS's documented shape for an
    execution, which the janitor's parser reads back."""
    from common.status_event import parse_status_change

    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    queue = sqs.create_queue(QueueName="all-sfn-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(Name="all-sfn", EventPattern=json.dumps({"source": ["aws.states"]}))
    events.put_targets(Rule="all-sfn", Targets=[{"Id": "q", "Arn": queue_arn}])
    with all_bridges():
        done = world.run(exit_code=4)
    assert sqs.receive_message(QueueUrl=queue).get("Messages", []) == [], "the gap"

    event = status_change_event(world.sfn, done["executionArn"], event_id="e-1")
    change = parse_status_change(event)
    assert change.status == "FAILED"
    assert change.execution_arn == done["executionArn"]
    assert change.stop_ms is not None
    assert change.start_ms is not None
    assert change.stop_ms >= change.start_ms
    assert json.loads(event["detail"]["input"]) == {"taskDefinition": world.taskdef}
    assert event["detail"]["error"] == "States.TaskFailed"
    redrive = status_change_event(
        world.sfn, done["executionArn"], status="RUNNING", redrive_count=1
    )
    change = parse_status_change(redrive)
    assert change.redriven, "what a redrive emits, which moto cannot do"
    assert change.stop_ms is None


def run_to_its_end(world: World, machine: str, name: str, payload: Any) -> dict[str, Any]:
    """Start an execution of `machine` and wait until it has ended: its DescribeExecution."""
    execution = world.sfn.start_execution(
        stateMachineArn=machine, name=name, input=json.dumps(payload)
    )["executionArn"]
    result: dict[str, Any] = wait_for(
        lambda: (
            (d := world.sfn.describe_execution(executionArn=execution))["status"] != "RUNNING" and d
        )
    )
    return result


def test_jsonata_without_jvm_gap_and_bridge(world: World) -> None:
    """A JSONata Choice: moto cannot evaluate it (its JVM bridge never starts); with the bridge
    it branches as Step Functions would, astral characters in the input included."""
    definition = {
        "StartAt": "Check",
        "States": {
            "Check": {
                "Type": "Choice",
                "QueryLanguage": "JSONata",
                "Choices": [{"Condition": "{% $length($states.input.name) = 2 %}", "Next": "Two"}],
                "Default": "Other",
            },
            "Two": {"Type": "Succeed"},
            "Other": {"Type": "Fail", "Error": "Not.Two"},
        },
    }
    arn = world.sfn.create_state_machine(
        name="jsonata", definition=json.dumps(definition), roleArn=world.role
    )["stateMachineArn"]

    def run(name: str, value: str) -> dict[str, Any]:
        return run_to_its_end(world, arn, name, {"name": value})

    gap = run("gap", "ab")
    assert gap["status"] == "FAILED", "the gap: moto fails the JSONata evaluation"
    with moto_bridges.jsonata_without_jvm():
        assert run("two", "ab")["status"] == "SUCCEEDED"
        assert run("emoji", "😀x")["status"] == "SUCCEEDED", "one character, not two halves"
        assert run("three", "abc")["error"] == "Not.Two"


def test_jsonata_errors_are_query_evaluation_errors_gap_and_bridge(world: World) -> None:
    """A Task whose Arguments throw ($error): moto fails it with the service's own error (which
    a Retry of DynamoDB faults retries); with the bridge it is States.QueryEvaluationError, an
    EvaluationFailed event, caught by a Catch that names it, the message in the cause."""
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    definition = {
        "StartAt": "Put",
        "States": {
            "Put": {
                "Type": "Task",
                "QueryLanguage": "JSONata",
                "Resource": "arn:aws:states:::dynamodb:putItem",
                "Arguments": "{% $states.input.ok ? {'TableName': 't', 'Item': {'k': {'S': 'x'}}}"
                " : $error('not ok') %}",
                "Catch": [
                    {
                        "ErrorEquals": ["States.QueryEvaluationError"],
                        "Output": "{% $states.errorOutput %}",
                        "Next": "Refused",
                    }
                ],
                "End": True,
            },
            "Refused": {"Type": "Fail", "Error": "Refused", "CausePath": "$.Cause"},
        },
    }
    arn = world.sfn.create_state_machine(
        name="throws", definition=json.dumps(definition), roleArn=world.role
    )["stateMachineArn"]

    def run(name: str, ok: bool) -> tuple[dict[str, Any], list[str]]:
        done = run_to_its_end(world, arn, name, {"ok": ok})
        events = world.sfn.get_execution_history(executionArn=done["executionArn"])["events"]
        return done, [e["type"] for e in events]

    with moto_bridges.jsonata_without_jvm():
        gap, _ = run("gap", ok=False)
        assert gap["error"] == "DynamoDB.AmazonDynamoDBException", "the gap"
        with moto_bridges.jsonata_errors_are_query_evaluation_errors():
            refused, kinds = run("refused", ok=False)
            assert (refused["status"], refused["error"]) == ("FAILED", "Refused"), "caught"
            assert "EvaluationFailed" in kinds
            assert "TaskScheduled" not in kinds, "no call was made"
            assert "not ok" in refused["cause"]
            assert "$error('not ok')" in refused["cause"], "the cause quotes the expression"
            assert run("fine", ok=True)[0]["status"] == "SUCCEEDED"


def test_redrive_execution_gap_and_bridge(world: World) -> None:
    """moto has no RedriveExecution; the bridge runs the execution again from the state it
    stopped in, under the same ARN, and DescribeExecution and the history say so."""
    with ecs_integration_shapes(), ecs_integration_errors():
        started = world.sfn.start_execution(
            stateMachineArn=world.machine,
            name="to-redrive",
            input=json.dumps({"taskDefinition": world.taskdef}),
        )["executionArn"]
        wait_for(lambda: world.ecs.list_tasks(cluster=world.cluster)["taskArns"])
        world.sfn.stop_execution(executionArn=started)
        wait_for(lambda: world.sfn.describe_execution(executionArn=started)["status"] == "ABORTED")
        with pytest.raises(NotImplementedError):
            world.sfn.redrive_execution(executionArn=started)
        with moto_bridges.redrive_execution():
            assert world.sfn.describe_execution(executionArn=started)["redriveCount"] == 0
            world.sfn.redrive_execution(executionArn=started)
            described = world.sfn.describe_execution(executionArn=started)
            assert (described["status"], described["redriveCount"]) == ("RUNNING", 1)
            assert described["redriveDate"] >= described["startDate"]
            wait_for(lambda: len(world.ecs.list_tasks(cluster=world.cluster)["taskArns"]) == 2)

            def kinds() -> list[str]:
                events = world.sfn.get_execution_history(executionArn=started)["events"]
                return [e["type"] for e in events]

            # ECS lists the new task a moment before the history names it: wait for what is read.
            wait_for(lambda: kinds().count("TaskSubmitted") == 2, timeout=20)
            history = kinds()
            assert history.count("TaskSubmitted") == 2, "the new attempt ran RunTask again"
            assert history.index("ExecutionAborted") < history.index("ExecutionRedriven")
            ids = [e["id"] for e in world.sfn.get_execution_history(executionArn=started)["events"]]
            assert ids == list(range(1, len(ids) + 1)), "one history, numbered on"
            listed = world.sfn.list_executions(stateMachineArn=world.machine)["executions"]
            assert [e["redriveCount"] for e in listed] == [1]
            with pytest.raises(world.sfn.exceptions.ClientError, match="ExecutionNotRedrivable"):
                world.sfn.redrive_execution(executionArn=started)
            world.sfn.stop_execution(executionArn=started)


def test_stop_execution_keeps_error_and_cause_gap_and_bridge(world: World) -> None:
    """moto's StopExecution drops its error and cause; with the bridge the history's
    ExecutionAborted event carries them, as on AWS."""
    with ecs_integration_shapes(), ecs_integration_errors():

        def aborted(name: str) -> dict[str, Any]:
            arn = world.sfn.start_execution(
                stateMachineArn=world.machine,
                name=name,
                input=json.dumps({"taskDefinition": world.taskdef}),
            )["executionArn"]

            def submitted() -> bool:
                events = world.sfn.get_execution_history(executionArn=arn)["events"]
                return any(e["type"] == "TaskSubmitted" for e in events)

            wait_for(submitted)
            world.sfn.stop_execution(executionArn=arn, error="Operator.Forced", cause="by hand")
            wait_for(lambda: world.sfn.describe_execution(executionArn=arn)["status"] == "ABORTED")
            events = world.sfn.get_execution_history(executionArn=arn)["events"]
            (event,) = [e for e in events if e["type"] == "ExecutionAborted"]
            return dict(event["executionAbortedEventDetails"])

        assert aborted("dropped") == {"error": "", "cause": ""}
        with moto_bridges.stop_execution_keeps_error_and_cause():
            assert aborted("kept") == {"error": "Operator.Forced", "cause": "by hand"}
            nobody = world.machine.replace(":stateMachine:", ":execution:") + ":nobody"
            with pytest.raises(world.sfn.exceptions.ExecutionDoesNotExist):
                world.sfn.stop_execution(executionArn=nobody)


def test_parser_scopes_per_parse_gap_and_bridge() -> None:
    """Without the bridge every parse shares one stack of query-language scopes (a race between
    executions starting at once); with it each parse has its own."""
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    assert Preprocessor()._query_language_per_scope is Preprocessor()._query_language_per_scope
    with moto_bridges.parser_scopes_per_parse():
        one, two = Preprocessor(), Preprocessor()
        assert one._query_language_per_scope is not two._query_language_per_scope
        assert one._query_language_per_scope == []
    assert Preprocessor()._query_language_per_scope is Preprocessor()._query_language_per_scope


def test_ecs_tasks_one_call_at_a_time_gap_and_bridge(world: World) -> None:
    """A RunTask of another thread lands while DescribeTasks walks the tasks (moto's server
    serves a state machine's RunTask and a janitor's DescribeTasks at once): without the bridge
    the walk fails; with it, the RunTask waits for the walk to end and both succeed."""
    subnets, groups = default_network(REGION)
    network: Any = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}}

    def run_task() -> str:
        return str(
            world.ecs.run_task(
                cluster=world.cluster,
                taskDefinition=world.taskdef,
                launchType="FARGATE",
                networkConfiguration=network,
            )["tasks"][0]["taskArn"]
        )

    first = run_task()
    task_class: Any = type(get_backend("ecs")["123456789012"][REGION].tasks["bridges"][first])
    original_advance = task_class.advance

    def describe_while_another_thread_runs_a_task() -> tuple[list[str], list[str]]:
        started: list[str] = []

        def advance(self: Any) -> None:  # called inside DescribeTasks' walk over the tasks
            if not started:
                other = threading.Thread(target=lambda: started.append(run_task()))
                other.start()
                other.join(timeout=1.0)  # lands during the walk, unless the bridge holds it
            original_advance(self)

        try:
            task_class.advance = advance
            failures: list[str] = []
            try:
                world.ecs.describe_tasks(cluster=world.cluster, tasks=[first])
            except Exception as err:
                failures.append(str(err))
        finally:
            task_class.advance = original_advance
        wait_for(lambda: started, timeout=10)
        return failures, started

    failures, _ = describe_while_another_thread_runs_a_task()
    assert failures
    assert "dictionary changed size during iteration" in failures[0]
    with moto_bridges.ecs_tasks_one_call_at_a_time():
        failures, started = describe_while_another_thread_runs_a_task()
    assert failures == []
    assert started, "the other thread's RunTask ran once the walk was over"


def test_ecs_describe_tasks_answers_one_moment_gap_and_bridge(world: World) -> None:
    """moto's DescribeTasks returns its live task objects, serialised after the call returns: a
    task that ends in between (here: right after the backend call) is answered as it is at
    serialisation, which may be half-ended (STOPPED with the default exit code 0 when the end
    lands between the two). With the bridge the answer is a copy taken under the lock the
    harness holds while it ends a task: the task as it was at one moment."""
    subnets, groups = default_network(REGION)
    network: Any = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}}

    def answered_then_ended() -> tuple[str, int | None]:
        arn = world.ecs.run_task(
            cluster=world.cluster,
            taskDefinition=world.taskdef,
            launchType="FARGATE",
            networkConfiguration=network,
        )["tasks"][0]["taskArn"]
        backend = get_backend("ecs")["123456789012"][REGION]
        (answer,) = backend.describe_tasks(world.cluster, [arn])
        exit_container(arn, 3)  # the task ends before the answer is serialised
        return answer.last_status, answer.containers[0].exitCode

    assert answered_then_ended() == ("STOPPED", 3), "the answer is the live task"
    with moto_bridges.ecs_tasks_one_call_at_a_time():
        status, code = answered_then_ended()
    assert status != "STOPPED"
    assert code == 0, "the moment it was asked about: not yet exited"


def test_ecs_list_tasks_running_by_default_gap_and_bridge(world: World) -> None:
    """AWS lists only tasks whose desired status is RUNNING unless asked otherwise; moto lists
    every task it ever started."""
    subnets, groups = default_network(REGION)
    network: Any = {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}}
    arns = [
        world.ecs.run_task(
            cluster=world.cluster,
            taskDefinition=world.taskdef,
            launchType="FARGATE",
            networkConfiguration=network,
            startedBy="AWS Step Functions",
        )["tasks"][0]["taskArn"]
        for _ in range(2)
    ]
    world.ecs.stop_task(cluster=world.cluster, task=arns[0], reason="done")
    assert set(world.ecs.list_tasks(cluster=world.cluster)["taskArns"]) == set(arns)
    with moto_bridges.ecs_list_tasks_running_by_default():
        assert world.ecs.list_tasks(cluster=world.cluster)["taskArns"] == [arns[1]]
        by = world.ecs.list_tasks(cluster=world.cluster, startedBy="AWS Step Functions")
        assert by["taskArns"] == [arns[1]]
        stopped = world.ecs.list_tasks(cluster=world.cluster, desiredStatus="STOPPED")
        assert stopped["taskArns"] == [arns[0]]


def test_dynamodb_item_calls_one_at_a_time_gap_and_bridge() -> None:
    """Two instances claim one key at once with a conditional PutItem (`attribute_not_exists`):
    on AWS exactly one succeeds. moto reads the item, evaluates the condition, then stores, with
    nothing held in between: when the other thread's PutItem lands inside that gap, both
    succeed. With the bridge the other waits for the first to end, and its condition fails."""
    from moto.dynamodb.models.table import Table

    with mock_aws():
        ddb = boto3.client("dynamodb", region_name=REGION)
        ddb.create_table(
            TableName="claims",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

        def claim(owner: str) -> str:
            try:
                ddb.put_item(
                    TableName="claims",
                    Item={"id": {"S": "k"}, "owner": {"S": owner}},
                    ConditionExpression="attribute_not_exists(id)",
                )
            except ddb.exceptions.ConditionalCheckFailedException:
                return "refused"
            return "claimed"

        original_get = Table.get_item

        def claim_while_another_thread_claims(key: str) -> tuple[str, list[str]]:
            ddb.delete_item(TableName="claims", Key={"id": {"S": "k"}})
            other: list[str] = []

            def get_item(self: Any, *args: Any, **kwargs: Any) -> Any:
                current = original_get(self, *args, **kwargs)  # read, condition not yet checked
                if not other and threading.current_thread() is threading.main_thread():
                    thread = threading.Thread(target=lambda: other.append(claim("other")))
                    thread.start()
                    thread.join(timeout=1.0)  # lands in the gap, unless the bridge holds it
                return current

            try:
                Table.get_item = get_item  # type: ignore[method-assign]
                mine = claim(key)
            finally:
                Table.get_item = original_get  # type: ignore[method-assign]
            wait_for(lambda: other, timeout=10)
            return mine, other

        assert claim_while_another_thread_claims("main") == ("claimed", ["claimed"])
        with moto_bridges.dynamodb_item_calls_one_at_a_time():
            assert claim_while_another_thread_claims("main") == ("claimed", ["refused"])
        assert Table.get_item is original_get
