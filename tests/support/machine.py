"""The locking machine deployed into moto (the real ASL, the template's substitutions, the
bridges), and the calls tests make on it."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
from moto import mock_aws
from moto.moto_api import state_manager

from common.truth import STEP_FUNCTIONS_STARTED_BY
from local.bridges import all_bridges
from local.harness import (
    FROZEN_TASKS,
    LockingStack,
    default_network,
    deploy_locking_stack,
    exit_container,
    schedule_inputs,
    wait_for,
)


@dataclass
class Machine:
    """The deployed locking machine and the calls the tests make on it."""

    stack: LockingStack
    sfn: Any
    ddb: Any
    ecs: Any

    def input(self, **overrides: Any) -> dict[str, Any]:
        """The sample schedule's input, as the template defines it, with overrides."""
        return {**schedule_inputs(self.stack)["LockingStateMachineSampleSchedule"], **overrides}

    def start(self, name: str, **overrides: Any) -> str:
        arn: str = self.sfn.start_execution(
            stateMachineArn=self.stack.state_machine_arn,
            name=name,
            input=json.dumps(self.input(**overrides)),
        )["executionArn"]
        return arn

    def start_raw(self, name: str, input_text: str) -> str:
        arn: str = self.sfn.start_execution(
            stateMachineArn=self.stack.state_machine_arn, name=name, input=input_text
        )["executionArn"]
        return arn

    def abort(self, name: str, **overrides: Any) -> tuple[str, str]:
        """An execution that took the lock, started its task, and was stopped mid-run: the
        lock stays held and the task keeps running (the janitor's case). Returns both ARNs."""
        arn = self.start(name, **overrides)
        task = self.wait_task_of(arn)
        self.sfn.stop_execution(executionArn=arn, error="Operator", cause="test abort")
        self.wait_done(arn)
        return arn, task

    def task_status(self, task_arn: str) -> dict[str, Any]:
        task: dict[str, Any] = self.ecs.describe_tasks(
            cluster=self.stack.cluster_arn, tasks=[task_arn]
        )["tasks"][0]
        return task

    def describe(self, arn: str) -> dict[str, Any]:
        result: dict[str, Any] = self.sfn.describe_execution(executionArn=arn)
        return result

    def wait_done(self, arn: str, timeout: float = 30) -> dict[str, Any]:
        done: dict[str, Any] = wait_for(
            lambda: (d := self.describe(arn))["status"] != "RUNNING" and d, timeout=timeout
        )
        return done

    def history(self, arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.sfn.get_execution_history(
            executionArn=arn, maxResults=1000
        )["events"]
        return events

    def transitions(self, arn: str) -> int:
        """State transitions billed for a Standard workflow: one per state entered."""
        return sum(1 for e in self.history(arn) if e["type"].endswith("StateEntered"))

    def wait_task_of(self, arn: str, timeout: float = 30) -> str:
        """The ARN of the ECS task the execution started, once it is running."""

        def task() -> str | None:
            for e in self.history(arn):
                if e["type"] == "TaskSubmitted":
                    out = json.loads(e["taskSubmittedEventDetails"]["output"])
                    return str(out["Tasks"][0]["TaskArn"])
            return None

        result: str = wait_for(task, timeout=timeout)
        return result

    def tasks_of(self, arn: str) -> list[str]:
        """Every ECS task the execution started so far, in order (all attempts)."""
        found = []
        for e in self.history(arn):
            if e["type"] == "TaskSubmitted":
                out = json.loads(e["taskSubmittedEventDetails"]["output"])
                found += [str(t["TaskArn"]) for t in out["Tasks"]]
        return found

    def redrive(self, arn: str) -> str:
        """Redrive an execution that ended (the redrive bridge) and wait for the task of its new
        attempt; returns that task's ARN."""
        before = len(self.tasks_of(arn))
        self.sfn.redrive_execution(executionArn=arn)
        return str(wait_for(lambda: self.tasks_of(arn)[before:], timeout=30)[0])

    def fail(self, name: str, exit_code: int = 1, **overrides: Any) -> tuple[str, str]:
        """An execution whose task exited non-zero: FAILED, its lock still held (the janitor
        releases it), its task stopped. Returns both ARNs."""
        arn = self.start(name, **overrides)
        task = self.wait_task_of(arn)
        exit_container(task, exit_code)
        self.wait_done(arn)
        return arn, task

    def unseen_copy(self, task_arn: str) -> str:
        """Start a copy of a run's task that its history never names, as a RunTask whose
        answer was lost unmarked, a retry outside the state machine or a start by hand with a
        copied override would: the same definition and overrides (LOCK_OWNER included),
        started by "AWS Step Functions". Returns its ARN."""
        task = self.task_status(task_arn)
        subnets, groups = default_network(self.stack.region)
        started = self.ecs.run_task(
            cluster=self.stack.cluster_arn,
            taskDefinition=task["taskDefinitionArn"],
            launchType="FARGATE",
            startedBy=STEP_FUNCTIONS_STARTED_BY,
            overrides={"containerOverrides": task["overrides"]["containerOverrides"]},
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}
            },
        )
        return str(started["tasks"][0]["taskArn"])

    def lock(self, lock_id: str = "sample") -> dict[str, Any]:
        item = self.ddb.get_item(
            TableName=self.stack.table_name, Key={"LockId": {"S": lock_id}}, ConsistentRead=True
        ).get("Item", {})
        return {k: next(iter(v.values())) for k, v in item.items()}


@contextlib.contextmanager
def running_machine() -> Iterator[Machine]:
    """moto with the real ASL executing, the bridges on, ECS tasks running until a test ends
    them, and the locking stack deployed; every execution is stopped on the way out."""
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}), all_bridges():
        state_manager.set_transition(model_name="ecs::task", transition=FROZEN_TASKS)
        stack = deploy_locking_stack()
        clients = {
            n: boto3.client(n, region_name=stack.region)
            for n in ("stepfunctions", "dynamodb", "ecs")
        }
        m = Machine(stack, clients["stepfunctions"], clients["dynamodb"], clients["ecs"])
        try:
            yield m
        finally:
            # No execution thread may outlive the mock.
            for ex in m.sfn.list_executions(
                stateMachineArn=stack.state_machine_arn, statusFilter="RUNNING"
            )["executions"]:
                m.sfn.stop_execution(executionArn=ex["executionArn"])
            state_manager.unset_transition(model_name="ecs::task")
