"""The one deployer (local/deployer.py): the translated template, whole, created in moto; what it
records for the wiring; the stack registered as CloudFormation would show it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from local.deployer import deploy
from local.harness import LockingStack, deploy_locking_stack
from local.template import translated_template

REGION = "us-east-1"
NOT_RUN_HERE = {
    "AWS::CloudWatch::Alarm",
    "AWS::CloudWatch::Dashboard",
    "AWS::KMS::Alias",
    "AWS::KMS::Key",
    "AWS::Lambda::Permission",
    "AWS::Logs::LogGroup",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::QueuePolicy",
}


@pytest.fixture
def stack() -> Iterator[LockingStack]:
    with mock_aws():
        yield deploy_locking_stack(
            REGION, webhook_url="https://hooks.slack.com/services/T/B/x", alerts_visibility=7
        )


def test_every_resource_is_created_or_named_for_what_cannot_run_here(stack: LockingStack) -> None:
    template = translated_template()
    ctx = stack.deployed.context
    wanted = {
        k: v["Type"]
        for k, v in template["Resources"].items()
        if "Condition" not in v or ctx.condition(v["Condition"])
    }
    assert set(wanted) <= set(ctx.refs), "every resource has a physical id"
    skipped = {entry.split(" ", 1)[0] for entry in stack.deployed.skipped}
    assert {wanted[k] for k in skipped} <= NOT_RUN_HERE
    created = {k for k in wanted if k not in skipped}
    assert {wanted[k] for k in created} & NOT_RUN_HERE == set()
    assert {"LockTable", "LockingStateMachine", "AlertsFunction", "JanitorRule"} <= created


def test_the_stack_reads_back_as_cloudformation_shows_it(stack: LockingStack) -> None:
    cfn = boto3.client("cloudformation", region_name=REGION)
    (described,) = cfn.describe_stacks(StackName="lock-janitor")["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Outputs"]}
    assert outputs == stack.deployed.outputs
    assert outputs["LockingStateMachineArn"] == stack.state_machine_arn
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = sfn.describe_state_machine(stateMachineArn=stack.state_machine_arn)["definition"]
    assert json.loads(definition) == stack.definition
    assert "${" not in definition, "every DefinitionSubstitution applied"


def test_functions_get_the_template_environment_resolved(stack: LockingStack) -> None:
    janitor = stack.deployed.functions["JanitorFunction"]
    assert janitor.handler == "janitor.handler.lambda_handler"
    assert janitor.environment["LOCK_TABLE_NAME"] == stack.table_name
    assert janitor.environment["POWERTOOLS_METRICS_NAMESPACE"] == "LockJanitor"  # Globals
    assert all(isinstance(v, str) and "Ref" not in v for v in janitor.environment.values())
    lam = boto3.client("lambda", region_name=REGION)
    config = lam.get_function_configuration(FunctionName=stack.deployed.ref("JanitorFunction"))
    assert config["Environment"]["Variables"] == janitor.environment
    alerts = stack.deployed.functions["AlertsFunction"].environment
    assert alerts["SLACK_WEBHOOK_SECRET_ARN"] == stack.alerts.secret_arn


def test_the_wiring_is_recorded_from_the_template(stack: LockingStack) -> None:
    d = stack.deployed
    assert sorted(d.rule_targets.values()) == ["JanitorFunction"]
    (source,) = d.event_sources
    assert source[:2] == (d.ref("AlertsQueue"), "AlertsFunction")
    retries, destination = d.on_failure["JanitorFunction"]
    assert (retries, destination) == (2, d.ref("JanitorDeadLetterQueue"))
    assert d.on_failure["ReconcilerFunction"][0] == 0
    targets = {s["target"] for s in d.schedules.values()}
    assert targets == {stack.state_machine_arn, d.arn("ReconcilerFunction")}
    scheduler = boto3.client("scheduler", region_name=REGION)
    names = {s["Name"] for s in scheduler.list_schedules()["Schedules"]}
    assert names == {str(d.properties[k]["Name"]) for k in d.schedules}


def test_a_property_override_reaches_the_resource(stack: LockingStack) -> None:
    sqs = boto3.client("sqs", region_name=REGION)
    attributes = sqs.get_queue_attributes(
        QueueUrl=stack.alerts.queue_url, AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "7"


def test_what_cannot_resolve_is_named_with_what_it_needs() -> None:
    template: dict[str, Any] = translated_template()
    template["Resources"]["Orphan"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"VisibilityTimeout": {"Ref": "NoSuchParameter"}},
    }
    with mock_aws(), pytest.raises(RuntimeError) as raised:
        deploy(
            template,
            lambda service: boto3.client(service, region_name=REGION),  # type: ignore[call-overload]
            parameters={
                "Subnets": ["subnet-1"],
                "SecurityGroups": ["sg-1"],
                "AlertsEmail": "a@b.c",
            },
        )
    assert "Orphan (needs" in str(raised.value)
    assert "NoSuchParameter" in str(raised.value)
