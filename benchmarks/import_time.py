"""Cold-start cost of the janitor's imports, side by side with the alternatives it declined.

Each import runs in a fresh interpreter (as a cold Lambda does), several times; prints the
median in milliseconds. Usage: .venv/bin/python benchmarks/import_time.py [runs]"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

CASES = {
    "boto3 alone (in the runtime anyway)": "import boto3",
    "janitor.handler (Logger + Metrics, dataclass parsing)": "import janitor.handler",
    "+ Powertools Parser (pydantic models of the event)": (
        "import janitor.handler\n"
        "from aws_lambda_powertools.utilities.parser import parse\n"
        "from aws_lambda_powertools.utilities.parser.models import EventBridgeModel"
    ),
    "+ Powertools Tracer (X-Ray SDK)": (
        "import janitor.handler\nfrom aws_lambda_powertools import Tracer\nTracer()"
    ),
}


def measure(code: str, runs: int) -> float | None:
    samples = []
    probe = (
        "import time, sys\nt = time.perf_counter()\n"
        f"exec({code!r})\nprint((time.perf_counter() - t) * 1000)"
    )
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env={
                "PYTHONPATH": str(SRC),
                "POWERTOOLS_SERVICE_NAME": "janitor",
                "POWERTOOLS_METRICS_NAMESPACE": "LockJanitor",
                "AWS_DEFAULT_REGION": "us-east-1",
            },
            check=False,
        )
        if done.returncode != 0:
            return None
        samples.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    print(f"median import time over {runs} fresh interpreters (Python {sys.version.split()[0]})")
    for label, code in CASES.items():
        ms = measure(code, runs)
        print(f"  {label:<58} {'not installed' if ms is None else f'{ms:7.1f} ms'}")


if __name__ == "__main__":
    main()
