"""The janitor's EventBridge rule, matched by moto's event-pattern matcher against events/ and
AWS's documented samples: exactly the locking machine's FAILED, TIMED_OUT and ABORTED events and
its redriven RUNNING ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest
from moto.events.models import EventPattern

from local.template import ROOT, Context, load_template

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:lock-janitor-LockingStateMachine"
EVENTS = ROOT / "events"
AWS_DOCS = ROOT / "tests" / "fixtures" / "aws-docs-events"


def rule_pattern() -> EventPattern:
    template = load_template()
    ctx = Context(template=template, parameters={})
    ctx.refs["LockingStateMachine"] = MACHINE
    pattern = ctx.resolve(template["Resources"]["JanitorRule"]["Properties"]["EventPattern"])
    return EventPattern.load(json.dumps(pattern))


def matches_rule(event: dict[str, Any]) -> bool:
    """The rule's pattern, as EventBridge applies it (moto's matcher), on one event."""
    return bool(rule_pattern().matches_event(cast("Any", event)))


def load(path: Path) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(path.read_text())
    return event


EXPECTED = {
    "janitor-failed.json": True,
    "janitor-timed-out.json": True,
    "janitor-aborted.json": True,
    "janitor-failed-legacy-shape.json": True,
    "janitor-aborted-input-not-included.json": True,
    "janitor-failed-input-not-json.json": True,
    "janitor-failed-input-without-lock-id.json": True,
    "janitor-running-redriven.json": True,
    "malformed-no-execution-arn.json": True,  # matches, and the janitor raises: lands in the DLQ
    "ignored-running-first.json": False,
    "ignored-succeeded.json": False,
    "ignored-failed-other-machine.json": False,
    "malformed-not-a-status-change.json": False,
}


def test_every_sample_event_has_an_expectation() -> None:
    assert {p.name for p in EVENTS.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize(("name", "matches"), sorted(EXPECTED.items()))
def test_rule_matches_exactly_what_the_janitor_heals(name: str, matches: bool) -> None:
    assert matches_rule(load(EVENTS / name)) is matches


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("sfn-failed-1.json", True),
        ("sfn-timed-out-1.json", True),
        ("sfn-aborted-1.json", True),
        ("sfn-running-1.json", False),
        ("sfn-succeeded-1.json", False),
    ],
)
def test_aws_documented_events(name: str, matches: bool) -> None:
    event = load(AWS_DOCS / name)
    assert matches_rule(event) is False, "another machine's events never match"
    event["detail"]["stateMachineArn"] = MACHINE
    assert matches_rule(event) is matches


@pytest.mark.parametrize(("count", "matches"), [(0, False), (1, True), (7, True)])
def test_running_matches_only_when_redriven(count: int, matches: bool) -> None:
    event = load(EVENTS / "janitor-running-redriven.json")
    event["detail"]["redriveCount"] = count
    assert matches_rule(event) is matches


def test_rule_target_retries_and_keeps_what_it_cannot_deliver() -> None:
    resources = load_template()["Resources"]
    (target,) = resources["JanitorRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["JanitorFunction", "Arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["JanitorDeadLetterQueue", "Arn"]}
    (statement,) = resources["JanitorDeadLetterQueuePolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {
        "Fn::GetAtt": ["JanitorRule", "Arn"]
    }
    queue = resources["JanitorDeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    permission = resources["JanitorRuleInvokesJanitor"]["Properties"]
    assert permission["SourceArn"] == {"Fn::GetAtt": ["JanitorRule", "Arn"]}


def test_janitor_function_is_configured_to_lose_nothing() -> None:
    template = load_template()
    fn = template["Resources"]["JanitorFunction"]["Properties"]
    glob = template["Globals"]["Function"]
    assert glob["Runtime"] == "python3.13"
    assert glob["Architectures"] == ["arm64"]
    assert glob["Tracing"] == "Active"
    assert fn["Handler"] == "janitor.handler.lambda_handler"
    on_failure = fn["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]
    assert on_failure == {
        "Type": "SQS",
        "Destination": {"Fn::GetAtt": ["JanitorDeadLetterQueue", "Arn"]},
    }
    assert fn["LoggingConfig"]["LogGroup"] == {"Ref": "JanitorLogGroup"}
    topic = template["Resources"]["AlertsTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "AlertsKey"}
    key_services = template["Resources"]["AlertsKey"]["Properties"]["KeyPolicy"]["Statement"][1]
    assert "cloudwatch.amazonaws.com" in key_services["Principal"]["Service"]


def test_every_handler_in_the_template_is_importable() -> None:
    import importlib

    template = load_template()
    functions = {
        k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"
    }
    assert functions
    for name, fn in functions.items():
        module, _, attr = fn["Properties"]["Handler"].rpartition(".")
        assert callable(getattr(importlib.import_module(module), attr)), name
