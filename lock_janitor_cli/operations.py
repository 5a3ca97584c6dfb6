"""What the CLI does to a stack, each on the truth read at that moment and with writes fenced on
it, through the same code the janitor and the reconciler run: release a lock, start a run,
reconcile now, replay the janitor's dead letters."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.healing import Healed, Healer, aws_time
from common.incident import Execution, Incident, Repairs
from common.lock_table import Fence, Lock, OddItem, Outcome, ReleasedBy, get_lock, release
from common.pending import publish
from common.repair import REPAIRERS
from common.settings import JanitorSettings
from common.status_event import MalformedEvent, parse_status_change
from common.triage import OPERATOR_STOP_ERROR, forced
from common.truth import (
    NO_SUCH_EXECUTION,
    AwsError,
    ExecutionTruth,
    TaskTruth,
    describe_execution,
    error_code,
)
from janitor.heal import RepairIncomplete, heal
from lock_janitor_cli.board import holder_tasks, item_ids, known_locks, no_lock_named
from lock_janitor_cli.errors import CliError, NotFound, Refused
from lock_janitor_cli.stack import Schedule, Stack
from reconciler.reconcile import Reconciler, Summary

OPERATOR = ReleasedBy.OPERATOR
STOP_WAIT_SECONDS = 30.0


# --- release -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseCase:
    """A lock and its holder as read before anything is done."""

    lock_id: str
    lock: Lock | None
    holder: ExecutionTruth | None
    tasks: tuple[TaskTruth, ...] = ()
    """The holder's tasks that are still running."""

    @property
    def held(self) -> bool:
        return self.lock is not None and self.lock.owner is not None

    @property
    def holder_alive(self) -> bool:
        return self.holder is not None and self.holder.alive


@dataclass
class Done:
    """What a command did, said as lines, and the incidents it published."""

    lines: list[str] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"changed": self.changed, "said": self.lines, "incidents": self.incidents}


def read_release_case(
    stack: Stack, lock_id: str, schedules: list[Schedule] | None = None
) -> ReleaseCase:
    """The lock and its holder as they are now. A lock with no item is NotFound unless a
    schedule names it: `schedules` when already read (run's), else read then, and only then."""
    try:
        lock = get_lock(stack.aws.dynamodb, stack.table, lock_id)
    except OddItem as err:
        raise CliError(f"{lock_id}: its item is not one the lock protocol writes ({err})") from None
    if lock is None:
        _require_named(stack, lock_id, stack.schedules() if schedules is None else schedules)
    if lock is None or lock.owner is None:
        return ReleaseCase(lock_id, lock, None)
    holder = describe_execution(stack.aws.stepfunctions, lock.owner)
    tasks = tuple(t for t in holder_tasks(stack, lock.owner) if t.running) if holder.alive else ()
    return ReleaseCase(lock_id, lock, holder, tasks)


def _require_named(stack: Stack, lock_id: str, schedules: list[Schedule]) -> None:
    """NotFound unless a schedule or an item of the table names `lock_id`; the table is read
    (for the error's list of known locks) only when no schedule does."""
    if any(s.lock_id == lock_id for s in schedules):
        return
    known = known_locks(item_ids(stack), schedules)
    if lock_id not in known:
        raise no_lock_named(lock_id, known)


def release_lock(stack: Stack, case: ReleaseCase, *, force: bool, stop: bool) -> Done:
    """Release `case.lock_id`: when its holder has ended, as the janitor would (its tasks
    stopped first); when the holder runs, only with `force` (and with `stop`, the run and its
    tasks stopped first). Recorded as released by `operator`, and reported."""
    done = Done()
    if not case.held:
        done.lines.append(f"{case.lock_id} is already free: nothing to do")
        return done
    assert case.lock is not None
    assert case.lock.owner is not None
    assert case.holder is not None
    owner, name = case.lock.owner, case.holder.name
    if not case.holder_alive:
        healer = Healer(stack.aws, stack.table, OPERATOR)
        _healed(stack, healer, healer.heal(owner), done)
        return done
    if not force:
        raise Refused(
            f"{case.lock_id} is held by {name}, which is {case.holder.status}: not released. "
            "--force releases it anyway (add --stop to stop the run and its task first)"
        )
    if stop:
        try:
            stack.aws.stepfunctions.stop_execution(
                executionArn=owner,
                error=OPERATOR_STOP_ERROR,
                cause=f"lock-janitor release --force --stop of lock {case.lock_id}",
            )
        except AwsError as err:
            if error_code(err) not in NO_SUCH_EXECUTION:
                raise
        done.lines.append(f"stopped execution {name}")
        done.changed = True
        _wait_until_ended(stack, owner)
        # The release records FORCED: it is read from the stop's error, so the janitor, woken
        # by the ABORTED event, records the same if it releases first.
        healer = Healer(stack.aws, stack.table, OPERATOR)
        _healed(stack, healer, healer.heal(owner), done)
        return done
    result = release(
        stack.aws.dynamodb,
        stack.table,
        case.lock_id,
        Fence.of(case.lock),
        outcome=Outcome.FORCED,
        by=OPERATOR,
        now=aws_time(),
        attempt=case.holder.redrive_count,
    )
    if result.kind != "done":
        raise Refused(f"{case.lock_id} changed since it was read: not released; look again")
    done.changed = True
    running = ", ".join(t.arn.rsplit("/", 1)[-1] for t in case.tasks) or "none seen running"
    done.lines += [
        f"released {case.lock_id} (FORCED, token {case.lock.token})",
        f"{name} is still {case.holder.status} and goes on without the lock; its task(s): "
        f"{running}. The next run may overlap it: stop it if it must not finish.",
    ]
    _report(stack, forced_incident(case), done)
    return done


