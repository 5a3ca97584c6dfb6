"""The lock table protocol in Python, under moto, and its agreement with the state machine."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from common import lock_table
from common.lock_table import Lock, Outcome, ReleasedBy, acquire, get_lock, release
from local.template import ASL_PATH, load_template

ME = "arn:aws:states:us-east-1:123456789012:execution:locking:me"
OTHER = "arn:aws:states:us-east-1:123456789012:execution:locking:other"
NOW = "2026-11-29T03:00:00Z"


@pytest.fixture
def table() -> Iterator[tuple[Any, str]]:
    with mock_aws():
        props = load_template()["Resources"]["LockTable"]["Properties"]
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="locks",
            KeySchema=props["KeySchema"],
            AttributeDefinitions=props["AttributeDefinitions"],
            BillingMode=props["BillingMode"],
        )
        yield client, "locks"


def put(client: Any, **attrs: Any) -> None:
    item = {k: ({"N": str(v)} if isinstance(v, int) else {"S": v}) for k, v in attrs.items()}
    client.put_item(TableName="locks", Item=item)


def test_release_by_the_owner_frees_the_lock_and_records_the_outcome(table: Any) -> None:
    client, name = table
    put(client, LockId="job", Owner=ME, Token=4, AcquiredAt=NOW, TimeoutSeconds=60)
    result = release(
        client, name, "job", owner=ME, outcome=Outcome.ABORTED, by=ReleasedBy.JANITOR, now=NOW
    )
    assert result.kind == "released"
    assert result.lock is not None
    assert result.lock.owner == ME
    after = get_lock(client, name, "job")
    assert after == Lock(
        lock_id="job",
        token=4,
        last_owner=ME,
        last_outcome="ABORTED",
        last_released_at=NOW,
        last_released_by="janitor",
    )


def test_release_tells_already_free_from_held_by_another_and_touches_neither(
    table: Any,
) -> None:
    client, name = table
    put(client, LockId="free", Token=2, LastOwner=ME, LastOutcome="SUCCEEDED")
    put(client, LockId="taken", Owner=OTHER, Token=3)
    before = {k: get_lock(client, name, k) for k in ("free", "taken")}

    free = release(
        client, name, "free", owner=ME, outcome=Outcome.FAILED, by=ReleasedBy.JANITOR, now=NOW
    )
    taken = release(
        client, name, "taken", owner=ME, outcome=Outcome.FAILED, by=ReleasedBy.JANITOR, now=NOW
    )
    missing = release(
        client, name, "never", owner=ME, outcome=Outcome.FAILED, by=ReleasedBy.JANITOR, now=NOW
    )

    assert (free.kind, free.holder) == ("already_free", None)
    assert (taken.kind, taken.holder) == ("held_by_other", OTHER)
    assert taken.lock is not None
    assert taken.lock.token == 3
    assert (missing.kind, missing.lock) == ("already_free", None)
    assert {k: get_lock(client, name, k) for k in ("free", "taken")} == before
    assert get_lock(client, name, "never") is None, "a release never creates an item"


def test_other_errors_propagate(table: Any) -> None:
    client, _ = table
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        release(
            client,
            "no-such-table",
            "job",
            owner=ME,
            outcome=Outcome.FAILED,
            by=ReleasedBy.JANITOR,
            now=NOW,
        )


def _asl_states() -> dict[str, Any]:
    text = re.sub(r"\$\{\w+\}", "0", ASL_PATH.read_text())
    states: dict[str, Any] = json.loads(text)["States"]
    return states


def test_the_state_machine_and_python_speak_the_same_protocol() -> None:
    states = _asl_states()
    dynamo = {
        name: s["Parameters"]
        for name, s in states.items()
        if s.get("Resource", "").split(":::")[-1].startswith("dynamodb:")
    }
    assert dynamo, "the ASL has DynamoDB states"
    for name, params in dynamo.items():
        used = set(params.get("ExpressionAttributeNames", {}).values()) | set(params["Key"])
        assert used <= lock_table.ATTRIBUTES, f"{name} uses attributes Python does not know"
    releases = [p for p in dynamo.values() if p.get("UpdateExpression", "").startswith("REMOVE")]
    assert len(releases) == 3
    for params in releases:
        names = params["ExpressionAttributeNames"]
        removed = re.match(r"REMOVE ([^S]+) SET", params["UpdateExpression"])
        assert removed is not None
        attrs = {names[n.strip()] for n in removed.group(1).split(",")}
        assert attrs == set(lock_table.HELD_ATTRIBUTES), "a release removes every held attribute"
        assert params["ConditionExpression"] == "#owner = :me"
        assert names["#owner"] == lock_table.OWNER
        outcome = params["ExpressionAttributeValues"][":outcome"]["S"]
        assert outcome in set(Outcome)
        assert params["ExpressionAttributeValues"][":by"]["S"] == ReleasedBy.STATE_MACHINE


def test_a_later_redrive_of_the_same_execution_keeps_its_lock(table: Any) -> None:
    """Events arrive in any order: the FAILED event of the run before a redrive must not free
    the lock the redriven run (same ARN, higher RedriveCount) holds."""
    client, name = table
    put(client, LockId="job", Owner=ME, Token=5, RedriveCount=1)
    late = release(
        client,
        name,
        "job",
        owner=ME,
        outcome=Outcome.FAILED,
        by=ReleasedBy.JANITOR,
        now=NOW,
        redrive_count=0,
    )
    assert late.kind == "reacquired_since"
    assert get_lock(client, name, "job").owner == ME  # type: ignore[union-attr]
    current = release(
        client,
        name,
        "job",
        owner=ME,
        outcome=Outcome.FAILED,
        by=ReleasedBy.JANITOR,
        now=NOW,
        redrive_count=1,
    )
    assert current.kind == "released"
    after = get_lock(client, name, "job")
    assert after is not None
    assert after.owner is None
    assert after.redrive_count is None, "a release removes every held attribute"


def test_acquire_free_own_and_replacing(table: Any) -> None:
    client, name = table
    kwargs = {"state_machine_arn": "arn:sm", "timeout_seconds": 60, "now": NOW}
    first = acquire(client, name, "job", owner=ME, redrive_count=1, **kwargs)
    assert first.kind == "acquired"
    assert first.lock is not None
    assert (first.lock.owner, first.lock.token, first.lock.redrive_count) == (ME, 1, 1)
    again = acquire(client, name, "job", owner=ME, redrive_count=2, **kwargs)
    assert again.kind == "acquired"
    assert again.lock is not None
    assert again.lock.token == 2, "every acquisition takes the next token"
    refused = acquire(client, name, "job", owner=OTHER, **kwargs)
    assert (refused.kind, refused.holder) == ("held_by_other", ME)
    stale = acquire(client, name, "job", owner=OTHER, replacing="arn:someone-else", **kwargs)
    assert stale.kind == "held_by_other", "take-over only while the dead holder still holds it"
    taken = acquire(client, name, "job", owner=OTHER, replacing=ME, **kwargs)
    assert taken.kind == "acquired"
    assert taken.lock is not None
    assert (taken.lock.owner, taken.lock.token) == (OTHER, 3)
