"""`make local`'s scenarios as an end-to-end test: the same harness (moto in server mode on
127.0.0.1, the template translated and deployed, the wiring), the same expectations."""

from __future__ import annotations

from pathlib import Path

from local.emulator import Emulator
from local.scenarios import Scenarios
from local.timeline import Timeline


def test_every_scenario_holds(tmp_path: Path) -> None:
    lines: list[str] = []
    with Emulator(Timeline(lines.append), log_dir=tmp_path) as emulator:
        emulator.deploy()
        outcomes = Scenarios(emulator).run_all()
        emulator.stop_running_executions()
    failed = [(o.name, [text for text, ok in o.checks if not ok]) for o in outcomes if not o.ok]
    assert not failed, "\n".join(lines)
    names = [o.name for o in outcomes]
    assert names == [
        "success",
        "overlap_skipped",
        "task_fails",
        "task_times_out",
        "operator_abort_with_orphan",
        "lost_event_healed_by_reconciler",
        "redrive_while_another_holds_the_lock",
        "storm_becomes_a_digest",
        "end state",
    ]
    timeline = "\n".join(lines)
    assert "is redriven (RedriveExecution)" in timeline, "a real redrive (the redrive bridge)"
    assert "status-change event is LOST" in timeline
    assert "slack" in timeline
    assert "to oncall@example.com" in timeline, "the email subscription's text is shown"
    assert all(o.checks for o in outcomes), "every scenario checks something"


def test_the_emulator_leaves_nothing_behind(tmp_path: Path) -> None:
    import os

    before = os.environ.get("AWS_ENDPOINT_URL")
    with Emulator(Timeline(lambda _: None), log_dir=tmp_path) as emulator:
        assert os.environ["AWS_ENDPOINT_URL"] == emulator.endpoint
        assert emulator.endpoint.startswith("http://127.0.0.1:")
    assert os.environ.get("AWS_ENDPOINT_URL") == before
