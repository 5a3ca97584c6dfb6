"""Handlers invoked as Lambda would: with the environment the template gives them, on events
from events/, against moto with the real state machine deployed."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common import clients
from local.harness import FakeContext, function_environment, handler_of
from local.template import ROOT
from tests.support.machine import Machine, running_machine

EVENTS = ROOT / "events"


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


def resolve_handler(machine: Machine, logical_id: str) -> Callable[..., Any]:
    module, _, name = handler_of(machine.stack, logical_id).rpartition(".")
    handler: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return handler


@dataclass
class Janitor:
    machine: Machine
    handler: Callable[..., Any]

    def __call__(self, event: dict[str, Any]) -> Any:
        return self.handler(event, FakeContext())

    def event_for(
        self, file: str, execution_arn: str | None = None, **detail: Any
    ) -> dict[str, Any]:
        """A sample event made to describe a real execution of this stack: its ARN and dates
        from DescribeExecution (as AWS would send them), the rest from the file."""
        event = load_event(file)
        if execution_arn is not None:
            described = self.machine.describe(execution_arn)
            event["resources"] = [execution_arn]
            event["detail"]["executionArn"] = execution_arn
            event["detail"]["name"] = described["name"]
            event["detail"]["startDate"] = int(described["startDate"].timestamp() * 1000)
            if described.get("stopDate"):
                event["detail"]["stopDate"] = int(described["stopDate"].timestamp() * 1000)
        event["detail"].update(detail)
        return event


@pytest.fixture
def machine() -> Iterator[Machine]:
    with running_machine() as m:
        yield m


@pytest.fixture
def janitor(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> Janitor:
    for key, value in function_environment(machine.stack, "JanitorFunction").items():
        monkeypatch.setenv(key, value)
    clients.reset()
    return Janitor(machine, resolve_handler(machine, "JanitorFunction"))


def event_files() -> list[Path]:
    return sorted(EVENTS.glob("*.json"))


@dataclass
class Reconcile:
    machine: Machine
    handler: Callable[..., Any]

    def __call__(self, event: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = self.handler(
            {} if event is None else event,
            FakeContext(function_name="lock-janitor-ReconcilerFunction"),
        )
        return result


@pytest.fixture
def reconcile(machine: Machine, monkeypatch: pytest.MonkeyPatch) -> Reconcile:
    """The reconciler with the template's environment, except a grace period of 0: the tests'
    executions ended a second ago, as if the grace period had passed."""
    for key, value in function_environment(machine.stack, "ReconcilerFunction").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RECONCILE_GRACE_SECONDS", "0")
    clients.reset()
    return Reconcile(machine, resolve_handler(machine, "ReconcilerFunction"))
