"""The lock table protocol, for the Python side of the house.

One item per task, keyed by `LockId`, kept after release as that task's status row. "Held"
means `attribute_exists(Owner)`. The state machine (statemachine/locking.asl.json) acquires
with `ADD Token 1` on condition free (or already its own) and releases on `Owner = <itself>`:
it is the holder, so it needs no more. The janitor, the reconciler and the operator act on a
lock they read a moment ago, so every write of theirs is fenced on what they read: owner,
fencing token and the redrive attempt recorded (`Fence`). Nothing deletes a lock item.
tests/unit/test_lock_table.py checks that the ASL and this module use the same names.

Items whose key starts with `#` are not locks: the janitor's own records (reports kept until
published, `common.pending`). No lock id may start with `#` (`common.task_input`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, cast

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LOCK_ID = "LockId"
OWNER = "Owner"
ACQUIRED_AT = "AcquiredAt"
ACQUIRED_BY = "AcquiredBy"
STATE_MACHINE_ARN = "StateMachineArn"
TIMEOUT_SECONDS = "TimeoutSeconds"
REDRIVE_COUNT = "RedriveCount"
OVERDUE_REPORTED_AT = "OverdueReportedAt"
TOKEN = "Token"  # noqa: S105 - an attribute name, not a secret
LAST_OWNER = "LastOwner"
LAST_OUTCOME = "LastOutcome"
LAST_RELEASED_AT = "LastReleasedAt"
LAST_RELEASED_BY = "LastReleasedBy"
LAST_REDRIVE_COUNT = "LastRedriveCount"

HELD_ATTRIBUTES = (
    OWNER,
    ACQUIRED_AT,
    ACQUIRED_BY,
    STATE_MACHINE_ARN,
    TIMEOUT_SECONDS,
    REDRIVE_COUNT,
    OVERDUE_REPORTED_AT,
)
"""Present only while the lock is held; a release removes them."""
ATTRIBUTES = frozenset(
    {
        LOCK_ID,
        TOKEN,
        *HELD_ATTRIBUTES,
        LAST_OWNER,
        LAST_OUTCOME,
        LAST_RELEASED_AT,
        LAST_RELEASED_BY,
        LAST_REDRIVE_COUNT,
    }
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
    """Who released the lock (`LastReleasedBy`), or took it (`AcquiredBy`)."""

    STATE_MACHINE = "state-machine"
    JANITOR = "janitor"
    RECONCILER = "reconciler"
    OPERATOR = "operator"


class OddItem(ValueError):
    """A lock item the protocol did not write: skipped and reported, never guessed at."""


@dataclass(frozen=True)
class Lock:
    """One item of the lock table, typed."""

    lock_id: str
    owner: str | None = None
    token: int = 0
    acquired_at: str | None = None
    acquired_by: str | None = None
    state_machine_arn: str | None = None
    timeout_seconds: int | None = None
    redrive_count: int | None = None
    overdue_reported_at: str | None = None
    last_owner: str | None = None
    last_outcome: str | None = None
    last_released_at: str | None = None
    last_released_by: str | None = None
    last_redrive_count: int | None = None
    """The attempt of LastOwner on whose behalf the janitor or the reconciler released it."""

    @property
    def held(self) -> bool:
        return self.owner is not None

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Lock:
        """From a low-level DynamoDB item ({"Owner": {"S": ...}, "Token": {"N": ...}}). Raises
        OddItem when an attribute is not what the protocol writes (a hand-edited item)."""

        def s(name: str) -> str | None:
            value = item.get(name)
            if value is None:
                return None
            if not isinstance(value, dict) or not isinstance(value.get("S"), str):
                raise OddItem(f"{name} is not a string: {value!r}"[:300])
            return str(value["S"])

        def n(name: str) -> int | None:
            value = item.get(name)
            if value is None:
                return None
            raw = value.get("N") if isinstance(value, dict) else None
            try:
                return int(str(raw))
            except ValueError:
                raise OddItem(f"{name} is not a whole number: {value!r}"[:300]) from None

        return cls(
            lock_id=s(LOCK_ID) or "",
            owner=s(OWNER),
            token=n(TOKEN) or 0,
            acquired_at=s(ACQUIRED_AT),
            acquired_by=s(ACQUIRED_BY),
            state_machine_arn=s(STATE_MACHINE_ARN),
            timeout_seconds=n(TIMEOUT_SECONDS),
            redrive_count=n(REDRIVE_COUNT),
            overdue_reported_at=s(OVERDUE_REPORTED_AT),
            last_owner=s(LAST_OWNER),
            last_outcome=s(LAST_OUTCOME),
            last_released_at=s(LAST_RELEASED_AT),
            last_released_by=s(LAST_RELEASED_BY),
            last_redrive_count=n(LAST_REDRIVE_COUNT),
        )


def get_lock(client: DynamoDBClient, table: str, lock_id: str) -> Lock | None:
    """The lock item as it is now (a consistent read); None when there is no item."""
    item = client.get_item(TableName=table, Key={LOCK_ID: {"S": lock_id}}, ConsistentRead=True)
    return Lock.from_item(item["Item"]) if "Item" in item else None


@dataclass(frozen=True)
class Fence:
    """What a write is conditioned on: the lock as it was read (owner, token, and the redrive
    attempt recorded for it). A lock taken again, by anyone, after the read fails the
    condition: every acquisition changes the token or the attempt."""

    owner: str
    token: int
    redrive_count: int | None

    @classmethod
    def of(cls, lock: Lock) -> Fence:
        if lock.owner is None:
            raise ValueError(f"lock {lock.lock_id} is free: nothing to fence on")
        return cls(lock.owner, lock.token, lock.redrive_count)

    def condition(self, names: dict[str, str], values: dict[str, Any]) -> str:
        names.update({"#owner": OWNER, "#token": TOKEN, "#redrives": REDRIVE_COUNT})
        values.update({":fenceOwner": {"S": self.owner}, ":fenceToken": {"N": str(self.token)}})
        condition = "#owner = :fenceOwner AND #token = :fenceToken"
        if self.redrive_count is None:
            return condition + " AND attribute_not_exists(#redrives)"
        values[":fenceRedrives"] = {"N": str(self.redrive_count)}
        return condition + " AND #redrives = :fenceRedrives"


@dataclass(frozen=True)
class HeldBy:
    """What a release is conditioned on when the lock was not read first: the holder and the
    attempt it was read to be in (DescribeExecution's redrive count), for an execution read to
    have ended. The lock is released only while that execution holds it for that attempt or an
    earlier one: taken again by anyone else, or by this execution's redrive, it fails. (The
    token needs no check: it changes only with the owner, and a redrive that takes the lock
    again records its higher attempt.)"""

    owner: str
    attempt: int

    def condition(self, names: dict[str, str], values: dict[str, Any]) -> str:
        names.update({"#owner": OWNER, "#redrives": REDRIVE_COUNT})
        values.update({":fenceOwner": {"S": self.owner}, ":fenceAttempt": {"N": str(self.attempt)}})
        return (
            "#owner = :fenceOwner AND "
            "(attribute_not_exists(#redrives) OR #redrives <= :fenceAttempt)"
        )


WriteKind = Literal["done", "changed"]


@dataclass(frozen=True)
class WriteResult:
    """A fenced write: done (`lock` is the item after it), or the lock changed since it was
    read (`lock` is the item as it is now, None when there is none)."""

    kind: WriteKind
    lock: Lock | None


def _fenced_update(  # noqa: PLR0917 - the parts of one UpdateItem
    client: DynamoDBClient,
    table: str,
    lock_id: str,
    update: str,
    condition: str,
    names: dict[str, str],
    values: dict[str, Any],
) -> WriteResult:
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
        # The item as it is now, returned with the failed condition (absent: no item at all).
        old = cast("dict[str, Any] | None", err.response.get("Item"))
        return WriteResult("changed", Lock.from_item(old) if old else None)
    return WriteResult("done", Lock.from_item(answer.get("Attributes", {})))


def release(
    client: DynamoDBClient,
    table: str,
    lock_id: str,
    fence: Fence | HeldBy,
    *,
    outcome: Outcome,
    by: ReleasedBy,
    now: str,
    attempt: int = 0,
) -> WriteResult:
    """Release `lock_id` only while it is exactly as read (`fence`), or, for an execution read
    to have ended, while that execution still holds it for its attempt (`HeldBy`); recording
    how the holder's run ended, who released it, and for which attempt of the holder
    (`attempt`: its redrive count). Never overwrites a lock taken since. Either way the answer
    holds the lock as it is after: released, or as it stands when the condition failed."""
    names = {
        "#acquiredAt": ACQUIRED_AT,
        "#acquiredBy": ACQUIRED_BY,
        "#stateMachine": STATE_MACHINE_ARN,
        "#timeout": TIMEOUT_SECONDS,
        "#overdue": OVERDUE_REPORTED_AT,
        "#lastOwner": LAST_OWNER,
        "#lastOutcome": LAST_OUTCOME,
        "#lastReleasedAt": LAST_RELEASED_AT,
        "#lastReleasedBy": LAST_RELEASED_BY,
        "#lastAttempt": LAST_REDRIVE_COUNT,
    }
    values: dict[str, Any] = {
        ":outcome": {"S": outcome.value},
        ":now": {"S": now},
        ":by": {"S": by.value},
        ":attempt": {"N": str(attempt)},
    }
    condition = fence.condition(names, values)
    # RedriveCount stays: the attempt the released tenure was taken for (absent: by the state
    # machine, at attempt 0), which tells the release's report since which attempt its stops
    # went unreported (common.repair). The next acquisition sets or removes it.
    update = (
        "REMOVE #owner, #acquiredAt, #acquiredBy, #stateMachine, #timeout, #overdue "
        "SET #lastOwner = :fenceOwner, #lastOutcome = :outcome, "
        "#lastReleasedAt = :now, #lastReleasedBy = :by, #lastAttempt = :attempt"
    )
    return _fenced_update(client, table, lock_id, update, condition, names, values)


def take(
    client: DynamoDBClient,
    table: str,
    lock_id: str,
    *,
    expected: Lock | None,
    owner: str,
    state_machine_arn: str,
    timeout_seconds: int | None,
    redrive_count: int,
    by: ReleasedBy,
    now: str,
) -> WriteResult:
    """Take `lock_id` for `owner`'s current attempt (`redrive_count`), only if the lock is still
    as read (`expected`: None for no item, a free lock, or a holder's lock). A new tenure takes
    the next fencing token; `owner` taking again its own lock from an earlier attempt keeps the
    token (the redriven task still carries it) and records the attempt."""
    names = {
        "#owner": OWNER,
        "#acquiredAt": ACQUIRED_AT,
        "#acquiredBy": ACQUIRED_BY,
        "#stateMachine": STATE_MACHINE_ARN,
        "#token": TOKEN,
        "#redrives": REDRIVE_COUNT,
        "#overdue": OVERDUE_REPORTED_AT,
    }
    values: dict[str, Any] = {
        ":owner": {"S": owner},
        ":now": {"S": now},
        ":by": {"S": by.value},
        ":stateMachine": {"S": state_machine_arn},
        ":redrives": {"N": str(redrive_count)},
    }
    update = (
        "SET #owner = :owner, #acquiredAt = :now, #acquiredBy = :by, "
        "#stateMachine = :stateMachine, #redrives = :redrives"
    )
    if timeout_seconds is not None:
        names["#timeout"] = TIMEOUT_SECONDS
        values[":timeout"] = {"N": str(timeout_seconds)}
        update += ", #timeout = :timeout"
    update += " REMOVE #overdue"
    if expected is None:
        condition = "attribute_not_exists(#owner) AND attribute_not_exists(#token)"
    elif expected.owner is None:
        values[":expectedToken"] = {"N": str(expected.token)}
        condition = "attribute_not_exists(#owner) AND #token = :expectedToken"
    else:
        condition = Fence.of(expected).condition(names, values)
    if expected is None or expected.owner != owner:
        values[":one"] = {"N": "1"}
        update += " ADD #token :one"
    return _fenced_update(client, table, lock_id, update, condition, names, values)


def mark_overdue_reported(
    client: DynamoDBClient, table: str, lock_id: str, fence: Fence, *, now: str
) -> bool:
    """Note on a held lock that its overdue holder was reported, once per holder; False when
    the lock changed since it was read or was already reported."""
    names = {"#overdue": OVERDUE_REPORTED_AT}
    values: dict[str, Any] = {":now": {"S": now}}
    condition = fence.condition(names, values) + " AND attribute_not_exists(#overdue)"
    try:
        client.update_item(
            TableName=table,
            Key={LOCK_ID: {"S": lock_id}},
            UpdateExpression="SET #overdue = :now",
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def scan_pages(
    client: DynamoDBClient, table: str, page_size: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Every item of the lock table, raw, page by page (a consistent read of each page)."""
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    if page_size:
        kwargs["Limit"] = page_size
    for _ in range(1_000_000):  # bounded: a page per call until DynamoDB says it is the last
        page = client.scan(**kwargs)
        yield list(page.get("Items", []))
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        kwargs["ExclusiveStartKey"] = last
