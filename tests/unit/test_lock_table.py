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
from common.lock_table import (
    Fence,
    HeldBy,
    Lock,
    OddItem,
    Outcome,
    ReleasedBy,
    get_lock,
    mark_overdue_reported,
    release,
    take,
)
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


def released_by_janitor(client: Any, name: str, lock_id: str, fence: Fence) -> Any:
    return release(
        client, name, lock_id, fence, outcome=Outcome.ABORTED, by=ReleasedBy.JANITOR, now=NOW
    )


def test_a_fenced_release_frees_the_lock_and_records_the_outcome(table: Any) -> None:
    client, name = table
    put(client, LockId="job", Owner=ME, Token=4, AcquiredAt=NOW, AcquiredBy="state-machine")
    result = released_by_janitor(client, name, "job", Fence(ME, 4, None))
    assert result.kind == "done"
    after = get_lock(client, name, "job")
    assert after == result.lock
    assert after == Lock(
        lock_id="job",
        token=4,
        last_owner=ME,
        last_outcome="ABORTED",
        last_released_at=NOW,
        last_released_by="janitor",
        last_redrive_count=0,
    )


@pytest.mark.parametrize(
    ("item", "fence"),
    [
        ({"Owner": OTHER, "Token": 5}, Fence(ME, 4, None)),  # taken by another run since
        ({"Owner": ME, "Token": 5}, Fence(ME, 4, None)),  # the same execution took it again
        ({"Owner": ME, "Token": 4, "RedriveCount": 1}, Fence(ME, 4, None)),  # for a redrive
        ({"Owner": ME, "Token": 4}, Fence(ME, 4, 1)),  # the redrive's lock was released since
        ({"Token": 4, "LastOwner": ME}, Fence(ME, 4, None)),  # already released
    ],
)
def test_a_release_never_touches_a_lock_that_changed_since_it_was_read(
    table: Any, item: dict[str, Any], fence: Fence
) -> None:
    client, name = table
    put(client, LockId="job", **item)
    before = get_lock(client, name, "job")
    result = released_by_janitor(client, name, "job", fence)
    assert result.kind == "changed"
    assert result.lock == before, "the lock as it is now comes back with the refusal"
    assert get_lock(client, name, "job") == before


def test_a_release_never_creates_an_item(table: Any) -> None:
    client, name = table
    result = released_by_janitor(client, name, "never", Fence(ME, 1, None))
    assert (result.kind, result.lock) == ("changed", None)
    assert get_lock(client, name, "never") is None


def test_other_errors_propagate(table: Any) -> None:
    client, _ = table
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        released_by_janitor(client, "no-such-table", "job", Fence(ME, 1, None))


def taken(client: Any, name: str, expected: Lock | None, owner: str, attempt: int) -> Any:
    return take(
        client,
        name,
        "job",
        expected=expected,
        owner=owner,
        state_machine_arn="arn:sm",
        timeout_seconds=60,
        redrive_count=attempt,
        by=ReleasedBy.JANITOR,
        now=NOW,
    )


def test_take_a_free_lock_an_own_lock_and_a_dead_holders_lock(table: Any) -> None:
    client, name = table
    first = taken(client, name, None, ME, 1)
    assert first.kind == "done"
    assert (first.lock.owner, first.lock.token, first.lock.redrive_count) == (ME, 1, 1)
    assert first.lock.acquired_by == "janitor"
    own = taken(client, name, first.lock, ME, 2)
    assert own.kind == "done"
    assert own.lock.token == 1, "the same execution keeps its token: its task still carries it"
    assert own.lock.redrive_count == 2
    stale = taken(client, name, first.lock, OTHER, 0)
    assert stale.kind == "changed", "the lock changed since it was read (attempt 2 now)"
    over = taken(client, name, own.lock, OTHER, 0)
    assert over.kind == "done"
    assert (over.lock.owner, over.lock.token) == (OTHER, 2), "a new tenure takes the next token"
    released_by_janitor(client, name, "job", Fence.of(over.lock))
    free = get_lock(client, name, "job")
    assert free is not None
    assert taken(client, name, Lock("job", token=1), ME, 3).kind == "changed"
    again = taken(client, name, free, ME, 3)
    assert (again.kind, again.lock.token) == ("done", 3)


