"""The real chain, under moto, with the janitor not running: the scheduled reconciler (invoked
with the schedule's own input from the template) frees every lock and stops every orphan; its
next run finds nothing to do."""

from __future__ import annotations

import json

import pytest

from common import clients
from local.harness import FakeContext, function_environment, received_incidents
from tests.handlers.conftest import resolve_handler
from tests.support.machine import Machine


def test_lost_events_are_healed_by_the_schedule(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in function_environment(machine.stack, "ReconcilerFunction").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECONCILE_GRACE_SECONDS", "0")  # as if the grace period had passed
    clients.reset()
    schedule = machine.stack.deployed.schedules["ReconcilerFunctionEvery"]
    assert schedule["expression"].startswith("rate(")
    event = json.loads(schedule["input"])
    reconciler = resolve_handler(machine, "ReconcilerFunction")

    lost = [machine.abort(f"lost-{n}", lockId=f"job-{n}") for n in range(4)]  # no janitor ran

    first = reconciler(event, FakeContext(function_name="lock-janitor-ReconcilerFunction"))
    assert first["dryRun"] is False
    for n, (arn, task) in enumerate(lost):
        assert machine.lock(f"job-{n}")["LastOwner"] == arn
        assert "Owner" not in machine.lock(f"job-{n}")
        assert machine.lock(f"job-{n}")["LastOutcome"] == "STALE"
        assert machine.task_status(task)["lastStatus"] == "STOPPED"
    assert len(received_incidents(machine.stack)) == 4  # one per execution: its lock and task

    second = reconciler(event, FakeContext(function_name="lock-janitor-ReconcilerFunction"))
    assert (second["released"], second["stopped"], second["overdue"]) == ([], [], [])
    assert received_incidents(machine.stack) == []
