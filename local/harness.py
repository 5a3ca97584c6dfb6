"""What the tests and the emulator drive the system with: the stack deployed whole in this
process's moto (one deploy, local/deployer.py, seen as LockingStack and AlertsPipe), a new
Lambda environment (`cold_start`), Lambda's context and SQS records, the held ECS task
lifecycle and ending a task, and waiting on a condition."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from moto.backends import get_backend

from alerts import deliver
from common import clients
from local.bridges import ECS_TASKS
from local.deployer import Deployed, create_queue, deploy
from local.template import Context, translated_template


def cold_start() -> None:
    """Forget what the handlers keep between invocations (clients bound to an endpoint, the
    Slack secret read, Slack's pacing), as a new Lambda environment would: a second
    emulator in one process otherwise reaches the first one's closed endpoint."""
    clients.reset()
    handler = sys.modules.get("alerts.handler")  # imported by a test once its environment is set
    if handler is not None:
        handler.forget_secrets()
    deliver.PACER.last_post.clear()
    deliver.PACER.blocked_until.clear()


@contextlib.contextmanager
def _on_calls(clients: Sequence[Any], **stages: Callable[..., None]) -> Iterator[None]:
    """`stages` ("before" / "after" -> hook(service, model=..., ...)) on every call the clients
    make inside the block; moto's own threads use clients of their own."""
    hooks = []
    for client in clients:
        service = client.meta.service_model.service_id.hyphenize()
        for stage, hook in stages.items():
            event, bound = f"{stage}-call.{service}", functools.partial(hook, service)
            client.meta.events.register(event, bound)
            hooks.append((client, event, bound))
    try:
        yield
    finally:
        for client, event, bound in hooks:
            client.meta.events.unregister(event, bound)


@contextlib.contextmanager
def counted_calls(*clients: Any) -> Iterator[list[str]]:
    """Every AWS API call the clients make inside the block, as "service.Operation", in order
    (the tests' call counts, the bench's), a call refused before it is sent included."""
    calls: list[str] = []

    def count(service: str, model: Any, **_: Any) -> None:
        calls.append(f"{service}.{model.name}")

    with _on_calls(clients, before=count):
        yield calls


@dataclass(frozen=True)
class Call:
    name: str
    """"service.Operation", as counted_calls names it"""
    start: float
    end: float


@contextlib.contextmanager
def timed_calls(*clients: Any) -> Iterator[list[Call]]:
    """Every call the clients make inside the block that got an answer, and when it was in
    flight: from botocore's before-call to its after-call, in whichever thread made it (the
    janitor makes two at once)."""
    calls: list[Call] = []
    started = threading.local()

    def before(service: str, **_: Any) -> None:
        started.at = time.perf_counter()

    def after(service: str, model: Any, **_: Any) -> None:
        calls.append(Call(f"{service}.{model.name}", started.at, time.perf_counter()))

    with _on_calls(clients, before=before, after=after):
        yield calls


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
class AlertsPipe:
    secret_arn: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    table: str
    mailbox_url: str
    """An SQS queue subscribed to the email topic: what on-call's mailbox receives."""


@dataclass(frozen=True)
class LockingStack:
    """The whole stack deployed in this process's moto (local/deployer.py), with the names the
    tests reach for, and two stand-in subscribers: the test inbox on the alerts topic and the
    mailbox on the email topic."""

    deployed: Deployed
    alerts_inbox_url: str
    """An SQS queue subscribed to the alerts topic: what a subscriber receives."""
    alerts: AlertsPipe

    @property
    def context(self) -> Context:
        return self.deployed.context

    @property
    def region(self) -> str:
        return self.context.region

    @property
    def table_name(self) -> str:
        return self.deployed.ref("LockTable")

    @property
    def cluster_arn(self) -> str:
        return self.deployed.outputs["ClusterArn"]

    @property
    def task_definition_arn(self) -> str:
        return self.deployed.ref("SampleTaskDefinition")

    @property
    def container(self) -> str:
        task = self.deployed.properties["SampleTaskDefinition"]
        return str(task["ContainerDefinitions"][0]["Name"])

    @property
    def state_machine_arn(self) -> str:
        return self.deployed.ref("LockingStateMachine")

    @property
    def definition(self) -> dict[str, Any]:
        return self.deployed.definitions["LockingStateMachine"]

    @property
    def alerts_topic_arn(self) -> str:
        return self.deployed.ref("AlertsTopic")


def default_network(region: str) -> tuple[list[str], list[str]]:
    """Subnets and security group of moto's default VPC (stand-ins for the deploy parameters)."""
    ec2 = boto3.client("ec2", region_name=region)
    vpc = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]
    vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
    subnets = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=vpc_filter)["Subnets"])
    groups = ec2.describe_security_groups(Filters=vpc_filter)["SecurityGroups"]
    return subnets[:2], [groups[0]["GroupId"]]


