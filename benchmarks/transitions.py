"""State transitions of one run, read from executed histories: what a Standard workflow is billed
for ($0.025 per 1,000 state transitions in us-east-1, Step Functions pricing), for each way a run
goes: success, skipped (its lock held), task failure, run timeout."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.report import Table
from benchmarks.stage import QUICK_POLL_SECONDS, emulator, sample_schedule, tasks_of
from local.emulator import Emulator
from local.knobs import set_sync_poll

PRICE_PER_TRANSITION = 0.025 / 1000
"""USD, Standard workflows, us-east-1 (the first 4,000 a month are free)."""


def _run(emu: Emulator, name: str, **overrides: object) -> str:
    return emu.fire_schedule(sample_schedule(emu), name, **overrides)


def _success(emu: Emulator) -> str:
    arn = _run(emu, "t-success", lockId="t-success")
    emu.finish_task(tasks_of(emu, [arn])[0], 0)
    return arn


def _skipped(emu: Emulator) -> str:
    holder = _run(emu, "t-holder", lockId="t-skip")
    tasks_of(emu, [holder])
    arn = _run(emu, "t-skipped", lockId="t-skip")
    emu.wait_done(arn, timeout=60)
    emu.client("stepfunctions").stop_execution(executionArn=holder)
    return arn


def _failure(emu: Emulator) -> str:
    arn = _run(emu, "t-failure", lockId="t-failure")
    emu.finish_task(tasks_of(emu, [arn])[0], 1)
    return arn


def _timeout(emu: Emulator) -> str:
    arn = _run(emu, "t-timeout", lockId="t-timeout", timeoutSeconds=2)
    tasks_of(emu, [arn])
    return arn


CASES: dict[str, Callable[[Emulator], str]] = {
    "success": _success,
    "skipped (lock held)": _skipped,
    "task failure": _failure,
    "run timeout": _timeout,
}


def run(quick: bool = False) -> list[Table]:
    del quick  # four runs: nothing to shorten
    table = Table(
        "State transitions per run (read from the execution's history)",
        ["run", "status", "transitions", "states entered", "cost per 1M runs"],
    )
    with tempfile.TemporaryDirectory() as logs, emulator(Path(logs)) as emu:
        set_sync_poll(QUICK_POLL_SECONDS)
        time.sleep(0.1)
        sfn = emu.client("stepfunctions")
        for label, case in CASES.items():
            arn = case(emu)
            status = emu.wait_done(arn, timeout=120)["status"]
            events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
            entered = [
                e["stateEnteredEventDetails"]["name"]
                for e in events
                if e["type"].endswith("StateEntered")
            ]
            table.add(
                label,
                status,
                len(entered),
                " > ".join(entered),
                f"${len(entered) * PRICE_PER_TRANSITION * 1_000_000:,.0f}",
            )
    table.notes.append(
        "Transitions: the states entered, as Step Functions counts them for billing (a retry "
        "counts again); the execution's start and end are not billed."
    )
    return [table]
