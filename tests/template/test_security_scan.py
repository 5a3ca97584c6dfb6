"""checkov, offline, on the template as CloudFormation will see it (translated by the SAM
translator): no failed check, and every check skipped is skipped beside its resource, for a
reason, and still needed.

checkov runs from its own venv (`.venv-scan`, which `make test` creates from
requirements-scan.txt: it pins a boto3 of its own) under `tests/support/offline.py`, which
refuses every name lookup and connection beyond loopback and says so: the scan downloads
nothing."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from local.template import load_template
from tests.support import offline
from tests.support.translate import translated_template

ROOT = Path(__file__).resolve().parents[2]
SCAN_PYTHON = ROOT / ".venv-scan" / "bin" / "python"
MIN_REASON = 40  # characters: a reason, not a token


def run_offline(python: Path | str, *argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), offline.__file__, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            **os.environ,
            "PYTHONDONTWRITEBYTECODE": "1",
            # checkov asks PyPI for a newer release (cached for a while in a file of its own):
            # never, here.
            "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
        },
    )


@pytest.fixture(scope="module")
def scan(
    tmp_path_factory: pytest.TempPathFactory, worker_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the translated template, checkov's JSON report on it). Under pytest-xdist the first
    worker to get here scans and the others read its report (a scan costs 20 s of CPU)."""
    if not SCAN_PYTHON.exists():
        pytest.fail(f"{SCAN_PYTHON.relative_to(ROOT)} is missing: `make test` creates it")
    template = translated_template()
    if worker_id == "master":
        return template, checkov_report(tmp_path_factory.mktemp("checkov"), template)
    shared = tmp_path_factory.getbasetemp().parent  # this run's folder, one for every worker
    saved = shared / "checkov-report.json"
    with (shared / "checkov.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not saved.exists():
            report = checkov_report(tmp_path_factory.mktemp("checkov"), template)
            saved.write_text(json.dumps(report))
    return template, json.loads(saved.read_text())


def checkov_report(workdir: Path, template: dict[str, Any]) -> dict[str, Any]:
    """checkov's JSON report on `template`, run offline in `workdir`."""
    (workdir / "template.json").write_text(json.dumps(template, indent=1))
    done = run_offline(
        SCAN_PYTHON,
        "checkov.main",
        "--file",
        "template.json",
        "--framework",
        "cloudformation",
        "--skip-download",  # no Prisma Cloud metadata: without it, checkov looks its API up
        "--output",
        "json",
        cwd=workdir,
    )
    assert offline.MARK not in done.stderr, done.stderr
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: checks failed, reported below
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def suppressions() -> dict[tuple[str, str], str]:
    """{(logical id, check id): reason} for every skip written in a resource's Metadata in
    template.yaml. (The translator copies a function's Metadata onto what it generates for it,
    such as its EventInvokeConfig: those copies are not skips anyone wrote.)"""
    found = {}
    for name, resource in load_template()["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            found[(name, skip["id"])] = skip.get("comment", "")
    return found


def test_no_check_fails(scan: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _, report = scan
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert failed == []
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 50  # it really scanned the stack's resources


def test_every_skip_says_why_beside_its_resource() -> None:
    skips = suppressions()
    assert skips, "the template skips nothing: then this test and its reasons can go"
    short = {key: reason for key, reason in skips.items() if len(reason.strip()) < MIN_REASON}
    assert short == {}


def test_every_skip_is_still_needed(scan: tuple[dict[str, Any], dict[str, Any]]) -> None:
    """A skip checkov did not use (the check passes now, or was renamed) is a stale excuse."""
    _, report = scan
    used = {
        (c["resource"].split(".", 1)[1], c["check_id"]) for c in report["results"]["skipped_checks"]
    }
    assert set(suppressions()) == used


def test_the_offline_runner_refuses_and_reports_every_way_out(tmp_path: Path) -> None:
    """What makes "nothing downloaded" checkable: a lookup or connection beyond loopback fails
    and leaves a line; loopback still works."""
    (tmp_path / "reach.py").write_text(
        "import socket\n"
        "for attempt in (lambda: socket.getaddrinfo('pypi.org', 443),\n"
        "                lambda: socket.socket().connect(('192.0.2.1', 443))):\n"
        "    try:\n"
        "        attempt()\n"
        "    except OSError as error:\n"
        "        print('blocked:', error)\n"
        "server = socket.create_server(('127.0.0.1', 0))\n"
        "socket.create_connection(server.getsockname(), timeout=1).close()\n"
        "print('loopback ok')\n"
    )
    done = run_offline(sys.executable, "reach", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "refused name lookup of 'pypi.org'" in done.stderr
    assert "refused connection to ('192.0.2.1', 443)" in done.stderr
    assert done.stdout.count("blocked: offline:") == 2
    assert "loopback ok" in done.stdout
