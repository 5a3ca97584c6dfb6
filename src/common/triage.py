"""How severe each kind of incident is, and what on-call should do about it: decided here, for
every kind, from what happened and what was repaired. Pure; docs/operations.md, "What on-call
sees", is this module in a table."""

from __future__ import annotations

from dataclasses import dataclass

from common.ecs_task import StoppedTask
from common.incident import Repairs, Severity
from common.task_input import INVALID_INPUT_ERROR

LOCK_HELD_ERROR = "Lock.Held"
"""The error with which the janitor stops a redriven execution whose lock another run holds."""
OPERATOR_STOP_ERROR = "Operator.Forced"
"""The error with which `lock-janitor release --force --stop` stops a live holder."""
RUN_TIMEOUT_ERROR = "Task.Timeout"
"""The state machine's error for a task that outran its timeoutSeconds."""


@dataclass(frozen=True)
class Triage:
    severity: Severity
    action: str
    headline: str = ""
    """What happened, in one line (the incident's summary, after the task's name): the first
    thing on-call reads."""


def _what_failed(task: StoppedTask | None, error: str | None) -> str:
    failed = task.failed_container if task else None
    if failed is not None and failed.exit_code is not None:
        why = f" ({task.stopped_reason})" if task and task.stopped_reason else ""
        return f"container {failed.name} exited with code {failed.exit_code}{why}"
    if task is not None and task.stopped_reason:
        return f"the task stopped: {task.stopped_reason}"
    return f"the run failed ({error or 'no error given'})"


_FOLLOW_UPS = {
    LOCK_HELD_ERROR: (
        "a redrive the janitor stopped because another run held the lock (see that incident)",
        "the redriven run stopped so it would not overlap the lock's holder",
    ),
    OPERATOR_STOP_ERROR: (
        "an operator's forced release (lock-janitor release --force --stop; see that incident)",
        "an operator stopped the run and released its lock",
    ),
}
"""The errors with which a run is stopped on purpose, as part of a repair already reported:
(what its ABORTED follow-up is of, the headline)."""


def _missed(reported_by: str) -> str:
    if reported_by != "reconciler":
        return ""
    return (
        " The reconciler did this, not the janitor: the execution's status-change event was "
        "lost or the janitor failed (check JanitorDeadLetterQueue and the janitor's errors)."
    )


def ended(  # noqa: PLR0911 - a decision table
    status: str,
    error: str | None,
    repairs: Repairs,
    reported_by: str,
    *,
    task: StoppedTask | None = None,
    timeout_seconds: int | None = None,
) -> Triage:
    """An execution that ended (FAILED, TIMED_OUT, ABORTED; MISSING when Step Functions no
    longer knows it)."""
    missed = _missed(reported_by)
    done = _done(repairs)
    if error == INVALID_INPUT_ERROR:
        return Triage(
            Severity.HIGH,
            "The state machine refused this execution's input before taking any lock (the "
            "cause says what is wrong). Fix the schedule's input; until then this task never "
            "runs.",
            "the schedule's input was refused; no lock was taken and nothing ran",
        )
    if status == "ABORTED" and error == OPERATOR_STOP_ERROR and reported_by == "operator":
        # The command's own report of its stop (or of an earlier one that died before it
        # released); a run that ended on its own before the stop reached it is told as it ended.
        return forced(stopped=True)
    if status == "ABORTED" and error == OPERATOR_STOP_ERROR and repairs.lock == "released":
        # The command stops the run, then waits for it to end before it stops the task and
        # releases: the janitor (or the reconciler) did that first, so this is the report.
        return Triage(
            Severity.MEDIUM,
            "An operator stopped this live run (lock-janitor release --force --stop); the "
            f"{repairs.released_by or 'janitor'} released its lock, once its task had stopped, "
            "before the command got to it. Nothing more to do unless the stop was not expected: "
            "ask who ran it." + missed,
            f"an operator stopped the running holder; {done}",
        )
    if status == "ABORTED" and error in _FOLLOW_UPS:
        of_what, headline = _FOLLOW_UPS[error]
        return Triage(
            Severity.LOW,
            f"Follow-up of {of_what}. Nothing more to do." + missed,
            headline,
        )
    if status == "ABORTED":
        return Triage(
            Severity.HIGH,
            "Someone or something stopped this execution (StopExecution, a redeploy); its "
            "task was stopped before its lock was released. If the stop was not expected, find "
            "who called StopExecution in CloudTrail." + missed,
            f"the execution was stopped (ABORTED); {done}",
        )
    if status == "TIMED_OUT":
        return Triage(
            Severity.HIGH,
            "The execution outlived the state machine's ExecutionTimeoutSeconds; its task was "
            "stopped before its lock was released. Find out why the run took so long; if it "
            "legitimately does, raise the task's timeoutSeconds and ExecutionTimeoutSeconds."
            + missed,
            f"the execution ran past ExecutionTimeoutSeconds; {done}",
        )
    if error == RUN_TIMEOUT_ERROR:
        limit = f" ({timeout_seconds} s)" if timeout_seconds else ""
        return Triage(
            Severity.HIGH,
            f"The task outran its timeoutSeconds{limit}. It was stopped, then its lock was "
            "released, so the next run never overlaps it. Read the task's logs for why it hung "
            "or ran long; raise timeoutSeconds if it legitimately takes longer." + missed,
            f"the task ran past its timeoutSeconds{limit}; {done}",
        )
    if status == "MISSING":
        return Triage(
            Severity.HIGH,
            "A lock was held by an execution Step Functions no longer knows (past its "
            "retention, or its state machine was deleted); the lock was released." + missed,
            "the lock's holder no longer exists; the lock was released",
        )
    if repairs.tasks_stopped or (repairs.claims and reported_by == "reconciler"):
        return Triage(
            Severity.HIGH,
            "The run failed and left a task running (one that started unseen, say, when ECS "
            "answered RunTask with a server error); it was stopped before the lock was "
            "released. Read the error and cause, then the task's logs." + missed,
            f"{_what_failed(task, error)}; {done}",
        )
    return Triage(
        Severity.MEDIUM,
        "The task failed; its lock was released once no task of the run could still run, so "
        "the next scheduled run will try again. Read the error and cause, then the task's "
        "logs; fix the job if it keeps failing." + missed,
        f"{_what_failed(task, error)}",
    )


