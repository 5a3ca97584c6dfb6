"""The installed `lock-janitor` command (.venv-cli, installed from this tree as a user would)
against the whole system on the emulator, found from the stack's outputs with no option but
`--endpoint-url`: run, status, an abort healed, force-release, a dead letter replayed, the
reconciler run by hand, and the errors on-call meets."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from local.bridges import status_change_event
from local.emulator import Emulator
from local.template import ROOT
from local.timeline import Timeline
from local.wiring import failure_record

COMMAND = ROOT / ".venv-cli" / "bin" / "lock-janitor"
CLI_PYTHON = ROOT / ".venv-cli" / "bin" / "python"
OFFLINE = ROOT / "tests" / "support" / "offline.py"


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    if not COMMAND.exists():
        pytest.fail(f"{COMMAND} is missing: `make cli` installs it (make pytest does)")
    with Emulator(Timeline(TIMELINE.append), log_dir=tmp_path_factory.mktemp("logs")) as emulator:
        emulator.deploy()
        yield emulator
        emulator.stop_running_executions()


TIMELINE: list[str] = []
"""What the emulator did, shown when a test fails (pytest prints a failing test's output)."""


@pytest.fixture(autouse=True)
def _timeline_on_failure() -> Iterator[None]:
    start = len(TIMELINE)
    yield
    print("\n".join(TIMELINE[start:]))


def run_cli(
    endpoint: str, home: Path, *args: str, endpoint_after: bool = False, columns: str | None = "200"
) -> Ran:
    """The installed command as on-call runs it: a shell with no AWS settings at all, in a
    folder with no samconfig.toml, the emulator's printed endpoint the only option (before the
    subcommand, or after it with `endpoint_after`); `columns` None is a pipe's width (rich's
    80)."""
    endpoint_option = ["--endpoint-url", endpoint]
    argv = [*args, *endpoint_option] if endpoint_after else [*endpoint_option, *args]
    done = subprocess.run(
        [str(COMMAND), *argv],
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "AWS_EC2_METADATA_DISABLED": "true",
            **({"COLUMNS": columns} if columns else {}),
        },
        cwd=home,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(emu: Emulator, tmp_path: Path) -> Any:
    def run(*args: str, endpoint: str | None = None, **how: Any) -> Ran:
        return run_cli(endpoint or emu.endpoint, tmp_path, *args, **how)

    return run


def lock_of(emu: Emulator, lock_id: str) -> dict[str, str]:
    return emu.locks().get(lock_id, {})


def sample_schedule(emu: Emulator) -> str:
    assert emu.deployed is not None
    return next(k for k, s in emu.deployed.schedules.items() if s["target"] == emu.machine_arn)


def start(emu: Emulator, name: str, lock_id: str) -> tuple[str, str]:
    arn = emu.fire_schedule(sample_schedule(emu), name, lockId=lock_id)
    return arn, emu.task_of(arn)


def stop(emu: Emulator, arn: str) -> None:
    """StopExecution, and wait until it shows (so the next pump sees it ended, whatever the
    machine's load)."""
    emu.client("stepfunctions").stop_execution(executionArn=arn)
    emu.wait_done(arn)


def task_status(emu: Emulator, task: str) -> str:
    assert emu.deployed is not None
    cluster = emu.deployed.outputs["ClusterArn"]
    found = emu.client("ecs").describe_tasks(cluster=cluster, tasks=[task])["tasks"]
    return str(found[0]["desiredStatus"])


def test_run_then_status_shows_the_holder_as_it_really_is(emu: Emulator, cli: Any) -> None:
    started = cli("run", "sample")
    assert started.code == 0, started.err
    name = started.out.split()[1]
    assert "https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#" in started.out
    arn = f"{emu.machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
    emu.task_of(arn)

    table = cli("status")
    assert table.code == 0, table.err
    row = next(line for line in table.out.splitlines() if "sample" in line)
    assert "held" in row
    assert name in row
    assert "RUNNING" in row

    rows = cli("--json", "status").json()
    sample = next(r for r in rows if r["lockId"] == "sample")
    assert sample["holder"] == arn
    assert sample["holderStatus"] == "RUNNING"
    assert sample["flags"] == []
    assert [s.rsplit("-", 1)[-1] for s in sample["schedules"]] == ["sample"]

    detail = cli("status", "sample")
    assert "console" in detail.out
    assert "/states/home?region=us-east-1#/v2/executions/details/" + arn in detail.out
    assert "(RUNNING)" in detail.out, "the holder's task, as ECS describes it"

    again = cli("run", "sample")
    assert again.code == 3
    assert "held by" in again.err
    assert "--anyway" in again.err

    # An abort: the janitor heals it through the wiring; status reads the result.
    stop(emu, arn)
    emu.pump()
    after = cli("--json", "status", "sample").json()
    assert after["state"] == "free"
    assert after["lastOutcome"] == "ABORTED"
    assert after["lastReleasedBy"] == "janitor"


def test_release_refuses_a_live_holder_and_force_is_confirmed_and_reported(
    emu: Emulator, cli: Any
) -> None:
    arn, task = start(emu, "force-1", "force")
    refused = cli("release", "force")
    assert refused.code == 3
    assert "RUNNING" in refused.err
    assert "--force" in refused.err
    assert lock_of(emu, "force")["Owner"] == arn

    unconfirmed = cli("release", "force", "--force")
    assert unconfirmed.code == 1
    assert "--yes" in unconfirmed.err
    assert lock_of(emu, "force")["Owner"] == arn

    posts = len(emu.slack_posts)
    forced = cli("release", "force", "--force", "--yes")
    assert forced.code == 0, forced.err
    assert "goes on without the lock" in forced.out
    lock = lock_of(emu, "force")
    assert "Owner" not in lock
    assert lock["LastOutcome"] == "FORCED"
    assert lock["LastReleasedBy"] == "operator"
    assert task_status(emu, task) == "RUNNING", "without --stop the run and its task go on"
    emu.pump()
    said = json.dumps(emu.slack_posts[posts:])
    assert "an operator released the lock of a live run" in said

    # The reconciler respects the operator's decision: it does not take the lock back.
    emu.invoke("ReconcilerFunction", {})
    assert "Owner" not in lock_of(emu, "force")

    # --stop: the next holder and its task are stopped first, then the lock released.
    arn2, task2 = start(emu, "force-2", "force")
    stopped = cli("--json", "release", "force", "--force", "--stop", "--yes")
    assert stopped.code == 0, stopped.err
    document = stopped.json()
    assert document["changed"] is True
    assert [i["kind"] for i in document["incidents"]] == ["forced"]
    assert task_status(emu, task2) == "STOPPED"
    sfn = emu.client("stepfunctions")
    assert sfn.describe_execution(executionArn=arn2)["status"] == "ABORTED"
    lock = lock_of(emu, "force")
    assert "Owner" not in lock
    assert lock["LastOutcome"] == "FORCED"
    assert lock["LastOwner"] == arn2
    stop(emu, arn)
    emu.pump()


def test_a_forced_stop_the_janitor_heals_first_is_recorded_forced_and_reported_once(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`release --force --stop` stops the run and waits for it to end; the janitor, woken by
    the ABORTED event, may stop the task and release the lock in that moment. The command runs
    here, in this process, with the janitor let in exactly there (on AWS it is a race): the lock
    still records FORCED, the command says who released it, and one incident tells the stop."""
    from lock_janitor_cli import operations
    from lock_janitor_cli.stack import Stack, Target

    arn, task = start(emu, "race-1", "race")
    emu.pump()
    posts = len(emu.slack_posts)
    stack = Stack.find(Target.resolve(None, None, None, emu.endpoint, tmp_path))
    case = operations.read_release_case(stack, "race")
    wait_until_ended = operations._wait_until_ended

    def then_the_janitor(stack: Stack, arn: str) -> None:
        wait_until_ended(stack, arn)
        emu.pump()

    monkeypatch.setattr(operations, "_wait_until_ended", then_the_janitor)
    done = operations.release_lock(stack, case, force=True, stop=True)

    assert done.changed
    assert done.incidents == [], "the janitor reported it; the command does not again"
    assert "race was released meanwhile by the janitor (recorded FORCED)" in "\n".join(done.lines)
    lock = lock_of(emu, "race")
    assert "Owner" not in lock
    assert (lock["LastOwner"], lock["LastOutcome"], lock["LastReleasedBy"]) == (
        arn,
        "FORCED",
        "janitor",
    )
    assert task_status(emu, task) == "STOPPED"
    emu.pump()
    about = [p for p in emu.slack_posts[posts:] if "race" in json.dumps(p)]
    assert len(about) == 1, about
    assert "an operator stopped the running holder" in json.dumps(about[0])


def test_release_of_a_dead_holder_stops_its_task_first(emu: Emulator, cli: Any) -> None:
    arn, task = start(emu, "dead-1", "dead")
    emu.lost_events.add(arn)  # the janitor never hears of it
    stop(emu, arn)
    emu.pump()
    assert lock_of(emu, "dead")["Owner"] == arn
    shown = cli("--json", "status", "dead").json()
    assert shown["flags"] == ["stale"]
    assert shown["holderStatus"] == "ABORTED"

    released = cli("release", "dead")
    assert released.code == 0, released.err
    assert task_status(emu, task) == "STOPPED"
    lock = lock_of(emu, "dead")
    assert "Owner" not in lock
    assert lock["LastOutcome"] == "ABORTED"
    assert lock["LastReleasedBy"] == "operator"
    assert "reported: incident" in released.out
    assert cli("release", "dead").out.strip() == "dead is already free: nothing to do"


def test_a_forced_stop_whose_command_died_is_released_and_told_as_forced(
    emu: Emulator, cli: Any
) -> None:
    """`release --force --stop` stopped the run, then died before it released (and the ABORTED
    event was lost): `release LOCK` finishes the job, records FORCED, and reports the forced
    stop itself, not a follow-up of a report that was never made."""
    arn, task = start(emu, "died-1", "died")
    emu.lost_events.add(arn)
    emu.client("stepfunctions").stop_execution(
        executionArn=arn, error="Operator.Forced", cause="lock-janitor release --force --stop"
    )
    emu.wait_done(arn)
    emu.pump()
    assert lock_of(emu, "died")["Owner"] == arn

    released = cli("--json", "release", "died")
    assert released.code == 0, released.err
    document = released.json()
    assert [(i["kind"], i["severity"]) for i in document["incidents"]] == [("forced", "medium")]
    lock = lock_of(emu, "died")
    assert (lock["LastOutcome"], lock["LastReleasedBy"]) == ("FORCED", "operator")
    assert task_status(emu, task) == "STOPPED"


def test_reconcile_dry_run_changes_nothing_then_reconcile_heals(emu: Emulator, cli: Any) -> None:
    arn, task = start(emu, "lost-1", "lost")
    emu.lost_events.add(arn)
    stop(emu, arn)
    emu.pump()

    dry = cli("reconcile", "--dry-run")
    assert dry.code == 0, dry.err
    assert "would release" in dry.out
    assert arn in dry.out
    assert lock_of(emu, "lost")["Owner"] == arn
    assert task_status(emu, task) == "RUNNING"

    real = cli("--json", "reconcile").json()
    assert any(r["lockId"] == "lost" for r in real["released"])
    assert "Owner" not in lock_of(emu, "lost")
    assert task_status(emu, task) == "STOPPED"


def test_replay_dlq_heals_both_shapes_of_dead_letter_and_keeps_what_it_cannot(
    emu: Emulator, cli: Any
) -> None:
    assert emu.deployed is not None
    queue = emu.deployed.outputs["JanitorDeadLetterQueueUrl"]
    sqs, sfn = emu.client("sqs"), emu.client("stepfunctions")
    raw_arn, raw_task = start(emu, "dlq-raw", "dlq-raw")
    record_arn, record_task = start(emu, "dlq-record", "dlq-record")
    for arn in (raw_arn, record_arn):
        emu.lost_events.add(arn)
        stop(emu, arn)
    emu.pump()
    # EventBridge could not deliver one (the rule target's dead-letter queue: the event as is);
    # the janitor failed every attempt on the other (Lambda's on-failure record).
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(status_change_event(sfn, raw_arn)))
    record = failure_record(
        emu.deployed.arn("JanitorFunction"),
        status_change_event(sfn, record_arn),
        RuntimeError("throttled"),
        3,
    )
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(record))
    sqs.send_message(QueueUrl=queue, MessageBody="not json at all")

    dry = cli("replay-dlq", "--dry-run")
    assert dry.out.count("would heal") == 2
    assert lock_of(emu, "dlq-raw")["Owner"] == raw_arn
    assert emu.queue_depth("JanitorDeadLetterQueue") == 3

    replayed = cli("--json", "replay-dlq")
    assert replayed.code == 1, "a message was kept: the exit code says so"
    outcomes = sorted(letter["outcome"] for letter in replayed.json())
    assert outcomes == ["healed", "healed", "kept"]
    for lock_id, task in (("dlq-raw", raw_task), ("dlq-record", record_task)):
        assert "Owner" not in lock_of(emu, lock_id)
        assert task_status(emu, task) == "STOPPED"
    assert emu.queue_depth("JanitorDeadLetterQueue") == 1, "only the unreadable one stays"
    body = sqs.receive_message(QueueUrl=queue)["Messages"][0]
    assert body["Body"] == "not json at all"
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=body["ReceiptHandle"])


# The global options after each subcommand: `--endpoint-url` (no option before it at all),
# `--json`, and `--stack` over the one before.


def test_status_takes_the_global_options_after_it(emu: Emulator, cli: Any) -> None:
    rows = cli("status", "--json", endpoint_after=True)
    assert rows.code == 0, rows.err
    assert "sample" in [r["lockId"] for r in rows.json()]
    nowhere = cli("--stack", "lock-janitor", "status", "--stack", "nope", endpoint_after=True)
    assert (nowhere.code, "no stack named nope" in nowhere.err) == (2, True), nowhere.err


def test_release_takes_the_global_options_after_it(emu: Emulator, cli: Any) -> None:
    arn, _ = start(emu, "after-1", "after")
    stop(emu, arn)
    emu.pump()
    released = cli("release", "after", "--json", endpoint_after=True)
    assert released.code == 0, released.err
    assert released.json() == {
        "changed": False,
        "said": ["after is already free: nothing to do"],
        "incidents": [],
    }
    nowhere = cli("release", "after", "--stack", "nope", endpoint_after=True)
    assert (nowhere.code, "no stack named nope" in nowhere.err) == (2, True), nowhere.err


def test_run_takes_the_global_options_after_it(emu: Emulator, cli: Any) -> None:
    started = cli("run", "sample", "--json", endpoint_after=True)
    assert started.code == 0, started.err
    assert started.json()["changed"] is True
    name = started.json()["said"][0].split()[1]
    arn = f"{emu.machine_arn.replace(':stateMachine:', ':execution:')}:{name}"
    emu.task_of(arn)
    stop(emu, arn)
    emu.pump()


def test_reconcile_takes_the_global_options_after_it(emu: Emulator, cli: Any) -> None:
    dry = cli("reconcile", "--dry-run", "--json", endpoint_after=True)
    assert dry.code == 0, dry.err
    assert {"released", "stopped", "checked"} <= set(dry.json())


def test_replay_dlq_takes_the_global_options_after_it(emu: Emulator, cli: Any) -> None:
    letters = cli("replay-dlq", "--dry-run", "--json", endpoint_after=True)
    assert letters.code == 0, letters.err
    assert isinstance(letters.json(), list)


def test_a_lock_nothing_names_is_not_found_and_a_known_one_costs_no_schedule_read(
    emu: Emulator, tmp_path: Path
) -> None:
    """release, run and status of a lock with no item and no schedule: NotFound, the known
    locks listed (items and schedules); a lock with an item is read without the schedules."""
    from local.harness import counted_calls
    from lock_janitor_cli import board, operations
    from lock_janitor_cli.errors import NotFound
    from lock_janitor_cli.stack import Stack, Target

    arn, _ = start(emu, "named-1", "named")
    stop(emu, arn)
    emu.pump()
    stack = Stack.find(Target.resolve(None, None, None, emu.endpoint, tmp_path))
    scheduler, dynamodb = stack.client("scheduler"), stack.aws.dynamodb
    with counted_calls(scheduler, dynamodb) as calls:
        case = operations.read_release_case(stack, "named")
    assert (case.lock is not None, case.held) == (True, False)
    assert calls == ["dynamodb.GetItem"], "a lock with an item: no schedule read, no scan"

    read = board.read_board(stack)
    known = board.known_locks(read.item_ids, read.schedules)
    assert {"named", "sample"} <= set(known)
    for attempt in (
        lambda: operations.read_release_case(stack, "nothing-names-me"),
        lambda: operations.start_run(stack, "nothing-names-me", anyway=False),
    ):
        with pytest.raises(NotFound) as caught:
            attempt()
        assert str(caught.value) == str(board.no_lock_named("nothing-names-me", known))
    with pytest.raises(NotFound, match="no schedule of lock-janitor starts lock 'named'"):
        operations.start_run(stack, "named", anyway=False)
    with counted_calls(scheduler, dynamodb) as calls:
        case = operations.read_release_case(stack, "sample")
    assert case.lock is None or not case.held
    assert "dynamodb.Scan" not in calls, "a schedule names it: the table is not scanned"


def test_status_is_one_line_per_lock_at_80_columns_and_through_a_pipe(
    emu: Emulator, cli: Any
) -> None:
    """A holder's name as long as Step Functions allows: shortened in the middle in the table
    (at COLUMNS=80, and piped with no COLUMNS, where rich takes 80), the columns that do not
    fit left out and named on stderr; in full in `status LOCK` and --json."""
    name = "narrow-20261207T031500Z-" + "0123456789abcdef" * 3 + "-c0ffee"
    assert len(name) == 79, "Step Functions takes up to 80"
    arn, _ = start(emu, name, "narrow")
    locks = [r["lockId"] for r in cli("--json", "status").json()]
    assert "narrow" in locks
    for columns in ("80", None):
        shown = cli("status", columns=columns)
        assert shown.code == 0, shown.err
        lines = shown.out.splitlines()
        body = [line for line in lines if line.startswith("│")]
        assert [line.split("│")[1].strip() for line in body] == locks, shown.out
        table = lines[: lines.index(next(line for line in lines if line.startswith("└"))) + 1]
        assert all(len(line) <= 80 for line in table), shown.out
        row = next(line for line in body if line.split("│")[1].strip() == "narrow")
        assert name not in row
        assert "…" in row
        assert "c0ffee" in row
        assert "RUNNING" in row
        assert "left out at 80 columns: LAST RUN" in shown.err, shown.err
    detail = cli("status", "narrow", columns="80")
    assert f"holder         {arn}" in detail.out
    assert cli("--json", "status", "narrow", columns="80").json()["holder"] == arn
    stop(emu, arn)
    emu.pump()


def test_expected_errors_are_one_line_and_an_exit_code(emu: Emulator, cli: Any) -> None:
    cases = [
        (cli("--stack", "nope", "status"), 2, "no stack named nope"),
        (cli("status", "no-such-lock"), 2, "no lock named 'no-such-lock' (known: "),
        (cli("release", "sample", "--stop"), 1, "goes with --force"),
        (cli("run", "no-such-lock"), 2, "no lock named 'no-such-lock' (known: "),
        (cli("release", "no-such-lock", "--yes"), 2, "no lock named 'no-such-lock' (known: "),
        (cli("run", "sample", "--schedule", "nope"), 2, "no schedule named 'nope' of "),
        (cli("status", endpoint="http://127.0.0.1:9"), 1, "cannot reach AWS at http://127.0.0.1:9"),
    ]
    for ran, code, says in cases:
        assert ran.code == code, ran
        assert says in ran.err
        assert len(ran.err.strip().splitlines()) == 1, ran.err
        assert "Traceback" not in ran.err


def test_no_credentials_is_one_line_and_nothing_leaves_the_machine(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    done = subprocess.run(
        [str(CLI_PYTHON), str(OFFLINE), "lock_janitor_cli", "--region", "eu-west-1", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "lock-janitor: no AWS credentials found: pass --profile, or set AWS_PROFILE or "
        "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    ]


def test_every_command_has_help_with_an_example(cli: Any) -> None:
    for command in ("status", "release", "run", "reconcile", "replay-dlq"):
        shown = cli(command, "--help")
        assert shown.code == 0
        assert "Example" in shown.out, command
        assert f"lock-janitor {command}" in shown.out
    assert os.access(COMMAND, os.X_OK)


def test_make_local_serve_is_found_with_its_printed_endpoint_alone(tmp_path: Path) -> None:
    """`make local SERVE=1` (python -m local --serve) in a process of its own; the command,
    given only the endpoint it printed, starts a run, sees it, and force-releases it."""
    server = subprocess.Popen(
        [sys.executable, "-m", "local", "--serve"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": "src", "AWS_ENDPOINT_URL": ""},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in server.stdout or []:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        endpoint = ""
        deadline = time.monotonic() + 120
        while not endpoint and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                line = lines.get(timeout=1)
                if line.startswith("The emulator is up: "):
                    endpoint = line.split(": ", 1)[1].strip()
        assert endpoint.startswith("http://127.0.0.1:"), "the server printed its endpoint"

        assert run_cli(endpoint, tmp_path, "run", "sample").code == 0
        held = run_cli(endpoint, tmp_path, "--json", "status", "sample").json()
        assert held["state"] == "held"
        assert held["holderStatus"] == "RUNNING"
        released = run_cli(endpoint, tmp_path, "release", "sample", "--force", "--stop", "--yes")
        assert released.code == 0, released.err
        free = run_cli(endpoint, tmp_path, "--json", "status", "sample").json()
        assert (free["state"], free["lastOutcome"]) == ("free", "FORCED")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
