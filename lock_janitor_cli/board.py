"""`lock-janitor status`: every lock as the truth shows it now.

Read once (`read_board`): the lock table (a consistent scan), the holder of each held lock and
every RUNNING execution (DescribeExecution: ListExecutions lags, so it only says whom to ask),
the schedules (which locks exist even when never taken). Then `view` decides, without I/O, what
each lock's row says and which flags it raises:

- `stale`: held by an execution that has ended (the janitor or the reconciler frees it);
- `overdue`: the holder runs past its timeoutSeconds;
- `unlocked-running`: an execution of this lock runs without holding it;
- `unreadable`: the holder could not be read (access denied), or the item is not the protocol's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.incident import Execution, duration_text
from common.lock_table import LOCK_ID, Lock, OddItem, scan_pages
from common.pending import is_pending
from common.truth import (
    AwsError,
    ExecutionTruth,
    TaskTruth,
    describe_execution,
    describe_tasks,
    error_code,
    parse_time,
    read_history,
)
from lock_janitor_cli.errors import NotFound
from lock_janitor_cli.stack import Schedule, Stack
from reconciler.reconcile import running_executions

STALE = "stale"
OVERDUE = "overdue"
UNLOCKED_RUNNING = "unlocked-running"
UNREADABLE = "unreadable"
KNOWN_SHOWN = 10
"""How many known lock ids a `no lock named` error lists."""


@dataclass(frozen=True)
class Board:
    """What was read, once."""

    now: datetime
    locks: dict[str, Lock]
    odd: dict[str, str]
    """Lock id -> why its item is not one the protocol wrote."""
    executions: dict[str, ExecutionTruth]
    """Every holder and every RUNNING execution, described."""
    unreadable: dict[str, str]
    """Execution ARN -> why it could not be described."""
    schedules: list[Schedule] = field(default_factory=list)
    schedules_error: str | None = None

    @property
    def item_ids(self) -> set[str]:
        """The lock id of every item read, the protocol's or not."""
        return set(self.locks) | set(self.odd)


@dataclass(frozen=True)
class LockView:
    lock_id: str
    state: str
    """free | held | odd"""
    holder: str | None = None
    holder_arn: str | None = None
    holder_status: str | None = None
    held_seconds: float | None = None
    timeout_seconds: int | None = None
    token: int | None = None
    acquired_by: str | None = None
    last_outcome: str | None = None
    last_released_at: str | None = None
    last_released_by: str | None = None
    last_owner: str | None = None
    flags: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """One line per flag, saying what it means for this lock."""
    running_unlocked: tuple[str, ...] = ()
    schedules: tuple[str, ...] = ()
    console_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "lockId": self.lock_id,
            "state": self.state,
            "holder": self.holder_arn,
            "holderStatus": self.holder_status,
            "heldSeconds": None if self.held_seconds is None else round(self.held_seconds, 1),
            "timeoutSeconds": self.timeout_seconds,
            "token": self.token,
            "acquiredBy": self.acquired_by,
            "lastOutcome": self.last_outcome,
            "lastReleasedAt": self.last_released_at,
            "lastReleasedBy": self.last_released_by,
            "lastOwner": self.last_owner,
            "flags": list(self.flags),
            "notes": list(self.notes),
            "runningWithoutLock": list(self.running_unlocked),
            "schedules": list(self.schedules),
            "consoleUrl": self.console_url,
        }


def _lock_items(stack: Stack) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every lock's item in the table, with its lock id (kept reports are not locks)."""
    for page in scan_pages(stack.aws.dynamodb, stack.table):
        for item in page:
            key = item.get(LOCK_ID, {}).get("S")
            if isinstance(key, str) and not is_pending(item):
                yield key, item


def item_ids(stack: Stack) -> set[str]:
    """The lock id of every lock's item in the table, the protocol's or not."""
    return {key for key, _ in _lock_items(stack)}


def read_board(stack: Stack, now: datetime | None = None) -> Board:
    aws = stack.aws
    locks: dict[str, Lock] = {}
    odd: dict[str, str] = {}
    for key, item in _lock_items(stack):
        try:
            locks[key] = Lock.from_item(item)
        except OddItem as err:
            odd[key] = str(err)
    arns = {lock.owner for lock in locks.values() if lock.owner}
    arns |= set(running_executions(aws, stack.state_machine_arn))
    executions: dict[str, ExecutionTruth] = {}
    unreadable: dict[str, str] = {}
    for arn in sorted(arns):
        try:
            executions[arn] = describe_execution(aws.stepfunctions, arn)
        except AwsError as err:
            unreadable[arn] = error_code(err) or type(err).__name__
    schedules: list[Schedule] = []
    schedules_error = None
    try:
        schedules = stack.schedules()
    except AwsError as err:  # status without schedule names is still status
        schedules_error = error_code(err) or type(err).__name__
    return Board(
        now or datetime.now(UTC), locks, odd, executions, unreadable, schedules, schedules_error
    )


