"""The failure scenarios `make local` plays, each with the expectations it checks."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.emulator import Emulator


@dataclass
class Outcome:
    name: str
    checks: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(ok for _, ok in self.checks)


class Scenarios:
    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        self.outcomes: list[Outcome] = []
        self._current = Outcome("setup")
        assert emulator.deployed is not None
        self.schedule = next(
            logical
            for logical, s in emulator.deployed.schedules.items()
            if s["target"] == emulator.machine_arn
        )

    # --- helpers ------------------------------------------------------------------------------

    def say(self, text: str, who: str = "scenario") -> None:
        self.emu.timeline.say(text, who)

    def check(self, text: str, ok: bool) -> None:
        self._current.checks.append((text, ok))
        self.say(f"{'ok ' if ok else 'FAIL'} {text}", "expect")

    def posts_during(self, action: Callable[[], None]) -> list[dict[str, Any]]:
        before = len(self.emu.slack_posts)
        action()
        return self.emu.slack_posts[before:]

    def run_task(self, name: str, exit_code: int | None, **overrides: Any) -> tuple[str, str]:
        """A schedule tick; the task starts; it exits with exit_code (None: keeps running)."""
        arn = self.emu.fire_schedule(self.schedule, name, **overrides)
        task = self.emu.task_of(arn)
        self.say(f"{name}: schedule fired, lock taken, task {task.rsplit('/', 1)[-1][:8]} running")
        if exit_code is not None:
            self.emu.finish_task(task, exit_code)
            self.say(f"{name}: the container exits {exit_code}")
        return arn, task

    def lock(self, lock_id: str = "sample") -> dict[str, str]:
        return self.emu.locks().get(lock_id, {})

    # --- scenarios ----------------------------------------------------------------------------

    def run_all(self) -> list[Outcome]:
        for scenario in (
            self.success,
            self.overlap_skipped,
            self.task_fails,
            self.task_times_out,
            self.operator_abort_with_orphan,
            self.lost_event_healed_by_reconciler,
            self.redrive_while_another_holds_the_lock,
            self.storm_becomes_a_digest,
        ):
            self._current = Outcome(scenario.__name__)
            self.emu.timeline.write("")
            self.say(f"== {scenario.__name__.replace('_', ' ')} ==", "scenario")
            try:
                scenario()
            except Exception as err:  # noqa: BLE001 - a broken scenario is a failed expectation
                self.check(f"scenario ran to the end ({type(err).__name__}: {err})", False)
            self.outcomes.append(self._current)
        self._current = Outcome("end state")
        self.emu.timeline.write("")
        self.end_state()
        self.outcomes.append(self._current)
        return self.outcomes

    def success(self) -> None:
        def act() -> None:
            arn, _ = self.run_task("nightly-1", 0)
            done = self.emu.wait_done(arn)
            self.emu.pump()
            self.check("the run SUCCEEDED", done["status"] == "SUCCEEDED")

        posts = self.posts_during(act)
        lock = self.lock()
        self.check(
            "the lock is free, last outcome SUCCEEDED",
            "Owner" not in lock and lock.get("LastOutcome") == "SUCCEEDED",
        )
        self.check("nobody is paged for a success", posts == [])

    def overlap_skipped(self) -> None:
        holder, task = self.run_task("nightly-2", None)
        skipped = self.emu.fire_schedule(self.schedule, "nightly-2-overlap")
        done = self.emu.wait_done(skipped)
        output = json.loads(done.get("output") or "{}")
        holder_seen = (
            output.get("skipped", {}).get("holder", {}).get("Item", {}).get("Owner", {}).get("S")
        )
        self.say(
            f"nightly-2-overlap: {done['status']}, skipped: the lock is held by "
            f"{str(holder_seen).rsplit(':', 1)[-1]}"
        )
        self.check(
            "the overlapping run succeeds as a skip naming the holder",
            done["status"] == "SUCCEEDED" and holder_seen == holder,
        )
        self.check("the holder keeps its lock", self.lock().get("Owner") == holder)
        self.emu.finish_task(task, 0)
        self.emu.wait_done(holder)
        self.emu.pump()
        self.check("then the holder releases it", "Owner" not in self.lock())

    def task_fails(self) -> None:
        def act() -> None:
            arn, _ = self.run_task("nightly-3", 3)
            done = self.emu.wait_done(arn)
            self.say(f"nightly-3: {done['status']} {done.get('error')}")
            self.emu.pump()

        posts = self.posts_during(act)
        self.check(
            "the lock is free, last outcome FAILED",
            self.lock().get("LastOutcome") == "FAILED" and "Owner" not in self.lock(),
        )
        self.check(
            "on-call gets one Slack message", len(posts) == 1 and "FAILED" in posts[0]["text"]
        )

    def task_times_out(self) -> None:
        def act() -> None:
            self.say("nightly-4 runs with timeoutSeconds 2 and never exits")
            arn, task = self.run_task("nightly-4", None, timeoutSeconds=2)
            done = self.emu.wait_done(arn)
            self.say(f"nightly-4: {done['status']} {done.get('error')}")
            self.emu.pump()

            self.check(
                "the janitor stopped the task before releasing the lock",
                task not in self.emu.running_tasks(),
            )

        posts = self.posts_during(act)
        lock = self.lock()
        self.check(
            "the lock is free, released by the janitor",
            "Owner" not in lock and lock.get("LastReleasedBy") == "janitor",
        )
        self.check(
            "on-call gets one Slack message", len(posts) == 1 and "FAILED" in posts[0]["text"]
        )

    def operator_abort_with_orphan(self) -> None:
        def act() -> None:
            arn, task = self.run_task("nightly-5", None)
            self.emu.client("stepfunctions").stop_execution(
                executionArn=arn, error="Operator", cause="redeploy"
            )
            self.emu.wait_done(arn)
            self.say(
                "an operator stops nightly-5 (StopExecution): no Catch runs; "
                "the lock and the task stay"
            )
            self.emu.pump()
            self.check("the janitor stopped the orphan task", task not in self.emu.running_tasks())

        posts = self.posts_during(act)
        lock = self.lock()
        self.check(
            "the janitor released the lock (ABORTED)",
            "Owner" not in lock
            and lock.get("LastOutcome") == "ABORTED"
            and lock.get("LastReleasedBy") == "janitor",
        )
        self.check(
            "on-call gets one high-severity message",
            len(posts) == 1 and posts[0]["text"].startswith("HIGH ABORTED"),
        )

    def lost_event_healed_by_reconciler(self) -> None:
        def act() -> None:
            arn, task = self.run_task("nightly-6", None)
            self.emu.lost_events.add(arn)
            self.emu.client("stepfunctions").stop_execution(executionArn=arn)
            self.emu.wait_done(arn)
            self.emu.pump()
            self.check(
                "with the event lost, the lock is still held", self.lock().get("Owner") == arn
            )
            assert self.emu.deployed is not None
            schedule = next(
                s
                for s in self.emu.deployed.schedules.values()
                if s["target"].endswith("ReconcilerFunction")
            )
            self.say("the reconciler's schedule ticks")
            summary = self.emu.invoke("ReconcilerFunction", json.loads(schedule["input"]))
            self.say(
                f"released {len(summary['released'])} lock(s), "
                f"stopped {len(summary['stopped'])} task(s)",
                "reconciler",
            )
            self.emu.pump()
            self.check(
                "the reconciler stopped the orphan task", task not in self.emu.running_tasks()
            )

        posts = self.posts_during(act)
        lock = self.lock()
        self.check(
            "the reconciler released the lock (STALE)",
            "Owner" not in lock and lock.get("LastOutcome") == "STALE",
        )
        self.check(
            "on-call hears of the stale lock and the orphan task, in one message",
            len(posts) == 1 and "released" in posts[0]["text"],
        )

    def redrive_while_another_holds_the_lock(self) -> None:
        def act() -> None:
            failed, _ = self.run_task("nightly-7", None)
            self.emu.client("stepfunctions").stop_execution(executionArn=failed)
            self.emu.wait_done(failed)
            self.emu.pump()
            holder, task = self.run_task("nightly-8", None)
            self.say("nightly-7 is redriven (RedriveExecution) while nightly-8 holds the lock")
            self.emu.client("stepfunctions").redrive_execution(executionArn=failed)
            self.emu.pump()
            self.check(
                "the redriven run is stopped with its task, so the two never overlap",
                self.emu.wait_done(failed)["status"] == "ABORTED"
                and len([t for t in self.emu.running_tasks() if t != task]) == 0,
            )
            self.check("the holder keeps its lock", self.lock().get("Owner") == holder)
            self.emu.finish_task(task, 0)
            self.emu.wait_done(holder)
            self.emu.pump()

        posts = self.posts_during(act)
        self.check(
            "on-call hears that the redriven run was stopped",
            any(p["text"].startswith("HIGH RUNNING") and "stopped" in p["text"] for p in posts),
        )
        self.check("the lock is free once the holder is done", "Owner" not in self.lock())

    def storm_becomes_a_digest(self) -> None:
        def act() -> None:
            self.say("50 runs of 50 tasks fail at once")
            runs = [
                self.emu.fire_schedule(self.schedule, f"storm-{n}", lockId=f"storm-{n:02d}")
                for n in range(50)
            ]
            for arn in runs:
                self.emu.finish_task(self.emu.task_of(arn), 1)
            for arn in runs:
                self.emu.wait_done(arn)
            self.emu.pump(timeout=120)

        posts = self.posts_during(act)
        self.check(
            "50 failures reach Slack as one digest",
            len(posts) == 1 and "50 incidents" in posts[0]["text"],
        )
        self.check(
            "every storm lock is free",
            all("Owner" not in v for k, v in self.emu.locks().items() if k.startswith("storm-")),
        )

    def end_state(self) -> None:
        self.emu.pump()
        held = {k: v["Owner"] for k, v in self.emu.locks().items() if "Owner" in v}
        self.check("every lock is free", not held)
        running = self.emu.running_tasks()
        left = f" (running: {', '.join(t.rsplit('/', 1)[-1] for t in running)})" if running else ""
        self.check(f"no orphan task is running{left}", running == [])
        self.check(
            "every incident was delivered (alerts queue empty)",
            self.emu.queue_depth("AlertsQueue") == 0,
        )
        dead = ("AlertsDeadLetterQueue", "JanitorDeadLetterQueue", "SchedulesDeadLetterQueue")
        self.check("no dead letters", all(self.emu.queue_depth(q) == 0 for q in dead))
        failures = [f"{fn}: {r}" for fn, r in self.emu.invocations if r != "ok"]
        self.check("every function invocation succeeded", not failures)
        for failure in failures:
            self.say(failure, "FAILED")
        self.say(
            f"{len(self.emu.slack_posts)} Slack messages, "
            f"{len(self.emu.invocations)} function invocations in all",
            "summary",
        )
