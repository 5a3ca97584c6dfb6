"""The deploy rules a first `sam deploy` on a fresh account relies on (nothing can be deployed
from here: these hold the template to what AWS's documentation and known CloudFormation
failures say)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from local.template import Context, load_template
from tests.support.translate import translated_template
from tests.template.test_template import unwrapped

SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:lock-janitor/slack-AbC123"
KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def resources() -> dict[str, Any]:
    r: dict[str, Any] = load_template()["Resources"]
    return r


def test_the_cluster_needs_no_service_linked_role_at_creation() -> None:
    """Capacity providers on a new cluster fail the first deploy in an account that never used
    ECS; RunTask launches FARGATE directly."""
    cluster = resources()["Cluster"]["Properties"]
    assert "CapacityProviders" not in cluster
    assert "DefaultCapacityProviderStrategy" not in cluster


def test_the_webhook_secret_is_not_given_a_resource_policy_by_the_stack() -> None:
    """A second stack (dev and prod sharing a webhook) could not attach one, and deleting the
    stack would delete the secret's whole policy."""
    kinds = {r["Type"] for r in resources().values()}
    assert "AWS::SecretsManager::ResourcePolicy" not in kinds


@pytest.mark.parametrize(
    ("arn", "ok"),
    [
        (SECRET, True),
        ("", True),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:lock-janitor/slack", False),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbC12", False),
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:slack-AbC123 ", False),
    ],
)
def test_only_a_complete_secret_arn_is_accepted(arn: str, ok: bool) -> None:
    pattern = load_template()["Parameters"]["SlackWebhookSecretArn"]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, arn)) is ok


def kms_statements(parameters: dict[str, str]) -> list[dict[str, Any]]:
    template = translated_template()
    ctx = Context(template=template, parameters=parameters)
    role = template["Resources"]["AlertsRole"]["Properties"]
    found = []
    for policy in role["Policies"]:
        for raw in policy["PolicyDocument"]["Statement"]:
            st = raw
            if "Fn::If" in raw:
                condition, yes, no = raw["Fn::If"]
                st = yes if ctx.condition(condition) else no
            if (
                st != {"Ref": "AWS::NoValue"}
                and st.get("Sid") == "DecryptTheWebhookThroughSecretsManager"
            ):
                found.append(st)
    return found


def test_a_secret_under_a_customer_managed_key_can_be_decrypted_through_secrets_manager() -> None:
    assert (
        kms_statements({"SlackWebhookSecretArn": SECRET, "SlackWebhookSecretKmsKeyArn": ""}) == []
    )
    assert kms_statements({"SlackWebhookSecretArn": "", "SlackWebhookSecretKmsKeyArn": KEY}) == []
    (st,) = kms_statements({"SlackWebhookSecretArn": SECRET, "SlackWebhookSecretKmsKeyArn": KEY})
    assert st["Action"] == "kms:Decrypt"
    assert st["Resource"] == {"Ref": "SlackWebhookSecretKmsKeyArn"}
    assert st["Condition"]["StringEquals"]["kms:ViaService"] == {
        "Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"
    }


def test_no_subscription_carries_a_filter_policy_scope_without_its_policy() -> None:
    for name, res in resources().items():
        if res["Type"] == "AWS::SNS::Subscription":
            props = res["Properties"]
            assert ("FilterPolicyScope" in props) <= ("FilterPolicy" in props), name


