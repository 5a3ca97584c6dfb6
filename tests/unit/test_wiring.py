"""The emulator's wiring on its own: one status-change event per status an execution is seen in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from local.deployer import Deployed
from local.template import Context
from local.timeline import Timeline
from local.wiring import Wiring

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:lock-janitor-LockingStateMachine"
RUN = "arn:aws:states:us-east-1:123456789012:execution:lock-janitor-LockingStateMachine:r1"


class StepFunctions:
    """ListExecutions lags DescribeExecution by one look, as a listing read a moment earlier."""

    def __init__(self) -> None:
        self.listed = ["RUNNING", "RUNNING", "ABORTED", "ABORTED"]
        self.described = "ABORTED"

    def get_paginator(self, name: str) -> Any:
        outer = self

        class Pages:
            def paginate(self, **_: Any) -> list[dict[str, Any]]:
                status = outer.listed.pop(0)
                return [{"executions": [{"executionArn": RUN, "status": status}]}]

        assert name == "list_executions"
        return Pages()

    def describe_execution(self, executionArn: str) -> dict[str, Any]:
        return {
            "executionArn": executionArn,
            "stateMachineArn": MACHINE,
            "name": "r1",
            "status": self.described,
            "startDate": datetime(2026, 12, 1, tzinfo=UTC),
            "stopDate": datetime(2026, 12, 1, 0, 1, tzinfo=UTC),
            "input": '{"lockId": "nightly"}',
        }


class Events:
    def __init__(self) -> None:
        self.put: list[dict[str, Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> None:
        self.put += Entries


def test_each_status_seen_is_put_once_as_it_was_seen(tmp_path: Path) -> None:
    ctx = Context(template={}, parameters={})
    ctx.refs["LockingStateMachine"] = MACHINE
    sfn, events = StepFunctions(), Events()
    clients = {"stepfunctions": sfn, "events": events}
    wiring = Wiring(
        Deployed(ctx), clients.__getitem__, Timeline(lambda _: None), tmp_path, email=""
    )
    for _ in range(4):
        wiring.emit_status_changes()
    statuses = [e["Detail"] for e in events.put]
    assert len(statuses) == 2, "RUNNING once, ABORTED once: never the ending twice"
    assert '"status": "RUNNING"' in statuses[0]
    assert '"stopDate": null' in statuses[0]
    assert '"status": "ABORTED"' in statuses[1]
