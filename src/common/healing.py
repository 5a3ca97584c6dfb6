"""Healing one execution: read the truth once into a snapshot, decide (common.repair), carry the
plan out with writes fenced on what was read, and hand back the snapshot as it is after. The
janitor and the reconciler both heal through here; they differ only in what wakes them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from common.clients import Aws
from common.ecs_task import LOG_CONFIGS
from common.incident import Incident
from common.lock_table import (
    Fence,
    HeldBy,
    Outcome,
    ReleasedBy,
    get_lock,
    release,
    take,
)
from common.repair import (
    REDRIVEN_MEANWHILE,
    Plan,
    Snapshot,
    decide,
    outcome_of,
    report,
    why_stop,
    with_task,
    without_task,
)
from common.task_input import TaskInput
from common.triage import LOCK_HELD_ERROR
from common.truth import (
    MISSING,
    NO_SUCH_EXECUTION,
    AwsError,
    ExecutionTruth,
    History,
    TaskTruth,
    cluster_lock_tasks,
    describe_execution,
    describe_tasks,
    error_code,
    read_history,
    stop_reason,
    task_gone,
    task_truth,
)

READS = 3
"""How many times a snapshot reads again the one of DescribeExecution and the history that is
behind the other (a redrive landing between them)."""


def aws_time(moment: datetime | None = None) -> str:
    """An ISO-8601 UTC time with milliseconds and Z, as Step Functions writes
    `$$.State.EnteredTime` (so lock times compare as strings)."""
    moment = moment or datetime.now(UTC)
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


_POOL: ThreadPoolExecutor | None = None


def together[A, B](first: Callable[[], A], second: Callable[[], B]) -> tuple[A, B]:
    """Two independent reads at once (the second on a pool thread; boto3 clients are thread
    safe), so the wait of one round trip covers both. Both finish before this returns; the
    first's error is raised first."""
    global _POOL  # noqa: PLW0603 - one small pool per process, kept by a warm container
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="truth")
    future = _POOL.submit(second)
    try:
        a = first()
    except BaseException:
        future.exception()  # let the other read finish: nothing outlives the snapshot
        raise
    return a, future.result()


@dataclass
class Healed:
    """One execution after a pass: the snapshot as it is now, what was planned, what could not
    be done (left for a retry), and the dead holder it took the lock over from, if any."""

    after: Snapshot
    plan: Plan
    plan_input: Snapshot
    """The snapshot the plan was decided on (every write is fenced on it)."""
    undone: list[str] = field(default_factory=list)
    taken_over_from: str | None = None
    released: bool = False
    stopped: list[str] = field(default_factory=list)


