"""The pure decision on one snapshot (common.repair.decide), where a snapshot's reads disagree,
and reading two things at once (common.healing.together)."""

from __future__ import annotations

import threading

import pytest

from common.healing import together
from common.lock_table import Lock
from common.repair import REDRIVEN_MEANWHILE, Snapshot, decide
from common.task_input import TaskInput
from common.truth import ExecutionTruth, TaskRef, TaskTruth

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:lock-janitor-LockingStateMachine"
ARN = "arn:aws:states:us-east-1:123456789012:execution:lock-janitor-LockingStateMachine:run"
CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/c"


def task(n: int, attempt: int) -> TaskTruth:
    ref = TaskRef(CLUSTER, f"arn:aws:ecs:us-east-1:123456789012:task/c/{n}", attempt)
    return TaskTruth(ref, "RUNNING", "RUNNING", lock_owner=ARN, lock_id="j")


def aborted(redrive_count: int = 0) -> ExecutionTruth:
    return ExecutionTruth(
        ARN, "ABORTED", "run", MACHINE, redrive_count=redrive_count, input=TaskInput("j", 60)
    )


def test_an_ended_execution_stops_its_tasks_and_releases_its_lock() -> None:
    s = Snapshot(aborted(), Lock("j", owner=ARN, token=1), tasks=(task(1, 0),))
    plan = decide(s)
    assert plan.stop == (task(1, 0),)
    assert plan.release


@pytest.mark.parametrize("lock_read", [True, False])
def test_a_history_ahead_of_the_status_never_touches_the_later_attempt(lock_read: bool) -> None:
    """DescribeExecution said ABORTED at attempt 0, the history (read at the same time, or just
    after) shows attempt 1 running: the run was redriven in between. Attempt 0's task is
    stopped; attempt 1's task runs on and the lock is left for the retry, whatever was read
    of it."""
    lock = Lock("j", owner=ARN, token=1) if lock_read else None
    s = Snapshot(
        aborted(0),
        lock,
        tasks=(task(1, 0), task(2, 1)),
        history_attempt=1,
        lock_read=lock_read,
    )
    plan = decide(s)
    assert plan.stop == (task(1, 0),)
    assert not plan.release
    assert not plan.take
    assert plan.left_alone == REDRIVEN_MEANWHILE


def test_together_reads_both_at_once_and_waits_for_both() -> None:
    """The second read runs on another thread while the first runs here; both finish before
    the results come back, and the first read's error is raised after the second is done."""
    both_started = threading.Barrier(2, timeout=5)
    where: list[str] = []

    def first() -> str:
        both_started.wait()  # would time out if the two ran one after the other
        where.append(threading.current_thread().name)
        return "a"

    def second() -> int:
        both_started.wait()
        where.append(threading.current_thread().name)
        return 2

    assert together(first, second) == ("a", 2)
    assert len(set(where)) == 2

    finished = threading.Event()

    def failing() -> str:
        raise RuntimeError("denied")

    def slow() -> None:
        finished.wait(0.05)
        finished.set()

    with pytest.raises(RuntimeError, match="denied"):
        together(failing, slow)
    assert finished.is_set(), "the other read finished before the error came back"
