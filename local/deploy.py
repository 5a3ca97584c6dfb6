"""Create the locking part of template.yaml in moto: the lock table, the cluster, the sample task
definition and the state machine with its DefinitionSubstitutions, all read from the template.

moto cannot run a state machine that CloudFormation created (a moto gap), so each piece
is created through the API from the template's own properties."""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from moto.backends import get_backend

from alerts import deliver
from common import clients
from local.template import ASL_PATH, Context, load_template, substitute_definition

# ECS task definition properties as the template spells them -> as the ECS API does.
_CONTAINER_KEYS = {
    "Name": "name",
    "Image": "image",
    "Essential": "essential",
    "Memory": "memory",
    "Command": "command",
    "Environment": "environment",
}


# --- Creating one resource from its resolved template properties: shared by the tests' partial
# deploy below and the emulator's whole-template deploy (local/emulator.py). --------------------


def create_table(ddb: Any, name: str, props: dict[str, Any]) -> str:
    """A DynamoDB table as the template describes it; returns its ARN."""
    ddb.create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"],
    )
    if "TimeToLiveSpecification" in props:
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
        )
    arn: str = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    return arn


def register_task_definition(ecs: Any, props: dict[str, Any]) -> str:
    """An ECS task definition from its CloudFormation properties; returns its ARN."""
    containers = []
    for c in props["ContainerDefinitions"]:
        container = {_CONTAINER_KEYS[k]: v for k, v in c.items() if k in _CONTAINER_KEYS}
        if "LogConfiguration" in c:  # where the incident's log link points
            log = c["LogConfiguration"]
            container["logConfiguration"] = {
                "logDriver": log["LogDriver"],
                "options": {k: str(v) for k, v in log.get("Options", {}).items()},
            }
        containers.append(container)
    arn: str = ecs.register_task_definition(
        family=props["Family"],
        requiresCompatibilities=props["RequiresCompatibilities"],
        networkMode=props["NetworkMode"],
        cpu=props["Cpu"],
        memory=props["Memory"],
        executionRoleArn=props["ExecutionRoleArn"],
        taskRoleArn=props["TaskRoleArn"],
        containerDefinitions=containers,
    )["taskDefinition"]["taskDefinitionArn"]
    return arn


def create_state_machine(
    sfn: Any, name: str, substitutions: dict[str, Any], role_arn: str, kind: str
) -> str:
    """The locking state machine through the API (moto runs only those), its definition
    substituted as CloudFormation would; returns its ARN."""
    definition = substitute_definition(
        ASL_PATH.read_text(), {k: str(v) for k, v in substitutions.items()}
    )
    arn: str = sfn.create_state_machine(
        name=name, definition=definition, roleArn=role_arn, type=kind
    )["stateMachineArn"]
    return arn


def create_queue(sqs: Any, name: str, props: dict[str, Any] | None = None) -> tuple[str, str]:
    """An SQS queue with what the emulation needs of its resolved template properties
    (visibility timeout, redrive policy); returns (URL, ARN)."""
    props = props or {}
    attributes = {
        key: json.dumps(props[key]) if isinstance(props[key], dict) else str(props[key])
        for key in ("VisibilityTimeout", "RedrivePolicy")
        if key in props
    }
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def register_stack(cfn: Any, name: str, outputs: dict[str, Any], ctx: Context) -> dict[str, str]:
    """Gap: moto's CloudFormation cannot create this template (a state machine it creates
    cannot run, and SAM's output holds types it does not know), so the resources are created
    through their own APIs and the stack is registered here with its outputs only, resolved
    as CloudFormation would: DescribeStacks then answers as it does on AWS (the CLI finds
    everything from it). Returns the outputs."""
    values: dict[str, str] = {}
    body: dict[str, Any] = {
        "Resources": {"Registered": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {},
    }
    for key, output in outputs.items():
        if "Condition" in output and not ctx.condition(output["Condition"]):
            continue
        value = ctx.resolve(output["Value"])
        values[key] = ",".join(value) if isinstance(value, list) else str(value)
        body["Outputs"][key] = {"Value": values[key], "Description": output.get("Description", "")}
    with warnings.catch_warnings():  # moto: "WaitConditionHandle ... not supported": none needed
        warnings.simplefilter("ignore")
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))
    return values


def cold_start() -> None:
    """Forget what the handlers keep between invocations (clients bound to an endpoint, the
    Slack secret and its provider, Slack's pacing), as a new Lambda environment would: a second
    emulator in one process otherwise reaches the first one's closed endpoint."""
    clients.reset()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    providers: dict[str, Any] = vars(parameters_base)["DEFAULT_PROVIDERS"]
    providers.clear()
    deliver.PACER.last_post.clear()
    deliver.PACER.blocked_until.clear()


