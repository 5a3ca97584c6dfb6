"""Which notifications reached which channel: one DynamoDB item per channel and key (an incident
id, an alarm's SNS message id), claimed before the post, marked done after it.

- `claim` is one conditional PutItem: it succeeds when nobody holds the key, or when the holder's
  claim has expired (an instance that died mid-post); it fails with DONE (a duplicate: never
  post again) or BUSY (another instance is posting it now: come back later). Two instances with
  overlapping batches, single posts or digests alike, never both post one key.
- `done` marks a posted key, conditioned on still owning the claim. If that write fails, the
  post happened all the same: the record is acknowledged (never reported failed) and the claim
  simply expires.
- `release` gives a claim back after a post that did not happen, so the retry needs no wait.

Items expire by the table's TTL (`expiration`, epoch seconds); an item past it counts as absent
even before DynamoDB deletes it (TTL deletion lags)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

RETENTION_SECONDS = 86_400
"""How long a delivered key is remembered: far longer than SQS keeps a message retrying."""


class Claim(StrEnum):
    MINE = "mine"
    DONE = "done"
    """Posted before: a duplicate."""
    BUSY = "busy"
    """Another instance holds it now."""
    UNKNOWN = "unknown"
    """The table could not be asked: nothing is posted."""


@dataclass(frozen=True)
class Claimed:
    state: Claim
    retry_in: float = 0.0
    """For BUSY: seconds until the other claim expires."""
    error: str | None = None


class Ledger:
    def __init__(
        self,
        dynamodb: Any,
        table: str,
        owner: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ddb = dynamodb
        self._table = table
        self._owner = owner
        self._clock = clock

    def claim(self, key: str, hold_seconds: float) -> Claimed:
        now = int(self._clock())
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={
                    "id": {"S": key},
                    "status": {"S": "CLAIMED"},
                    "owner": {"S": self._owner},
                    "claimExpires": {"N": str(now + int(hold_seconds) + 1)},
                    "expiration": {"N": str(now + RETENTION_SECONDS)},
                },
                ConditionExpression=(
                    "attribute_not_exists(id) OR expiration < :now "
                    "OR (#s = :claimed AND claimExpires < :now)"
                ),
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":now": {"N": str(now)}, ":claimed": {"S": "CLAIMED"}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                return Claimed(Claim.UNKNOWN, error=_code(err))
            old: dict[str, Any] = dict(err.response.get("Item") or {})  # type: ignore[call-overload]
            if old.get("status", {}).get("S") == "DONE":
                return Claimed(Claim.DONE)
            expires = int(old.get("claimExpires", {}).get("N", now))
            return Claimed(Claim.BUSY, retry_in=max(expires - now, 1))
        except BotoCoreError as err:
            return Claimed(Claim.UNKNOWN, error=type(err).__name__)
        return Claimed(Claim.MINE)

    def done(self, key: str) -> str | None:
        """Mark a posted key; the error code when the mark could not be written."""
        now = int(self._clock())
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                UpdateExpression="SET #s = :done, doneAt = :now, expiration = :exp "
                "REMOVE claimExpires",
                ConditionExpression="#o = :me",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues={
                    ":done": {"S": "DONE"},
                    ":now": {"N": str(now)},
                    ":exp": {"N": str(now + RETENTION_SECONDS)},
                    ":me": {"S": self._owner},
                },
            )
        except ClientError as err:
            return _code(err)
        except BotoCoreError as err:
            return type(err).__name__
        return None

    def release(self, key: str) -> None:
        """Give a claim back (best effort: an unreleased claim expires on its own)."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._ddb.delete_item(
                TableName=self._table,
                Key={"id": {"S": key}},
                ConditionExpression="#o = :me AND #s = :claimed",
                ExpressionAttributeNames={"#s": "status", "#o": "owner"},
                ExpressionAttributeValues={":me": {"S": self._owner}, ":claimed": {"S": "CLAIMED"}},
            )


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code") or "ClientError")
