"""The `status` table: one line per lock at any width, a pipe's 80 columns included.

Decided without I/O from the rows and the width: when every column does not fit whole, the lock
id and the holder's execution name are shortened in the middle (`nightly-report-2026…c0ffee`),
down to a floor each; when they still do not fit, the columns of DROPPED_FIRST are left out in
that order, and `dropped_note` names them. No cell ever wraps onto a second line. `status LOCK`
and `--json` say every field in full.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

from common.incident import duration_text
from lock_janitor_cli.board import LockView

ELLIPSIS = "…"
FLAGS_STYLE = "bold red"


def _held(v: LockView) -> str:
    if v.state != "held":
        return ""
    return f"{duration_text(v.held_seconds)} / {duration_text(v.timeout_seconds)}"


def _last(v: LockView) -> str:
    if not v.last_outcome:
        return "-"
    parts = [v.last_outcome, v.last_released_at, v.last_released_by and f"by {v.last_released_by}"]
    return " ".join(p for p in parts if p)


@dataclass(frozen=True)
class Column:
    header: str
    cell: Callable[[LockView], str]
    floor: int | None = None
    """Shortened in the middle to fit, down to this many cells before a column is left out;
    None: never shortened."""


COLUMNS: tuple[Column, ...] = (
    Column("LOCK", lambda v: v.lock_id, floor=16),
    Column("STATE", lambda v: v.state),
    Column("HOLDER", lambda v: v.holder or "-", floor=20),
    Column("STATUS", lambda v: v.holder_status or "-"),
    Column("HELD / TIMEOUT", _held),
    Column("TOKEN", lambda v: "-" if v.token is None else str(v.token)),
    Column("LAST RUN", _last),
    Column("FLAGS", lambda v: ", ".join(v.flags)),
)
DROPPED_FIRST = ("LAST RUN", "TOKEN", "HELD / TIMEOUT", "STATUS")
"""The columns left out, in this order, while the rest does not fit; LOCK, STATE, HOLDER and
FLAGS always stay."""


def one_line(text: str) -> str:
    """`text` with every character that is not printable (a newline, a tab) as `?`: a lock id
    may hold any character; a cell holds one line."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _cut(text: str, cells: int, *, from_end: bool = False) -> str:
    """The longest start (or end) of `text` that takes at most `cells` cells."""
    taken: list[str] = []
    used = 0
    for c in reversed(text) if from_end else text:
        used += cell_len(c)
        if used > cells:
            break
        taken.append(c)
    return "".join(reversed(taken) if from_end else taken)


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` cells: whole when it fits, else its start and its end around
    `…`, two thirds start (what the run is) and one third end (what tells runs apart: a
    timestamp's end, a random suffix)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    end = (width - 1) // 3
    start = _cut(text, width - 1 - end)
    return start + ELLIPSIS + (_cut(text, end, from_end=True) if end else "")


def overhead(columns: int) -> int:
    """What the table draws besides the cells' text on a line: a border at each edge and between
    the columns, and a space each side of every cell (rich's Table as status_table makes it)."""
    return 3 * columns + 1


@dataclass(frozen=True)
class Layout:
    widths: dict[str, int]
    """The columns kept, in their order, and the cells each takes."""
    dropped: tuple[str, ...]


def _share(room: int, natural: dict[str, int], least: dict[str, int]) -> dict[str, int]:
    """`room` cells among the shortened columns: the narrowest first, each its whole width or an
    equal share of what is left, never below `least` (then the line is wider than `room`)."""
    widths: dict[str, int] = {}
    left = room
    order = sorted(natural, key=lambda h: natural[h])
    for i, header in enumerate(order):
        widths[header] = max(least[header], min(natural[header], left // (len(order) - i)))
        left -= widths[header]
    return widths


def fit(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> Layout:
    """The columns kept and their widths so that a line of the table takes at most `width`
    cells: every column whole when it fits; else the shortened ones narrowed (not below their
    floor), then DROPPED_FIRST left out in order until they fit, and narrowed again down to
    their header's width when even that is not enough."""
    natural = {
        c.header: max([cell_len(c.header), *(cell_len(r[i]) for r in rows)])
        for i, c in enumerate(columns)
    }
    floor = {c.header: c.floor for c in columns}
    kept = [c.header for c in columns]

    def room() -> int:
        fixed = sum(natural[h] for h in kept if floor[h] is None)
        return width - overhead(len(kept)) - fixed

    def floors() -> int:
        return sum(min(natural[h], f) for h in kept if (f := floor[h]) is not None)

    dropped: list[str] = []
    for header in DROPPED_FIRST:
        if room() >= floors():
            break
        if header in kept:
            kept.remove(header)
            dropped.append(header)
    shortened = {h: natural[h] for h in kept if floor[h] is not None}
    widths = _share(room(), shortened, {h: min(natural[h], cell_len(h)) for h in shortened})
    return Layout({h: widths.get(h, natural[h]) for h in kept}, tuple(dropped))


def status_table(views: Sequence[LockView], title: str, width: int) -> tuple[Table, Layout]:
    """Every lock as one line of at most `width` cells, and the layout that fits them."""
    rows = [[one_line(c.cell(v)) for c in COLUMNS] for v in views]
    layout = fit(COLUMNS, rows, width)
    table = Table(
        title=Text(shorten(one_line(title), width), no_wrap=True, overflow="ellipsis"),
        title_justify="left",
        min_width=min(cell_len(title), width),
    )
    kept = [(i, c) for i, c in enumerate(COLUMNS) if c.header in layout.widths]
    for _, c in kept:
        table.add_column(c.header, width=layout.widths[c.header], no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(
            *(
                Text(
                    shorten(row[i], layout.widths[c.header]),
                    style=FLAGS_STYLE if c.header == "FLAGS" else "",
                )
                for i, c in kept
            )
        )
    return table, layout


def dropped_note(layout: Layout, width: int) -> str | None:
    """What the table left out to fit `width`, said in one line (for stderr), or None."""
    if not layout.dropped:
        return None
    return f"(left out at {width} columns: {', '.join(layout.dropped)}; see `status LOCK`)"
