"""The janitor against the floor: the fewest AWS calls that make the same repair, made bare with
boto3 against the same emulator, for many incidents of each kind.

The floor knows what the janitor has to find out: it trusts the event (no DescribeExecution
unless the input is missing), releases on the owner alone (no token, no redrive count), and takes
the task from the history without asking ECS whether it still runs. It is the cost of a
hand-written cleanup Lambda that assumes events arrive once, in order, and on time; the janitor
pays for not assuming it. Runs alternate between the two, so drift in the machine's speed hits
both alike."""

from __future__ import annotations

import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.report import Table, median, met, ms, ratio
from benchmarks.stage import (
    abort,
    compact,
    emulator,
    fail,
    start_runs,
    status_event,
    stopping,
    tasks_of,
    wait_ended,
)
from common import clients
from local.emulator import Emulator
from local.harness import Call, timed_calls

INCIDENTS = 200
"""Incidents of each kind for each side."""


@dataclass(frozen=True)
class Kind:
    name: str
    setup: Callable[[Emulator, Sequence[str], Sequence[str]], None]
    """Brings the runs (and their tasks) to the incident."""
    with_input: bool = True


def _abort_stopping(emu: Emulator, runs: Sequence[str], tasks: Sequence[str]) -> None:
    """The runs aborted, and Step Functions' own best-effort stop of each one's `.sync` task
    begun: the janitor finds the task stopping and makes no StopTask."""
    abort(emu, runs)
    stopping(tasks)


KINDS = (
    Kind("abort, task still running", lambda emu, runs, tasks: abort(emu, runs)),
    Kind("abort, task already stopping", _abort_stopping),
    Kind("failure, task already exited", lambda emu, runs, tasks: fail(emu, tasks)),
    Kind("abort, input left out of the event", lambda emu, runs, tasks: abort(emu, runs), False),
)


@dataclass
class Side:
    seconds: list[float] = field(default_factory=list)
    calls: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    shapes: Counter[str] = field(default_factory=Counter)
    """"GetExecutionHistory, Publish, ..." -> how many incidents took exactly those calls"""

    def record(self, seconds: float, calls: list[Call]) -> None:
        self.seconds.append(seconds)
        self.calls.append(len(calls))
        self.rounds.append(rounds([(c.start, c.end) for c in calls]))
        self.shapes[compact([c.name for c in calls])] += 1


def rounds(spans: Sequence[tuple[float, float]]) -> int:
    """The calls in sequence: the longest chain of calls each made after the one before it had
    answered (calls in flight at the same time are in no chain together). Where a call is a
    network round trip (AWS: 10 to 50 ms), this, not the call count, sets the time."""
    count, end = 0, float("-inf")
    for start, stop in sorted(spans, key=lambda span: span[1]):
        if start >= end:
            count, end = count + 1, stop
    return count


class Floor:
    """The bare repair: release on the owner condition, read the history, stop the task it
    names, publish (and read the input first when the event left it out)."""

    def __init__(self, emu: Emulator) -> None:
        assert emu.deployed is not None
        self.table = emu.deployed.ref("LockTable")
        self.cluster = emu.deployed.outputs["ClusterArn"]
        self.topic = emu.deployed.ref("AlertsTopic")
        self.ddb = emu.client("dynamodb")
        self.sfn = emu.client("stepfunctions")
        self.ecs = emu.client("ecs")
        self.sns = emu.client("sns")
        self.clients = (self.ddb, self.sfn, self.ecs, self.sns)

    def repair(self, event: dict[str, Any]) -> None:
        detail = event["detail"]
        arn = detail["executionArn"]
        raw = detail.get("input")
        if raw is None:
            raw = self.sfn.describe_execution(executionArn=arn)["input"]
        lock_id = json.loads(raw)["lockId"]
        released = True
        try:
            self.ddb.update_item(
                TableName=self.table,
                Key={"LockId": {"S": lock_id}},
                UpdateExpression="REMOVE #o SET LastOwner = :arn",
                ConditionExpression="#o = :arn",
                ExpressionAttributeNames={"#o": "Owner"},
                ExpressionAttributeValues={":arn": {"S": arn}},
            )
        except self.ddb.exceptions.ConditionalCheckFailedException:
            released = False
        events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        task = None
        for e in events:
            if e["type"] == "TaskSubmitted":
                task = json.loads(e["taskSubmittedEventDetails"]["output"])["Tasks"][0]["TaskArn"]
        if task:  # stopping a stopped task changes nothing: cheaper than asking first
            self.ecs.stop_task(cluster=self.cluster, task=task, reason="cleanup")
        self.sns.publish(
            TopicArn=self.topic,
            Subject=f"{detail['status']}: {lock_id}",
            Message=json.dumps(
                {"lockId": lock_id, "execution": arn, "released": released, "task": task}
            ),
        )


