"""Reports kept until published: a repair that happened is always reported, even when SNS
fails the first time.

When Publish fails after a repair, the incident's publish arguments are written to the lock
table under `#report/<incident id>` (no lock id may start with `#`); the reconciler publishes
every such item on its next run, then deletes it. Publishing twice is harmless: the incident
id is stable and subscribers de-duplicate on it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.incident import Incident
from common.lock_table import LOCK_ID
from common.truth import AwsError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient

PREFIX = "#report/"
REPORT = "Report"
KEPT_AT = "KeptAt"


@dataclass(frozen=True)
class Pending:
    key: str
    publish_args: dict[str, Any]


def is_pending(item: dict[str, Any]) -> bool:
    key = item.get(LOCK_ID, {}).get("S")
    return isinstance(key, str) and key.startswith(PREFIX)


def keep(
    client: DynamoDBClient, table: str, incident: Incident, *, topic_arn: str, now: str
) -> None:
    client.put_item(
        TableName=table,
        Item={
            LOCK_ID: {"S": PREFIX + incident.id},
            REPORT: {"S": json.dumps(incident.sns_publish_args(topic_arn))},
            KEPT_AT: {"S": now},
        },
    )


def kept(items: Iterable[dict[str, Any]]) -> Iterator[Pending]:
    """The pending reports among raw table items (an unreadable one is skipped)."""
    for item in items:
        if not is_pending(item):
            continue
        try:
            args = json.loads(item[REPORT]["S"])
        except (KeyError, TypeError, ValueError):
            continue
        if isinstance(args, dict):
            yield Pending(item[LOCK_ID]["S"], args)


def publish(
    sns: SNSClient,
    dynamodb: DynamoDBClient,
    table: str,
    incident: Incident,
    *,
    topic_arn: str,
    now: str,
) -> bool:
    """Publish the incident; when SNS fails, keep it for the reconciler to publish. True when
    published now, False when kept; raises when it could do neither."""
    try:
        sns.publish(**incident.sns_publish_args(topic_arn))
    except AwsError as failure:
        try:
            keep(dynamodb, table, incident, topic_arn=topic_arn, now=now)
        except AwsError:
            raise failure from None
        return False
    return True


def flush(sns: SNSClient, dynamodb: DynamoDBClient, table: str, report: Pending) -> None:
    """Publish a kept report, then forget it. Raises when Publish fails (it stays kept)."""
    sns.publish(**report.publish_args)
    dynamodb.delete_item(TableName=table, Key={LOCK_ID: {"S": report.key}})
