"""The real chain, under moto: a real execution aborted mid-run with its task still running ->
its status-change event -> the template's rule -> the janitor -> lock free, task stopped,
incident on the topic."""

from __future__ import annotations

import json

import boto3
import pytest

from common import clients
from local.bridges import status_change_event
from local.harness import FakeContext, function_environment, received_incidents
from tests.handlers.conftest import resolve_handler
from tests.support.machine import Machine


def test_an_aborted_run_is_healed_through_the_real_chain(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = machine.stack
    for key, value in function_environment(stack, "JanitorFunction").items():
        monkeypatch.setenv(key, value)
    clients.reset()

    # The template's rule, deployed in moto's EventBridge. moto cannot invoke a Lambda target, so
    # the deployer gave the rule an SQS queue in the function's place; the test hands what it
    # receives to the handler.
    events = boto3.client("events", region_name=stack.region)
    sqs = boto3.client("sqs", region_name=stack.region)
    (target,) = [u for u, f in stack.deployed.rule_targets.items() if f == "JanitorFunction"]

    # A real run takes the lock and starts its task; an operator aborts it.
    arn = machine.start("nightly")
    task = machine.wait_task_of(arn)
    machine.sfn.stop_execution(executionArn=arn, error="Operator", cause="redeploy")
    assert machine.wait_done(arn)["status"] == "ABORTED"
    assert machine.lock()["Owner"] == arn
    assert machine.task_status(task)["lastStatus"] == "RUNNING"

    # Step Functions emits the status change (moto does not: the bridge builds it).
    change = status_change_event(machine.sfn, arn)
    events.put_events(
        Entries=[
            {
                "Source": change["source"],
                "DetailType": change["detail-type"],
                "Detail": json.dumps(change["detail"]),
                "Resources": change["resources"],
            }
        ]
    )
    delivered = sqs.receive_message(QueueUrl=target, MaxNumberOfMessages=10)["Messages"]
    assert len(delivered) == 1, "the rule routed the ABORTED event to the janitor"
    event = json.loads(delivered[0]["Body"])

    janitor = resolve_handler(machine, "JanitorFunction")
    result = janitor(event, FakeContext())

    lock = machine.lock()
    assert "Owner" not in lock
    assert lock["LastOutcome"] == "ABORTED"
    assert lock["LastReleasedBy"] == "janitor"
    assert machine.task_status(task)["lastStatus"] == "STOPPED"
    (note,) = received_incidents(stack)
    incident = json.loads(note["Message"])
    assert incident["id"] == result["incidentId"]
    assert incident["status"] == "ABORTED"
    assert incident["repairs"]["tasksStopped"] == [task]
    assert incident["repairs"]["lock"] == "released"
