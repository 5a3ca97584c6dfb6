"""make bench: every figure, each measured in the same run as what it is compared with.

python -m benchmarks            every part, full size (under 15 minutes on 2 cores)
python -m benchmarks --quick    every part, smallest sizes (a smoke run)
python -m benchmarks storm ...  only the parts named
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from benchmarks import (
    cold_start,
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
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"no part named {', '.join(unknown)} (parts: {', '.join(PARTS)})")
    chosen = args.parts or list(PARTS)
    began = time.monotonic()
    print(
        f"# lock-janitor bench, {datetime.now(UTC):%Y-%m-%d}: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs{', --quick' if args.quick else ''}\n",
        flush=True,
    )
    for name in chosen:
        started = time.monotonic()
        for table in PARTS[name](args.quick):
            print(table.render(), end="\n\n", flush=True)
        print(f"({name}: {time.monotonic() - started:.0f} s)\n", flush=True)
    print(f"bench done in {time.monotonic() - began:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