def deploy_locking_stack(
    region: str = "us-east-1",
    *,
    webhook_url: str | None = None,
    alerts_visibility: int | None = None,
    **parameters: Any,
) -> LockingStack:
    """template.yaml, translated, deployed whole into this process's moto (local/deployer.py):
    the subnets and security group of moto's default VPC, the Slack webhook secret holding
    `webhook_url` (None: no Slack), `parameters` over the template's defaults, and
    `alerts_visibility` as the alerts queue's visibility timeout (tests re-receive at once)."""
    subnets, groups = default_network(region)
    secret_arn = ""
    if webhook_url is not None:
        secret_arn = boto3.client("secretsmanager", region_name=region).create_secret(
            Name="lock-janitor/slack-webhook", SecretString=webhook_url
        )["ARN"]
    properties = {}
    if alerts_visibility is not None:
        properties["AlertsQueue"] = {"VisibilityTimeout": alerts_visibility}
    deployed = deploy(
        translated_template(),
        lambda service: boto3.client(service, region_name=region),  # type: ignore[call-overload]
        parameters={
            "Subnets": subnets,
            "SecurityGroups": groups,
            "SlackWebhookSecretArn": secret_arn,
            "AlertsEmail": "oncall@example.com",
            **parameters,
        },
        properties=properties,
        region=region,
    )
    sns = boto3.client("sns", region_name=region)
    sqs = boto3.client("sqs", region_name=region)
    subscribers = {}
    for topic, queue in (("AlertsTopic", "test-inbox"), ("AlertsEmailTopic", "mailbox")):
        url, arn = create_queue(sqs, f"{deployed.context.stack_name}-{queue}")
        sns.subscribe(TopicArn=deployed.ref(topic), Protocol="sqs", Endpoint=arn)
        subscribers[topic] = url
    pipe = AlertsPipe(
        secret_arn=secret_arn,
        queue_url=deployed.ref("AlertsQueue"),
        queue_arn=deployed.arn("AlertsQueue"),
        dlq_url=deployed.ref("AlertsDeadLetterQueue"),
        table=deployed.ref("IdempotencyTable"),
        mailbox_url=subscribers["AlertsEmailTopic"],
    )
    return LockingStack(deployed, subscribers["AlertsTopic"], pipe)


def function_environment(stack: LockingStack, logical_id: str) -> dict[str, str]:
    """The environment the template gives a function: Globals, then its own variables."""
    return dict(stack.deployed.functions[logical_id].environment)


def handler_of(stack: LockingStack, logical_id: str) -> str:
    return stack.deployed.functions[logical_id].handler


def drain(sqs: Any, queue_url: str, limit: int = 10_000) -> list[dict[str, Any]]:
    """Every message in the queue, its body parsed as JSON, deleted once read (at most
    `limit`: every loop bounded)."""
    out: list[dict[str, Any]] = []
    while len(out) < limit:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            break
        for m in messages:
            out.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    return out


def received_incidents(stack: LockingStack) -> list[dict[str, Any]]:
    """Every SNS notification the alerts topic delivered to the test inbox (drains it)."""
    return drain(boto3.client("sqs", region_name=stack.region), stack.alerts_inbox_url)


def schedule_inputs(stack: LockingStack) -> dict[str, dict[str, Any]]:
    """Each schedule of the state machine (translated logical id) -> the input it sends."""
    return {
        logical_id: json.loads(schedule["input"])
        for logical_id, schedule in stack.deployed.schedules.items()
        if schedule["target"] == stack.state_machine_arn
    }


# --- Driving ECS tasks: moto never runs a container, so a test says when and how one ends. -----


def exit_container(task_arn: str, exit_code: int = 0) -> None:
    """moto never runs a container: the task's container exits with exit_code and the task
    stops, as ECS reports it. The ARN (task/<cluster>/<id>) says where the task is."""
    region, account = task_arn.split(":")[3], task_arn.split(":")[4]
    cluster = task_arn.split(":task/", 1)[1].split("/", maxsplit=1)[0]
    task = get_backend("ecs")[account][region].tasks[cluster][task_arn]
    with ECS_TASKS:  # no DescribeTasks answers with the task half-ended
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


def mails(pipe: AlertsPipe, region: str) -> list[dict[str, Any]]:
    """Every notification the email topic delivered to the stand-in mailbox (drains it):
    each {"Subject": ..., "Message": ...} as SNS's email protocol would send it."""
    return drain(boto3.client("sqs", region_name=region), pipe.mailbox_url)


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
