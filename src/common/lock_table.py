"""The lock table protocol (DESIGN.md, "LockTable"), for the Python side of the house.

One item per task, keyed by `LockId`, kept after release as that task's status row. "Held"
means `attribute_exists(Owner)`. Acquire = `ADD Token 1` on condition free (or already ours);
release = `REMOVE Owner` on condition `Owner = :me`. Nothing here ever deletes an item or
writes without a condition on the owner. The state machine (statemachine/locking.asl.json)
speaks the same protocol; tests/unit/test_lock_table.py checks that both use these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, cast

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LOCK_ID = "LockId"
OWNER = "Owner"
ACQUIRED_AT = "AcquiredAt"
STATE_MACHINE_ARN = "StateMachineArn"
TIMEOUT_SECONDS = "TimeoutSeconds"
REDRIVE_COUNT = "RedriveCount"
OVERDUE_REPORTED_AT = "OverdueReportedAt"
TOKEN = "Token"  # noqa: S105 - an attribute name, not a secret
LAST_OWNER = "LastOwner"
LAST_OUTCOME = "LastOutcome"
LAST_RELEASED_AT = "LastReleasedAt"
LAST_RELEASED_BY = "LastReleasedBy"

HELD_ATTRIBUTES = (
    OWNER,
    ACQUIRED_AT,
    STATE_MACHINE_ARN,
    TIMEOUT_SECONDS,
    REDRIVE_COUNT,
    OVERDUE_REPORTED_AT,
)
"""Present only while the lock is held; a release removes them."""
ATTRIBUTES = frozenset(
    {LOCK_ID, TOKEN, *HELD_ATTRIBUTES, LAST_OWNER, LAST_OUTCOME, LAST_RELEASED_AT, LAST_RELEASED_BY}
)


class Outcome(StrEnum):
    """How the last holder's run ended, as recorded on release (`LastOutcome`)."""

    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    ABORTED = "ABORTED"
    STALE = "STALE"
    FORCED = "FORCED"


class ReleasedBy(StrEnum):
    """Who released the lock (`LastReleasedBy`)."""

    STATE_MACHINE = "state-machine"
    JANITOR = "janitor"
    RECONCILER = "reconciler"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Lock:
    """One item of the lock table, typed."""

    lock_id: str
    owner: str | None = None
    token: int = 0
    acquired_at: str | None = None
    state_machine_arn: str | None = None
    timeout_seconds: int | None = None
    redrive_count: int | None = None
    overdue_reported_at: str | None = None
    last_owner: str | None = None
    last_outcome: str | None = None
    last_released_at: str | None = None
    last_released_by: str | None = None

    @property
    def held(self) -> bool:
        return self.owner is not None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lock:
        """From a low-level DynamoDB item ({"Owner": {"S": ...}, "Token": {"N": ...}})."""

        def s(name: str) -> str | None:
            value = item.get(name)
            return str(value["S"]) if value and "S" in value else None

        def n(name: str) -> int | None:
            value = item.get(name)
            return int(value["N"]) if value and "N" in value else None

        return cls(
            lock_id=s(LOCK_ID) or "",
            owner=s(OWNER),
            token=n(TOKEN) or 0,
            acquired_at=s(ACQUIRED_AT),
            state_machine_arn=s(STATE_MACHINE_ARN),
            timeout_seconds=n(TIMEOUT_SECONDS),
            redrive_count=n(REDRIVE_COUNT),
            overdue_reported_at=s(OVERDUE_REPORTED_AT),
            last_owner=s(LAST_OWNER),
            last_outcome=s(LAST_OUTCOME),
            last_released_at=s(LAST_RELEASED_AT),
            last_released_by=s(LAST_RELEASED_BY),
        )


ReleaseKind = Literal["released", "already_free", "held_by_other", "reacquired_since"]


@dataclass(frozen=True)
class ReleaseResult:
    """What one conditional release found: it released the lock, the lock was already free,
    another execution holds it (`holder`), or the same execution took it again after the time
    the caller asked about (a redrive). `lock` is the item as it was before the call."""

    kind: ReleaseKind
    lock: Lock | None
    holder: str | None = None


def get_lock(client: DynamoDBClient, table: str, lock_id: str) -> Lock | None:
    item = client.get_item(TableName=table, Key={LOCK_ID: {"S": lock_id}}, ConsistentRead=True)
    return Lock.from_item(item["Item"]) if "Item" in item else None