def _wait_until_ended(stack: Stack, arn: str, timeout: float = STOP_WAIT_SECONDS) -> None:
    """StopExecution returns before DescribeExecution shows the run ended; its tasks are
    stopped and its lock released only once it has (the same rule as the janitor's)."""
    deadline = time.monotonic() + timeout
    while describe_execution(stack.aws.stepfunctions, arn).alive:
        if time.monotonic() > deadline:
            raise CliError(
                f"{arn.rsplit(':', 1)[-1]} was asked to stop but still runs after {timeout:.0f} s: "
                "the lock is still held; run the same command again"
            )
        time.sleep(0.5)


def forced_incident(case: ReleaseCase) -> Incident:
    assert case.lock is not None
    assert case.holder is not None
    h = case.holder
    triage = forced(stopped=False)
    return Incident(
        kind="forced",
        severity=triage.severity,
        status=h.status,
        lock_id=case.lock_id,
        execution=Execution(h.arn, h.name, h.state_machine_arn, h.redrive_count),
        repairs=Repairs(
            lock="released",
            lock_detail=(
                f"{case.lock_id}: released by an operator while its holder ran "
                f"(token {case.lock.token})"
            ),
            released_by=OPERATOR.value,
            tasks_running=tuple(t.arn for t in case.tasks),
            claims=(f"released {case.lock_id} by operator (token {case.lock.token})",),
        ),
        action=triage.action,
        start_ms=h.start_ms,
        reported_by=OPERATOR.value,
        headline=triage.headline,
        timeout_seconds=h.input.timeout_seconds,
        incident_key=case.lock_id,
    )


def _healed(stack: Stack, healer: Healer, healed: list[Healed], done: Done) -> None:
    for one in healed:
        after = one.after
        if one.stopped:
            done.lines.append(
                f"stopped task(s) {', '.join(a.rsplit('/', 1)[-1] for a in one.stopped)}"
            )
        if one.released:
            done.lines.append(
                f"released {after.lock_id} "
                f"(holder {after.execution.name} was {after.execution.status})"
            )
        lock = after.lock
        if (
            not one.released
            and lock is not None
            and lock.owner is None
            and lock.last_owner == after.execution.arn
            and lock.last_released_by in REPAIRERS
        ):
            done.lines.append(
                f"{after.lock_id} was released meanwhile by the {lock.last_released_by} "
                f"(recorded {lock.last_outcome}), which reported it"
            )
        done.changed = done.changed or one.released or bool(one.stopped)
        for undone in one.undone:
            done.lines.append(f"NOT DONE: {undone}")
        incident = healer.report(one, OPERATOR.value)
        if incident is not None and (one.released or one.stopped):
            _report(stack, incident, done)
    if any(one.undone for one in healed):
        raise CliError("; ".join(u for one in healed for u in one.undone) + " (try again)")


def _report(stack: Stack, incident: Incident, done: Done) -> None:
    published = publish(
        stack.aws.sns,
        stack.aws.dynamodb,
        stack.table,
        incident,
        topic_arn=stack.topic_arn,
        now=aws_time(),
    )
    how = "reported" if published else "kept for the reconciler to report (Publish failed)"
    done.lines.append(f"{how}: incident {incident.id} ({incident.severity.value})")
    done.incidents.append({**incident.log_fields(), "published": published})


# --- run -----------------------------------------------------------------------------------


def schedule_for(stack: Stack, lock_id: str, name: str | None = None) -> Schedule:
    schedules = stack.schedules()
    found = [s for s in schedules if s.lock_id == lock_id and (name is None or s.name == name)]
    if not found:
        _require_named(stack, lock_id, schedules)
        if name is not None:
            named = sorted(s.name for s in schedules if s.lock_id == lock_id)
            raise NotFound(
                f"no schedule named {name!r} of {stack.target.stack} starts lock {lock_id!r}"
                + (f" (schedules of {lock_id}: {', '.join(named)})" if named else "")
            )
        known = sorted({s.lock_id for s in schedules if s.lock_id})
        raise NotFound(
            f"no schedule of {stack.target.stack} starts lock {lock_id!r}"
            + (f" (known: {', '.join(known)})" if known else " (it has no schedules)")
        )
    if len({json.dumps(s.input, sort_keys=True) for s in found}) > 1:
        names = ", ".join(s.name for s in found)
        raise CliError(
            f"several schedules start {lock_id} with different inputs ({names}): pass --schedule"
        )
    return found[0]


