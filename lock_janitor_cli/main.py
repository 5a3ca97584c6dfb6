"""The `lock-janitor` command: thin click commands over board.py (what is) and operations.py
(what to do), printed as tables for people or as JSON for scripts (`--json`)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from common.incident import duration_text
from lock_janitor_cli import board, operations
from lock_janitor_cli.errors import CliError
from lock_janitor_cli.options import GLOBALS, global_options, merged
from lock_janitor_cli.stack import Stack, Target, aws_errors
from lock_janitor_cli.table import dropped_note, status_table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class Options:
    target: Target
    as_json: bool
    _stack: Stack | None = None

    @property
    def stack(self) -> Stack:
        if self._stack is None:
            self._stack = Stack.find(self.target)
        return self._stack


def command(f: Callable[..., None]) -> Callable[..., None]:
    """A subcommand: the global options taken after it too (they win over those before it),
    and every expected failure as one line on stderr and its exit code, never a traceback."""

    @global_options(from_env=False)
    @wraps(f)
    def run(*args: Any, **kwargs: Any) -> None:
        ctx = click.get_current_context()
        before = ctx.parent.params if ctx.parent else {}
        given = merged(before, {g.name: kwargs.pop(g.name) for g in GLOBALS})
        try:
            target = Target.resolve(
                given["stack"], given["region"], given["profile"], given["endpoint_url"]
            )
            with aws_errors(target):
                f(Options(target, bool(given["as_json"])), *args, **kwargs)
        except CliError as failure:
            err.print(f"lock-janitor: {escape(str(failure))}")
            sys.exit(failure.code)

    return run


def emit(opts: Options, document: Any, lines: list[str]) -> None:
    if opts.as_json:
        click.echo(json.dumps(document, indent=2, default=str))
        return
    for line in lines:
        out.print(escape(line))


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@global_options(from_env=True)
def cli(**_: Any) -> None:
    """See and heal the locks of a deployed lock-janitor.

    \b
    lock-janitor status                  every lock, its holder and what it is doing
    lock-janitor status nightly-report   one lock in full, with its holder's console link
    lock-janitor release nightly-report  free a lock whose holder has ended
    lock-janitor reconcile --dry-run     what the reconciler would heal now

    The stack's table, state machine, cluster and queues are found from its outputs. Every
    option here is taken after the command too (`lock-janitor status --json`).
    """


# --- status --------------------------------------------------------------------------------


@cli.command()
@click.argument("lock", required=False)
@command
def status(opts: Options, lock: str | None) -> None:
    """Every lock: free or held, by whom, its holder's real status, for how long against its
    timeout, its token, its last outcome; stale, overdue and running-without-the-lock flagged.
    With LOCK: that lock in full, its holder's console link and tasks.

    \b
    Examples:
      lock-janitor status
      lock-janitor --json status | jq '.[] | select(.flags != [])'
      lock-janitor status nightly-report
    """
    stack = opts.stack
    read = board.read_board(stack)
    views = board.view(read)
    if lock is not None:
        one = next((v for v in views if v.lock_id == lock), None)
        if one is None:
            raise board.no_lock_named(lock, board.known_locks(read.item_ids, read.schedules))
        tasks = board.holder_tasks(stack, one.holder_arn) if one.holder_arn else []
        if opts.as_json:
            emit(opts, {**one.to_json(), "tasks": [_task_json(t) for t in tasks]}, [])
            return
        _print_one(one, tasks)
        return
    if opts.as_json:
        emit(opts, [v.to_json() for v in views], [])
        return
    if read.schedules_error:
        err.print(f"(schedules not read: {read.schedules_error}; locks never taken are not shown)")
    if not views:
        out.print(f"{stack.target.stack}: no locks yet (no schedule, no item in the table)")
        return
    title = f"{stack.target.stack} ({stack.region}): {len(views)} locks"
    table, layout = status_table(views, title, out.width)
    out.print(table)
    if left_out := dropped_note(layout, out.width):
        err.print(escape(left_out))
    for v in views:
        for note in v.notes:
            out.print(f"{escape(v.lock_id)}: {escape(note)}")


def _task_json(t: Any) -> dict[str, Any]:
    return {"arn": t.arn, "lastStatus": t.last_status, "desiredStatus": t.desired_status}


def _print_one(v: board.LockView, tasks: list[Any]) -> None:
    rows: list[tuple[str, str]] = [("lock", v.lock_id), ("state", v.state)]
    if v.state == "held":
        rows += [
            ("holder", v.holder_arn or "-"),
            ("holder status", v.holder_status or "-"),
            ("held for", duration_text(v.held_seconds)),
            ("timeout", duration_text(v.timeout_seconds)),
            ("taken by", v.acquired_by or "-"),
            ("console", v.console_url or "-"),
        ]
        rows += [("task", f"{t.arn} ({t.last_status})") for t in tasks] or [("task", "none found")]
    rows += [
        ("token", "-" if v.token is None else str(v.token)),
        ("last outcome", v.last_outcome or "-"),
        ("last released", f"{v.last_released_at or '-'} by {v.last_released_by or '-'}"),
        ("last holder", v.last_owner or "-"),
        ("schedules", ", ".join(v.schedules) or "-"),
    ]
    rows += [("running unlocked", arn) for arn in v.running_unlocked]
    rows += [("FLAG", f"{flag}: {note}") for flag, note in zip(v.flags, v.notes, strict=False)]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        out.print(f"{key:<{width}}  {escape(value)}")


# --- release -------------------------------------------------------------------------------


@cli.command()
@click.argument("lock")
@click.option("--force", is_flag=True, help="Release it even though its holder is running.")
@click.option(
    "--stop", is_flag=True, help="With --force: stop the running execution and its task first."
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@command
def release(opts: Options, lock: str, force: bool, stop: bool, yes: bool) -> None:
    """Release LOCK when its holder is no longer running: its tasks are stopped first, the
    release is fenced on the owner and token read, recorded as by `operator`, and reported.

    With --force, the lock of a live holder is released too (FORCED), after a confirmation:
    the run and its task go on unless --stop stops them first.

    \b
    Examples:
      lock-janitor release nightly-report
      lock-janitor release nightly-report --force --stop --yes
    """
    if stop and not force:
        raise CliError("--stop stops a live holder: it goes with --force")
    stack = opts.stack
    case = operations.read_release_case(stack, lock)
    if case.held and case.holder_alive and force and not yes:
        assert case.holder is not None
        what = (
            "stop it and its task, then release the lock"
            if stop
            else "release the lock; the run and its task go on"
        )
        question = f"{lock} is held by {case.holder.name}, which is {case.holder.status}: {what}?"
        if not sys.stdin.isatty():
            raise CliError(f"{question} Not confirmed: pass --yes to confirm without a terminal")
        if not click.confirm(question, default=False, err=True):
            raise CliError("not released", code=1)
    done = operations.release_lock(stack, case, force=force, stop=stop)
    emit(opts, done.to_json(), done.lines)


# --- run -----------------------------------------------------------------------------------


@cli.command()
@click.argument("lock")
@click.option(
    "--anyway", is_flag=True, help="Start it even while the lock is held (the run then skips)."
)
@click.option("--schedule", help="The schedule whose input to use, when several start LOCK.")
@command
def run(opts: Options, lock: str, anyway: bool, schedule: str | None) -> None:
    """Start a run of LOCK now, with the input of the schedule that starts it, and print its
    console link. Refused while the lock is held, unless --anyway.

    \b
    Example:
      lock-janitor run nightly-report
    """
    done = operations.start_run(opts.stack, lock, anyway=anyway, schedule=schedule)
    emit(opts, done.to_json(), done.lines)


# --- reconcile -----------------------------------------------------------------------------


@cli.command()
@click.option("--dry-run", is_flag=True, help="Say what it would heal; change nothing.")
@command
def reconcile(opts: Options, dry_run: bool) -> None:
    """Run the reconciler's logic now, with the deployed reconciler's settings, and print what
    it found and did (stale locks, orphan tasks, runs without their lock, overdue holders).

    \b
    Examples:
      lock-janitor reconcile --dry-run
      lock-janitor reconcile
    """
    summary = operations.reconcile(opts.stack, dry_run=dry_run)
    document = summary.to_json()
    verb = "would" if dry_run else "did"
    lines = [
        f"checked {summary.checked} locks ({summary.held} held) and {summary.tasks_checked} tasks",
    ]
    for key, label in (
        ("released", "release"),
        ("stopped", "stop"),
        ("taken", "take"),
        ("overdue", "report overdue"),
        ("unreadable", "skip (unreadable)"),
        ("leftAlone", "leave alone"),
        ("unpublished", "fail to publish"),
    ):
        for item in document[key]:
            lines.append(f"{verb} {label}: {json.dumps(item, default=str)}")
    lines.append(
        f"incidents: {document['incidents']}, kept reports published: {document['reportsFlushed']}"
    )
    emit(opts, document, lines)


# --- replay-dlq ----------------------------------------------------------------------------


@cli.command("replay-dlq")
@click.option("--dry-run", is_flag=True, help="Say what each message is; change nothing.")
@command
def replay_dlq(opts: Options, dry_run: bool) -> None:
    """Send each message of the janitor's dead-letter queue (raw events and Lambda's failure
    records alike) through the janitor's logic; delete only those handled; report each.

    \b
    Examples:
      lock-janitor replay-dlq --dry-run
      lock-janitor replay-dlq
    """
    letters = operations.replay_dead_letters(
        opts.stack,
        dry_run=dry_run,
        on_letter=(lambda _: None)
        if opts.as_json
        else (lambda x: out.print(escape(f"{x.outcome:<10} {x.execution}: {x.said}"))),
    )
    healed = sum(1 for x in letters if x.outcome == "healed")
    if opts.as_json:
        emit(opts, [x.to_json() for x in letters], [])
    else:
        out.print(
            f"{len(letters)} messages: {healed} healed and deleted, {len(letters) - healed} kept"
        )
    if any(x.outcome == "kept" for x in letters):
        sys.exit(1)


def main() -> None:
    cli(prog_name="lock-janitor")
