"""Cold-start cost of each function's handler module: how long importing it takes in a fresh
interpreter, against importing boto3 alone, plus the Powertools utilities the janitor declined.

A cold Lambda starts a fresh interpreter and imports the handler module before the first event;
boto3 is in the python3.13 runtime and every function needs it, so its import is the floor. The
target: no handler costs more than 1.5 times that floor."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import package_size
from benchmarks.report import Table, median, met, ms, ratio

SRC = Path(__file__).resolve().parents[1] / "src"
RUNS = 11
QUICK_RUNS = 2
TARGET = 1.5
CHILD_TIMEOUT = 120  # seconds; an import that takes longer has failed
BASELINE = "boto3 alone (in the runtime anyway)"
COLUMNS = ["import", "median", "vs boto3 alone", f"target <= {TARGET}x", "met"]

# Run in the child: the time of the import alone, interpreter start-up excluded, in seconds.
PROBE = (
    "import sys, time\n"
    "t = time.perf_counter()\n"
    "exec(sys.argv[1])\n"
    "print(repr(time.perf_counter() - t))"
)
# As Lambda loads it: what the venv has and the python3.13 runtime does not (awscrt, which
# botocore uses when present; pyOpenSSL, which sam-cli brings and urllib3 picks up) is hidden.
LAMBDA_PRELUDE = "import sys\nsys.modules['awscrt'] = None\nsys.modules['OpenSSL'] = None\n"


@dataclass(frozen=True)
class Case:
    """One import to time: the code the child runs, as which function, and whether it is a
    choice the project declined (shown for comparison, held to no target)."""

    code: str
    service: str = ""
    declined: bool = False
    env: Mapping[str, str] = field(default_factory=dict)


CASES: dict[str, Case] = {
    BASELINE: Case("import boto3"),
    "janitor.handler": Case("import janitor.handler", service="janitor"),
    "reconciler.handler": Case("import reconciler.handler", service="reconciler"),
    "alerts.handler": Case("import alerts.handler", service="alerts"),
    "janitor.handler + Powertools Parser (pydantic models of the event)": Case(
        "import janitor.handler\n"
        "from aws_lambda_powertools.utilities.parser import parse\n"
        "from aws_lambda_powertools.utilities.parser.models import EventBridgeModel",
        service="janitor",
        declined=True,
    ),
    # Outside Lambda, Tracer disables itself and patches nothing; LAMBDA_TASK_ROOT (which the
    # runtime sets) makes it patch the SDK as it would in a function with tracing on.
    "janitor.handler + Powertools Tracer (X-Ray SDK, patching as in Lambda)": Case(
        "import janitor.handler\nfrom aws_lambda_powertools import Tracer\nTracer()",
        service="janitor",
        declined=True,
        env={"LAMBDA_TASK_ROOT": "/var/task"},
    ),
}


def child_env(case: Case, package: Path | None = None) -> dict[str, str]:
    """The environment the handler modules read at import, as the template gives it; nothing
    inherited from the caller's shell, so every run sees the same."""
    env = {
        "PYTHONPATH": str(package or SRC),
        "POWERTOOLS_METRICS_NAMESPACE": "LockJanitor",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    if case.service:
        env["POWERTOOLS_SERVICE_NAME"] = case.service
    return {**env, **case.env}


def run_child(case: Case, package: Path | None = None) -> float | str:
    """Seconds the case's import took in a fresh interpreter, or why it could not be timed
    (the last line of the child's error output). With `package`: as Lambda loads it (from
    that built package, writing no bytecode, the runtime's modules only)."""
    command = [sys.executable, "-c", PROBE, case.code]
    if package is not None:
        command = [sys.executable, "-B", "-c", LAMBDA_PRELUDE + PROBE, case.code]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=child_env(case, package),
            timeout=CHILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"timed out after {CHILD_TIMEOUT} s"
    except OSError as err:
        return f"could not start: {err}"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"exit status {done.returncode}"
    out = done.stdout.strip().splitlines()
    try:
        return float(out[-1])
    except (IndexError, ValueError):
        return f"unreadable output: {done.stdout.strip()[-80:]!r}"


def measure(
    cases: Mapping[str, Case], runs: int, package: Path | None = None
) -> dict[str, list[float] | str]:
    """Each case's import times (seconds), or "failed: <why>" for a case whose child failed.
    Runs go round-robin over the cases, so noise on the machine hits each case alike; a case
    that failed once is not run again."""
    results: dict[str, list[float] | str] = {label: [] for label in cases}
    for _ in range(runs):
        for label, case in cases.items():
            samples = results[label]
            if isinstance(samples, str):
                continue
            outcome = run_child(case, package)
            if isinstance(outcome, str):
                results[label] = f"failed: {outcome}"
            else:
                samples.append(outcome)
    return results


def table(
    results: Mapping[str, list[float] | str],
    cases: Mapping[str, Case],
    runs: int,
    baseline: str = BASELINE,
    title: str = "Cold start: import time of each handler",
) -> Table:
    """The results as the bench prints them: median, ratio to boto3 alone, the target."""
    out = Table(title=title, columns=COLUMNS)
    floor_samples = results.get(baseline)
    floor = median(floor_samples) if isinstance(floor_samples, list) else math.nan
    known = not math.isnan(floor) and floor > 0
    for label, case in cases.items():
        samples = results.get(label, "failed: not run")
        if isinstance(samples, str):
            out.add(label, samples.replace("|", "/"), "-", "-", "-")
            continue
        ours = median(samples)
        versus = ratio(ours, floor) if known else "n/a"
        if label == baseline:
            out.add(label, ms(ours), versus, "-", "-")
        elif case.declined:
            out.add(f"{label}: declined, for comparison", ms(ours), versus, "-", "-")
        elif known:
            budget = TARGET * floor
            out.add(label, ms(ours), versus, f"<= {ms(budget)}", met(ours <= budget))
        else:
            out.add(label, ms(ours), versus, "n/a", "n/a")
    version = sys.version.split()[0]
    out.notes += [
        f"Median of {runs} runs per import, each in a fresh interpreter (Python {version}, "
        f"{os.cpu_count()} CPUs), timed inside the child with time.perf_counter around the "
        "import alone (interpreter start-up excluded); runs interleaved round-robin over the "
        "imports, so noise on the machine hits each alike.",
        "Why: a cold Lambda starts a fresh interpreter and imports the handler module before "
        "the first event, so this is the handler's share of every cold start. boto3 is in the "
        "python3.13 runtime and every function needs it: importing it alone is the floor, and "
        f"the target is that no handler costs more than {TARGET}x that floor.",
        "Declined rows: what janitor.handler would cost with the Powertools utilities it does "
        "without; shown for comparison, held to no target.",
        "Environment: the template's (POWERTOOLS_SERVICE_NAME per function, "
        "POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL, AWS_DEFAULT_REGION), with this "
        "venv's modules (awscrt and pyOpenSSL among them, which the runtime lacks).",
    ]
    return out


def run(quick: bool = False) -> list[Table]:
    """The cold-start table; quick: two runs per import, a smoke run that keeps the bench
    working, not a figure to quote."""
    runs = QUICK_RUNS if quick else RUNS
    result = table(measure(CASES, runs), CASES, runs)
    handlers = {k: v for k, v in CASES.items() if not v.declined}
    title = "Cold start as Lambda loads it: from the package sam build makes"
    build, why = package_size.built()
    if build is None:
        lambda_like = table({k: f"failed: sam build: {why[0]}" for k in handlers}, handlers, runs)
        lambda_like.title = title
    else:
        package = build / "JanitorFunction"  # the three functions hold the same files
        lambda_like = table(measure(handlers, runs, package), handlers, runs, title=title)
    lambda_like.notes = [
        "The same imports from the package sam build makes (src/Makefile: the pinned "
        "dependencies, the code, and its bytecode compiled, since Lambda's code directory is "
        "read-only and a cold start would otherwise compile Powertools and the functions), "
        "with the modules this venv has and the runtime does not hidden (awscrt, pyOpenSSL). "
        "The closer of the two figures to a real cold start.",
    ]
    if quick:
        for t in (result, lambda_like):
            t.notes.append(f"Quick run: {runs} runs per import, too few for a figure.")
    return [result, lambda_like]
