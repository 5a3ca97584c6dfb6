"""template.yaml: validated, translated, linted, and held to its promises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from local.sam import run_sam
from local.template import ROOT, load_template
from tests.support.translate import REGION, lint_template, translated_template

# Actions AWS does not let you scope to a resource: "*" is the only valid Resource for them.
UNSCOPABLE = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return translated_template()


@pytest.mark.parametrize("args", [("validate", "--lint"), ("validate", "--region", REGION)])
def test_sam_validate(args: tuple[str, ...]) -> None:
    result = run_sam(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_cfn_lint_passes_on_the_translated_template(cfn: dict[str, Any]) -> None:
    assert lint_template(cfn) == []


def test_sam_build_succeeds(tmp_path: Path) -> None:
    """python3.13 on arm64, as the template says; the venv's interpreter is on PATH."""
    result = run_sam(
        "build", "--build-dir", str(tmp_path / "build"), "--cache-dir", str(tmp_path / "cache")
    )
    assert result.returncode == 0, result.stdout + result.stderr
    build = tmp_path / "build"
    assert (build / "template.yaml").is_file()
    functions = [
        name
        for name, r in load_template()["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    assert functions
    for name in functions:
        artifact = build / name
        assert (artifact / "janitor" / "handler.py").is_file(), name
        assert (artifact / "common" / "lock_table.py").is_file(), name
        assert (artifact / "aws_lambda_powertools").is_dir(), f"{name}: runtime deps installed"
        # Compiled, so a cold start does not compile them (the code directory is read-only).
        for module in ("janitor/handler", "common/lock_table", "aws_lambda_powertools/__init__"):
            folder, stem = (artifact / module).parent, (artifact / module).name
            assert list((folder / "__pycache__").glob(f"{stem}.cpython-313.pyc")), module
        assert not list(artifact.rglob("tests")), f"{name}: nothing but the functions' code"


def resources_of(cfn: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in cfn["Resources"].items() if v["Type"] == kind}


def test_lock_table_is_as_designed() -> None:
    props = load_template()["Resources"]["LockTable"]["Properties"]
    assert props["KeySchema"] == [{"AttributeName": "LockId", "KeyType": "HASH"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["DeletionProtectionEnabled"] == {"Ref": "LockTableDeletionProtection"}


def test_state_machine_is_standard_logged_traced_and_substituted() -> None:
    t = load_template()
    props = t["Resources"]["LockingStateMachine"]["Properties"]
    assert props["Type"] == "STANDARD"
    assert props["DefinitionUri"] == "statemachine/locking.asl.json"
    assert props["DefinitionSubstitutions"]["ExecutionTimeoutSeconds"] == {
        "Ref": "ExecutionTimeoutSeconds"
    }
    assert props["Tracing"] == {"Enabled": True}
    (dest,) = props["Logging"]["Destinations"]
    assert dest["CloudWatchLogsLogGroup"]["LogGroupArn"] == {
        "Fn::GetAtt": ["LockingStateMachineLogGroup", "Arn"]
    }
    schedules = [e for e in props["Events"].values() if e["Type"] == "ScheduleV2"]
    assert schedules, "at least one example task on a schedule"


def test_every_log_group_has_retention(cfn: dict[str, Any]) -> None:
    groups = resources_of(cfn, "AWS::Logs::LogGroup")
    assert groups
    for name, group in groups.items():
        assert group["Properties"].get("RetentionInDays"), f"{name} keeps logs forever"


def unwrapped(statements: list[Any]) -> list[dict[str, Any]]:
    """A policy's statements, each branch of a conditional one (Fn::If) included."""
    out: list[dict[str, Any]] = []
    for st in statements:
        if "Fn::If" in st:
            out += unwrapped([b for b in st["Fn::If"][1:] if b != {"Ref": "AWS::NoValue"}])
        else:
            out.append(st)
    return out


def statements(cfn: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, role in resources_of(cfn, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for st in unwrapped(policy["PolicyDocument"]["Statement"]):
                out.append((name, st))
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def test_no_wildcard_actions_and_star_resources_only_where_aws_allows_no_scope(
    cfn: dict[str, Any],
) -> None:
    found = statements(cfn)
    assert found
    for role, st in found:
        actions = as_list(st["Action"])
        assert all("*" not in a for a in actions), f"{role}: wildcard action in {actions}"
        assert st["Effect"] == "Allow"
        if "*" in as_list(st["Resource"]):
            if actions == ["ecs:DescribeTaskDefinition"]:
                continue  # no resource type in the Service Authorization Reference
            if actions == ["ecs:ListTasks"]:
                # ListTasks is authorized on the ecs:cluster condition key alone.
                assert "ecs:cluster" in st["Condition"]["ArnEquals"], role
                continue
            assert set(actions) <= UNSCOPABLE, f"{role}: Resource * for scopable {actions}"


def test_state_machine_role_has_exactly_what_the_machine_needs(cfn: dict[str, Any]) -> None:
    role = cfn["Resources"]["LockingStateMachineRole"]["Properties"]
    by_action: dict[str, list[Any]] = {}
    for policy in role["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            for action in as_list(st["Action"]):
                by_action.setdefault(action, []).append(st)
    assert (
        set(by_action)
        == {
            "dynamodb:UpdateItem",
            "dynamodb:GetItem",
            "ecs:RunTask",
            "ecs:StopTask",
            "ecs:DescribeTasks",
            "events:PutTargets",
            "events:PutRule",
            "events:DescribeRule",
            "iam:PassRole",
        }
        | UNSCOPABLE
    )
    assert by_action["dynamodb:UpdateItem"][0]["Resource"] == {"Fn::GetAtt": ["LockTable", "Arn"]}
    run = by_action["ecs:RunTask"][0]
    assert ":task-definition/${AWS::StackName}-*:*" in run["Resource"]["Fn::Sub"]
    assert "ecs:cluster" in run["Condition"]["ArnEquals"]
    assert "ecs:cluster" in by_action["ecs:StopTask"][0]["Condition"]["ArnEquals"]
    rule = by_action["events:PutRule"][0]["Resource"]["Fn::Sub"]
    assert rule.endswith(":rule/StepFunctionsGetEventsForECSTaskRule")
    passrole = by_action["iam:PassRole"][0]
    assert passrole["Resource"] == [
        {"Fn::GetAtt": ["TaskExecutionRole", "Arn"]},
        {"Fn::GetAtt": ["SampleTaskRole", "Arn"]},
    ]
    assert passrole["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }


def test_sample_task_can_really_run_on_fargate() -> None:
    t = load_template()
    props = t["Resources"]["SampleTaskDefinition"]["Properties"]
    assert props["RequiresCompatibilities"] == ["FARGATE"]
    assert props["NetworkMode"] == "awsvpc"
    (container,) = props["ContainerDefinitions"]
    assert container["Image"] == {"Ref": "SampleTaskImage"}
    assert t["Parameters"]["SampleTaskImage"]["Default"].startswith("public.ecr.aws/")
    command = json.dumps(container["Command"])
    assert "SampleTaskSleepSeconds" in command
    assert "SampleTaskExitCode" in command
    for name in ("Subnets", "SecurityGroups", "AssignPublicIp", "ExistingClusterArn"):
        assert name in t["Parameters"]


def test_outputs_name_what_tools_need() -> None:
    outputs = load_template()["Outputs"]
    assert {
        "LockTableName",
        "LockTableArn",
        "LockingStateMachineArn",
        "ClusterArn",
        "SampleTaskDefinitionArn",
        "TaskExecutionRoleArn",
    } <= set(outputs)


def test_samconfig_has_no_account_ids_and_names_the_stack() -> None:
    text = (ROOT / "samconfig.toml").read_text()
    assert "stack_name" in text
    assert not any(tok.isdigit() and len(tok) == 12 for tok in text.replace('"', " ").split())


def test_reconciler_runs_on_a_schedule_with_its_parameters() -> None:
    t = load_template()
    fn = t["Resources"]["ReconcilerFunction"]["Properties"]
    assert fn["Handler"] == "reconciler.handler.lambda_handler"
    (event,) = fn["Events"].values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Ref": "ReconcileSchedule"}
    assert json.loads(event["Properties"]["Input"]) == {"dryRun": False}
    assert t["Parameters"]["ReconcileSchedule"]["Default"] == "rate(5 minutes)"
    env = fn["Environment"]["Variables"]
    assert env["RECONCILE_GRACE_SECONDS"] == {"Ref": "ReconcileGraceSeconds"}
    assert env["OVERDUE_MARGIN_SECONDS"] == {"Ref": "OverdueMarginSeconds"}
    assert fn["LoggingConfig"]["LogGroup"] == {"Ref": "ReconcilerLogGroup"}


def test_function_roles_are_written_out_with_no_managed_policies(cfn: dict[str, Any]) -> None:
    """SAM's default function role carries managed policies on "*" (logs, X-Ray, SQS); each
    function here has its own role: its own log group, its own work."""
    template = load_template()
    functions = {
        k: v["Properties"]
        for k, v in template["Resources"].items()
        if v["Type"] == "AWS::Serverless::Function"
    }
    assert functions
    for name, fn in functions.items():
        assert "Policies" not in fn, name
        role = fn["Role"]["Fn::GetAtt"][0]
        props = cfn["Resources"][role]["Properties"]
        assert "ManagedPolicyArns" not in props, role
        logs = [
            st
            for policy in props["Policies"]
            for st in unwrapped(policy["PolicyDocument"]["Statement"])
            if "logs:PutLogEvents" in as_list(st["Action"])
        ]
        assert [st["Resource"] for st in logs] == [
            {"Fn::GetAtt": [fn["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}
        ], name
    for name, res in cfn["Resources"].items():
        if res["Type"] == "AWS::IAM::Role":
            assert not res["Properties"].get("ManagedPolicyArns"), name
