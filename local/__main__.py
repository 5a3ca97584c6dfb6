"""`make local`: the whole system against moto on 127.0.0.1, its failure scenarios, a timeline.

python -m local            play the scenarios, print the timeline and the end state;
                           exit 0 only when every expectation held
python -m local --serve    deploy, then keep the emulator up (and its wiring running) and
                           print its endpoint, until interrupted
"""

from __future__ import annotations

import argparse
import sys
import time

from local.emulator import Emulator
from local.scenarios import Scenarios
from local.timeline import Timeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make local", description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep the emulator up")
    args = parser.parse_args(argv)
    timeline = Timeline()
    with Emulator(timeline) as emulator:
        emulator.deploy()
        if args.serve:
            return serve(emulator)
        outcomes = Scenarios(emulator).run_all()
        emulator.stop_running_executions()
    print()
    failed = [o for o in outcomes if not o.ok]
    for outcome in outcomes:
        marks = sum(ok for _, ok in outcome.checks)
        verdict = "PASS" if outcome.ok else "FAIL"
        print(f"{verdict}  {outcome.name:<40} {marks}/{len(outcome.checks)} expectations")
    passed = sum(1 for o in outcomes if o.ok)
    print(f"\n{passed} passed, {len(failed)} failed")
    print(f"handler logs: {emulator.log_dir}")
    return 0 if not failed else 1


def serve(emulator: Emulator) -> int:
    assert emulator.deployed is not None
    refs = emulator.deployed.context.refs
    print(
        f"\nThe emulator is up: {emulator.endpoint}\n"
        f"  .venv-cli/bin/lock-janitor --endpoint-url {emulator.endpoint} status\n"
        f"  export AWS_ENDPOINT_URL={emulator.endpoint} AWS_ACCESS_KEY_ID=local "
        "AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1\n"
        f"  lock table:    {refs['LockTable']}\n"
        f"  state machine: {refs['LockingStateMachine']}\n"
        f"  alerts topic:  {refs['AlertsTopic']}\n"
        "Executions you start are wired as on AWS (events -> janitor -> alerts -> Slack sink).\n"
        "Ctrl-C stops it.",
        flush=True,
    )
    try:
        while True:
            emulator.pump(quiet_rounds=1, timeout=5)
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nstopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
