"""docs/performance.md, written from one full `make bench` run: the two-line opening, the run's
date and duration, every table the run printed, and the prose that explains them, filled with
the run's own figures. Only a full run writes it (not --quick, not a subset of the parts):
figures are compared within one run, never across runs."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import Table

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "performance.md"

OPENING = (
    "# Performance: the figures of one `make bench` run\n"
    "The janitor against the floor, cold starts, a storm, the reconciler as the table grows, "
    "state transitions and package size, each measured in the same run as what it is compared "
    "with.\n"
)

ORDER = (
    "janitor-vs-floor",
    "cold-start",
    "storm",
    "reconciler-growth",
    "transitions",
    "package-size",
)
"""The parts in the order the document tells them (the janitor first: it is what runs most)."""

HEADINGS = {
    "janitor-vs-floor": "The janitor against the floor",
    "cold-start": "Cold start",
    "storm": "Storm",
    "reconciler-growth": "The reconciler as the table grows",
    "transitions": "State transitions",
    "package-size": "Package size",
}

UNKNOWN = "?"


@dataclass(frozen=True)
class Run:
    """One bench run, as the document tells it."""

    date: str
    """YYYY-MM-DD, UTC."""
    seconds: float
    python: str
    cpus: int
    tables: Mapping[str, Sequence[Table]]
    """Part name -> the tables it printed."""


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{round(seconds)} s ({minutes} min {rest:02d} s)" if minutes else f"{rest} s"


class Figures:
    """Cells of the run's tables by part, table title, row and column; UNKNOWN when the run
    printed no such cell (a part that failed says so in its own table)."""

    def __init__(self, tables: Mapping[str, Sequence[Table]]) -> None:
        self.tables = tables

    def table(self, part: str, title: str) -> Table | None:
        return next((t for t in self.tables.get(part, ()) if t.title.startswith(title)), None)

    def cell(self, part: str, title: str, row: str, column: str) -> str:
        table = self.table(part, title)
        if table is None or column not in table.columns:
            return UNKNOWN
        at = table.columns.index(column)
        found = next((r for r in table.rows if r[0].startswith(row)), None)
        return found[at] if found else UNKNOWN

    def number_in(self, part: str, title: str, pattern: str, *, notes: bool = False) -> str:
        """The first group of `pattern` in the table's title (or its notes)."""
        table = self.table(part, title)
        if table is None:
            return UNKNOWN
        text = " ".join(table.notes) if notes else table.title
        found = re.search(pattern, text)
        return found.group(1) if found else UNKNOWN


def _not_met(f: Figures) -> str:
    table = f.table("janitor-vs-floor", "Janitor vs the floor")
    if table is None or "met" not in table.columns:
        return "The janitor-vs-floor part printed no table in this run."
    calls_met, time_met = [i for i, c in enumerate(table.columns) if c == "met"][:2]
    missed = []
    for row in table.rows:
        if row[calls_met] != "yes":
            missed.append(f"{row[0]}: {row[1]} calls where the target is {row[3].strip('<= ')}")
        if row[time_met] != "yes":
            missed.append(f"{row[0]}: {row[7]} the floor's time, where the target is 1.30x")
    if not missed:
        return "Every target is met in this run."
    return "Not met in this run: " + "; ".join(missed) + "."


def _per_call(f: Figures) -> str:
    """The floor's time per call for a failed run (the floor's calls are one after another)."""
    row = "failure, task already exited"
    time_ms = f.cell("janitor-vs-floor", "Janitor vs the floor", row, "floor time")
    calls = f.cell("janitor-vs-floor", "Janitor vs the floor", row, "floor calls")
    try:
        return f"{float(time_ms.split()[0]) / float(calls):.0f} ms"
    except (ValueError, ZeroDivisionError):
        return UNKNOWN