def test_the_reconciler_never_overlaps_itself() -> None:
    """Invoked asynchronously by its schedule: no Lambda retries, and a run ends before the
    default schedule's next tick."""
    r = resources()
    fn = r["ReconcilerFunction"]["Properties"]
    assert fn["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert load_template()["Parameters"]["ReconcileSchedule"]["Default"] == "rate(5 minutes)"
    assert fn["Timeout"] < 300
    cfn = translated_template()
    configs = [
        v["Properties"]
        for v in cfn["Resources"].values()
        if v["Type"] == "AWS::Lambda::EventInvokeConfig"
    ]
    assert any(c["MaximumRetryAttempts"] == 0 for c in configs)


def test_schedule_names_fit_scheduler_and_differ_between_stacks() -> None:
    """A name built from the stack name breaks past Scheduler's 64 characters; a fixed one
    collides when two stacks share an account and region."""
    cfn = translated_template()
    long = "s" * 128
    names = []
    for stack in (long, "dev", "prod"):
        ctx = Context(template=cfn, parameters={}, stack_name=stack)
        stack_id = (
            f"arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/"
            f"{abs(hash(stack)) % 10**8:08d}-1111-4222-8333-444455556666"
        )
        pseudo = {**Context.pseudo(ctx), "AWS::StackId": stack_id}
        setattr(ctx, "pseudo", lambda pseudo=pseudo: pseudo)  # noqa: B010 - replaces a method
        for name, res in cfn["Resources"].items():
            if res["Type"] == "AWS::Scheduler::Schedule":
                resolved = ctx.resolve(res["Properties"]["Name"])
                assert len(resolved) <= 64, (name, resolved)
                assert re.fullmatch(r"[0-9a-zA-Z_.-]+", resolved), resolved
                names.append(resolved)
    assert len(set(names)) == len(names), names


def test_the_lock_table_outlives_the_stack_and_a_replacement() -> None:
    table = resources()["LockTable"]
    assert table["DeletionPolicy"] == "Retain"
    assert table["UpdateReplacePolicy"] == "Retain"


def test_conditional_statements_are_well_formed() -> None:
    for name, res in translated_template()["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for st in unwrapped(policy["PolicyDocument"]["Statement"]):
                assert {"Effect", "Action", "Resource"} <= set(st), (name, st)


def test_every_condition_key_that_stays_cites_where_aws_documents_it() -> None:
    """A global condition key AWS does not send for that principal fails the deploy or silently
    drops what it guards: each one kept says where AWS documents it, in a comment above it."""
    from local.template import ROOT

    lines = (ROOT / "template.yaml").read_text().splitlines()
    keys = ("aws:SourceAccount:", "aws:SourceArn:", "kms:ViaService:")
    for i, line in enumerate(lines):
        if line.strip().startswith(keys):
            above = " ".join(x for x in lines[max(0, i - 14) : i] if x.strip().startswith("#"))
            assert any(w in above for w in ("guide", ".html", "repost", "knowledge center")), (
                f"template.yaml:{i + 1}: {line.strip()} cites no AWS documentation"
            )


def test_no_lambda_trust_policy_has_an_undocumented_condition() -> None:
    for name, res in resources().items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for st in res["Properties"]["AssumeRolePolicyDocument"]["Statement"]:
            if st["Principal"] == {"Service": "lambda.amazonaws.com"}:
                assert "Condition" not in st, name


def test_the_key_lets_only_cloudwatch_alarms_publish_through_it() -> None:
    statements = resources()["AlertsKey"]["Properties"]["KeyPolicy"]["Statement"]
    services = [st["Principal"].get("Service") for st in statements if "Service" in st["Principal"]]
    assert services == ["cloudwatch.amazonaws.com"]


def test_dynamodb_retries_match_both_spellings_of_the_optimized_integrations_errors() -> None:
    """The guide documents only the prefix (`DynamoDB.`), not whether names end in
    `Exception`: every Retry of a DynamoDB task lists both, and the SDK's base class."""
    import json

    from local.template import ASL_PATH

    definition = json.loads(re.sub(r"\$\{\w+\}", "1", ASL_PATH.read_text()))

    def tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
        return [s for s in states.values() if "dynamodb" in str(s.get("Resource", ""))]

    found = tasks(definition["States"])
    assert found
    for state in found:
        names = {n for r in state.get("Retry", []) for n in r["ErrorEquals"]}
        for pair in (
            ("DynamoDB.RequestLimitExceeded", "DynamoDB.RequestLimitExceededException"),
            ("DynamoDB.InternalServerError", "DynamoDB.InternalServerErrorException"),
        ):
            assert set(pair) <= names, (state.get("Comment"), pair)
        assert "DynamoDB.ProvisionedThroughputExceededException" in names
        assert "DynamoDB.AmazonDynamoDBException" in names


def test_every_star_resource_says_why_aws_requires_it() -> None:
    from local.template import ROOT

    lines = (ROOT / "template.yaml").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.strip() == 'Resource: "*"':
            above = " ".join(x for x in lines[max(0, i - 16) : i] if x.strip().startswith("#"))
            assert '"*"' in above, f'template.yaml:{i + 1}: Resource "*" without its reason'