def _measure_kind(emu: Emulator, kind: Kind, count: int) -> tuple[Side, Side]:
    prefix = "k" + "".join(w[0] for w in kind.name.split() if w[0].isalpha())
    runs = start_runs(emu, f"{prefix}{datetime.now(UTC):%H%M%S}", 2 * count)
    tasks = tasks_of(emu, runs)
    kind.setup(emu, runs, tasks)
    wait_ended(emu, runs)
    events = [status_event(emu, arn, with_input=kind.with_input) for arn in runs]
    janitor, floor = Side(), Side()
    bare = Floor(emu)
    aws = clients.aws()  # the janitor's own clients (it makes every call through them)
    watched = (aws.dynamodb, aws.stepfunctions, aws.ecs, aws.sns, *bare.clients)
    for i, event in enumerate(events):
        side = janitor if i % 2 == 0 else floor
        with timed_calls(*watched) as calls:
            started = time.perf_counter()
            if side is janitor:
                emu.invoke("JanitorFunction", event)
            else:
                bare.repair(event)
            elapsed = time.perf_counter() - started
        side.record(elapsed, calls)
    return janitor, floor


COLUMNS = [
    "incident",
    "janitor calls",
    "floor calls",
    "target <= floor + 1",
    "met",
    "janitor time",
    "floor time",
    "ratio",
    "target <= 1.3x",
    "met",
]
"""The columns of the janitor-vs-floor table (docs/performance.md reads its cells by them)."""


def run(quick: bool = False) -> list[Table]:
    count = 3 if quick else INCIDENTS
    table = Table(f"Janitor vs the floor ({count} incidents of each kind, each side)", COLUMNS)
    sequence = Table(
        "Calls in sequence (round trips): what sets the time where a call is a network round trip",
        ["incident", "janitor", "floor", "janitor / floor"],
    )
    shapes = Table(
        "What each side called (incidents: calls)",
        ["incident", "side", "calls"],
    )
    with tempfile.TemporaryDirectory() as logs, emulator(Path(logs)) as emu:
        for kind in KINDS:
            janitor, floor = _measure_kind(emu, kind, count)
            j_calls, f_calls = median(janitor.calls), median(floor.calls)
            j_time, f_time = median(janitor.seconds), median(floor.seconds)
            table.add(
                kind.name,
                f"{j_calls:g}",
                f"{f_calls:g}",
                f"<= {f_calls + 1:g}",
                met(j_calls <= f_calls + 1),
                ms(j_time),
                ms(f_time),
                ratio(j_time, f_time),
                "<= 1.30x",
                met(j_time <= 1.3 * f_time),
            )
            j_rounds, f_rounds = median(janitor.rounds), median(floor.rounds)
            sequence.add(kind.name, f"{j_rounds:g}", f"{f_rounds:g}", ratio(j_rounds, f_rounds))
            for name, side in (("janitor", janitor), ("floor", floor)):
                for shape, n in side.shapes.most_common(3):
                    shapes.add(kind.name, name, f"{n}: {shape}")
    table.notes.append(
        "Medians per incident. Time is the wall time of one repair in this process against moto "
        "in server mode on 127.0.0.1 (every call an HTTP round trip); on AWS a call takes 10 to "
        "50 ms, so the calls in sequence (below), not Python, set the time there."
    )
    sequence.notes.append(
        "Medians per incident of the longest chain of calls each made after the one before it "
        "answered: calls in flight at the same time (the janitor reads the execution and its "
        "history at once) are one step of it. Here the time above is mostly moto's CPU, in this "
        "process, where calls in flight together cannot overlap; on AWS, where each call is a "
        "10 to 50 ms round trip and the Python around it a few ms, the janitor's time against "
        "the floor's tends to this ratio (reasoned from the figures, not measured on AWS)."
    )
    return [table, sequence, shapes]