STATIC = {
    "reconciler-growth": (
        """\
**The reconciler as the table grows**, against a naive scan that asks Step Functions about every
held lock. In the steady state (every held lock live) the reconciler's cost is pages, not items;
with stale locks, it makes for each the reads its repair needs (the naive scan has yet to). The
second table: one run healing the stale locks (1 % stale, 1 % live).""",
        "",
    ),
    "transitions": (
        """\
**State transitions** per run, read from executed histories (a Standard workflow is billed $0.025
per 1,000 in us-east-1).""",
        "",
    ),
    "package-size": (
        """\
**Package size** from `sam build` (the three functions share `CodeUri: src/`, so each carries the
same files, bytecode included; the second table says what makes it up).""",
        "",
    ),
}
"""The parts whose prose holds no figure of the run: before and after their tables."""


def prose(part: str, f: Figures) -> tuple[str, str]:
    """What the document says before and after the part's tables."""
    jvf = "janitor-vs-floor"
    calls = "Janitor vs the floor"
    seq = "Calls in sequence"

    def j(row: str, column: str) -> str:
        return f.cell(jvf, calls, row, column)

    def s(row: str, column: str) -> str:
        return f.cell(jvf, seq, row, column)

    running, stopping = "abort, task still running", "abort, task already stopping"
    if part == jvf:
        incidents = f.number_in(jvf, calls, r"\((\d[\d,]*) incidents")
        before = f"""\
**The janitor against the floor.** The floor is the fewest calls that make the same repair, made
bare with boto3 against the same emulator: release on the owner condition, read the history,
stop the task it names, publish (and DescribeExecution first when the event left the input out).
It trusts the event; the janitor does not. {incidents} incidents of each kind for each side,
alternating. The second table counts the calls each side makes one after another (the longest
chain of calls each made after the one before it answered; calls in flight at the same time are
one step of it), measured in the same run; the third, what each side called."""
        after = f"""\
The janitor reads the execution and its history at the same time (two threads: in flight
together, one round trip on AWS; here one process plays both moto and the janitor, so their
work cannot overlap), and takes a task's end from the history when the ECS integration recorded it
STOPPED: a failed run costs {j("failure", "janitor calls")} calls against the floor's
{j("failure", "floor calls")}. Its calls over the floor are the reads the
promises rest on. DescribeExecution: a late event of an attempt before a redrive must never
kill the redriven run's task, and a run redriven while it is being read is read again. And,
for a task the history does not show stopped (an aborted run's), DescribeTasks: only a task
that runs is stopped, so a task someone else stopped keeps its stop reason, and the report
says truthfully who stopped what. It does not read the lock before releasing an ended run's:
the release is conditioned on the run holding it for the attempt read, and its answer says
how the lock stands.

**An abort whose task is already stopping.** On AWS, Step Functions makes a best-effort stop of
an aborted run's `.sync` task itself. When it has, the janitor's DescribeTasks finds the task's
desiredStatus STOPPED (stopping) and it makes no StopTask: {j(stopping, "janitor calls")} calls
against the floor's {j(stopping, "floor calls")} (the floor stops the task it names without
asking), {s(stopping, "janitor")} in sequence against {s(stopping, "floor")}. The bench marks
each task stopping (desiredStatus STOPPED, lastStatus still RUNNING) right after the abort, as
Step Functions' stop leaves it; "abort, task still running" is the worst case, where it has not.

**What is not met, and why.** {_not_met(f)} The abort with a task still running takes
{j(running, "janitor calls")} calls where the floor takes {j(running, "floor calls")}: the
calls over the floor's are DescribeExecution (above) and DescribeTasks. Without DescribeTasks the
janitor would call StopTask on a task that may already be stopping (Step Functions itself makes
a best-effort stop of an aborted run's task, and the reconciler or an operator may have stopped
it): ECS does not document whether StopTask on such a task keeps its first stop reason or
overwrites it, and moto overwrites it, so the janitor would claim a stop it did not make, and
the report already published for that stop would no longer match the task. Dropping
DescribeTasks is safe only if AWS keeps the first stop reason; that needs a real account to
check. Time here is mostly moto's CPU for each call, in the same process as the janitor (about
{_per_call(f)} a call in this run: the floor's time for a failed run over its calls), so the
time follows the calls. On AWS, where a call is a 10 to 50 ms round trip and the first two
reads overlap, the calls in sequence (the second table) set the time:
{s(running, "janitor")} round trips against the floor's {s(running, "floor")} for the abort
with a task still running, {s(running, "janitor / floor")} (reasoned from these figures, not
measured on AWS)."""
        return before, after
    if part == "cold-start":
        runs = f.number_in(part, "Cold start", r"Median of (\d+) runs", notes=True)
        before = f"""\
**Cold start**: the import of each handler in a fresh interpreter, against `import boto3` alone
(boto3 is in the python3.13 runtime; {runs} runs each, interleaved). The first table imports from
`src/` in this venv; the second from the package `sam build` makes, as Lambda loads it, without
the modules this venv has that the runtime does not (awscrt, pyOpenSSL)."""
        after = """\
The package carries its bytecode compiled (`src/Makefile`): Lambda's code directory is
read-only, so without it every cold start compiled Powertools and the functions from source, and
the janitor and the reconciler imported in 1.43x to 1.55x boto3's time, the alerts function in
1.92x. The alerts function also does without Powertools' parameters and batch utilities (they
brought appconfig, asyncio and every event source's classes): it reads its secret with
GetSecretValue, kept 5 minutes in a warm instance, and returns the documented
`batchItemFailures` itself. Powertools Parser and Tracer, declined, are shown for comparison."""
        return before, after
    if part == "storm":
        runs = f.number_in(part, "Storm", r"Storm: (\d[\d,]*) runs")
        before = f"""\
**Storm**: {runs} runs aborted within seconds, each with its task left running, through the whole
local chain (status-change events, the rule, the janitor, the alerts topic and queue, the alerts
function, the Slack sink). One process plays every part here, the janitor handling the events one
after another where Lambda would run them side by side."""
        return before, ""
    return STATIC.get(part, ("", ""))


