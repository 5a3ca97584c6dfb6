"""The CLI's decisions without AWS: what each lock's row says, where the stack name comes from,
which dead letters it can read, and how AWS's errors are said."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from common.lock_table import Lock
from common.task_input import TaskInput
from common.truth import ExecutionTruth
from lock_janitor_cli import board
from lock_janitor_cli.errors import CliError
from lock_janitor_cli.operations import event_of
from lock_janitor_cli.stack import Schedule, Target, aws_errors, samconfig_defaults

NOW = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)
MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:locking"


def arn(name: str) -> str:
    return MACHINE.replace(":stateMachine:", ":execution:") + f":{name}"


def run(name: str, status: str = "RUNNING", lock_id: str = "nightly") -> ExecutionTruth:
    return ExecutionTruth(arn(name), status, name, MACHINE, input=TaskInput(lock_id, 600))


def held(owner: str, minutes_ago: float, timeout: int = 600) -> Lock:
    at = (NOW - timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    return Lock("nightly", owner=owner, token=7, acquired_at=at, timeout_seconds=timeout)


def one(
    lock: Lock | None,
    executions: list[ExecutionTruth],
    *,
    unreadable: dict[str, str] | None = None,
    odd: dict[str, str] | None = None,
    schedules: list[Schedule] | None = None,
) -> board.LockView:
    b = board.Board(
        NOW,
        {"nightly": lock} if lock else {},
        odd or {},
        {e.arn: e for e in executions},
        unreadable or {},
        schedules or [],
    )
    views = board.view(b)
    assert len(views) == 1
    return views[0]


def test_a_live_holder_within_its_timeout_raises_no_flag() -> None:
    v = one(held(arn("a"), 2), [run("a")])
    assert (v.state, v.holder, v.holder_status, v.flags) == ("held", "a", "RUNNING", ())
    assert v.token == 7
    assert v.held_seconds == 120
    assert v.console_url is not None
    assert v.console_url.startswith("https://eu-west-1.console.aws.amazon.com/states/home")


def test_a_holder_that_ended_is_stale() -> None:
    v = one(held(arn("a"), 2), [run("a", "FAILED")])
    assert v.flags == (board.STALE,)
    assert v.holder_status == "FAILED"
    assert "lock-janitor release" in v.notes[0]


def test_a_holder_past_its_timeout_is_overdue() -> None:
    v = one(held(arn("a"), 11), [run("a")])
    assert v.flags == (board.OVERDUE,)
    assert "past its timeout of 10m00s" in v.notes[0]


def test_a_run_without_its_lock_is_flagged_on_a_free_lock_and_beside_a_holder() -> None:
    free = one(Lock("nightly", token=3), [run("b")])
    assert free.state == "free"
    assert free.flags == (board.UNLOCKED_RUNNING,)
    assert free.running_unlocked == (arn("b"),)
    beside = one(held(arn("a"), 1), [run("a"), run("b")])
    assert beside.flags == (board.UNLOCKED_RUNNING,)
    assert beside.running_unlocked == (arn("b"),)


def test_what_cannot_be_read_is_said_not_guessed() -> None:
    v = one(held(arn("a"), 1), [], unreadable={arn("a"): "AccessDeniedException"})
    assert v.flags == (board.UNREADABLE,)
    assert v.holder_status == "UNREADABLE"
    odd = board.view(board.Board(NOW, {}, {"nightly": "Token is not a whole number"}, {}, {}, []))[
        0
    ]
    assert (odd.state, odd.flags) == ("odd", (board.UNREADABLE,))


def test_a_lock_only_a_schedule_names_is_shown_free() -> None:
    schedule = Schedule("s", "default", "rate(1 day)", "ENABLED", {"lockId": "nightly"})
    v = one(None, [], schedules=[schedule])
    assert (v.state, v.schedules, v.token) == ("free", ("s",), None)
    blank = Schedule("t", "default", "rate(1 day)", "ENABLED", {"lockId": "  "})
    assert blank.lock_id is None, "the state machine's rule for a lock id, not a looser one"


def test_the_stack_name_comes_from_the_option_then_samconfig_then_the_default(
    tmp_path: Path,
) -> None:
    assert Target.resolve(None, None, None, None, tmp_path).stack == "lock-janitor"
    (tmp_path / "samconfig.toml").write_text(
        'version = 0.1\n[default.global.parameters]\nstack_name = "g"\n'
        '[default.deploy.parameters]\nstack_name = "prod-locks"\nregion = "eu-west-1"\n'
    )
    found = Target.resolve(None, None, None, None, tmp_path)
    assert (found.stack, found.stack_from, found.region) == (
        "prod-locks",
        "samconfig.toml",
        "eu-west-1",
    )
    assert Target.resolve("other", "us-east-2", None, None, tmp_path).stack == "other"
    (tmp_path / "samconfig.toml").write_text("not = [toml")
    with pytest.raises(CliError, match="cannot read"):
        samconfig_defaults(tmp_path)


def test_both_shapes_of_dead_letter_give_the_event_and_nothing_else_does() -> None:
    event = {"detail-type": "Step Functions Execution Status Change", "detail": {}}
    assert event_of(json.dumps(event)) == event
    record = {"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": event}
    assert event_of(json.dumps(record)) == event
    for body in ("", "[]", '{"requestPayload": "text"}', '{"Records": []}'):
        with pytest.raises(ValueError, match=r"JSON|neither"):
            event_of(body)


def test_access_denied_is_said_as_one_line() -> None:
    """moto enforces no IAM: AWS's answer to a role without states:DescribeExecution is built
    here as AWS sends it."""
    target = Target("s", "--stack", "eu-west-1", None, None)
    denied = ClientError(
        {
            "Error": {
                "Code": "AccessDeniedException",
                "Message": "User: arn:aws:sts::123456789012:assumed-role/oncall/x is not "
                "authorized to perform: states:DescribeExecution",
            }
        },
        "DescribeExecution",
    )
    with pytest.raises(CliError) as caught, aws_errors(target):
        raise denied
    assert str(caught.value).startswith("access denied to DescribeExecution: User: ")
    assert "\n" not in str(caught.value)


def test_a_forced_release_and_its_follow_up_are_told_apart() -> None:
    from common.incident import Repairs, Severity
    from common.triage import OPERATOR_STOP_ERROR, ended, forced

    assert forced(stopped=False).severity == Severity.MEDIUM
    assert "goes on without" in forced(stopped=False).headline
    assert "stopped" in forced(stopped=True).headline
    follow_up = ended("ABORTED", OPERATOR_STOP_ERROR, Repairs("already_free", ""), "janitor")
    assert follow_up.severity == Severity.LOW
    # The janitor released first (the command was still waiting for the run to end): it is
    # the report of the stop, not a follow-up of one.
    first = ended(
        "ABORTED",
        OPERATOR_STOP_ERROR,
        Repairs("released", "", released_by="janitor", tasks_stopped=("t",)),
        "janitor",
    )
    assert first.severity == Severity.MEDIUM
    assert first.headline == "an operator stopped the running holder; 1 task stopped, lock released"
    assert "the janitor released its lock, once its task had stopped" in first.action
    assert "Follow-up" not in first.action
    # The command's own report of its stop (or of an earlier one that died before releasing).
    own = ended("ABORTED", OPERATOR_STOP_ERROR, Repairs("already_free", ""), "operator")
    assert own == forced(stopped=True)
    someone = ended("ABORTED", None, Repairs("released", ""), "janitor")
    assert someone.severity == Severity.HIGH


def test_the_known_locks_are_the_items_and_the_schedules_sorted_once_and_bounded() -> None:
    schedules = [
        Schedule(name, "default", "rate(1 day)", "ENABLED", {"lockId": lock_id})
        for name, lock_id in (("s1", "b"), ("s2", "a"), ("s3", " "), ("s4", "c"))
    ]
    assert board.known_locks({"c", "z"}, schedules) == ["a", "b", "c", "z"]
    assert str(board.no_lock_named("x", ["a", "b"])) == "no lock named 'x' (known: a, b)"
    assert str(board.no_lock_named("x", [])) == "no lock named 'x' (known: none)"
    many = [f"lock-{i:02d}" for i in range(board.KNOWN_SHOWN + 3)]
    said = str(board.no_lock_named("x", many))
    assert said.endswith(f"lock-{board.KNOWN_SHOWN - 1:02d}, ...)")
    assert f"lock-{board.KNOWN_SHOWN:02d}" not in said
    assert board.no_lock_named("x", []).code == 2
