"""The sam CLI, run as the tests and the bench run it: the installed one (in .venv), the running
interpreter (a python3.13, which `sam build` looks for) first on PATH, telemetry off."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from local.template import ROOT

SAM = shutil.which("sam", path=str(ROOT / ".venv" / "bin")) or shutil.which("sam")


def run_sam(*args: str, cwd: Path = ROOT, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    if SAM is None:
        raise FileNotFoundError("the sam CLI is not installed (make venv installs it)")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0", "PATH": path}
    return subprocess.run(  # noqa: S603 - our own sam, with our own arguments
        [SAM, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
