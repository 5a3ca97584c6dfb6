"""Parsing status-change events of every shape seen in the wild."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.status_event import MalformedEvent, parse_status_change
from common.task_input import TaskInput
from local.template import ROOT

EVENTS = ROOT / "events"
AWS_DOCS = ROOT / "tests" / "fixtures" / "aws-docs-events"


def load(path: Path) -> dict[str, Any]:
    event: dict[str, Any] = json.loads(path.read_text())
    return event


@pytest.mark.parametrize("path", sorted(AWS_DOCS.glob("*.json")), ids=lambda p: p.name)
def test_aws_documented_events_parse(path: Path) -> None:
    change = parse_status_change(load(path))
    assert change.execution_arn.endswith(":execution-name")
    assert change.redrive_count == 0
    assert change.error is None
    assert change.cause is None
    assert change.input == "{}"
    assert TaskInput.parse(change.input).lock_id is None


def test_a_failed_event_with_every_field() -> None:
    change = parse_status_change(load(EVENTS / "janitor-failed.json"))
    assert change.status == "FAILED"
    assert change.ended
    assert not change.redriven
    assert change.error == "Task.Failed"
    assert change.cause is not None
    assert change.cause.startswith("States.TaskFailed")
    assert change.start_ms == 1764374400000
    assert change.stop_ms == 1764374520000
    assert TaskInput.parse(change.input) == TaskInput("sample", 300)


def test_timed_out_carries_no_error_or_cause() -> None:
    change = parse_status_change(load(EVENTS / "janitor-timed-out.json"))
    assert (change.status, change.error, change.cause) == ("TIMED_OUT", None, None)


def test_input_not_included_reads_as_no_input() -> None:
    change = parse_status_change(load(EVENTS / "janitor-aborted-input-not-included.json"))
    assert change.input is None


def test_legacy_shape_without_input_details_or_redrive_fields() -> None:
    change = parse_status_change(load(EVENTS / "janitor-failed-legacy-shape.json"))
    assert change.redrive_count == 0
    assert TaskInput.parse(change.input).lock_id == "sample"


def test_redriven_running_event() -> None:
    change = parse_status_change(load(EVENTS / "janitor-running-redriven.json"))
    assert change.redriven
    assert not change.ended
    assert change.redrive_count == 1
    assert change.stop_ms is None


@pytest.mark.parametrize(
    ("raw", "lock_id"),
    [
        ('{"lockId": "a"}', "a"),
        ("{}", None),
        ("not json", None),
        ('["lockId"]', None),
        ('{"lockId": 7}', None),
        ('{"lockId": "  "}', None),
        (None, None),
    ],
)
def test_lock_id_from_input(raw: str | None, lock_id: str | None) -> None:
    assert TaskInput.parse(raw).lock_id == lock_id


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: e.update(source="aws.events"),
        lambda e: e.update({"detail-type": "Scheduled Event"}),
        lambda e: e.pop("detail"),
        lambda e: e["detail"].pop("executionArn"),
        lambda e: e["detail"].update(executionArn="not-an-arn"),
        lambda e: e["detail"].update(status="EXPLODED"),
    ],
)
def test_malformed_events_raise(mutate: Any) -> None:
    event = load(EVENTS / "janitor-failed.json")
    mutate(event)
    with pytest.raises(MalformedEvent):
        parse_status_change(event)


def test_not_an_object_raises() -> None:
    with pytest.raises(MalformedEvent):
        parse_status_change(["not", "an", "event"])


def test_dates_and_counts_tolerate_strings_and_nulls() -> None:
    event = load(EVENTS / "janitor-failed.json")
    event["detail"].update(startDate="1764374400000", stopDate=None, redriveCount="2")
    change = parse_status_change(event)
    assert (change.start_ms, change.stop_ms, change.redrive_count) == (1764374400000, None, 2)