FROZEN_TASKS = {"progression": "manual", "times": 10**9}
"""moto's ECS task lifecycle, held: a task runs until the harness ends it (moto runs none)."""


@dataclass
class FakeContext:
    """What Powertools reads from a LambdaContext, for a function of the stack."""

    function_name: str = "lock-janitor-JanitorFunction"
    memory_limit_in_mb: int = 256
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_stream_name: str = "2026/11/29/[$LATEST]abcdef"
    region: str = "us-east-1"
    account: str = "123456789012"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def sqs_records(
    messages: Sequence[Mapping[str, Any]], *, region: str, queue_arn: str | None = None
) -> list[dict[str, Any]]:
    """SQS messages as the records of the event Lambda's SQS event source hands a function."""
    return [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": m["MD5OfBody"],
            "eventSource": "aws:sqs",
            **({"eventSourceARN": queue_arn} if queue_arn else {}),
            "awsRegion": region,
        }
        for m in messages
    ]


@dataclass(frozen=True)
class LockingStack:
    region: str
    context: Context
    table_name: str
    cluster_arn: str
    task_definition_arn: str
    container: str
    state_machine_arn: str
    definition: dict[str, Any]
    alerts_topic_arn: str
    alerts_inbox_url: str
    """An SQS queue subscribed to the alerts topic: what a subscriber receives."""

    def clients(self) -> dict[str, Any]:
        return {
            name: boto3.client(name, region_name=self.region)
            for name in ("dynamodb", "ecs", "stepfunctions")
        }


def default_network(region: str) -> tuple[list[str], list[str]]:
    """Subnets and security group of moto's default VPC (stand-ins for the deploy parameters)."""
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=vpc_filter)["Subnets"])
    groups = ec2.describe_security_groups(Filters=vpc_filter)["SecurityGroups"]
    return subnets[:2], [groups[0]["GroupId"]]


def deploy_locking_stack(region: str = "us-east-1", **parameters: Any) -> LockingStack:
    template = load_template()
    subnets, groups = default_network(region)
    values = {
        name: spec["Default"] for name, spec in template["Parameters"].items() if "Default" in spec
    }
    values.update({"Subnets": subnets, "SecurityGroups": groups})
    values.update(parameters)
    ctx = Context(template=template, parameters=values, region=region)
    resources = template["Resources"]

    table_name = f"{ctx.stack_name}-LockTable"
    ddb = boto3.client("dynamodb", region_name=region)
    ctx.refs["LockTable"] = table_name
    ctx.attributes[("LockTable", "Arn")] = create_table(
        ddb, table_name, resources["LockTable"]["Properties"]
    )

    ecs = boto3.client("ecs", region_name=region)
    if ctx.condition("CreateCluster"):
        cluster_arn = ecs.create_cluster(clusterName=f"{ctx.stack_name}-Cluster")["cluster"][
            "clusterArn"
        ]
        ctx.refs["Cluster"] = cluster_arn.rsplit("/", 1)[1]
        ctx.attributes[("Cluster", "Arn")] = cluster_arn
    for role in ("TaskExecutionRole", "SampleTaskRole", "LockingStateMachineRole"):
        ctx.attributes[(role, "Arn")] = (
            f"arn:aws:iam::{ctx.account_id}:role/{ctx.stack_name}-{role}"
        )
    ctx.refs["SampleTaskLogGroup"] = f"{ctx.stack_name}-SampleTaskLogGroup"

    taskdef = ctx.resolve(resources["SampleTaskDefinition"]["Properties"])
    task_definition_arn = register_task_definition(ecs, taskdef)
    ctx.refs["SampleTaskDefinition"] = task_definition_arn

    machine = resources["LockingStateMachine"]["Properties"]
    substitutions = ctx.resolve(machine["DefinitionSubstitutions"])
    state_machine_arn = create_state_machine(
        boto3.client("stepfunctions", region_name=region),
        f"{ctx.stack_name}-LockingStateMachine",
        substitutions,
        ctx.attributes[("LockingStateMachineRole", "Arn")],
        machine["Type"],
    )
    definition = substitute_definition(
        ASL_PATH.read_text(), {k: str(v) for k, v in substitutions.items()}
    )
    ctx.refs["LockingStateMachine"] = state_machine_arn
    ctx.attributes[("LockingStateMachine", "Name")] = state_machine_arn.rsplit(":", 1)[1]

    sns = boto3.client("sns", region_name=region)
    topic_arn = sns.create_topic(Name=f"{ctx.stack_name}-AlertsTopic")["TopicArn"]
    ctx.refs["AlertsTopic"] = topic_arn
    inbox, inbox_arn = create_queue(
        boto3.client("sqs", region_name=region), f"{ctx.stack_name}-test-inbox"
    )
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=inbox_arn)

    return LockingStack(
        region=region,
        context=ctx,
        table_name=table_name,
        cluster_arn=ctx.resolve(template["Outputs"]["ClusterArn"]["Value"]),
        task_definition_arn=task_definition_arn,
        container=taskdef["ContainerDefinitions"][0]["Name"],
        state_machine_arn=state_machine_arn,
        definition=json.loads(definition),
        alerts_topic_arn=topic_arn,
        alerts_inbox_url=inbox,
    )


