"""The bench's document (benchmarks/document.py), fed figures: no bench is run. A full run writes
docs/performance.md (or --out) with its date, its duration and every table it printed; a quick
or partial run writes nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks import __main__ as bench
from benchmarks import document, janitor_vs_floor
from benchmarks.report import Table


def figures() -> dict[str, list[Table]]:
    """One table (or more) per part, titled and shaped as the parts title and shape theirs."""
    calls = Table(
        "Janitor vs the floor (200 incidents of each kind, each side)", janitor_vs_floor.COLUMNS
    )
    calls.add("abort, task still running", 6, 4, "<= 5", "NO", "47.8 ms", "29.7 ms", "1.61x",
              "<= 1.30x", "NO")  # fmt: skip
    calls.add("abort, task already stopping", 5, 4, "<= 5", "yes", "40.1 ms", "31.0 ms", "1.29x",
              "<= 1.30x", "yes")  # fmt: skip
    calls.add("failure, task already exited", 4, 4, "<= 5", "yes", "46.4 ms", "36.4 ms", "1.27x",
              "<= 1.30x", "yes")  # fmt: skip
    calls.notes.append("Medians per incident.")
    sequence = Table(
        "Calls in sequence (round trips)", ["incident", "janitor", "floor", "janitor / floor"]
    )
    sequence.add("abort, task still running", 5, 4, "1.25x")
    sequence.add("abort, task already stopping", 4, 4, "1.00x")
    sequence.add("failure, task already exited", 3, 4, "0.75x")
    shapes = Table("What each side called (incidents: calls)", ["incident", "side", "calls"])
    shapes.add("abort, task already stopping", "janitor", "200: DescribeTasks, Publish")
    cold = Table("Cold start: import time of each handler", ["import", "median"])
    cold.add("boto3 alone (in the runtime anyway)", "227.1 ms")
    cold.notes.append("Median of 11 runs per import, each in a fresh interpreter.")
    storm = Table("Storm: 1000 runs ending badly at once, through the whole chain", ["", ""])
    storm.add("Slack posts", 12)
    growth = Table("Reconciler as the table grows: finding what to heal", ["locks", "calls"])
    growth.add("1,000", 4)
    transitions = Table("State transitions per run", ["run", "transitions"])
    transitions.add("success", 3)
    size = Table("Package size per function", ["function", "unzipped"])
    size.add("JanitorFunction", "6.38 MiB")
    return {
        "cold-start": [cold],
        "package-size": [size],
        "transitions": [transitions],
        "janitor-vs-floor": [calls, sequence, shapes],
        "reconciler-growth": [growth],
        "storm": [storm],
    }


def test_the_document_holds_the_date_the_duration_and_every_table(tmp_path: Path) -> None:
    tables = figures()
    run = document.Run("2026-12-07", 797.4, "3.13.0", 2, tables)
    out = document.write(run, tmp_path / "performance.md")
    text = out.read_text()
    title, summary, blank = text.splitlines()[:3]
    assert title.startswith("# Performance")
    assert summary
    assert not blank
    assert "on 2026-12-07, which took 797 s (13 min 17 s): Python" in text
    for part in tables.values():
        for table in part:
            bare = Table(table.title, table.columns, table.rows).render()
            assert bare in text, table.title
            for note in table.notes:
                assert note in text
    # the prose is filled from the run's own figures
    assert "200 incidents of each kind" in text
    assert "no StopTask: 5 calls\nagainst the floor's 4" in text
    assert "227.1 ms in\nthis one" in text
    assert "Not met in this run: abort, task still running: 6 calls where the target is 5" in text
    assert document.UNKNOWN not in text, "every figure the prose names was printed"


def test_a_part_that_printed_nothing_leaves_its_figures_unknown(tmp_path: Path) -> None:
    tables = figures()
    del tables["janitor-vs-floor"]
    text = document.render(document.Run("2026-12-07", 30, "3.13.0", 2, tables))
    assert "## The janitor against the floor" not in text
    assert "## Storm" in text


@pytest.fixture
def fake_parts(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every part replaced by one that returns its figures at once; records each call's quick."""
    quick_flags: list[bool] = []
    tables = figures()

    def part(name: str) -> Callable[[bool], list[Table]]:
        def run(quick: bool) -> list[Table]:
            quick_flags.append(quick)
            return tables[name]

        return run

    monkeypatch.setattr(bench, "PARTS", {name: part(name) for name in bench.PARTS})
    return quick_flags


def test_a_full_run_writes_the_document(fake_parts: list[bool], tmp_path: Path) -> None:
    out = tmp_path / "docs" / "performance.md"
    assert bench.main(["--out", str(out)]) == 0
    assert fake_parts == [False] * len(bench.PARTS)
    assert "### Janitor vs the floor (200 incidents" in out.read_text()


@pytest.mark.parametrize("args", [["--quick"], ["storm", "transitions"]], ids=["quick", "partial"])
def test_a_quick_or_partial_run_writes_nothing(
    fake_parts: list[bool], tmp_path: Path, args: list[str]
) -> None:
    out = tmp_path / "performance.md"
    out.write_text("the figures of a full run\n")
    assert bench.main([*args, "--out", str(out)]) == 0
    assert out.read_text() == "the figures of a full run\n"
