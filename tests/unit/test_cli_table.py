"""The status table without AWS: names shortened in the middle, columns left out in their
order, and every lock exactly one line at 80 columns however long its holder's name."""

from __future__ import annotations

import io

from rich.console import Console

from lock_janitor_cli import board
from lock_janitor_cli.table import (
    COLUMNS,
    DROPPED_FIRST,
    Column,
    dropped_note,
    fit,
    one_line,
    overhead,
    shorten,
    status_table,
)

MACHINE_ARN = "arn:aws:states:eu-west-1:123456789012:execution:lock-janitor-locking"
LONG_NAMES = (
    "nightly-report-20261206T030000Z-schedule-5f1e2d3c4b5a69788796a5b4c3d2e1f0-c0ffee",
    "operator-20261206T031500Z-1a2b3c4d",
    "weekly-billing-export-2026-12-06T03-00-00-000Z-7e57ab1e-0ddba11-deadbeef",
)


def held(lock_id: str, name: str, flags: tuple[str, ...] = ()) -> board.LockView:
    return board.LockView(
        lock_id,
        "held",
        holder=name,
        holder_arn=f"{MACHINE_ARN}:{name}",
        holder_status="RUNNING",
        held_seconds=754,
        timeout_seconds=3600,
        token=12,
        last_outcome="SUCCEEDED",
        last_released_at="2026-12-05T03:12:44.123Z",
        last_released_by="janitor",
        flags=flags,
    )


VIEWS = [
    held("nightly-report", LONG_NAMES[0]),
    held("sample", LONG_NAMES[1], flags=(board.STALE,)),
    held("weekly-billing-export-for-every-region", LONG_NAMES[2], flags=(board.OVERDUE,)),
    board.LockView("never-taken", "free", schedules=("s",)),
]


def rendered(width: int) -> tuple[list[str], str | None]:
    console = Console(file=io.StringIO(), width=width, soft_wrap=True, highlight=False)
    table, layout = status_table(VIEWS, "prod-locks (eu-west-1): 4 locks", console.width)
    console.print(table)
    assert isinstance(console.file, io.StringIO)
    return console.file.getvalue().splitlines(), dropped_note(layout, width)


def test_shorten_keeps_the_start_and_the_end_around_an_ellipsis() -> None:
    name = "nightly-report-20261206T030000Z-c0ffee"
    assert shorten(name, len(name)) == name
    assert shorten(name, 26) == "nightly-report-20…-c0ffee"[:17] + "…" + name[-8:]
    assert len(shorten(name, 26)) == 26
    assert shorten(name, 26).startswith("nightly-report-2")
    assert shorten(name, 26).endswith("c0ffee")
    assert (shorten(name, 1), shorten(name, 0), shorten(name, 2)) == ("…", "", "n…")
    wide = "夜間レポート-20261206"
    assert shorten(wide, 10) == "夜間レ…206", "measured in cells: a wide character takes two"
    assert shorten(wide, 8) == "夜間…06", "a wide character that would cross the width is left out"


def test_a_cell_is_one_line_whatever_a_lock_id_holds() -> None:
    assert one_line("a\nb\tc") == "a?b?c"


def test_every_column_whole_when_it_fits() -> None:
    rows = [["nightly", "held", "run-1", "RUNNING", "1m / 1h", "3", "-", ""]]
    layout = fit(COLUMNS, rows, 200)
    assert layout.dropped == ()
    assert list(layout.widths) == [c.header for c in COLUMNS]
    assert layout.widths["HOLDER"] == len("HOLDER")
    assert layout.widths["HELD / TIMEOUT"] == len("HELD / TIMEOUT")


def test_names_are_shortened_before_a_column_is_dropped_and_columns_go_in_order() -> None:
    columns = (
        Column("A", lambda v: v.lock_id, floor=5),
        Column("B", lambda v: v.state),
        Column("C", lambda v: v.state),
    )
    rows = [["a" * 30, "b" * 10, "c" * 10]]
    whole = 30 + 10 + 10 + overhead(3)
    assert fit(columns, rows, whole).widths == {"A": 30, "B": 10, "C": 10}
    assert fit(columns, rows, whole - 20).widths == {"A": 10, "B": 10, "C": 10}
    # Below A's floor nothing of DROPPED_FIRST is here to leave out: A narrows to its header.
    assert fit(columns, rows, 10).widths == {"A": 1, "B": 10, "C": 10}
    rows = [[v.lock_id, v.state, "h" * 60, "RUNNING", "x" * 14, "12", "y" * 50, ""] for v in VIEWS]
    drops = [fit(COLUMNS, rows, width).dropped for width in (170, 120, 100, 80, 70, 50)]
    assert drops[0] == ()
    assert all(d == DROPPED_FIRST[: len(d)] for d in drops), drops
    assert drops[-1] == DROPPED_FIRST


def test_at_80_columns_every_lock_is_one_line_of_at_most_80() -> None:
    lines, note = rendered(80)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    for v in VIEWS:
        assert sum(1 for line in lines if v.lock_id[:8] in line) == 1, "\n".join(lines)
    assert len(lines) == 1 + 3 + len(VIEWS) + 1, "title, header, one line per lock, bottom"
    row = next(line for line in lines if "nightly-report" in line)
    assert "nightly-report-…-c0ffee" in row, "the holder's name shortened in the middle"
    assert LONG_NAMES[0] not in row
    assert "RUNNING" in row
    assert "stale" in next(line for line in lines if "sample" in line)
    assert note == "(left out at 80 columns: LAST RUN, TOKEN, HELD / TIMEOUT; see `status LOCK`)"


def test_wide_enough_nothing_is_shortened_or_left_out() -> None:
    lines, note = rendered(250)
    assert note is None
    text = "\n".join(lines)
    for name in LONG_NAMES:
        assert name in text
    assert "SUCCEEDED 2026-12-05T03:12:44.123Z by janitor" in text
    assert len(lines) == 1 + 3 + len(VIEWS) + 1


def test_narrower_than_anything_fits_still_one_line_per_lock() -> None:
    lines, note = rendered(40)
    assert note is not None
    assert len(lines) == 1 + 3 + len(VIEWS) + 1, "\n".join(lines)
    assert all(len(line) <= 40 for line in lines), "\n".join(lines)


def test_the_last_run_says_only_what_the_item_records() -> None:
    whole = held("a", "n")
    bare = board.LockView("b", "free", last_outcome="STALE")
    cells = {
        v.lock_id: dict(zip([c.header for c in COLUMNS], row, strict=True))
        for v, row in ((v, [c.cell(v) for c in COLUMNS]) for v in (whole, bare))
    }
    assert cells["a"]["LAST RUN"] == "SUCCEEDED 2026-12-05T03:12:44.123Z by janitor"
    assert cells["b"]["LAST RUN"] == "STALE"
