"""A storm: many runs end badly within seconds, each aborted with its task left running (the
janitor's heaviest repair: stop the task, then release the lock), through the whole local chain:
status-change events, the rule, the janitor, the alerts topic and queue, the alerts function,
the Slack webhook sink. (Failures through the state machine's own catch are measured, 200 of
them, in the janitor against the floor.)

Measured: how long until every lock is free and every orphan stopped; how many Slack posts, and
the most in any one second (Slack's incoming webhooks allow about one a second); every incident
published accounted for exactly once in what Slack was sent (digests say how many they hold)."""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.report import Table, met
from benchmarks.stage import (
    abort,
    emulator,
    start_runs,
    tasks_of,
)
from local.deployer import create_queue
from local.emulator import Emulator
from local.harness import drain
from local.knobs import set_sync_poll

RUNS = 1000
STORM_POLL_SECONDS = 120.0
TIMEOUT_SECONDS = 900.0
_DIGEST = re.compile(r"(\d+) incidents")


def _most_in_one_second(times: list[float]) -> int:
    most, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


def _incidents_in(post: dict[str, Any]) -> int:
    found = _DIGEST.search(str(post.get("text", "")))
    return int(found.group(1)) if found else 1


def _published(emu: Emulator, inbox: str) -> Counter[str]:
    """Incident id -> how many times it was published on the alerts topic."""
    notes = drain(emu.client("sqs"), inbox)
    return Counter(str(json.loads(n["Message"]).get("id")) for n in notes)


def run(quick: bool = False) -> list[Table]:
    count = 20 if quick else RUNS
    table = Table(f"Storm: {count} runs ending badly at once, through the whole chain", ["", ""])
    with tempfile.TemporaryDirectory() as logs, emulator(Path(logs)) as emu:
        assert emu.deployed is not None
        sqs, sns = emu.client("sqs"), emu.client("sns")
        inbox, inbox_arn = create_queue(sqs, "bench-published")
        sns.subscribe(TopicArn=emu.deployed.ref("AlertsTopic"), Protocol="sqs", Endpoint=inbox_arn)

        # No run here ends by its task's exit: moto's `.sync` polls of a thousand running
        # tasks would only take the CPU the chain needs.
        set_sync_poll(STORM_POLL_SECONDS)
        setup = time.monotonic()
        runs = start_runs(emu, "storm", count)
        tasks_of(emu, runs)
        setup = time.monotonic() - setup

        started = time.monotonic()
        abort(emu, runs)
        sent = time.monotonic() - started
        healed_at = None
        deadline = started + TIMEOUT_SECONDS
        quiet, looked = 0, 0.0
        while time.monotonic() < deadline and quiet < 3:  # bounded: the deadline
            moved = emu.wiring.step() if emu.wiring else 0
            if healed_at is None and time.monotonic() - looked > 2.0:  # a look reads it all
                looked = time.monotonic()
                held = [k for k, v in emu.locks().items() if "Owner" in v]
                if not held and not emu.running_tasks():
                    healed_at = time.monotonic() - started
            quiet = 0 if moved or healed_at is None else quiet + 1
            if not moved:
                time.sleep(0.3)
        delivered_at = time.monotonic() - started
        posts = emu.slack_posts
        published = _published(emu, inbox)
        in_posts = sum(_incidents_in(p) for p in posts)
        left = emu.queue_depth("AlertsQueue")
        dead = sum(emu.queue_depth(q) for q in ("AlertsDeadLetterQueue", "JanitorDeadLetterQueue"))
        failures = [r for _, r in emu.invocations if r != "ok"]

    table.columns = ["measure", "figure"]
    table.add("runs started and given a task (setup, not measured)", f"{setup:.0f} s")
    table.add("the storm sent (every run aborted, its task left running)", f"{sent:.1f} s")
    table.add(
        "every lock free and every orphan stopped",
        "never (timed out)" if healed_at is None else f"{healed_at:.1f} s after the storm",
    )
    table.add("every incident delivered (alerts queue empty)", f"{delivered_at:.1f} s")
    table.add("incidents published (distinct)", f"{len(published)} of {count} runs")
    table.add("incidents published twice", sum(1 for n in published.values() if n > 1))
    table.add("Slack posts", len(posts))
    table.add("incidents in those posts (digests count theirs)", in_posts)
    table.add(
        "every incident posted exactly once",
        met(in_posts == len(published) == count and left == 0 and dead == 0),
    )
    table.add(
        "most Slack posts in any one second (target <= 1)",
        _most_in_one_second(emu.slack_post_times),
    )
    table.add("dead letters; failed invocations", f"{dead}; {len(failures)}")
    table.notes.append(
        "One process plays every part: the janitor handles the events one after another (on AWS "
        "Lambda runs them side by side), so the time to heal grows with the storm here and far "
        "less there. The Slack posts are paced by the alerts function (a post at most every "
        "SLACK_MIN_POST_INTERVAL_SECONDS, 2 s), and a batch of more incidents than "
        "DigestThreshold is one digest."
    )
    return [table]