def markdown(table: Table) -> str:
    """A table as the bench prints it, its notes as paragraphs of their own."""
    bare = Table(table.title, table.columns, table.rows)
    out = bare.render()
    return "\n\n".join([out, *table.notes])


def render(run: Run) -> str:
    f = Figures(run.tables)
    boto3 = f.cell("cold-start", "Cold start: import time", "boto3 alone", "median")
    parts = [
        OPENING,
        "## How these figures are measured",
        f"""\
From one full `make bench` run on {run.date}, which took {duration(run.seconds)}: Python
{run.python}, {run.cpus} CPUs. `make bench` prints every figure below, each measured in the
same run as what it is compared with, and writes this file; times are medians over repeated
runs, and no test asserts a time (`make bench ARGS=--quick` is the smoke run `make test` keeps
working; `make bench ARGS="storm transitions"` runs the parts named; neither rewrites this
file). Figures are against the emulator (moto in server mode on 127.0.0.1, every call an HTTP
round trip of a few milliseconds); on AWS a call takes 10 to 50 ms, so **the calls carry over
to AWS and the times do not**. This machine's speed varies from day to day (boto3 alone
imported in 193 ms in the run of 2026-12-02, in 227 ms in that of 2026-12-06, and in {boto3} in
this one), so compare figures within one run, never across runs.""",
    ]
    for part in [*ORDER, *(p for p in run.tables if p not in ORDER)]:
        tables = run.tables.get(part)
        if not tables:
            continue
        before, after = prose(part, f)
        parts.append(f"## {HEADINGS.get(part, part)}")
        parts += [text for text in (before, *map(markdown, tables), after) if text]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


def write(run: Run, out: Path = DEFAULT_OUT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(run))
    return out
