"""The bench's emulator-driven parts at their smallest sizes: they run, and what they claim about
correctness holds (figures of time are printed by `make bench`, never asserted)."""

from __future__ import annotations

from benchmarks import janitor_vs_floor, reconciler_growth, storm, transitions
from benchmarks.report import Table


def rows(table: Table) -> dict[str, list[str]]:
    return {r[0]: r[1:] for r in table.rows}


def test_transitions_read_every_way_a_run_ends() -> None:
    (table,) = transitions.run(quick=True)
    ended = rows(table)
    assert ended["success"][:2] == ["SUCCEEDED", "3"]
    assert ended["skipped (lock held)"][:2] == ["SUCCEEDED", "2"]
    assert ended["task failure"][:2] == ["FAILED", "3"]
    assert ended["run timeout"][:2] == ["FAILED", "3"]
    assert "TaskTimedOut" in ended["run timeout"][2]


def test_janitor_and_floor_make_the_repairs_they_are_said_to() -> None:
    table, sequence, shapes = janitor_vs_floor.run(quick=True)
    assert [r[0] for r in table.rows] == [k.name for k in janitor_vs_floor.KINDS]
    assert [r[0] for r in sequence.rows] == [k.name for k in janitor_vs_floor.KINDS]
    for calls, in_sequence in zip(table.rows, sequence.rows, strict=True):
        assert 1 <= float(in_sequence[1]) <= float(calls[1]), "the janitor's round trips"
        assert float(in_sequence[2]) == float(calls[2]), "the floor makes one call at a time"
    called = {(r[0], r[1]): r[2] for r in shapes.rows}
    assert "StopTask" in called[("abort, task still running", "janitor")]
    assert "StopTask" in called[("abort, task still running", "floor")]
    assert "DescribeExecution" in called[("abort, input left out of the event", "floor")]
    # Step Functions' own stop of an aborted run's task has begun: the janitor reads the task
    # (DescribeTasks) and makes no StopTask; the floor, which never asks, stops it regardless.
    stopping = "abort, task already stopping"
    assert rows(table)[stopping][:2] == ["5", "4"], (
        "2 reads at once, DescribeTasks, UpdateItem, Publish"
    )
    assert rows(sequence)[stopping][:2] == ["4", "4"]
    janitor = [r[2] for r in shapes.rows if r[:2] == [stopping, "janitor"]]
    floor = [r[2] for r in shapes.rows if r[:2] == [stopping, "floor"]]
    assert janitor, "the janitor's calls are listed"
    assert not any("StopTask" in c for c in janitor), janitor
    assert all("DescribeTasks" in c for c in janitor), janitor
    assert floor, "the floor's calls are listed"
    assert all("StopTask" in c for c in floor), floor


def test_reconciler_growth_heals_every_stale_lock_it_counts() -> None:
    table, heals = reconciler_growth.run(quick=True)
    assert [r[1] for r in table.rows] == ["2 % live, none stale", "1 % live, 1 % stale"]
    assert not any("found" in n for n in table.notes), table.notes
    (healed,) = heals.rows
    assert healed[3] == "2 of 2"


def test_the_storm_accounts_for_every_incident_once() -> None:
    (table,) = storm.run(quick=True)
    figures = rows(table)
    assert figures["every incident posted exactly once"] == ["yes"]
    assert figures["incidents published (distinct)"] == ["20 of 20 runs"]
    assert int(figures["most Slack posts in any one second (target <= 1)"][0]) <= 1
    assert figures["dead letters; failed invocations"] == ["0; 0"]
    assert figures["every lock free and every orphan stopped"][0] != "never (timed out)"