def start_run(stack: Stack, lock_id: str, *, anyway: bool, schedule: str | None = None) -> Done:
    chosen = schedule_for(stack, lock_id, schedule)
    case = read_release_case(stack, lock_id, [chosen])
    if case.held and not anyway:
        assert case.holder is not None
        hint = " (it has ended: `lock-janitor release` frees it)" if not case.holder_alive else ""
        raise Refused(
            f"{lock_id} is held by {case.holder.name}, which is {case.holder.status}{hint}: "
            "a run started now would only skip. --anyway starts it regardless"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = f"operator-{stamp}-{uuid.uuid4().hex[:8]}"
    arn = stack.aws.stepfunctions.start_execution(
        stateMachineArn=stack.state_machine_arn, name=name, input=json.dumps(chosen.input)
    )["executionArn"]
    done = Done(changed=True)
    done.lines += [
        f"started {name} for lock {lock_id} (input of schedule {chosen.name})",
        Execution(arn, name, stack.state_machine_arn).console_url,
    ]
    return done


# --- reconcile -----------------------------------------------------------------------------


def reconcile(stack: Stack, *, dry_run: bool) -> Summary:
    """The reconciler's run, with the deployed reconciler's settings: everything it found and
    did is in its summary (what it skipped, what it could not publish)."""
    return Reconciler(stack.reconciler_settings(), stack.aws, dry_run=dry_run).run()


# --- replay-dlq ----------------------------------------------------------------------------

MAX_MESSAGES = 10_000
"""A bound on one replay (the dead-letter queue is small unless something is badly wrong)."""


def event_of(body: str) -> dict[str, Any]:
    """The status-change event in a dead letter: the body itself when EventBridge could not
    deliver it (the rule target's dead-letter queue), or `requestPayload` of the record Lambda
    writes when the janitor failed every retry (its on-failure destination)."""
    try:
        document = json.loads(body)
    except ValueError:
        raise MalformedEvent("the message body is not JSON") from None
    if isinstance(document, dict) and isinstance(document.get("requestPayload"), dict):
        payload: dict[str, Any] = document["requestPayload"]
        return payload
    if isinstance(document, dict) and "detail-type" in document:
        return document
    raise MalformedEvent("neither a status-change event nor a Lambda failure record")


@dataclass(frozen=True)
class Letter:
    message_id: str
    execution: str
    outcome: str
    """healed | would heal | kept"""
    said: str

    def to_json(self) -> dict[str, str]:
        return {
            "messageId": self.message_id,
            "execution": self.execution,
            "outcome": self.outcome,
            "said": self.said,
        }


def replay_dead_letters(
    stack: Stack, *, dry_run: bool, on_letter: Callable[[Letter], None] = lambda _: None
) -> list[Letter]:
    """Every message of the janitor's dead-letter queue through the janitor's own logic; a
    message is deleted only when it was handled. What could not be handled stays, visible
    again at once."""
    queue = stack.outputs["JanitorDeadLetterQueueUrl"]
    settings = stack.janitor_settings()
    letters: list[Letter] = []
    kept: list[str] = []
    seen: set[str] = set()
    while len(seen) < MAX_MESSAGES:
        messages = stack.sqs.receive_message(
            QueueUrl=queue, MaxNumberOfMessages=10, VisibilityTimeout=120, WaitTimeSeconds=0
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break
        for message in fresh:
            seen.add(message["MessageId"])
            letter = _replay(stack, settings, message, dry_run)
            letters.append(letter)
            on_letter(letter)
            if letter.outcome == "healed":
                stack.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
            else:
                kept.append(message["ReceiptHandle"])
    for handle in kept:  # back in the queue now, for the alarm and the next replay
        stack.sqs.change_message_visibility(
            QueueUrl=queue, ReceiptHandle=handle, VisibilityTimeout=0
        )
    return letters


def _replay(stack: Stack, settings: JanitorSettings, message: Any, dry_run: bool) -> Letter:
    mid = message["MessageId"]
    try:
        change = parse_status_change(event_of(message.get("Body", "")))
    except MalformedEvent as err:
        return Letter(mid, "?", "kept", f"not replayable: {err}")
    name = change.execution_arn.rsplit(":", 1)[-1]
    if dry_run:
        return Letter(mid, name, "would heal", f"{change.status}: would be healed as now read")
    try:
        result = heal(change, settings, stack.aws)
    except RepairIncomplete as err:
        return Letter(mid, name, "kept", f"left undone: {'; '.join(err.undone)}")
    except MalformedEvent as err:
        return Letter(mid, name, "kept", f"not replayable: {err}")
    except AwsError as err:  # one letter failing never stops the others
        return Letter(mid, name, "kept", f"failed: {error_code(err) or err}")
    summary = result.summary()
    stopped = ", ".join(t.rsplit("/", 1)[-1] for t in result.tasks_stopped) or "none"
    said = f"{change.status}: lock {summary['lock']}, tasks stopped: {stopped}"
    if result.incident_id:
        said += f", incident {result.incident_id} ({result.severity})"
    return Letter(mid, name, "healed", said)