def test_overdue_is_marked_once_and_only_on_the_lock_as_read(table: Any) -> None:
    client, name = table
    put(client, LockId="job", Owner=ME, Token=4)
    assert not mark_overdue_reported(client, name, "job", Fence(ME, 3, None), now=NOW)
    assert mark_overdue_reported(client, name, "job", Fence(ME, 4, None), now=NOW)
    assert not mark_overdue_reported(client, name, "job", Fence(ME, 4, None), now=NOW)


@pytest.mark.parametrize(
    "item",
    [
        {"LockId": {"S": "job"}, "TimeoutSeconds": {"N": "1.5"}},
        {"LockId": {"S": "job"}, "Token": {"S": "seven"}},
        {"LockId": {"N": "3"}},
        {"LockId": {"S": "job"}, "Owner": {"N": "1"}},
    ],
)
def test_an_item_the_protocol_did_not_write_is_odd_not_guessed(item: dict[str, Any]) -> None:
    with pytest.raises(OddItem):
        Lock.from_item(item)


def _asl_states() -> dict[str, Any]:
    text = re.sub(r"\$\{\w+\}", "0", ASL_PATH.read_text())
    states: dict[str, Any] = json.loads(text)["States"]
    return states


def test_the_state_machine_and_python_speak_the_same_protocol() -> None:
    states = _asl_states()
    dynamo = {  # JSONPath states have Parameters, JSONata ones Arguments
        name: s.get("Parameters") or s["Arguments"]
        for name, s in states.items()
        if s.get("Resource", "").split(":::")[-1].startswith("dynamodb:")
    }
    assert "AcquireLock" in dynamo
    assert dynamo, "the ASL has DynamoDB states"
    for name, params in dynamo.items():
        used = set(params.get("ExpressionAttributeNames", {}).values()) | set(params["Key"])
        assert used <= lock_table.ATTRIBUTES, f"{name} uses attributes Python does not know"
    releases = [p for p in dynamo.values() if p.get("UpdateExpression", "").startswith("REMOVE")]
    assert len(releases) == 1, "only after the task succeeded"
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


@pytest.mark.parametrize(
    ("item", "attempt"),
    [
        ({"Owner": ME, "Token": 4}, 0),  # held by the ended execution, never redriven
        ({"Owner": ME, "Token": 4, "RedriveCount": 1}, 1),  # held for the attempt read
        ({"Owner": ME, "Token": 4, "RedriveCount": 1}, 2),  # the redrive died before taking it
    ],
)
def test_a_release_held_by_an_ended_execution_frees_it(
    table: Any, item: dict[str, Any], attempt: int
) -> None:
    client, name = table
    put(client, LockId="job", **item)
    result = release(
        client,
        name,
        "job",
        HeldBy(ME, attempt),
        outcome=Outcome.FAILED,
        by=ReleasedBy.JANITOR,
        now=NOW,
        attempt=attempt,
    )
    assert result.kind == "done"
    assert result.lock == get_lock(client, name, "job")
    assert result.lock is not None
    assert (result.lock.owner, result.lock.last_owner) == (None, ME)


@pytest.mark.parametrize(
    "item",
    [
        {"Owner": OTHER, "Token": 5},  # another run holds it
        {"Owner": ME, "Token": 4, "RedriveCount": 2},  # a redrive of it took it again since
        {"Token": 4, "LastOwner": ME, "LastReleasedBy": "state-machine"},  # already free
    ],
)
def test_a_release_held_by_never_frees_what_it_does_not_hold_and_says_how_it_stands(
    table: Any, item: dict[str, Any]
) -> None:
    client, name = table
    put(client, LockId="job", **item)
    before = get_lock(client, name, "job")
    result = release(
        client,
        name,
        "job",
        HeldBy(ME, 1),
        outcome=Outcome.FAILED,
        by=ReleasedBy.JANITOR,
        now=NOW,
        attempt=1,
    )
    assert result.kind == "changed"
    assert result.lock == before == get_lock(client, name, "job"), "untouched, and said so"


def test_a_release_held_by_of_a_lock_with_no_item_writes_none(table: Any) -> None:
    client, name = table
    result = release(
        client, name, "job", HeldBy(ME, 0), outcome=Outcome.FAILED, by=ReleasedBy.JANITOR, now=NOW
    )
    assert (result.kind, result.lock) == ("changed", None)
    assert get_lock(client, name, "job") is None
