"""The alerts part of template.yaml in moto: the Slack secret, AlertsQueue and its dead-letter
queue subscribed to the alerts topic, the idempotency table; and SQS batches shaped as Lambda
delivers them to AlertsFunction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import boto3

from tests.support.stack import LockingStack


@dataclass(frozen=True)
class AlertsPipe:
    secret_arn: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    table: str


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def deploy_alerts(
    stack: LockingStack, webhook_url: str, *, visibility: int | None = None
) -> AlertsPipe:
    """`visibility` overrides the queue's visibility timeout (tests re-receive at once)."""
    ctx = stack.context
    resources = ctx.template["Resources"]
    secret_arn = boto3.client("secretsmanager", region_name=stack.region).create_secret(
        Name="lock-janitor/slack-webhook", SecretString=webhook_url
    )["ARN"]
    ctx.parameters["SlackWebhookSecretArn"] = secret_arn

    sqs = boto3.client("sqs", region_name=stack.region)
    dlq_url, dlq_arn = _queue(sqs, "lock-janitor-AlertsDeadLetterQueue", {})
    ctx.refs["AlertsDeadLetterQueue"] = dlq_url
    ctx.attributes[("AlertsDeadLetterQueue", "Arn")] = dlq_arn
    props = ctx.resolve(resources["AlertsQueue"]["Properties"])
    queue_url, queue_arn = _queue(
        sqs,
        "lock-janitor-AlertsQueue",
        {
            "VisibilityTimeout": str(
                visibility if visibility is not None else props["VisibilityTimeout"]
            ),
            "RedrivePolicy": json.dumps(props["RedrivePolicy"]),
        },
    )
    ctx.refs["AlertsQueue"] = queue_url
    ctx.attributes[("AlertsQueue", "Arn")] = queue_arn
    subscription = ctx.resolve(resources["AlertsQueueSubscription"]["Properties"])
    boto3.client("sns", region_name=stack.region).subscribe(
        TopicArn=subscription["TopicArn"],
        Protocol=subscription["Protocol"],
        Endpoint=subscription["Endpoint"],
        Attributes={"RawMessageDelivery": str(subscription["RawMessageDelivery"]).lower()},
    )

    table = resources["IdempotencyTable"]["Properties"]
    ddb = boto3.client("dynamodb", region_name=stack.region)
    ddb.create_table(
        TableName="lock-janitor-IdempotencyTable",
        KeySchema=table["KeySchema"],
        AttributeDefinitions=table["AttributeDefinitions"],
        BillingMode=table["BillingMode"],
    )
    ddb.update_time_to_live(
        TableName="lock-janitor-IdempotencyTable",
        TimeToLiveSpecification=table["TimeToLiveSpecification"],
    )
    ctx.refs["IdempotencyTable"] = "lock-janitor-IdempotencyTable"
    return AlertsPipe(secret_arn, queue_url, queue_arn, dlq_url, "lock-janitor-IdempotencyTable")


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
        for m in messages:
            records.append(
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": pipe.queue_arn,
                    "awsRegion": region,
                }
            )
    return {"Records": records}


def settle(pipe: AlertsPipe, region: str, event: dict[str, Any], response: dict[str, Any]) -> None:
    """What the Lambda poller does after an invocation: delete the records that succeeded. The
    failed ones come back once their visibility timeout ends: here, at once."""
    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
    sqs = boto3.client("sqs", region_name=region)
    for record in event["Records"]:
        if record["messageId"] not in failed:
            sqs.delete_message(QueueUrl=pipe.queue_url, ReceiptHandle=record["receiptHandle"])
        else:
            sqs.change_message_visibility(
                QueueUrl=pipe.queue_url, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=0
            )
