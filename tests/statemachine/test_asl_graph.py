"""Static checks of statemachine/locking.asl.json: its graph, its error names, its substitutions."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local.template import ASL_PATH, Context, load_template, substitute_definition
from tests.support.translate import lint_template

PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def substitutions() -> dict[str, str]:
    """The template's DefinitionSubstitutions, resolved with stand-in values."""
    template = load_template()
    params = {k: v.get("Default", "") for k, v in template["Parameters"].items()}
    params.update(Subnets=["subnet-0a", "subnet-0b"], SecurityGroups=["sg-0a"])
    ctx = Context(template=template, parameters=params)
    ctx.refs["LockTable"] = "lock-janitor-LockTable-ABC"
    ctx.attributes[("Cluster", "Arn")] = "arn:aws:ecs:us-east-1:123456789012:cluster/c"
    subs = template["Resources"]["LockingStateMachine"]["Properties"]["DefinitionSubstitutions"]
    return {k: str(v) for k, v in ctx.resolve(subs).items()}


@pytest.fixture(scope="module")
def asl() -> dict[str, Any]:
    definition: dict[str, Any] = json.loads(
        substitute_definition(ASL_PATH.read_text(), substitutions())
    )
    return definition


def targets(state: dict[str, Any]) -> list[str]:
    out = [state[k] for k in ("Next", "Default") if k in state]
    out += [c["Next"] for c in state.get("Catch", [])]
    out += [c["Next"] for c in state.get("Choices", [])]
    return out


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used() -> None:
    used = set(PLACEHOLDER.findall(ASL_PATH.read_text()))
    assert used == set(substitutions())


def test_every_target_exists_and_every_state_is_reachable(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert asl["StartAt"] in states
    for name, state in states.items():
        for target in targets(state):
            assert target in states, f"{name} -> {target}, which does not exist"
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += targets(states[name])
    assert seen == set(states), f"unreachable: {set(states) - seen}"


def test_every_state_ends_or_moves_on(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] in ("Succeed", "Fail"):
            continue
        if state["Type"] == "Choice":
            assert "Choices" in state, name
            continue
        assert ("Next" in state) != bool(state.get("End")), f"{name}: exactly one of Next/End"


def test_every_task_retries_and_catches_all_last(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] != "Task":
            continue
        assert state.get("Retry"), f"{name} has no Retry"
        for retrier in state["Retry"]:
            assert "States.ALL" not in retrier["ErrorEquals"], f"{name} retries everything"
            assert retrier["MaxAttempts"] >= 1
            assert retrier.get("JitterStrategy") == "FULL"
        catchers = [c["ErrorEquals"] for c in state.get("Catch", [])]
        for i, errors in enumerate(catchers):
            if "States.ALL" in errors:
                assert errors == ["States.ALL"], name
                assert i == len(catchers) - 1, name


def test_error_names_are_ones_aws_can_raise(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] == "Fail":
            assert not state["Error"].startswith("States."), f"{name}: reserved prefix"
            if name != "InvalidInput":  # its cause is read from AcquireLock's error (JSONata)
                assert "$.failure.Error" in state["CausePath"]
                assert "$.failure.Cause" in state["CausePath"]
        for rule in state.get("Retry", []) + state.get("Catch", []):
            for error in rule["ErrorEquals"]:
                prefix = error.split(".", 1)[0]
                assert prefix in {"States", "ECS", "DynamoDB"}, f"{name}: {error} never matches"


def test_only_refusals_are_retried_around_the_task(asl: dict[str, Any]) -> None:
    """ECS.ServerException is not retried: the first task may have started and only the answer
    been lost, and a retry would start a second one under the same lock."""
    (retrier,) = asl["States"]["RunTask"]["Retry"]
    assert set(retrier["ErrorEquals"]) == {"ECS.AmazonECSException"}
    assert retrier["BackoffRate"] > 1


def test_the_lock_is_released_here_only_when_no_task_can_run(asl: dict[str, Any]) -> None:
    """A run timeout, or an error after which the task may still run, ends the execution with
    the lock held: the janitor stops the task first, then releases it."""
    catchers = {c["Next"]: c["ErrorEquals"] for c in asl["States"]["RunTask"]["Catch"]}
    assert catchers == {"TaskTimedOut": ["States.Timeout"], "TaskFailed": ["States.ALL"]}
    assert asl["States"]["TaskTimedOut"]["Type"] == "Fail"
    assert asl["States"]["TaskFailed"]["Type"] == "Fail"
    releases = [
        name
        for name, state in asl["States"].items()
        if state.get("Parameters", {}).get("UpdateExpression", "").startswith("REMOVE")
    ]
    assert releases == ["ReleaseLock"], "only after the task succeeded"
    assert asl["States"]["RunTask"]["Next"] == "ReleaseLock"


def test_run_task_timeout_and_environment(asl: dict[str, Any]) -> None:
    run = asl["States"]["RunTask"]
    assert run["Resource"].endswith(":states:::ecs:runTask.sync")
    assert run["TimeoutSecondsPath"] == "$.timeoutSeconds"
    assert "TimeoutSeconds" not in run
    (override,) = run["Parameters"]["Overrides"]["ContainerOverrides"]
    assert override["Name.$"] == "$.container"
    env = {e["Name"]: e["Value.$"] for e in override["Environment"]}
    assert env == {
        "LOCK_ID": "$.lockId",
        "LOCK_OWNER": "$$.Execution.Id",
        "LOCK_TOKEN": "$.lock.token",
    }


def test_execution_timeout_comes_from_the_parameter(asl: dict[str, Any]) -> None:
    default = load_template()["Parameters"]["ExecutionTimeoutSeconds"]["Default"]
    assert asl["TimeoutSeconds"] == default


def test_cfn_lint_passes_on_the_asl_as_a_plain_state_machine(asl: dict[str, Any]) -> None:
    wrapped = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "Machine": {
                "Type": "AWS::StepFunctions::StateMachine",
                "Properties": {
                    "RoleArn": "arn:aws:iam::123456789012:role/locking",
                    "Definition": asl,
                },
            }
        },
    }
    assert lint_template(wrapped) == []
    broken = json.loads(json.dumps(wrapped))
    broken["Resources"]["Machine"]["Properties"]["Definition"]["States"]["RunTask"]["Type"] = "Nope"
    assert lint_template(broken), "the wrapped lint does check the ASL"