def function_environment(stack: LockingStack, logical_id: str) -> dict[str, str]:
    """The environment the template gives a function: Globals, then its own variables."""
    template = stack.context.template
    merged = dict(
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    function = template["Resources"][logical_id]["Properties"]
    merged.update(function.get("Environment", {}).get("Variables", {}))
    return {k: str(stack.context.resolve(v)) for k, v in merged.items()}


def handler_of(stack: LockingStack, logical_id: str) -> str:
    handler: str = stack.context.template["Resources"][logical_id]["Properties"]["Handler"]
    return handler


def received_incidents(stack: LockingStack) -> list[dict[str, Any]]:
    """Every SNS notification the alerts topic delivered to the test inbox (drains it)."""
    sqs = boto3.client("sqs", region_name=stack.region)
    out: list[dict[str, Any]] = []
    for _ in range(100):
        messages = sqs.receive_message(
            QueueUrl=stack.alerts_inbox_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return out
        for m in messages:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=stack.alerts_inbox_url, ReceiptHandle=m["ReceiptHandle"])
    return out


def schedule_inputs(stack: LockingStack) -> dict[str, dict[str, Any]]:
    """Each ScheduleV2 event of the state machine -> the execution input it would send."""
    events = stack.context.template["Resources"]["LockingStateMachine"]["Properties"]["Events"]
    return {
        name: json.loads(stack.context.resolve(event["Properties"]["Input"]))
        for name, event in events.items()
        if event["Type"] == "ScheduleV2"
    }


# --- Driving ECS tasks: moto never runs a container, so a test says when and how one ends. -----


def exit_container(task_arn: str, exit_code: int = 0) -> None:
    """moto never runs a container: the task's container exits with exit_code and the task
    stops, as ECS reports it. The ARN (task/<cluster>/<id>) says where the task is."""
    region, account = task_arn.split(":")[3], task_arn.split(":")[4]
    cluster = task_arn.split(":task/", 1)[1].split("/", maxsplit=1)[0]
    task = get_backend("ecs")[account][region].tasks[cluster][task_arn]
    for container in task.containers:
        container.exitCode = exit_code
        container.last_status = "STOPPED"
    task.desired_status = "STOPPED"
    task.stopped_reason = "Essential container in task exited"
    task.last_status = "STOPPED"


def finish_task(stack: LockingStack, task_arn: str, exit_code: int = 0) -> None:
    """A task of the tests' stack ends (see exit_container)."""
    del stack  # the task's ARN names its cluster and region
    exit_container(task_arn, exit_code)


def running_task_arns(stack: LockingStack) -> list[str]:
    ecs = boto3.client("ecs", region_name=stack.region)
    arns = ecs.list_tasks(cluster=stack.cluster_arn)["taskArns"]
    if not arns:
        return []
    tasks = ecs.describe_tasks(cluster=stack.cluster_arn, tasks=arns)["tasks"]
    return [t["taskArn"] for t in tasks if t["lastStatus"] != "STOPPED"]


def wait_for(predicate: Any, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy, at most timeout seconds; return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


@dataclass(frozen=True)
class AlertsPipe:
    secret_arn: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    table: str
    email_topic_arn: str
    mailbox_url: str
    """An SQS queue subscribed to the email topic: what on-call's mailbox receives."""


def deploy_alerts(
    stack: LockingStack,
    webhook_url: str | None,
    *,
    visibility: int | None = None,
    email_incidents: str = "all",
) -> AlertsPipe:
    """The delivery pipeline. `webhook_url` None: no Slack (email only). `visibility`
    overrides the queue's visibility timeout (tests re-receive at once)."""
    ctx = stack.context
    resources = ctx.template["Resources"]
    region = stack.region
    secret_arn = ""
    if webhook_url is not None:
        secret_arn = boto3.client("secretsmanager", region_name=region).create_secret(
            Name="lock-janitor/slack-webhook", SecretString=webhook_url
        )["ARN"]
    ctx.parameters["SlackWebhookSecretArn"] = secret_arn
    ctx.parameters["EmailIncidents"] = email_incidents
    for group in ("JanitorLogGroup", "ReconcilerLogGroup"):
        ctx.refs[group] = f"/aws/lambda/{ctx.stack_name}-{group}"

    sns = boto3.client("sns", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    email_topic = sns.create_topic(Name=f"{ctx.stack_name}-AlertsEmailTopic")["TopicArn"]
    ctx.refs["AlertsEmailTopic"] = email_topic
    mailbox, mailbox_arn = create_queue(sqs, f"{ctx.stack_name}-mailbox")
    sns.subscribe(TopicArn=email_topic, Protocol="sqs", Endpoint=mailbox_arn)

    dlq_url, dlq_arn = create_queue(sqs, "lock-janitor-AlertsDeadLetterQueue")
    ctx.refs["AlertsDeadLetterQueue"] = dlq_url
    ctx.attributes[("AlertsDeadLetterQueue", "Arn")] = dlq_arn
    props = ctx.resolve(resources["AlertsQueue"]["Properties"])
    if visibility is not None:
        props["VisibilityTimeout"] = visibility
    queue_url, queue_arn = create_queue(sqs, "lock-janitor-AlertsQueue", props)
    ctx.refs["AlertsQueue"] = queue_url
    ctx.attributes[("AlertsQueue", "Arn")] = queue_arn
    subscription = ctx.resolve(resources["AlertsQueueSubscription"]["Properties"])
    sns.subscribe(
        TopicArn=subscription["TopicArn"],
        Protocol=subscription["Protocol"],
        Endpoint=subscription["Endpoint"],
        Attributes={"RawMessageDelivery": str(subscription["RawMessageDelivery"]).lower()},
    )

    create_table(
        boto3.client("dynamodb", region_name=region),
        "lock-janitor-IdempotencyTable",
        resources["IdempotencyTable"]["Properties"],
    )
    ctx.refs["IdempotencyTable"] = "lock-janitor-IdempotencyTable"
    return AlertsPipe(
        secret_arn,
        queue_url,
        queue_arn,
        dlq_url,
        "lock-janitor-IdempotencyTable",
        email_topic,
        mailbox,
    )


def mails(pipe: AlertsPipe, region: str) -> list[dict[str, Any]]:
    """Every notification the email topic delivered to the stand-in mailbox (drains it):
    each {"Subject": ..., "Message": ...} as SNS's email protocol would send it."""
    sqs = boto3.client("sqs", region_name=region)
    out: list[dict[str, Any]] = []
    for _ in range(1000):
        got = sqs.receive_message(QueueUrl=pipe.mailbox_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not got:
            break
        for m in got:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=pipe.mailbox_url, ReceiptHandle=m["ReceiptHandle"])
    return out


def sqs_batch(pipe: AlertsPipe, region: str, size: int = 100) -> dict[str, Any]:
    """Up to `size` messages from AlertsQueue as the SQS event Lambda hands the function."""
    sqs = boto3.client("sqs", region_name=region)
    records: list[dict[str, Any]] = []
    for _ in range(size // 10 + 1):
        if len(records) >= size:
            break
        messages = sqs.receive_message(
            QueueUrl=pipe.queue_url,
            MaxNumberOfMessages=min(10, size - len(records)),
            AttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            break
        records += sqs_records(messages, region=region, queue_arn=pipe.queue_arn)
    return {"Records": records}


def settle(
    pipe: AlertsPipe,
    region: str,
    event: dict[str, Any],
    response: dict[str, Any],
    *,
    now: bool = True,
) -> None:
    """What the Lambda poller does after an invocation: delete the records that succeeded. The
    failed ones come back when the function set them to (their visibility); with `now`, at
    once, so a test need not wait."""
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    sqs = boto3.client("sqs", region_name=region)
    for record in event["Records"]:
        if record["messageId"] not in failed:
            sqs.delete_message(QueueUrl=pipe.queue_url, ReceiptHandle=record["receiptHandle"])
        elif now:
            sqs.change_message_visibility(
                QueueUrl=pipe.queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
            )