def release(
    client: DynamoDBClient,
    table: str,
    lock_id: str,
    *,
    owner: str,
    outcome: Outcome,
    by: ReleasedBy,
    now: str,
    redrive_count: int | None = None,
) -> ReleaseResult:
    """Release `lock_id` only if `owner` holds it, recording how the run ended. One call tells
    released / already free / held by another apart (ReturnValuesOnConditionCheckFailure), and
    never overwrites another holder. With `redrive_count` (that of the run that ended), a lock
    the same owner took again for a later redrive of itself is left alone: status-change events
    arrive in any order. Errors other than the failed condition propagate."""
    condition = "#owner = :me"
    values: dict[str, Any] = {
        ":me": {"S": owner},
        ":outcome": {"S": outcome.value},
        ":now": {"S": now},
        ":by": {"S": by.value},
    }
    names = {
        "#owner": OWNER,
        "#acquiredAt": ACQUIRED_AT,
        "#stateMachine": STATE_MACHINE_ARN,
        "#timeout": TIMEOUT_SECONDS,
        "#redrives": REDRIVE_COUNT,
        "#overdue": OVERDUE_REPORTED_AT,
        "#lastOwner": LAST_OWNER,
        "#lastOutcome": LAST_OUTCOME,
        "#lastReleasedAt": LAST_RELEASED_AT,
        "#lastReleasedBy": LAST_RELEASED_BY,
    }
    if redrive_count is not None:
        condition += " AND (attribute_not_exists(#redrives) OR #redrives <= :redrives)"
        values[":redrives"] = {"N": str(redrive_count)}
    try:
        answer = client.update_item(
            TableName=table,
            Key={LOCK_ID: {"S": lock_id}},
            UpdateExpression=(
                "REMOVE #owner, #acquiredAt, #stateMachine, #timeout, #redrives, #overdue "
                "SET #lastOwner = :me, #lastOutcome = :outcome, "
                "#lastReleasedAt = :now, #lastReleasedBy = :by"
            ),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        # The item as it is now, returned with the failed condition (absent: no item at all).
        old = cast("dict[str, Any] | None", err.response.get("Item"))
        current = Lock.from_item(old) if old else None
        if current is None or current.owner is None:
            return ReleaseResult("already_free", current)
        if current.owner == owner:
            return ReleaseResult("reacquired_since", current, holder=owner)
        return ReleaseResult("held_by_other", current, holder=current.owner)
    return ReleaseResult("released", Lock.from_item(answer.get("Attributes", {})))


AcquireKind = Literal["acquired", "held_by_other"]


@dataclass(frozen=True)
class AcquireResult:
    kind: AcquireKind
    lock: Lock | None
    """After a successful acquisition: the lock as it is now; else as it was."""

    @property
    def holder(self) -> str | None:
        return self.lock.owner if self.lock else None


def acquire(
    client: DynamoDBClient,
    table: str,
    lock_id: str,
    *,
    owner: str,
    state_machine_arn: str,
    timeout_seconds: int | None,
    now: str,
    redrive_count: int = 0,
    replacing: str | None = None,
) -> AcquireResult:
    """Take `lock_id` for `owner`, as AcquireLock does: when it is free or already `owner`'s,
    or, with `replacing`, only while that (dead) execution still holds it. Every acquisition
    takes the next fencing token."""
    names = {
        "#owner": OWNER,
        "#acquiredAt": ACQUIRED_AT,
        "#stateMachine": STATE_MACHINE_ARN,
        "#token": TOKEN,
        "#redrives": REDRIVE_COUNT,
        "#overdue": OVERDUE_REPORTED_AT,
    }
    values: dict[str, Any] = {
        ":owner": {"S": owner},
        ":now": {"S": now},
        ":stateMachine": {"S": state_machine_arn},
        ":redrives": {"N": str(redrive_count)},
    }
    update = (
        "SET #owner = :owner, #acquiredAt = :now, #stateMachine = :stateMachine, "
        "#redrives = :redrives"
    )
    values[":one"] = {"N": "1"}
    if timeout_seconds is not None:
        names["#timeout"] = TIMEOUT_SECONDS
        values[":timeout"] = {"N": str(timeout_seconds)}
        update += ", #timeout = :timeout"
    update += " REMOVE #overdue ADD #token :one"
    if replacing is None:
        condition = "attribute_not_exists(#owner) OR #owner = :owner"
    else:
        condition = "#owner = :replacing"
        values[":replacing"] = {"S": replacing}
    try:
        answer = client.update_item(
            TableName=table,
            Key={LOCK_ID: {"S": lock_id}},
            UpdateExpression=update,
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        old = cast("dict[str, Any] | None", err.response.get("Item"))
        return AcquireResult("held_by_other", Lock.from_item(old) if old else None)
    return AcquireResult("acquired", Lock.from_item(answer.get("Attributes", {})))


def mark_overdue_reported(
    client: DynamoDBClient, table: str, lock_id: str, *, owner: str, now: str
) -> bool:
    """Note on a held lock that its overdue holder was reported, once per holder; False when
    the lock is no longer `owner`'s or was already reported."""
    try:
        client.update_item(
            TableName=table,
            Key={LOCK_ID: {"S": lock_id}},
            UpdateExpression="SET #overdue = :now",
            ConditionExpression="#owner = :owner AND attribute_not_exists(#overdue)",
            ExpressionAttributeNames={"#owner": OWNER, "#overdue": OVERDUE_REPORTED_AT},
            ExpressionAttributeValues={":owner": {"S": owner}, ":now": {"S": now}},
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def scan_pages(client: DynamoDBClient, table: str, page_size: int | None = None) -> Any:
    """Every item of the lock table, page by page (a consistent read of each page)."""
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    if page_size:
        kwargs["Limit"] = page_size
    for _ in range(1_000_000):  # bounded: a page per call until DynamoDB says it is the last
        page = client.scan(**kwargs)
        yield [Lock.from_item(item) for item in page.get("Items", [])]
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last
