"""What to do about one execution and its lock, decided on one snapshot of the truth; and what
to report, derived from the state after. Pure: no I/O here (common/healing.py reads and acts).

The rules, whatever event woke the caller and in whatever order events came:
- an execution that has ended (or that Step Functions no longer knows) keeps no task running:
  stop every task of it that runs, and release its lock only when none can still run;
- a live execution's tasks of earlier attempts (before a redrive) are stopped; its current
  attempt's task is never touched;
- a live execution that should hold its lock (it was redriven, or its task runs) and does not,
  takes it: when free (unless an operator forced it away after the run started), from a dead
  holder once that holder is healed, or, when a live run holds it, is stopped instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from common.ecs_task import stopped_task
from common.incident import Execution, Incident, Repairs
from common.lock_table import Lock, Outcome, ReleasedBy
from common.triage import OPERATOR_STOP_ERROR, ended, redriven, unlocked
from common.truth import MISSING, ExecutionTruth, TaskTruth, parse_time

REPAIRERS = frozenset({ReleasedBy.JANITOR.value, ReleasedBy.RECONCILER.value})
REDRIVEN_MEANWHILE = "redriven meanwhile"
"""`Plan.left_alone` when the history shows a redrive the execution's status does not yet."""


@dataclass(frozen=True)
class Snapshot:
    """The truth about one execution, read once: the execution, the lock its input names, the
    tasks it started, and (when another execution holds that lock) the holder."""

    execution: ExecutionTruth
    lock: Lock | None = None
    tasks: tuple[TaskTruth, ...] = ()
    gone: tuple[str, ...] = ()
    history_missing: bool = False
    holder: ExecutionTruth | None = None
    stopping: str | None = None
    """Who asked Step Functions to stop this execution (another run holds its lock)."""
    lock_read: bool = True
    """False: the lock was not read (an execution read to have ended, healed by a release
    conditioned on it holding the lock, whose answer says how the lock stands)."""
    history_attempt: int = 0
    """The attempt the execution's history has reached: above the execution's redrive count
    when the run was redriven after Step Functions answered."""
    history_statuses: frozenset[str] = frozenset()
    """Every status an attempt ended with, as the history shows (empty when it was not read)."""

    @property
    def lock_id(self) -> str | None:
        return self.execution.input.lock_id

    @property
    def reads_agree(self) -> bool:
        """DescribeExecution and the history name the same attempt (or one was not read)."""
        e = self.execution
        unread = self.history_missing or e.status == MISSING
        return unread or self.history_attempt == e.redrive_count

    @property
    def holds(self) -> bool:
        return self.lock is not None and self.lock.owner == self.execution.arn

    @property
    def other_holder(self) -> str | None:
        owner = self.lock.owner if self.lock else None
        return owner if owner not in {None, self.execution.arn} else None


@dataclass(frozen=True)
class Plan:
    stop: tuple[TaskTruth, ...] = ()
    """Tasks to stop, each with the reason's `why`."""
    release: bool = False
    """Release the execution's lock, fenced on the snapshot, once every stop is done."""
    take: bool = False
    """Take the lock for the execution's current attempt, fenced on the snapshot."""
    stop_execution: bool = False
    """A live run holds the lock: stop this execution (its tasks are in `stop`)."""
    heal_holder: bool = False
    """The lock's holder is dead: heal it first, then look again."""
    left_alone: str | None = None
    """Why nothing is done to the lock when something could have been."""


def forced_away(lock: Lock | None, execution: ExecutionTruth) -> bool:
    """An operator released this execution's lock by force after its current attempt started:
    their decision stands (the run goes on without the lock)."""
    if lock is None or lock.last_owner != execution.arn:
        return False
    if lock.last_outcome != Outcome.FORCED.value:
        return False
    moment = parse_time(lock.last_released_at)
    released = int(moment.timestamp() * 1000) if moment else None
    started = execution.redrive_ms or execution.start_ms
    return released is None or started is None or released >= started


def stopped_by_operator(e: ExecutionTruth) -> bool:
    """An operator stopped the run (`lock-janitor release --force --stop`), as the execution
    itself says: whoever then releases its lock, and whichever command path reports it."""
    return e.status == "ABORTED" and e.error == OPERATOR_STOP_ERROR


