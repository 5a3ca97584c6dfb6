"""The bench's parts that need neither sam build nor many interpreters: the tables, the cold-start
bookkeeping (a failing import is a row, never a crash), and a package's sizes and make-up."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from benchmarks import cold_start, janitor_vs_floor, package_size
from benchmarks.report import Table


def test_table_renders_its_columns_rows_and_notes() -> None:
    table = Table(title="Sizes", columns=["name", "size"], notes=["measured once"])
    table.add("janitor", 12)
    text = table.render().splitlines()
    assert text[0] == "### Sizes"
    assert text[2] == "| name    | size |"
    assert text[3] == "| ------- | ---- |"
    assert text[4] == "| janitor | 12   |"
    assert text[-1] == "measured once"


def test_table_refuses_a_row_of_the_wrong_width() -> None:
    table = Table(title="Sizes", columns=["name", "size"])
    with pytest.raises(ValueError, match="3 cells for 2 columns"):
        table.add("janitor", 12, "extra")
    assert table.rows == []


def test_a_failing_child_is_a_failed_row_not_an_exception() -> None:
    cases = {
        "baseline": cold_start.Case("import json"),
        "broken": cold_start.Case("raise RuntimeError('no such handler')"),
    }
    results = cold_start.measure(cases, runs=1)
    baseline = results["baseline"]
    assert isinstance(baseline, list)
    assert len(baseline) == 1
    assert baseline[0] > 0
    assert results["broken"] == "failed: RuntimeError: no such handler"
    table = cold_start.table(results, cases, runs=1, baseline="baseline")
    assert table.rows[1] == ["broken", "failed: RuntimeError: no such handler", "-", "-", "-"]


def test_runs_go_round_robin_and_a_failed_case_is_not_run_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []

    def child(case: cold_start.Case, package: Path | None = None) -> float | str:
        assert package is None
        order.append(case.code)
        return "boom" if case.code == "b" else 0.1

    monkeypatch.setattr(cold_start, "run_child", child)
    cases = {name: cold_start.Case(name) for name in ("a", "b", "c")}
    results = cold_start.measure(cases, runs=3)
    assert order == ["a", "b", "c", "a", "c", "a", "c"]
    assert results == {"a": [0.1] * 3, "b": "failed: boom", "c": [0.1] * 3}


def test_the_cold_start_table_holds_handlers_to_the_target() -> None:
    cases = {
        "floor": cold_start.Case("import boto3"),
        "quick": cold_start.Case("import quick"),
        "slow": cold_start.Case("import slow"),
        "declined": cold_start.Case("import slow", declined=True),
    }
    results: dict[str, list[float] | str] = {
        "floor": [0.1, 0.1, 0.3],
        "quick": [0.12, 0.14, 0.13],
        "slow": [0.2, 0.2, 0.2],
        "declined": [0.2, 0.2, 0.2],
    }
    rows = cold_start.table(results, cases, runs=3, baseline="floor").rows
    assert rows[0] == ["floor", "100.0 ms", "1.00x", "-", "-"]
    assert rows[1] == ["quick", "130.0 ms", "1.30x", "<= 150.0 ms", "yes"]
    assert rows[2] == ["slow", "200.0 ms", "2.00x", "<= 150.0 ms", "NO"]
    assert rows[3] == ["declined: declined, for comparison", "200.0 ms", "2.00x", "-", "-"]


def test_a_failed_baseline_leaves_the_ratios_unknown() -> None:
    cases = {"floor": cold_start.Case("import boto3"), "ours": cold_start.Case("import x")}
    results: dict[str, list[float] | str] = {"floor": "failed: no boto3", "ours": [0.2]}
    rows = cold_start.table(results, cases, runs=1, baseline="floor").rows
    assert rows == [
        ["floor", "failed: no boto3", "-", "-", "-"],
        ["ours", "200.0 ms", "n/a", "n/a", "n/a"],
    ]


def write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"a" * size)


def package(root: Path) -> None:
    """A small package shaped like a function's build: libraries, our code, their metadata."""
    write(root / "big" / "a.py", 6000)
    write(root / "big" / "sub" / "b.py", 4000)
    write(root / "common" / "x.py", 3000)
    write(root / "janitor" / "handler.py", 2000)
    write(root / "one-1.0.dist-info" / "METADATA", 700)
    write(root / "two-2.0.dist-info" / "RECORD", 800)
    write(root / "small" / "s.py", 100)
    write(root / "tiny.py", 50)
    write(root / "wee" / "w.py", 10)


def test_composition_sums_the_tree_and_ranks_its_top_level_entries(tmp_path: Path) -> None:
    package(tmp_path)
    parts = package_size.composition(tmp_path)
    assert parts.total == 16660
    assert parts.files["big/sub/b.py"] == 4000
    assert parts.entries()["*.dist-info"] == (1500, 2)
    assert parts.top() == [
        ("big", 10000, 2),
        ("common", 3000, 1),
        ("janitor", 2000, 1),
        ("*.dist-info", 1500, 2),
        ("small", 100, 1),
        ("other (2 entries)", 60, 2),
    ]
    assert parts.top(n=10)[-1] == ("wee", 10, 1)


def test_zipped_size_is_the_deflated_zip_of_the_tree(tmp_path: Path) -> None:
    package(tmp_path / "fn")
    parts = package_size.composition(tmp_path / "fn")
    zipped = package_size.zipped_size(tmp_path / "fn", parts.files)
    assert 0 < zipped < parts.total
    archive = tmp_path / "fn.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for name in sorted(parts.files):
            out.write(tmp_path / "fn" / name, name)
    assert zipped == archive.stat().st_size


def test_tables_say_when_every_function_is_the_same(tmp_path: Path) -> None:
    for name in ("AlertsFunction", "JanitorFunction"):
        package(tmp_path / name)
    sizes, makeup = package_size.tables(tmp_path, ["AlertsFunction", "JanitorFunction", "Gone"])
    assert [row[0] for row in sizes.rows] == ["AlertsFunction", "JanitorFunction", "Gone"]
    assert sizes.rows[0][1] == "16.3 KiB"
    assert sizes.rows[0][3] == "250.00 MiB"
    assert sizes.rows[2][1] == "missing from the build"
    assert makeup.title == "What makes up AlertsFunction"
    assert makeup.rows[0][:2] == ["big", "2"]
    assert makeup.rows[-1] == ["total", "9", "16.3 KiB", "100.0 %"]
    assert any("same files" in note for note in makeup.notes)


def test_a_failed_sam_build_is_a_table_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_build(build: Path, cache: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(
            ["sam", "build"], 1, stdout="Building codeuri\n", stderr="Error: PythonPipBuilder\n"
        )

    monkeypatch.setattr(package_size, "sam_build", failing_build)
    package_size.built.cache_clear()
    try:
        (table,) = package_size.run(quick=True)
        cold = cold_start.run(quick=True)[1]
    finally:
        package_size.built.cache_clear()
    assert table.rows == [
        ["sam build failed: exit status 1", "Building codeuri / Error: PythonPipBuilder"]
        + ["-"] * 3
    ]
    assert all(r[1] == "failed: sam build: exit status 1" for r in cold.rows), cold.rows


def test_calls_in_flight_together_are_one_round_trip() -> None:
    rounds = janitor_vs_floor.rounds
    assert rounds([]) == 0
    assert rounds([(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]) == 3, "one after another"
    assert rounds([(0.0, 1.0), (0.1, 0.9), (1.0, 2.0)]) == 2, "the second within the first"
    assert rounds([(0.1, 1.2), (0.0, 1.0), (1.1, 2.0)]) == 2, "overlaps chain, in any order"
