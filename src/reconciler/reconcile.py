"""The reconciler: the level-triggered safety net behind the edge-triggered janitor.

Every few minutes it checks every held lock and every running task against the truth, because
status-change events are best effort and the janitor can fail. Whatever it finds left behind, it
heals exactly as the janitor would (common.healing), and reports it as the janitor would have,
so a late janitor event and the reconciler report the same repairs under the same incident id.

- a lock held by an execution that has ended, for longer than the grace period counted from
  when it ended (the janitor's event usually comes within seconds): its tasks stopped, then the
  lock released;
- a task whose execution has ended, on the same grace: stopped (and that execution's lock, if
  it still holds one, released), whether or not the execution's history names it; the cluster
  is listed first, so a dead holder's lock is released only once every task found with its
  LOCK_OWNER is stopped (and, when the cluster cannot be listed, no lock is released that run);
- a live run running without its lock (a redrive whose event was lost): it takes the lock, or is
  stopped when another live run holds it; a redriven run's tasks of earlier attempts: stopped;
- a holder running past its timeoutSeconds plus a margin (confirmed with DescribeExecution):
  reported as stuck, once per holder; the lock stays;
- reports that could not be published earlier (common.pending): published.

One thing it cannot read (AccessDenied on another state machine's execution, a hand-edited
item, a task of another stack) is skipped and reported; the rest is healed regardless.

Its cost grows with pages, not items: one scan of the table, one ListExecutions (RUNNING) per
state machine, one ListTasks; DescribeExecution only for candidates (ListExecutions is
eventually consistent); then the reads and writes of each repair."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from common.clients import Aws
from common.healing import Healed, Healer, aws_time
from common.incident import Execution, Incident, Repairs
from common.lock_table import (
    LOCK_ID,
    Fence,
    Lock,
    OddItem,
    Outcome,
    ReleasedBy,
    mark_overdue_reported,
    scan_pages,
)
from common.pending import Pending, flush, is_pending, kept, publish
from common.repair import decide
from common.settings import ReconcilerSettings
from common.triage import stuck, unreadable
from common.truth import (
    NO_SUCH_EXECUTION,
    AwsError,
    ExecutionTruth,
    TaskTruth,
    cluster_lock_tasks,
    describe_execution,
    error_code,
    machine_of,
    parse_time,
)


@dataclass
class Summary:
    dry_run: bool
    checked: int = 0
    held: int = 0
    tasks_checked: int = 0
    released: list[dict[str, str]] = field(default_factory=list)
    stopped: list[dict[str, str]] = field(default_factory=list)
    taken: list[dict[str, str]] = field(default_factory=list)
    overdue: list[dict[str, str]] = field(default_factory=list)
    left_alone: list[dict[str, str]] = field(default_factory=list)
    unreadable: list[dict[str, str]] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    """The kind of each incident published (or kept to be published)."""
    reported: list[dict[str, Any]] = field(default_factory=list)
    """Each incident published (or kept), as its "Incident" log line."""
    reports_flushed: int = 0
    unpublished: list[dict[str, str]] = field(default_factory=list)
    """Reports this run could not publish: a kept one (it stays kept for the next run), or the
    report of something skipped."""

    def to_json(self) -> dict[str, Any]:
        return {
            "dryRun": self.dry_run,
            "checked": self.checked,
            "held": self.held,
            "tasksChecked": self.tasks_checked,
            "released": self.released,
            "stopped": self.stopped,
            "taken": self.taken,
            "overdue": self.overdue,
            "leftAlone": self.left_alone,
            "unreadable": self.unreadable,
            "incidents": len(self.incidents),
            "reportsFlushed": self.reports_flushed,
            "unpublished": self.unpublished,
        }


def running_executions(aws: Aws, state_machine_arn: str) -> dict[str, int]:
    """RUNNING executions of one state machine and their redrive counts (eventually
    consistent: a hint, not the truth)."""
    found: dict[str, int] = {}
    try:
        for page in aws.stepfunctions.get_paginator("list_executions").paginate(
            stateMachineArn=state_machine_arn, statusFilter="RUNNING"
        ):
            for e in page["executions"]:
                found[e["executionArn"]] = int(e.get("redriveCount") or 0)
    except ClientError as err:
        # A lock recorded by a state machine since deleted: none of its executions runs; each
        # owner is still confirmed with DescribeExecution before anything is released.
        if error_code(err) not in NO_SUCH_EXECUTION:
            raise
    return found


@dataclass
class Reconciler:
    settings: ReconcilerSettings
    aws: Aws
    dry_run: bool = False
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    page_size: int | None = None
    log: Callable[[str, dict[str, Any]], None] = lambda message, extra: None
    """Where to say what was skipped and why (the handler logs it as an ERROR)."""
    _truth: dict[str, ExecutionTruth] = field(default_factory=dict)
    _done: set[str] = field(default_factory=set)
    _seen: dict[str, list[TaskTruth]] | None = None
    """Execution ARN -> its tasks listed running in the cluster this run (by LOCK_OWNER)."""

    @property
    def healer(self) -> Healer:
        return Healer(
            self.aws,
            self.settings.lock_table,
            ReleasedBy.RECONCILER,
            now=lambda: self.now,
            outcome=Outcome.STALE,
            seen=self._seen,
            cluster_unread=self._seen is None,
        )

    def _describe(self, arn: str) -> ExecutionTruth:
        if arn not in self._truth:
            self._truth[arn] = describe_execution(self.aws.stepfunctions, arn)
        return self._truth[arn]

    def run(self) -> Summary:
        summary = Summary(self.dry_run)
        locks: dict[str, Lock] = {}
        reports: list[Pending] = []
        for page in scan_pages(self.aws.dynamodb, self.settings.lock_table, self.page_size):
            for item in page:
                if is_pending(item):
                    reports += kept([item])
                    continue
                summary.checked += 1
                try:
                    lock = Lock.from_item(item)
                except OddItem as err:
                    key = str((item.get(LOCK_ID) or {}).get("S", "?"))
                    self._unreadable(summary, f"lock item {key!r}", str(err), key)
                    continue
                locks[lock.lock_id] = lock
        held = [lock for lock in locks.values() if lock.held]
        summary.held = len(held)

        machines = {lock.state_machine_arn or self.settings.state_machine_arn for lock in held}
        machines.add(self.settings.state_machine_arn)
        listed: dict[str, int] = {}
        unlisted: set[str] = set()
        for machine in sorted(machines):
            try:
                listed |= running_executions(self.aws, machine)
            except AwsError as err:
                unlisted.add(machine)
                self._unreadable(summary, f"the executions of {machine}", _says(err), machine)

        tasks = self._cluster_tasks(summary)
        for lock in held:
            self._lock(lock, listed, unlisted, summary)
        for task in tasks:
            self._task(task, locks, listed, summary)

        if not self.dry_run:
            for pending in reports:
                try:
                    flush(self.aws.sns, self.aws.dynamodb, self.settings.lock_table, pending)
                    summary.reports_flushed += 1
                except AwsError as err:
                    failed = {"key": pending.key, "error": error_code(err)}
                    summary.unpublished.append(failed)
                    self.log("A kept report could not be published yet", failed)
        return summary

    def _cluster_tasks(self, summary: Summary) -> list[TaskTruth]:
        """The cluster's running tasks by LOCK_OWNER, listed before any lock is healed: a dead
        holder's lock is released only once every task found with its LOCK_OWNER is stopped,
        whether or not its history names them."""
        try:
            summary.tasks_checked, tasks = cluster_lock_tasks(
                self.aws.ecs, self.settings.cluster_arn
            )
        except AwsError as err:
            self._unreadable(summary, "the cluster's tasks", _says(err), self.settings.cluster_arn)
            return []
        self._seen = {}
        for task in tasks:
            assert task.lock_owner is not None
            self._seen.setdefault(task.lock_owner, []).append(task)
        return tasks

    # --- locks ---------------------------------------------------------------------------

    def _lock(
        self, lock: Lock, listed: dict[str, int], unlisted: set[str], summary: Summary
    ) -> None:
        owner = lock.owner
        assert owner is not None
        entry = {"lockId": lock.lock_id, "owner": owner}
        if (lock.state_machine_arn or machine_of(owner)) in unlisted and owner not in listed:
            summary.left_alone.append({**entry, "why": "unreadable"})
            return
        try:
            if owner in listed:
                if self._overdue(lock):
                    truth = self._describe(owner)
                    if truth.alive:
                        self._report_stuck(lock, truth, summary)
                        return
                    self._heal_if_due(truth, lock, summary)
                return
            truth = self._describe(owner)
            if truth.alive:
                # Not listed as running, but it is (ListExecutions lags): the truth wins.
                summary.left_alone.append({**entry, "why": "alive"})
                return
            self._heal_if_due(truth, lock, summary)
        except AwsError as err:
            self._unreadable(
                summary, f"the holder of lock {lock.lock_id}", _says(err), lock.lock_id, owner
            )

    def _overdue(self, lock: Lock) -> bool:
        acquired = parse_time(lock.acquired_at)
        if acquired is None or lock.timeout_seconds is None:
            return False
        limit = timedelta(seconds=lock.timeout_seconds + self.settings.overdue_margin_seconds)
        return self.now - acquired > limit

    def _due(self, truth: ExecutionTruth, lock: Lock | None) -> bool:
        """Past the grace period, counted from when the execution ended (the janitor's event is
        usually handled within seconds of that); for an execution Step Functions no longer
        knows, from when its lock was taken."""
        grace = timedelta(seconds=self.settings.grace_seconds)
        if truth.stop_ms is not None:
            ended = datetime.fromtimestamp(truth.stop_ms / 1000, UTC)
        else:
            ended = parse_time(lock.acquired_at if lock else None) or self.now - grace
        return self.now - ended >= grace

    def _heal_if_due(self, truth: ExecutionTruth, lock: Lock | None, summary: Summary) -> None:
        if not self._due(truth, lock):
            summary.left_alone.append(
                {"lockId": truth.input.lock_id or "", "owner": truth.arn, "why": "young"}
            )
            return
        self._heal(truth, summary)

    # --- tasks ---------------------------------------------------------------------------

    def _task(
        self, task: TaskTruth, locks: dict[str, Lock], listed: dict[str, int], summary: Summary
    ) -> None:
        owner = task.lock_owner
        assert owner is not None
        if owner in self._done:
            return
        lock = locks.get(task.lock_id or "")
        try:
            if owner in listed:
                without_lock = lock is None or lock.owner != owner
                if not (without_lock or listed[owner] > 0):
                    return
                truth = self._describe(owner)
                if truth.alive:
                    self._heal(truth, summary)
                    return
            else:
                truth = self._describe(owner)
                if truth.alive:
                    self._heal(truth, summary)
                    return
            self._heal_if_due(truth, lock, summary)
        except AwsError as err:
            self._unreadable(summary, f"task {task.arn}", _says(err), task.arn, owner)

    # --- healing and reporting -------------------------------------------------------------

    def _heal(self, truth: ExecutionTruth, summary: Summary) -> None:
        if truth.arn in self._done:
            return
        self._done.add(truth.arn)
        if self.dry_run:
            snapshot = self.healer.snapshot(truth.arn, truth)
            plan = decide(snapshot)
            for t in plan.stop:
                summary.stopped.append(
                    {"taskArn": t.arn, "owner": truth.arn, "ownerStatus": truth.status}
                )
            if plan.release:
                summary.released.append(
                    {
                        "lockId": snapshot.lock_id or "",
                        "owner": truth.arn,
                        "ownerStatus": truth.status,
                    }
                )
            if plan.take:
                summary.taken.append({"lockId": snapshot.lock_id or "", "owner": truth.arn})
            return
        for healed in self.healer.heal(truth.arn, truth):
            self._account(healed, summary)

    def _account(self, healed: Healed, summary: Summary) -> None:
        e = healed.after.execution
        self._done.add(e.arn)
        for arn in healed.stopped:
            summary.stopped.append({"taskArn": arn, "owner": e.arn, "ownerStatus": e.status})
        if healed.released:
            summary.released.append(
                {"lockId": healed.after.lock_id or "", "owner": e.arn, "ownerStatus": e.status}
            )
        if healed.plan.take and not healed.undone:
            summary.taken.append({"lockId": healed.after.lock_id or "", "owner": e.arn})
        if healed.plan.left_alone:
            summary.left_alone.append(
                {
                    "lockId": healed.after.lock_id or "",
                    "owner": e.arn,
                    "why": healed.plan.left_alone,
                }
            )
        if healed.undone:
            self._unreadable(
                summary, f"what {e.arn} left behind", "; ".join(healed.undone), e.arn, e.arn
            )
        incident = self.healer.report(healed, "reconciler")
        if incident is not None and incident.repairs.claims:
            self._publish(incident, summary)

    def _report_stuck(self, lock: Lock, truth: ExecutionTruth, summary: Summary) -> None:
        assert lock.owner is not None
        summary.overdue.append(
            {"lockId": lock.lock_id, "owner": lock.owner, "acquiredAt": lock.acquired_at or ""}
        )
        if self.dry_run or lock.overdue_reported_at:
            return
        if not mark_overdue_reported(
            self.aws.dynamodb,
            self.settings.lock_table,
            lock.lock_id,
            Fence.of(lock),
            now=aws_time(self.now),
        ):
            return
        triage = stuck(lock.timeout_seconds)
        self._publish(
            Incident(
                kind="stuck",
                severity=triage.severity,
                headline=triage.headline,
                timeout_seconds=lock.timeout_seconds,
                status=truth.status,
                lock_id=lock.lock_id,
                execution=_execution(truth),
                repairs=Repairs(
                    "left_held",
                    f"{lock.lock_id}: held since {lock.acquired_at} by a run still going past "
                    f"its {lock.timeout_seconds}s timeout; the lock stays",
                    holder=lock.owner,
                ),
                action=triage.action,
                start_ms=truth.start_ms,
                reported_by="reconciler",
                incident_key=f"{lock.lock_id}#{lock.token}",
            ),
            summary,
        )

    def _unreadable(
        self, summary: Summary, what: str, why: str, key: str, about: str | None = None
    ) -> None:
        """Report something skipped; `about` is the execution it concerns, when known."""
        summary.unreadable.append({"what": what, "why": why})
        self.log("Skipped what could not be read or repaired", {"what": what, "why": why})
        if self.dry_run:
            return
        triage = unreadable(what)
        machine = self.settings.state_machine_arn
        arn = about or machine.replace(":stateMachine:", ":execution:") + ":-"
        incident = Incident(
            kind="unreadable",
            severity=triage.severity,
            headline=triage.headline,
            status="UNREADABLE",
            lock_id=None,
            execution=Execution(arn, arn.rsplit(":", 1)[-1], machine_of(arn) or machine),
            repairs=Repairs("left_held", f"{what}: {why}"[:2000]),
            action=triage.action,
            reported_by="reconciler",
            incident_key=f"{key}#{why.split(':', 1)[0]}",
        )
        try:
            self._publish(incident, summary)
        except AwsError as err:
            failed = {"what": what, "error": error_code(err)}
            summary.unpublished.append(failed)
            self.log("The report of what was skipped could not be published", failed)

    def _publish(self, incident: Incident, summary: Summary) -> None:
        published = publish(
            self.aws.sns,
            self.aws.dynamodb,
            self.settings.lock_table,
            incident,
            topic_arn=self.settings.alerts_topic_arn,
            now=aws_time(self.now),
        )
        summary.incidents.append(incident.kind)
        summary.reported.append({**incident.log_fields(), "published": published})


def _execution(truth: ExecutionTruth) -> Execution:
    return Execution(truth.arn, truth.name, truth.state_machine_arn, truth.redrive_count)


def _says(err: Exception) -> str:
    message = ""
    if isinstance(err, ClientError):
        message = str(err.response.get("Error", {}).get("Message", ""))
    return f"{error_code(err)}: {message}"[:500] if message else error_code(err)


class BadInput(ValueError):
    """The reconciler's input is not {} or {"dryRun": true|false}."""


def dry_run_from(event: Any) -> bool:
    if event is None or event == {}:
        return False
    if not isinstance(event, dict):
        raise BadInput(
            f'expected a JSON object like {{"dryRun": true}}, got {type(event).__name__}'
        )
    unknown = sorted(str(k) for k in event if k != "dryRun")
    if unknown:
        # A typo ("dryrun") must not turn a dry run into a real one.
        raise BadInput(f'unknown keys {unknown[:5]}: expected {{}} or {{"dryRun": true}}')
    value = event.get("dryRun", False)
    if not isinstance(value, bool):
        raise BadInput(f"dryRun must be true or false, got {value!r}")
    return value