def _done(repairs: Repairs) -> str:
    stopped = len(repairs.tasks_stopped)
    tasks = f"{stopped} task{'s' if stopped != 1 else ''} stopped" if stopped else "no task left"
    lock = "lock released" if repairs.lock in {"released", "already_free"} else repairs.lock
    return f"{tasks}, {lock.replace('_', ' ')}"


def redriven(repairs: Repairs, reported_by: str) -> Triage:
    """A redriven execution running again, and what became of its lock."""
    missed = _missed(reported_by) if repairs.claims else ""
    if repairs.lock == "redrive_stopped":
        return Triage(
            Severity.HIGH,
            "The redriven execution was stopped so two runs never overlap: another live run "
            "holds the lock. To re-run the task, start a new execution once the holder has "
            "finished." + missed,
            "a redriven run was stopped: another live run holds its lock",
        )
    if repairs.lock == "taken_over":
        return Triage(
            Severity.MEDIUM,
            "A dead execution still held the lock; its tasks were stopped and the lock now "
            "belongs to the redriven run. Check why the dead holder's lock was not released "
            "(janitor errors, a lost event)." + missed,
            "a redriven run took its lock over from a dead holder",
        )
    return Triage(
        Severity.LOW,
        "A redriven execution holds its lock again. Nothing to do." + missed,
        "a redriven run holds its lock again",
    )


def unlocked(repairs: Repairs) -> Triage:
    """A live run found running without its lock (not a redrive)."""
    if repairs.lock == "redrive_stopped":
        return Triage(
            Severity.HIGH,
            "A run was running without its lock while another live run held it; it was "
            "stopped so the two do not overlap. Find out how it lost its lock (a lock edited "
            "by hand?).",
            "a run without its lock was stopped: another live run holds it",
        )
    return Triage(
        Severity.HIGH,
        "A run was running without its lock; the lock was taken for it, so no other run "
        "starts beside it. Find out how it lost its lock (a lock edited by hand?).",
        "a run was found running without its lock; the lock was taken for it",
    )


def stuck(timeout_seconds: int | None = None) -> Triage:
    limit = f" ({timeout_seconds} s)" if timeout_seconds else ""
    return Triage(
        Severity.MEDIUM,
        "A run outlived its timeoutSeconds and the state machine has not stopped it. Look at "
        "the execution: if it is stuck, stop it (the janitor then stops the task and releases "
        "the lock).",
        f"a run is still going past its timeoutSeconds{limit}; its lock stays",
    )


def unreadable(what: str) -> Triage:
    return Triage(
        Severity.HIGH,
        f"The reconciler could not read {what}, so it skipped it and healed everything else. "
        "Fix the cause it names (permissions, an item edited by hand); until then, whatever "
        "it guards is not healed.",
        f"the reconciler could not read {what} and skipped it",
    )


def forced(stopped: bool) -> Triage:
    """An operator released a lock by hand while its holder was running (`FORCED`)."""
    if stopped:
        return Triage(
            Severity.MEDIUM,
            "An operator stopped a live run and its task, then released its lock "
            "(lock-janitor release --force --stop). Nothing more to do unless the stop was "
            "not expected: ask who ran it.",
            "an operator stopped the running holder and released its lock",
        )
    return Triage(
        Severity.MEDIUM,
        "An operator released the lock of a run that is still going (lock-janitor release "
        "--force): that run and its task go on without the lock, so the next run may overlap "
        "them. Stop the run if it must not finish.",
        "an operator released the lock of a live run, which goes on without it",
    )
