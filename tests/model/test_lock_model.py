"""The lock's promises, checked on generated orderings (hypothesis RuleBasedStateMachine).

The real ASL runs under moto; the real janitor and reconciler handlers run with the template's
environment. Rules start executions, let tasks exit 0 or non-zero, time runs out, abort,
redrive (the redrive bridge; also in the middle of a repair, with or without the redrive's own
janitor run at that moment), deliver any status-change event late, twice, out of order or
never, make one AWS call fail once (also: deliver an event into a repair whose StopTask fails,
or whose run is redriven and its lock taken again just before the release is written), start a
copy of a run's task that its history never names, run the reconciler, run the operator's
`lock-janitor release --force --stop` (the janitor let in while it waits for the run to end, or
not), and let time pass. After every step:

- never two tasks of one lock running at once, except while a redrive (which restarts its task
  without asking the lock) has not yet been seen by the janitor or the reconciler (which leaves
  a run that has ended again to the janitor for the grace, as it leaves every other), or while a
  task its run's history never names runs before the reconciler's pass past the grace after
  that run ended (after that pass, it must be stopped); moto stops a task the moment StopTask
  is called, so the stop window is 0 here (on AWS: the task's stopTimeout, 30 s by default);
- at every release by the janitor or the reconciler, no task of the released holder is still
  running and no stop of one failed in that repair (recorded at the moment of the write, so an
  order bug shows although moto's stops are instant);
- no release by the janitor or the reconciler ever removes the lock of a live execution;
- no incident id is ever published for two different sets of repairs;
and at the end, once every execution has ended and the reconciler has run past its grace:
every lock free, no task of an ended execution running, every repair reported.

`make test` runs 200 examples in four shards with fixed seeds (pytest-xdist spreads them over
the cores); `make model N=10000` runs as many as asked, with a new seed each time, and prints
how many steps and distinct orderings it checked and the longest overlap it saw.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from common import clients
from common.clients import Aws
from common.settings import ReconcilerSettings
from local.bridges import status_change_event
from local.harness import (
    FakeContext,
    exit_container,
    function_environment,
    received_incidents,
    wait_for,
)
from local.knobs import cached_asl_trees, quick_sync_polls
from lock_janitor_cli import operations
from reconciler.reconcile import Reconciler
from tests.handlers.conftest import resolve_handler
from tests.support.faults import before_call, failing_call, with_params
from tests.support.machine import Machine, running_machine

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "200"))
STEPS = int(os.environ.get("MODEL_STEPS", "12"))
SHARDS = int(os.environ.get("MODEL_SHARDS", "4"))
SEED = int(
    os.environ.get("MODEL_SEED")
    or (random.SystemRandom().randrange(2**32) if os.environ.get("MODEL_RANDOM") else 20261201)
)
"""Fixed, unless MODEL_RANDOM is set (`make model` explores new examples on every run and
prints its seed; MODEL_SEED=<seed> replays that run)."""
REPAIRERS = ("janitor", "reconciler")
MAX_UNSEEN = 2
"""Copies of a run's task its history never names, at most, per example."""
CALLS_OF_A_REPAIR = [
    ("stepfunctions", "DescribeExecution"),
    ("stepfunctions", "GetExecutionHistory"),
    ("ecs", "DescribeTasks"),
    ("ecs", "StopTask"),
    ("dynamodb", "UpdateItem"),
]
"""Where a redrive may land in the middle of a repair (`redrive_during_next_repair`). Before
the execution and its history are read, the repair must see it; after them, it cannot (the
redriven attempt runs without its lock until the janitor handles the redrive's event: the
window the design accepts, in which a repair may free that lock)."""
AFTER_THE_READS = frozenset({"DescribeTasks", "StopTask", "UpdateItem"})
FAULTS = [
    ("dynamodb", "UpdateItem", "ThrottlingException"),
    ("dynamodb", "GetItem", "InternalServerError"),
    ("ecs", "StopTask", "ServerException"),
    ("ecs", "DescribeTasks", "ThrottlingException"),
    ("sns", "Publish", "InternalError"),
    ("stepfunctions", "DescribeExecution", "ThrottlingException"),
    ("stepfunctions", "GetExecutionHistory", "ThrottlingException"),
]