@dataclass
class Healer:
    aws: Aws
    table: str
    by: ReleasedBy
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    outcome: Outcome | None = None
    """The LastOutcome every release records (the reconciler's STALE); None: read from the
    execution (common.repair.outcome_of)."""
    seen: Mapping[str, Sequence[TaskTruth]] | None = None
    """Execution ARN -> its tasks found running in the cluster by LOCK_OWNER, when the caller
    listed the cluster (the reconciler); None: not listed."""
    cluster_unread: bool = False
    """The caller (the reconciler) could not list the cluster: a task no history names may run
    with any owner, so no lock is released now (the next pass, which lists it, does)."""

    def report(self, healed: Healed, reported_by: str) -> Incident | None:
        """The incident for a healed execution (common.repair.report), with links to its failed
        task's logs when its task definition logs to CloudWatch (read once per revision)."""
        incident = report(healed.after, reported_by, taken_over_from=healed.taken_over_from)
        task = incident.task if incident else None
        if incident is None or task is None or not task.task_definition_arn:
            return incident
        logs = LOG_CONFIGS.lookup(self.aws.ecs, task.task_definition_arn, task.region or "")
        return replace(incident, task=replace(task, logs=logs)) if logs else incident

    def snapshot(
        self,
        arn: str,
        execution: ExecutionTruth | None = None,
        hint: TaskInput | None = None,
        *,
        read_lock: bool = True,
    ) -> Snapshot:
        """The truth about `arn`, read once: DescribeExecution and the history (at the same
        time), the lock (consistent read), the tasks the history does not show STOPPED
        (DescribeTasks); the cluster's tasks by LOCK_OWNER when a RunTask may have started a
        task the history does not name (or, for the reconciler, those it listed with that
        owner: `seen`); the holder when another execution holds the lock of a live execution.

        The two first reads must agree on the attempt: when one shows a redrive the other does
        not yet (the run was redriven while it was read, either way round), the one behind is
        read again (at most READS times). When they still disagree, the snapshot says so
        (`reads_agree`): `decide` acts on the later attempt, and the caller retries.

        `read_lock=False` skips reading the lock of an execution read to have ended: whatever
        the lock's state, such an execution's tasks are stopped, and its release is conditioned
        on the execution holding the lock for the attempt read (`HeldBy`), whose answer says
        how the lock stands. One call fewer per incident; a dry run reads it."""
        sfn = self.aws.stepfunctions
        if execution is None:
            e, history = together(
                lambda: describe_execution(sfn, arn), lambda: read_history(sfn, arn)
            )
        else:
            e = execution
            history = read_history(sfn, arn) if e.status != MISSING else None
        for _ in range(READS):
            if history is None or e.status == MISSING or history.attempt == e.redrive_count:
                break
            if history.attempt > e.redrive_count:  # redriven since DescribeExecution answered
                e = describe_execution(sfn, arn)
            else:  # Step Functions shows a redrive the history did not yet
                history = read_history(sfn, arn)
        if e.status == MISSING and hint is not None:
            # Step Functions no longer knows it: the event's input is all that names its lock
            # (safe: the release is still fenced on this execution owning the lock).
            e = replace(e, input=hint)
        # Not for MISSING: its attempt is unknown, so the release is fenced on the lock read.
        skip_lock = not read_lock and not e.alive and e.status != MISSING
        lock_id = None if skip_lock else e.input.lock_id
        lock, (tasks, gone) = together(
            lambda: get_lock(self.aws.dynamodb, self.table, lock_id) if lock_id else None,
            lambda: self._tasks(arn, e, history),
        )
        holder = None
        if e.alive and lock is not None and lock.owner not in {None, arn}:
            assert lock.owner is not None
            holder = describe_execution(sfn, lock.owner)
        if e.error is None and e.cause is None and history is not None:
            e = replace(e, error=history.error, cause=history.cause)
        return Snapshot(
            execution=e,
            lock=lock,
            tasks=tuple(tasks),
            gone=tuple(gone),
            history_missing=history is None,
            history_attempt=history.attempt if history else 0,
            history_statuses=history.statuses if history else frozenset(),
            holder=holder,
            lock_read=not (skip_lock and e.input.lock_id),
        )

    def _tasks(
        self, arn: str, e: ExecutionTruth, history: History | None
    ) -> tuple[list[TaskTruth], list[str]]:
        """The execution's tasks as they are now, and those ECS no longer knows: as the history
        recorded them STOPPED (final), else DescribeTasks; then the tasks found running with
        this LOCK_OWNER that the history does not name (a RunTask whose answer was lost, a copy
        started by hand): those the reconciler listed (`seen`), or, for an ended execution
        whose RunTask answer was lost, those found in its cluster. A task the history does not
        name counts as its execution's current attempt: never stopped while the run lives,
        unless the run itself is stopped."""
        known: set[str] = set()
        recorded: list[TaskTruth] = []
        described: list[TaskTruth] = []
        gone: list[str] = []
        if history is not None:
            known = {r.task_arn for r in history.tasks}
            recorded = [
                replace(task_truth(history.ended[r.task_arn], r), desired_status="STOPPED")
                for r in history.tasks
                if r.task_arn in history.ended
            ]
            unknown = [r for r in history.tasks if r.task_arn not in history.ended]
            described, gone = describe_tasks(self.aws.ecs, unknown) if unknown else ([], [])
        found: list[TaskTruth] = []
        if self.seen is not None:
            found = [t for t in self.seen.get(arn, ()) if t.arn not in known]
        elif history is not None and history.unsure_starts and not e.alive:
            for cluster in history.unsure_starts:
                if cluster:
                    _, tasks = cluster_lock_tasks(self.aws.ecs, cluster)
                    found += [t for t in tasks if t.lock_owner == arn and t.arn not in known]
        current = [replace(t, ref=replace(t.ref, attempt=e.redrive_count)) for t in found]
        return [*recorded, *described, *current], gone

    def heal(
        self, arn: str, execution: ExecutionTruth | None = None, hint: TaskInput | None = None
    ) -> list[Healed]:
        """Heal `arn` (and first, when it must take the lock over, the dead holder of its
        lock). Returns every execution healed, the holder first."""
        healed: list[Healed] = []
        s = self.snapshot(arn, execution, hint, read_lock=False)
        plan = decide(s)
        if plan.heal_holder and s.other_holder is not None:
            holder = s.other_holder
            healed += self.heal_one(self.snapshot(holder))
            s = self.snapshot(arn)
            plan = decide(s)
            if plan.heal_holder:  # the holder could not be healed now: leave it for the retry
                healed.append(Healed(s, plan, s, [f"take over {s.lock_id} from {holder}"]))
                return healed
            result = self.carry_out(s, plan)
            if plan.take:
                result.taken_over_from = holder
            healed.append(result)
            return healed
        healed.append(self.carry_out(s, plan))
        return healed

    def heal_one(self, s: Snapshot) -> list[Healed]:
        return [self.carry_out(s, decide(s))]

    def carry_out(self, s: Snapshot, plan: Plan) -> Healed:
        """Stop what must stop, then (only when every stop happened) release or take the lock,
        each write fenced on the snapshot. What fails is left in `undone` for a retry."""
        done = Healed(s, plan, plan_input=s)
        e = s.execution
        if plan.left_alone == REDRIVEN_MEANWHILE:
            done.undone.append(f"heal {e.arn}: redriven while it was read; healed on the retry")
        if plan.stop_execution:
            cause = f"lock {s.lock_id} is held by {s.other_holder}"
            try:
                self.aws.stepfunctions.stop_execution(
                    executionArn=e.arn, error=LOCK_HELD_ERROR, cause=cause
                )
                done.after = replace(done.after, stopping=self.by.value)
            except AwsError as err:
                if error_code(err) not in NO_SUCH_EXECUTION:
                    done.undone.append(f"stop execution {e.arn}: {error_code(err)}")
        for task in plan.stop:
            self._stop(done, task)
        if plan.stop_execution and done.after.stopping:
            self._stop_tasks_started_meanwhile(done)
        if plan.release and self.cluster_unread:
            done.undone.append(
                f"release {s.lock_id}: waits until the cluster's tasks can be listed (a task "
                "its history does not name may run)"
            )
        elif plan.release and not done.undone:
            self._release(done)
        elif plan.release:
            done.undone.append(f"release {s.lock_id}: waits until its tasks are stopped")
        if plan.take and not done.undone:
            self._take(done)
        if not done.after.lock_read:  # the release was left undone: the report reads the lock
            self._read_lock(done)
        if not s.reads_agree:
            done.undone.append(
                f"heal {e.arn}: its history had not caught up with its attempt "
                f"{e.redrive_count}; healed again on the retry"
            )
        return done

    def _stop_tasks_started_meanwhile(self, done: Healed) -> None:
        """A run stopped for another holder's sake may have started its current attempt's task
        after it was read (the history did not name it yet): read its history again now that
        it is stopped, and stop that task too, so it never runs beside the holder's."""
        e = done.after.execution
        known = {t.arn for t in done.after.tasks} | set(done.after.gone)
        try:
            history = read_history(self.aws.stepfunctions, e.arn)
            late = [r for r in history.tasks if r.task_arn not in known] if history else []
            tasks, gone = describe_tasks(self.aws.ecs, late) if late else ([], [])
        except AwsError as err:
            done.undone.append(f"read {e.arn} again after its stop: {error_code(err)}")
            return
        done.after = replace(
            done.after, tasks=(*done.after.tasks, *tasks), gone=(*done.after.gone, *gone)
        )
        for task in tasks:
            if task.needs_stop:
                self._stop(done, task)

    def _read_lock(self, done: Healed) -> None:
        lock_id = done.after.lock_id
        assert lock_id is not None
        try:
            lock = get_lock(self.aws.dynamodb, self.table, lock_id)
        except AwsError as err:
            done.undone.append(f"read {lock_id}: {error_code(err)}")
            return
        done.after = replace(done.after, lock=lock, lock_read=True)

    def _release(self, done: Healed) -> None:
        s = done.plan_input
        assert s.lock_id is not None
        if s.lock_read:
            assert s.lock is not None
            fence: Fence | HeldBy = Fence.of(s.lock)
        else:
            fence = HeldBy(s.execution.arn, s.execution.redrive_count)
        try:
            result = release(
                self.aws.dynamodb,
                self.table,
                s.lock_id,
                fence,
                attempt=s.execution.redrive_count,
                outcome=self.outcome or outcome_of(s.execution),
                by=self.by,
                now=aws_time(self.now()),
            )
        except AwsError as err:
            done.undone.append(f"release {s.lock_id}: {error_code(err)}")
            return
        done.released = result.kind == "done"
        done.after = replace(done.after, lock=result.lock, lock_read=True)

    def _take(self, done: Healed) -> None:
        s = done.plan_input
        e = s.execution
        assert s.lock_id is not None
        try:
            result = take(
                self.aws.dynamodb,
                self.table,
                s.lock_id,
                expected=s.lock,
                owner=e.arn,
                state_machine_arn=e.state_machine_arn,
                timeout_seconds=e.input.timeout_seconds,
                redrive_count=e.redrive_count,
                by=self.by,
                now=aws_time(self.now()),
            )
        except AwsError as err:
            done.undone.append(f"take {s.lock_id}: {error_code(err)}")
            return
        done.after = replace(done.after, lock=result.lock)
        if result.kind == "changed":
            done.undone.append(f"take {s.lock_id}: it changed since it was read")

    def _stop(self, done: Healed, task: TaskTruth) -> None:
        e = done.after.execution
        reason = stop_reason(self.by.value, e.name, e.redrive_count, why_stop(done.after, task))
        try:
            answer = self.aws.ecs.stop_task(
                cluster=task.ref.cluster_arn, task=task.arn, reason=reason
            )
        except AwsError as err:
            if task_gone(err):
                done.after = without_task(done.after, task.arn)
            else:
                done.undone.append(f"stop {task.arn}: {error_code(err)}")
            return
        stopped = task_truth(dict(answer.get("task") or {}), task.ref)
        if stopped.desired_status != "STOPPED":  # an answer without the task: trust the call
            stopped = replace(task, desired_status="STOPPED", stopped_reason=reason)
        done.after = with_task(done.after, stopped)
        done.stopped.append(task.arn)
