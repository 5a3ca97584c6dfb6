"""make bench: every figure, each measured in the same run as what it is compared with.

python -m benchmarks            every part, full size (13 to 26 minutes on 2 cores); writes
                                docs/performance.md from the run (--out PATH: elsewhere)
python -m benchmarks --quick    every part, smallest sizes (a smoke run; writes nothing)
python -m benchmarks storm ...  only the parts named (writes nothing)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import (
    cold_start,
    document,
    janitor_vs_floor,
    package_size,
    reconciler_growth,
    storm,
    transitions,
)
from benchmarks.report import Table

PARTS: dict[str, Callable[[bool], list[Table]]] = {
    "cold-start": cold_start.run,
    "package-size": package_size.run,
    "transitions": transitions.run,
    "janitor-vs-floor": janitor_vs_floor.run,
    "reconciler-growth": reconciler_growth.run,
    "storm": storm.run,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"of: {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="smallest sizes: a smoke run")
    parser.add_argument(
        "--out",
        type=Path,
        default=document.DEFAULT_OUT,
        metavar="PATH",
        help="where a full run writes its document (default: docs/performance.md)",
    )
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"no part named {', '.join(unknown)} (parts: {', '.join(PARTS)})")
    chosen = args.parts or list(PARTS)
    began = time.monotonic()
    date = f"{datetime.now(UTC):%Y-%m-%d}"
    print(
        f"# lock-janitor bench, {date}: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs{', --quick' if args.quick else ''}\n",
        flush=True,
    )
    printed: dict[str, list[Table]] = {}
    for name in chosen:
        started = time.monotonic()
        printed[name] = PARTS[name](args.quick)
        for table in printed[name]:
            print(table.render(), end="\n\n", flush=True)
        print(f"({name}: {time.monotonic() - started:.0f} s)\n", flush=True)
    seconds = time.monotonic() - began
    print(f"bench done in {seconds:.0f} s", flush=True)
    if args.quick or set(chosen) != set(PARTS):
        print(f"{args.out} not written: only a full run (every part, not --quick) writes it")
        return 0
    run = document.Run(date, seconds, platform.python_version(), os.cpu_count() or 0, printed)
    print(f"written: {document.write(run, args.out)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