@dataclass
class Stats:
    examples: int = 0
    steps: int = 0
    orderings: set[tuple[str, ...]] = field(default_factory=set)
    longest_overlap: int = 0
    """In steps: how long two tasks of one lock ran at once (each time, a redrive not yet seen)."""

    def line(self) -> str:
        return (
            f"model: {self.examples} examples, {self.steps} steps, {len(self.orderings)} "
            f"distinct orderings; longest overlap {self.longest_overlap} step(s), each after a "
            "redrive not yet seen by the janitor or the reconciler; stop window 0 under moto"
        )


STATS = Stats()
COUNTER = itertools.count()


@pytest.fixture(scope="module")
def world() -> Iterator[Machine]:
    with running_machine() as machine, quick_sync_polls(), cached_asl_trees():
        with pytest.MonkeyPatch.context() as env:
            for key, value in function_environment(machine.stack, "JanitorFunction").items():
                env.setenv(key, value)
            # One set of clients for every example (creating them is a tenth of an example's
            # time); a fault is armed on them and disarmed after its step.
            clients.reset()
            yield machine
        clients.reset()


@dataclass(frozen=True)
class OperatorStack:
    """What `lock-janitor release` reads of a deployed stack (lock_janitor_cli.stack.Stack
    finds it from CloudFormation's outputs, which this world has not)."""

    aws: Aws
    table: str
    topic_arn: str


