"""Setting the scene on the emulator (local/emulator.py): many runs at once, their tasks, their
bad ends."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from moto.backends import get_backend

from local.bridges import ECS_TASKS, status_change_event
from local.emulator import Emulator
from local.knobs import fast_moto, quick_sync_polls
from local.timeline import Timeline

SETUP_POLL_SECONDS = 5.0
"""moto's `.sync` poll while runs pile up: hundreds of running executions polling every 0.5 s
would spend the CPU the measurement needs."""
QUICK_POLL_SECONDS = 0.2


@contextlib.contextmanager
def emulator(log_dir: Path) -> Iterator[Emulator]:
    """A deployed emulator, quiet (the bench prints its own tables), with moto's speed knobs."""
    with (
        Emulator(Timeline(lambda _line: None), log_dir=log_dir) as emu,
        fast_moto(),
        quick_sync_polls(SETUP_POLL_SECONDS),
    ):
        emu.deploy()
        yield emu


def sample_schedule(emu: Emulator) -> str:
    """The logical id of the sample task's schedule (its input is every run's input here)."""
    assert emu.deployed is not None
    return next(k for k, s in emu.deployed.schedules.items() if s["target"] == emu.machine_arn)


def start_runs(emu: Emulator, prefix: str, count: int) -> list[str]:
    """`count` runs of the sample task, each on a lock of its own (`<prefix>-<n>`)."""
    schedule = sample_schedule(emu)
    return [
        emu.fire_schedule(schedule, f"{prefix}-{n}", lockId=f"{prefix}-{n:05d}")
        for n in range(count)
    ]


def tasks_of(emu: Emulator, runs: Sequence[str], timeout: float = 600.0) -> list[str]:
    """Each run's task, once it has been started (in the run's history)."""
    deadline = time.monotonic() + timeout
    return [emu.task_of(arn, timeout=max(deadline - time.monotonic(), 1.0)) for arn in runs]


def abort(emu: Emulator, runs: Sequence[str]) -> None:
    """An operator aborts each run: the lock stays held and the task goes on running."""
    sfn = emu.client("stepfunctions")
    for arn in runs:
        sfn.stop_execution(executionArn=arn, error="Operator", cause="bench")


STOPPING_REASON = "Execution stopped: Step Functions stops its .sync task (bench)"


def stopping(tasks: Sequence[str]) -> None:
    """Each task is already stopping, as when Step Functions has made its best-effort stop of an
    aborted run's `.sync` task: ECS was asked to stop it (desiredStatus STOPPED) and it has not
    stopped yet (lastStatus RUNNING). moto stops a task at once on StopTask, so the bench sets
    the state itself, in the emulator's own process."""
    for arn in tasks:
        region, account = arn.split(":")[3], arn.split(":")[4]
        cluster = arn.split(":task/", 1)[1].split("/", maxsplit=1)[0]
        task = get_backend("ecs")[account][region].tasks[cluster][arn]
        with ECS_TASKS:  # no DescribeTasks answers with the task half-changed
            task.desired_status = "STOPPED"
            task.stopped_reason = STOPPING_REASON


def fail(emu: Emulator, tasks: Sequence[str]) -> None:
    """Each task's container exits 1: the run fails; its lock stays for the janitor."""
    for task in tasks:
        emu.finish_task(task, 1)


def wait_ended(emu: Emulator, runs: Sequence[str], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    for arn in runs:
        emu.wait_done(arn, timeout=max(deadline - time.monotonic(), 1.0))


def status_event(emu: Emulator, arn: str, *, with_input: bool = True) -> dict[str, Any]:
    """The status-change event Step Functions sends for the run's current status; without its
    input when asked (as when the input is too large for the event)."""
    event = status_change_event(emu.client("stepfunctions"), arn)
    if not with_input:
        event["detail"]["input"] = None
        event["detail"]["inputDetails"] = {"included": False}
    return event


def compact(calls: Sequence[str]) -> str:
    """ "service.Operation" calls as one line: each operation once, with its count when more."""
    counted = Counter(call.split(".", 1)[-1] for call in calls)
    return ", ".join(f"{name} {n}" if n > 1 else name for name, n in sorted(counted.items()))