def outcome_of(e: ExecutionTruth) -> Outcome:
    """The LastOutcome a release of an ended execution's lock records: how it ended, read from
    the execution; FORCED when an operator stopped it, whoever releases its lock (the command,
    or the janitor on the ABORTED event before it)."""
    if stopped_by_operator(e):
        return Outcome.FORCED
    try:
        return Outcome(e.status)
    except ValueError:  # SUCCEEDED never needs us; MISSING: nobody can say how it ended
        return Outcome.STALE


def decide(s: Snapshot) -> Plan:  # noqa: PLR0911 - one return per rule
    e = s.execution
    if not e.alive and s.history_attempt > e.redrive_count:
        # Redriven since Step Functions answered: stop the ended attempts' tasks only, and
        # leave the lock until the execution reads as the live run it is.
        ended_tasks = tuple(t for t in s.tasks if t.needs_stop and t.ref.attempt <= e.redrive_count)
        return Plan(stop=ended_tasks, left_alone=REDRIVEN_MEANWHILE)
    if not e.alive:
        # Unread (only ever for an execution naming a lock): its release finds out.
        release = s.holds or not s.lock_read
        return Plan(stop=tuple(t for t in s.tasks if t.needs_stop), release=release)
    current = e.redrive_count
    earlier = tuple(t for t in s.tasks if t.needs_stop and t.ref.attempt < current)
    running_now = any(t.running and t.ref.attempt >= current for t in s.tasks)
    if s.lock_id is None or not (current > 0 or running_now):
        return Plan(stop=earlier)
    lock = s.lock
    if s.holds:
        assert lock is not None
        return Plan(stop=earlier, take=(lock.redrive_count or 0) < current)
    if lock is None or lock.owner is None:
        if forced_away(lock, e):
            return Plan(stop=earlier, left_alone="forced")
        return Plan(stop=earlier, take=True)
    if s.holder is None or s.holder.alive:
        mine = tuple(t for t in s.tasks if t.needs_stop and t not in earlier)
        return Plan(stop=earlier + mine, stop_execution=True)
    return Plan(stop=earlier, heal_holder=True)


def why_stop(s: Snapshot, task: TaskTruth) -> str:
    """The reason, after "execution <name>", given to StopTask."""
    e = s.execution
    if not e.alive:
        return f"ended {e.status}; its task must not run on"
    if s.stopping:
        return f"was stopped: lock {s.lock_id} is held by another run"
    return (
        f"was redriven; its attempt {task.ref.attempt} must not run beside attempt "
        f"{e.redrive_count}"
    )


def kind_of(s: Snapshot, reported_by: str) -> str:
    if not s.execution.alive:
        operator = reported_by == ReleasedBy.OPERATOR.value
        return "forced" if operator and stopped_by_operator(s.execution) else "execution"
    return "redrive" if s.execution.redrive_count > 0 else "unlocked"


def _lock_state(  # noqa: PLR0911 - one return per state of the lock
    s: Snapshot, claims: list[str], taken_over_from: str | None
) -> tuple[str, str, str | None, str | None]:
    """The lock as it stands for this execution: state, detail, holder, released_by."""
    e, lock, lock_id = s.execution, s.lock, s.lock_id
    if lock_id is None:
        return "no_lock", "none: the execution's input names no lock, so it took none", None, None
    if lock is None:
        return "no_lock", f"{lock_id}: no lock item", None, None
    if s.holds:
        by, token = lock.acquired_by, f"token {lock.token}"
        if by in REPAIRERS and e.alive and (lock.redrive_count or 0) == e.redrive_count:
            claims.append(f"took {lock_id} for attempt {lock.redrive_count or 0} by {by}")
            state = "taken_over" if taken_over_from else "reacquired"
            detail = f"{lock_id}: taken for this run by the {by} at {lock.acquired_at} ({token})"
            return state, detail, taken_over_from, None
        if e.alive:
            return "held", f"{lock_id}: held by this run ({token})", None, None
        return "left_held", f"{lock_id}: still held by this execution, which has ended", None, None
    if lock.owner is None:
        last = lock.last_released_by
        when = f" at {lock.last_released_at}" if lock.last_released_at else ""
        ours = (lock.last_redrive_count or 0) == e.redrive_count
        if lock.last_owner == e.arn and last in REPAIRERS and ours:
            claims.append(f"released {lock_id} of {e.arn} by {last}")
            detail = f"{lock_id}: released by the {last}{when}, once no task of it could run"
            return "released", detail, None, last
        if lock.last_owner == e.arn:
            return (
                "already_free",
                f"{lock_id}: released by the {last or 'holder'}{when}",
                None,
                last,
            )
        detail = f"{lock_id}: free (last released by the {last or 'holder'}{when})"
        return "already_free", detail, None, None
    holder = s.other_holder
    if s.stopping:
        claims.append(f"stopped execution {e.arn} by {s.stopping}")
        detail = f"{lock_id}: held by {holder}, a live run; this execution was stopped"
        return "redrive_stopped", detail, holder, None
    return "held_by_other", f"{lock_id}: held by {holder}; left alone", holder, None