class LockModel(RuleBasedStateMachine):
    machine: Machine

    def __init__(self) -> None:
        super().__init__()
        n = next(COUNTER)
        self.lock_id = f"model-{n}"
        self.prefix = f"m{n}"
        self.runs: list[str] = []
        self.tasks: dict[str, list[str]] = {}
        """Each run's tasks, read from its history after the rules that start one (start and
        redrive: nothing else makes a task)."""
        self.events: list[dict[str, Any]] = []
        self.seen_status: dict[str, tuple[str, int]] = {}
        self.unseen_redrives: set[str] = set()
        self.fault: tuple[str, str, str] | None = None
        self.interleave: tuple[str, str, str, bool] | None = None
        """(service, operation, execution, seen): that ended execution is redriven just before
        the next repair's first call of that operation (and, when seen, its redrive's event
        handled by another janitor then)."""
        self.redriven_after_reads: set[str] = set()
        """Runs redriven after a repair had read them: until the redrive is seen, a release of
        their lock is the accepted window, not a broken promise."""
        self.offset = timedelta(0)
        self.published: dict[str, list[str]] = {}
        self.repairs: set[str] = set()
        self.trace: list[str] = []
        self.overlap = 0
        self.previous_lock: dict[str, Any] = {}
        self.repaired = False
        """The last step ran the janitor or the reconciler: repairs and incidents to look at."""
        self.fired = False
        self.redrove = False
        """The last step's repair had a run redriven in its middle."""
        self.unseen: dict[str, str] = {}
        """Tasks started with a run's LOCK_OWNER that its history never names -> that run."""
        self.violations: list[str] = []
        """Releases made while a task of the released holder ran, or after a stop of one
        failed in the same repair (recorded by `_check_release` at the moment of the write)."""
        self.failed_stops: list[str] = []
        """Tasks whose StopTask failed in the current step (an injected fault)."""
        self.janitor = resolve_handler(self.machine, "JanitorFunction")
        self.settings = ReconcilerSettings.from_env(
            function_environment(self.machine.stack, "ReconcilerFunction")
        )

    # --- helpers ---------------------------------------------------------------------------

    def step(self, name: str) -> None:
        self.trace.append(name)
        STATS.steps += 1

    def status(self, arn: str) -> dict[str, Any]:
        return self.machine.describe(arn)

    def alive(self) -> list[str]:
        return [a for a in self.runs if self.status(a)["status"] == "RUNNING"]

    def ended(self) -> list[str]:
        return [a for a in self.runs if self.status(a)["status"] in {"FAILED", "ABORTED"}]

    def lock(self) -> dict[str, Any]:
        return self.machine.lock(self.lock_id)

    def lock_tasks(self) -> list[dict[str, Any]]:
        """Every task of this example's runs that is not STOPPED: those their histories name,
        and the copies no history names (`unseen_copy`)."""
        arns = [t for arn in self.runs for t in self.tasks[arn]] + list(self.unseen)
        found = []
        for i in range(0, len(arns), 100):
            described = self.machine.ecs.describe_tasks(
                cluster=self.machine.stack.cluster_arn, tasks=arns[i : i + 100]
            )
            for task in described["tasks"]:
                env = {
                    e["name"]: e["value"]
                    for o in task.get("overrides", {}).get("containerOverrides", [])
                    for e in o.get("environment", [])
                }
                if env.get("LOCK_ID") == self.lock_id and task["lastStatus"] != "STOPPED":
                    found.append({**task, "owner": env.get("LOCK_OWNER")})
        return found

    def observe(self) -> None:
        """Queue the status-change event of every execution whose status changed."""
        for arn in self.runs:
            d = self.status(arn)
            now = (d["status"], int(d.get("redriveCount") or 0))
            if self.seen_status.get(arn) == now:
                continue
            self.seen_status[arn] = now
            if d["status"] in {"FAILED", "TIMED_OUT", "ABORTED"} or (
                d["status"] == "RUNNING" and now[1] > 0
            ):
                self.events.append(status_change_event(self.machine.sfn, arn))

    def wait_settled(self, arn: str) -> None:
        """Until the execution has started a task of its current attempt, or has ended. Polls
        the cluster's running tasks for one no run is known to have (a short answer), and only
        then the history (reading it at every poll was a third of an example's time)."""
        known = {t for tasks in self.tasks.values() for t in tasks}
        cluster = self.machine.stack.cluster_arn

        def settled() -> bool:
            if self.status(arn)["status"] != "RUNNING":
                return True
            running = self.machine.ecs.list_tasks(cluster=cluster, desiredStatus="RUNNING")
            new = [t for t in running["taskArns"] if t not in known]
            # ECS lists the task a moment before the history names it: wait for both, so the
            # run's task list is complete (and moto's worker is fully started).
            return bool(new) and bool(set(new) & set(self.machine.tasks_of(arn)))

        wait_for(settled, timeout=30, interval=0.05)

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        """The step, with the fault armed (if any), the redrive that lands in its middle (if
        any), and every release it makes checked at the moment of the write; `fired` says
        whether the fault struck."""
        self.fired = self.redrove = False
        self.failed_stops = []
        with contextlib.ExitStack() as stack:
            raised: list[str] = []
            if self.fault is not None:
                service, operation, code = self.fault
                self.fault = None
                client = getattr(clients, service)()
                if operation == "StopTask":
                    stack.enter_context(self._stop_fails(client, code, raised))
                else:
                    raised = stack.enter_context(failing_call(client, operation, code))
            redriven: list[str] = []
            if self.interleave is not None:
                service, operation, arn, seen = self.interleave
                self.interleave = None
                client = getattr(clients, service)()
                hook = self._redrive_once(arn, redriven, seen)
                stack.enter_context(before_call(client, operation, hook))
            stack.enter_context(self._releases_checked())
            yield
        self.fired = bool(raised) or bool(redriven and redriven[0] in AFTER_THE_READS)
        self.redrove = bool(redriven)

    @contextlib.contextmanager
    def _stop_fails(self, ecs: Any, code: str, raised: list[str]) -> Iterator[None]:
        """The next StopTask fails with `code`; the task it was for is kept in failed_stops."""

        def fail(params: dict[str, Any], **_: Any) -> None:
            if not raised:
                raised.append(code)
                self.failed_stops.append(str(params.get("task")))
                raise ClientError({"Error": {"Code": code, "Message": "injected"}}, "StopTask")

        with with_params(ecs, "StopTask", fail):
            yield

    @contextlib.contextmanager
    def _releases_checked(self) -> Iterator[None]:
        """Every release the janitor or the reconciler makes in the step, checked just before
        the write goes out (`_check_release`)."""
        with with_params(clients.dynamodb(), "UpdateItem", self._check_release):
            yield

    def _check_release(self, params: dict[str, Any], **_: Any) -> None:
        values = params.get("ExpressionAttributeValues") or {}
        by = values.get(":by", {}).get("S")
        owner = values.get(":fenceOwner", {}).get("S")
        if not str(params.get("UpdateExpression", "")).startswith("REMOVE") or by not in REPAIRERS:
            return
        if owner in self.redriven_after_reads:  # the accepted window: a redrive not yet seen
            return
        tasks = self.machine.tasks_of(owner) if owner in self.tasks else []
        if by == "reconciler":  # it lists the cluster before it heals: it knows the copies
            tasks += [t for t, o in self.unseen.items() if o == owner]
        described = (
            self.machine.ecs.describe_tasks(cluster=self.machine.stack.cluster_arn, tasks=tasks)[
                "tasks"
            ]
            if tasks
            else []
        )
        # A stop that failed and that no stop since has made (another repair of the step may
        # have: a janitor let in by `redrive_during_next_repair`).
        asked = {t["taskArn"] for t in described if t.get("desiredStatus") == "STOPPED"}
        failed = [t for t in self.failed_stops if t in tasks and t not in asked]
        if failed:
            self.violations.append(
                f"{by} released the lock of {owner} after a stop of {failed} failed"
            )
        live = [t["taskArn"] for t in described if t["lastStatus"] != "STOPPED"]
        if live:
            self.violations.append(f"{by} released the lock of {owner} while {live} ran")

    def _redrive_once(self, arn: str, redriven: list[str], seen: bool) -> Any:
        def redrive(event_name: str, **_: Any) -> None:
            if redriven or self.status(arn)["status"] not in {"FAILED", "ABORTED"}:
                return
            operation = event_name.rsplit(".", 1)[-1]
            redriven.append(operation)
            self.machine.sfn.redrive_execution(executionArn=arn)
            self.wait_settled(arn)
            self.tasks[arn] = self.machine.tasks_of(arn)
            if seen:  # the redrive's own event handled by another janitor, right now
                with contextlib.suppress(Exception):  # if it fails: a redrive not yet seen
                    self.janitor(status_change_event(self.machine.sfn, arn), FakeContext())
                    return
            self.unseen_redrives.add(arn)
            if operation in AFTER_THE_READS:
                self.redriven_after_reads.add(arn)

        return redrive

    def collect(self) -> None:
        for note in received_incidents(self.machine.stack):
            doc = json.loads(note["Message"])
            claims = sorted(doc["repairs"]["claims"])
            earlier = self.published.setdefault(doc["id"], claims)
            assert earlier == claims, f"incident {doc['id']} published for two sets of repairs"

    def record_repairs(self) -> None:
        lock = self.lock()
        if lock.get("LastReleasedBy") in REPAIRERS and "Owner" not in lock:
            self.repairs.add(
                f"released {self.lock_id} of {lock['LastOwner']} by {lock['LastReleasedBy']}"
            )
        if (
            lock.get("AcquiredBy") in REPAIRERS
            and self.status(lock["Owner"])["status"] == "RUNNING"
        ):
            self.repairs.add(
                f"took {self.lock_id} for attempt {lock.get('RedriveCount', '0')} by "
                f"{lock['AcquiredBy']}"
            )
        arns = [t for arn in self.runs for t in self.tasks[arn]]
        for i in range(0, len(arns), 100):
            described = self.machine.ecs.describe_tasks(
                cluster=self.machine.stack.cluster_arn, tasks=arns[i : i + 100]
            )
            for task in described["tasks"]:
                reason = task.get("stoppedReason") or ""
                for by in REPAIRERS:
                    if reason.startswith(f"lock-janitor {by}:"):
                        self.repairs.add(f"stopped {task['taskArn']} by {by}")

    # --- rules -----------------------------------------------------------------------------

    @initialize()
    def begin(self) -> None:
        STATS.examples += 1

    @precondition(lambda self: len(self.runs) < 4)
    @rule(short_timeout=st.booleans())
    def start(self, short_timeout: bool) -> None:
        self.step("start")
        name = f"{self.prefix}-{len(self.runs)}"
        overrides: dict[str, Any] = {"lockId": self.lock_id}
        if short_timeout:
            overrides["timeoutSeconds"] = 1
        arn = self.machine.start(name, **overrides)
        self.runs.append(arn)
        self.wait_settled(arn)
        self.tasks[arn] = self.machine.tasks_of(arn)
        if short_timeout and self.status(arn)["status"] == "RUNNING":
            self.machine.wait_done(arn, timeout=10)  # the run timeout fires
        self.observe()

    @precondition(lambda self: bool(self.runs))
    @rule(data=st.data(), code=st.sampled_from([0, 1]))
    def task_exits(self, data: st.DataObject, code: int) -> None:
        tasks = [t for t in self.lock_tasks() if t["owner"] in set(self.alive())]
        if not tasks:
            return
        self.step(f"exit{code}")
        task = data.draw(st.sampled_from(tasks))
        exit_container(task["taskArn"], code)
        with contextlib.suppress(TimeoutError):
            wait_for(lambda: self.status(task["owner"])["status"] != "RUNNING" or None, 5, 0.05)
        self.observe()

    @precondition(lambda self: bool(self.runs))
    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        alive = self.alive()
        if not alive:
            return
        self.step("abort")
        arn = data.draw(st.sampled_from(alive))
        self.machine.sfn.stop_execution(executionArn=arn, error="Operator", cause="model")
        self.machine.wait_done(arn)
        self.observe()

    @precondition(lambda self: bool(self.runs))
    @rule(data=st.data())
    def redrive(self, data: st.DataObject) -> None:
        ended = self.ended()
        if not ended:
            return
        self.step("redrive")
        arn = data.draw(st.sampled_from(ended))
        self.machine.sfn.redrive_execution(executionArn=arn)
        self.unseen_redrives.add(arn)
        self.wait_settled(arn)
        self.tasks[arn] = self.machine.tasks_of(arn)
        self.observe()

    @precondition(lambda self: bool(self.events))
    @rule(data=st.data(), keep=st.booleans())
    def deliver(self, data: st.DataObject, keep: bool) -> None:
        """Any queued event, in any order; `keep`: it will be delivered again (a duplicate)."""
        self.step("deliver" + ("-dup" if keep else ""))
        self._deliver(data.draw(st.integers(0, len(self.events) - 1)), keep)

    @precondition(lambda self: bool(self.events))
    @rule(data=st.data())
    def deliver_while_its_stop_fails(self, data: st.DataObject) -> None:
        """A queued event whose repair's first StopTask fails: its release must wait (under
        moto's instant stops, the one moment an order bug shows)."""
        self.step("deliver-while-its-stop-fails")
        self.fault = ("ecs", "StopTask", "ServerException")
        self._deliver(data.draw(st.integers(0, len(self.events) - 1)), keep=False)

    @precondition(lambda self: bool(self.events))
    @rule(data=st.data())
    def deliver_while_relocked(self, data: st.DataObject) -> None:
        """A queued event of an ended run, whose run is redriven and its lock taken again by
        the redrive's janitor just before the repair writes the release: the release must
        fail on the attempt it was read at, not free the redriven run's lock."""
        index = data.draw(st.integers(0, len(self.events) - 1))
        arn = self.events[index]["detail"]["executionArn"]
        if self.status(arn)["status"] in {"FAILED", "ABORTED"}:
            self.interleave = ("dynamodb", "UpdateItem", arn, True)
        self.step("deliver-while-relocked")
        self._deliver(index, keep=False)

    def _deliver(self, index: int, keep: bool) -> None:
        event = self.events[index] if keep else self.events.pop(index)
        arn = event["detail"]["executionArn"]
        self.repaired = True
        failed = False
        try:
            with self.armed():
                self.janitor(event, FakeContext())
        except Exception:
            failed = True
            if not keep:
                self.events.append(event)
        if not (
            failed or self.fired
        ):  # a call that failed may be the one that would have seen the redrive
            self.unseen_redrives.discard(arn)
            self.redriven_after_reads.discard(arn)
        self.observe()

    @precondition(lambda self: bool(self.events))
    @rule(data=st.data())
    def lose(self, data: st.DataObject) -> None:
        self.step("lose")
        self.events.pop(data.draw(st.integers(0, len(self.events) - 1)))

    @rule(fault=st.sampled_from(FAULTS))
    def fail_next_call(self, fault: tuple[str, str, str]) -> None:
        self.step("fault")
        self.fault = fault

    @precondition(lambda self: bool(self.runs))
    @rule(data=st.data(), call=st.sampled_from(CALLS_OF_A_REPAIR), seen=st.booleans())
    def redrive_during_next_repair(
        self, data: st.DataObject, call: tuple[str, str], seen: bool
    ) -> None:
        """An ended run is redriven while the next janitor or reconciler pass is between two
        of its calls (just before `call`): what it read before no longer holds. `seen`: the
        redrive's own event is handled by another janitor at that moment (which takes the
        lock for the new attempt before the first pass writes)."""
        ended = self.ended()
        if not ended:
            return
        self.step(f"redrive-before-{call[1]}" + ("-seen" if seen else ""))
        self.interleave = (*call, data.draw(st.sampled_from(ended)), seen)

    @precondition(lambda self: len(self.unseen) < MAX_UNSEEN and bool(self.runs))
    @rule(data=st.data())
    def unseen_copy(self, data: st.DataObject) -> None:
        """A task with a run's LOCK_OWNER that its history never names (a RunTask whose answer
        was lost unmarked, a retry outside the state machine, a copy started by hand)."""
        tasks = [(t, arn) for arn in self.runs for t in self.tasks[arn]]
        if not tasks:
            return
        self.step("unseen-copy")
        task, owner = data.draw(st.sampled_from(tasks))
        self.unseen[self.machine.unseen_copy(task)] = owner

    @precondition(lambda self: bool(self.runs))
    @rule(janitor_first=st.booleans())
    def operator_force_stops(self, janitor_first: bool) -> None:
        """`lock-janitor release LOCK --force --stop --yes`, as on-call runs it, on a live
        holder: the run is stopped, then its task and its lock repaired. `janitor_first`: the
        janitor handles the stop's ABORTED event while the command waits for the run to end
        (on AWS a race; here the moment is chosen)."""
        holder = self.lock().get("Owner")
        if holder not in self.alive():
            return
        self.step("operator-stop" + ("-janitor-first" if janitor_first else ""))
        stack = OperatorStack(
            clients.aws(), self.machine.stack.table_name, self.machine.stack.alerts_topic_arn
        )
        case = operations.read_release_case(stack, self.lock_id)  # type: ignore[arg-type]
        wait = operations._wait_until_ended

        def then_the_janitor(stack: Any, arn: str) -> None:
            wait(stack, arn)
            if janitor_first:
                self.janitor(status_change_event(self.machine.sfn, arn), FakeContext())

        self.repaired = True
        with mock.patch.object(operations, "_wait_until_ended", then_the_janitor):
            done = operations.release_lock(stack, case, force=True, stop=True)  # type: ignore[arg-type]
        lock = self.lock()
        assert "Owner" not in lock, f"the command left the lock held; steps {self.trace}"
        assert (lock["LastOwner"], lock["LastOutcome"]) == (holder, "FORCED"), self.trace
        by_the_command = lock["LastReleasedBy"] == "operator"
        assert bool(done.incidents) == by_the_command, (
            f"the stop reported {len(done.incidents)} time(s) by the command, released by "
            f"{lock['LastReleasedBy']}; steps {self.trace}"
        )
        self.observe()

    @rule()
    def reconcile(self) -> None:
        self.step("reconcile")
        reconciler = Reconciler(self.settings, clients.aws(), now=datetime.now(UTC) + self.offset)
        self.repaired = True
        failed = False
        try:
            with self.armed():
                reconciler.run()
        except Exception:
            failed = True
        if not (
            failed or self.fired or self.redrove
        ):  # it skips what it cannot read: a fault may hide a redrive from it, and a redrive
            # landing after its listings is not in them
            self.seen_by_the_reconciler(reconciler.now)
            self.assert_copies_stopped(reconciler.now)
        self.observe()

    def seen_by_the_reconciler(self, now: datetime) -> None:
        """The redrives a pass of the reconciler that nothing interrupted has dealt with: of a
        live run (it takes the lock or stops the run, and stops earlier attempts' tasks), or
        of a run that has ended again past the grace; a run ended within the grace it leaves
        to the janitor, as it leaves every other."""
        grace = timedelta(seconds=self.settings.grace_seconds)
        for arn in list(self.unseen_redrives):
            d = self.status(arn)
            if d["status"] == "RUNNING" or now - d["stopDate"] >= grace:
                self.unseen_redrives.discard(arn)
                self.redriven_after_reads.discard(arn)

    def assert_copies_stopped(self, now: datetime) -> None:
        """After a pass of the reconciler that nothing interrupted: no copy its run's history
        never names runs on once that run has ended and the grace has passed."""
        grace = timedelta(seconds=self.settings.grace_seconds)
        running = {t["taskArn"] for t in self.lock_tasks()}
        for task, owner in self.unseen.items():
            d = self.status(owner)
            if d["status"] == "RUNNING" or task not in running:
                continue
            stopped = d.get("stopDate")
            assert stopped is not None, f"{owner} ended without a stop date; steps {self.trace}"
            assert now - stopped < grace, (
                f"{task} of {owner} ({d['status']}) runs on past the grace; steps {self.trace}"
            )

    @rule()
    def time_passes(self) -> None:
        self.step("time")
        self.offset += timedelta(seconds=self.settings.grace_seconds + 1)

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def never_two_tasks_at_once(self) -> None:
        tasks = self.lock_tasks()
        if len(tasks) > 1:
            owners = {t["owner"] for t in tasks}
            copies = {t["taskArn"] for t in tasks} & set(self.unseen)
            assert owners & self.unseen_redrives or copies, (
                f"two tasks of {self.lock_id} running at once: {owners}; steps {self.trace}"
            )
            self.overlap += 1
            STATS.longest_overlap = max(STATS.longest_overlap, self.overlap)
        else:
            self.overlap = 0

    @invariant()
    def no_release_removes_a_live_holders_lock(self) -> None:
        lock = self.lock()
        before = self.previous_lock.get("Owner")
        released = before and lock.get("Owner") != before and lock.get("LastOwner") == before
        if before and released and lock.get("LastReleasedBy") in REPAIRERS:
            assert (
                before in self.redriven_after_reads or self.status(before)["status"] != "RUNNING"
            ), f"released the lock of live {before}; steps {self.trace}"
        self.previous_lock = lock

    @invariant()
    def no_release_while_its_holders_tasks_may_run(self) -> None:
        assert not self.violations, f"{self.violations}; steps {self.trace}"

    @invariant()
    def one_id_one_set_of_repairs(self) -> None:
        if self.repaired:  # only the janitor and the reconciler repair and publish
            self.repaired = False
            self.record_repairs()
            self.collect()

    def teardown(self) -> None:
        STATS.orderings.add(tuple(self.trace))
        try:
            for arn in self.alive():
                self.machine.sfn.stop_execution(executionArn=arn)
                self.machine.wait_done(arn)
            self.offset += timedelta(seconds=self.settings.grace_seconds + 1)
            for _ in range(2):  # the second run publishes what the first could only keep
                Reconciler(self.settings, clients.aws(), now=datetime.now(UTC) + self.offset).run()
            assert "Owner" not in self.lock(), f"lock left held; steps {self.trace}"
            assert self.lock_tasks() == [], f"a task of an ended run runs on; steps {self.trace}"
            self.record_repairs()
            self.collect()
            reported = {c for claims in self.published.values() for c in claims}
            missing = self.repairs - reported
            assert not missing, f"repairs never reported: {missing}; steps {self.trace}"
        finally:
            self.events.clear()


@pytest.mark.model
@pytest.mark.parametrize("shard", range(SHARDS))
def test_the_lock_keeps_its_promises_under_any_order_of_events(world: Machine, shard: int) -> None:
    """One shard of the examples: each shard has its own fixed seed (so `make test` checks the
    same examples every run, and pytest-xdist spreads the shards over the cores)."""
    LockModel.machine = world
    model = seed(SEED + shard)(type(f"LockModelShard{shard}", (LockModel,), {}))
    try:
        run_state_machine_as_test(
            model,
            settings=settings(
                max_examples=-(-EXAMPLES // SHARDS),
                stateful_step_count=STEPS,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
            ),
        )
    except BaseException as failed:
        failed.add_note(
            f"replay: MODEL_SEED={SEED} MODEL_EXAMPLES={EXAMPLES} (shard {shard} of {SHARDS})"
        )
        raise
    print(f"\nseed {SEED}, after shard {shard + 1} of {SHARDS}: " + STATS.line())