def view(board: Board) -> list[LockView]:
    """One row per lock: every item of the table, every lock a schedule or a running execution
    names; sorted by lock id."""
    running: dict[str, list[ExecutionTruth]] = {}
    for e in board.executions.values():
        if e.alive and e.input.lock_id:
            running.setdefault(e.input.lock_id, []).append(e)
    scheduled: dict[str, list[str]] = {}
    for s in board.schedules:
        if s.lock_id:
            scheduled.setdefault(s.lock_id, []).append(s.name)
    ids = set(board.locks) | set(board.odd) | set(running) | set(scheduled)
    return [
        lock_view(
            lock_id,
            board.locks.get(lock_id),
            board,
            running.get(lock_id, []),
            tuple(sorted(scheduled.get(lock_id, []))),
        )
        for lock_id in sorted(ids)
    ]


def lock_view(
    lock_id: str,
    lock: Lock | None,
    board: Board,
    running: list[ExecutionTruth],
    schedules: tuple[str, ...] = (),
) -> LockView:
    flags: list[str] = []
    notes: list[str] = []
    if lock_id in board.odd:
        return LockView(
            lock_id,
            "odd",
            flags=(UNREADABLE,),
            notes=(f"its item is not one the lock protocol writes: {board.odd[lock_id]}",),
            schedules=schedules,
        )
    owner = lock.owner if lock else None
    unlocked = tuple(sorted(e.arn for e in running if e.arn != owner))
    if unlocked:
        flags.append(UNLOCKED_RUNNING)
        names = ", ".join(a.rsplit(":", 1)[-1] for a in unlocked)
        notes.append(f"running without the lock: {names} (the reconciler takes or stops it)")
    if lock is None or owner is None:
        return LockView(
            lock_id,
            "free",
            token=lock.token if lock else None,
            last_outcome=lock.last_outcome if lock else None,
            last_released_at=lock.last_released_at if lock else None,
            last_released_by=lock.last_released_by if lock else None,
            last_owner=lock.last_owner if lock else None,
            flags=tuple(flags),
            notes=tuple(notes),
            running_unlocked=unlocked,
            schedules=schedules,
        )
    holder = board.executions.get(owner)
    acquired = parse_time(lock.acquired_at)
    held = (board.now - acquired).total_seconds() if acquired else None
    status = holder.status if holder else None
    if owner in board.unreadable:
        flags.append(UNREADABLE)
        notes.append(f"its holder cannot be read ({board.unreadable[owner]})")
        status = "UNREADABLE"
    elif holder is not None and not holder.alive:
        flags.append(STALE)
        notes.append(
            f"held by a run that has ended ({holder.status}): the janitor or the reconciler "
            "frees it; `lock-janitor release` does it now"
        )
    elif (
        holder is not None
        and lock.timeout_seconds is not None
        and held is not None
        and held > lock.timeout_seconds
    ):
        flags.append(OVERDUE)
        notes.append(
            f"held {duration_text(held)}, past its timeout of "
            f"{duration_text(lock.timeout_seconds)}: the state machine should have stopped it; "
            "look at the execution"
        )
    machine = lock.state_machine_arn or (holder.state_machine_arn if holder else "")
    name = owner.rsplit(":", 1)[-1]
    return LockView(
        lock_id,
        "held",
        holder=name,
        holder_arn=owner,
        holder_status=status,
        held_seconds=held,
        timeout_seconds=lock.timeout_seconds,
        token=lock.token,
        acquired_by=lock.acquired_by,
        last_outcome=lock.last_outcome,
        last_released_at=lock.last_released_at,
        last_released_by=lock.last_released_by,
        last_owner=lock.last_owner,
        flags=tuple(flags),
        notes=tuple(notes),
        running_unlocked=unlocked,
        schedules=schedules,
        console_url=Execution(owner, name, machine).console_url if owner.count(":") >= 7 else None,
    )


def known_locks(item_ids: Iterable[str], schedules: Iterable[Schedule]) -> list[str]:
    """Every lock the table's items and the schedules' inputs name, sorted, each once."""
    return sorted({*item_ids, *(s.lock_id for s in schedules if s.lock_id)})


def no_lock_named(lock_id: str, known: Sequence[str]) -> NotFound:
    """The error for a lock no item of the table and no schedule names (a typo, or a lock never
    deployed): `no lock named 'X' (known: a, b, c)`, the first KNOWN_SHOWN of `known`, then
    `, ...`."""
    shown = ", ".join(known[:KNOWN_SHOWN]) + (", ..." if len(known) > KNOWN_SHOWN else "")
    return NotFound(f"no lock named {lock_id!r} (known: {shown or 'none'})")


def holder_tasks(stack: Stack, holder_arn: str) -> list[TaskTruth]:
    """The holder's tasks, as ECS describes them now (from its history)."""
    history = read_history(stack.aws.stepfunctions, holder_arn)
    if history is None or not history.tasks:
        return []
    tasks, _ = describe_tasks(stack.aws.ecs, history.tasks)
    return tasks