def _attempts_claimed(s: Snapshot, lock_state: str) -> range:
    """The attempts of the execution whose stops this report claims: its own; and, when it
    tells the release of the execution's lock, every attempt since that tenure was taken (the
    released item keeps RedriveCount; absent: taken by the state machine at attempt 0). Every
    heal that completes while an execution holds its lock writes the lock, so a stop made for
    an attempt in between was made by a heal that never completed, and was never reported
    (its execution redriven before the retry)."""
    current = s.execution.redrive_count
    if lock_state != "released" or s.lock is None:
        return range(current, current + 1)
    return range(min(s.lock.redrive_count or 0, current), current + 1)


def repairs_of(s: Snapshot, *, taken_over_from: str | None = None) -> Repairs:
    """What the durable state says was repaired for this execution, by whom."""
    claims: list[str] = []
    state, detail, holder, released_by = _lock_state(s, claims, taken_over_from)
    if s.history_missing:
        detail += "; the execution's history no longer exists, so its tasks were not checked"
    claimed = _attempts_claimed(s, state)
    stopped, already, running = [], [], []
    for t in s.tasks:
        by = t.stopped_by
        if by in REPAIRERS and t.stopped_for in claimed:
            stopped.append(t.arn)
            claims.append(f"stopped {t.arn} by {by}")
        elif t.running:
            running.append(t.arn)
        else:
            already.append(t.arn)
    return Repairs(
        lock=state,
        lock_detail=detail,
        holder=holder,
        released_by=released_by,
        tasks_stopped=tuple(stopped),
        tasks_already_stopped=tuple(already),
        tasks_gone=tuple(s.gone),
        tasks_running=tuple(running),
        claims=tuple(sorted(claims)),
    )


def report(s: Snapshot, reported_by: str, *, taken_over_from: str | None = None) -> Incident | None:
    """The incident for this execution as the snapshot (taken after the repairs) shows it;
    None when there is nothing to tell (a live first attempt holding its lock)."""
    e = s.execution
    repairs = repairs_of(s, taken_over_from=taken_over_from)
    kind = kind_of(s, reported_by)
    task = stopped_task(e.cause)
    if kind in {"execution", "forced"}:
        triage = ended(
            e.status,
            e.error,
            repairs,
            reported_by,
            task=task,
            timeout_seconds=e.input.timeout_seconds,
        )
    elif kind == "redrive":
        triage = redriven(repairs, reported_by)
    elif repairs.claims:
        triage = unlocked(repairs)
    else:
        return None
    return Incident(
        kind=kind,
        severity=triage.severity,
        status=e.status,
        lock_id=s.lock_id,
        execution=Execution(e.arn, e.name, e.state_machine_arn, e.redrive_count),
        repairs=repairs,
        action=triage.action,
        error=e.error,
        cause=e.cause,
        start_ms=e.start_ms,
        stop_ms=e.stop_ms,
        reported_by=reported_by,
        headline=triage.headline,
        task=task,
        timeout_seconds=e.input.timeout_seconds,
    )


def with_task(s: Snapshot, task: TaskTruth) -> Snapshot:
    """The snapshot with one task as it is now."""
    tasks = tuple(task if t.arn == task.arn else t for t in s.tasks)
    return replace(s, tasks=tasks)


def without_task(s: Snapshot, arn: str) -> Snapshot:
    """The snapshot with a task ECS no longer knows."""
    return replace(s, tasks=tuple(t for t in s.tasks if t.arn != arn), gone=(*s.gone, arn))
