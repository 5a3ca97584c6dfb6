"""Deployment package size of each function, as sam build makes it: unzipped and zipped, against
Lambda's limits, and what makes it up.

Size matters twice: Lambda refuses a package over its limits, and a bigger package is more to
fetch and unpack on a cold start."""

from __future__ import annotations

import functools
import io
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.report import Table
from local.sam import run_sam
from local.template import load_template

ROOT = Path(__file__).resolve().parents[1]
SAM_TIMEOUT = 600  # seconds
MIB = 2**20
# Lambda's quotas, which its documentation writes "250 MB" and "50 MB": 262,144,000 bytes
# unzipped (function and layers together), 52,428,800 bytes zipped for a direct upload.
UNZIPPED_LIMIT = 250 * MIB
ZIPPED_LIMIT = 50 * MIB
TOP = 5
DIST_INFO = "*.dist-info"
COLUMNS = ["function", "unzipped", "zipped", "limit (unzipped)", "share of limit"]
PARTS = ["entry", "files", "unzipped", "share of package"]


@dataclass(frozen=True)
class Composition:
    """A directory tree's files (relative path to size in bytes) and its top-level entries
    (every *.dist-info counted as one)."""

    files: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.files.values())

    def entries(self) -> dict[str, tuple[int, int]]:
        """Each top-level entry's size in bytes and file count."""
        out: dict[str, tuple[int, int]] = {}
        for name, size in self.files.items():
            head = name.split("/", 1)[0]
            key = DIST_INFO if head.endswith(".dist-info") else head
            total, count = out.get(key, (0, 0))
            out[key] = (total + size, count + 1)
        return out

    def top(self, n: int = TOP) -> list[tuple[str, int, int]]:
        """The n biggest entries (name, bytes, files), then the rest as one "other" entry."""
        ranked = sorted(self.entries().items(), key=lambda item: (-item[1][0], item[0]))
        out = [(name, size, count) for name, (size, count) in ranked[:n]]
        rest = ranked[n:]
        if rest:
            out.append(
                (
                    f"other ({len(rest)} entries)",
                    sum(size for _, (size, _) in rest),
                    sum(count for _, (_, count) in rest),
                )
            )
        return out


def composition(root: Path) -> Composition:
    """Every file under root with its size (symbolic links followed, as a zip tool would)."""
    files = {
        path.relative_to(root).as_posix(): path.stat().st_size
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
    return Composition(files)


def zipped_size(root: Path, names: Iterable[str]) -> int:
    """Bytes of the named files (relative to root) deflated into one zip, as the deployment
    package Lambda is given."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(names):
            archive.write(root / name, name)
    return buffer.getbuffer().nbytes


def size(n: int) -> str:
    return f"{n / MIB:.2f} MiB" if n >= MIB else f"{n / 1024:.1f} KiB"


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "n/a"


def function_names() -> list[str]:
    """The template's AWS::Serverless::Function resources, by name."""
    resources = load_template()["Resources"]
    return sorted(n for n, r in resources.items() if r["Type"] == "AWS::Serverless::Function")


def sam_build(build_dir: Path, cache_dir: Path) -> subprocess.CompletedProcess[str]:
    """sam build of the template, as the tests run it."""
    args = ["build", "--build-dir", str(build_dir), "--cache-dir", str(cache_dir)]
    return run_sam(*args, timeout=SAM_TIMEOUT)


def failed(why: str, output: str = "") -> Table:
    """The table when there is no build to measure: one row saying why."""
    out = Table(title="Package size per function", columns=COLUMNS)
    tail = " / ".join(line.strip() for line in output.strip().splitlines()[-3:] if line.strip())
    out.add(f"sam build failed: {why}", tail.replace("|", "/") or "-", "-", "-", "-")
    return out


def tables(build: Path, names: Sequence[str]) -> list[Table]:
    """The per-function table and the composition of one representative function, from a
    build directory holding one directory per function."""
    sizes = Table(title="Package size per function", columns=COLUMNS)
    found: dict[str, Composition] = {}
    for name in names:
        if not (build / name).is_dir():
            sizes.add(name, "missing from the build", "-", "-", "-")
            continue
        parts = composition(build / name)
        found[name] = parts
        zipped = zipped_size(build / name, parts.files)
        sizes.add(
            name,
            size(parts.total),
            f"{size(zipped)} ({share(zipped, ZIPPED_LIMIT)} of {size(ZIPPED_LIMIT)})",
            size(UNZIPPED_LIMIT),
            share(parts.total, UNZIPPED_LIMIT),
        )
    sizes.notes += [
        "Unzipped: the sum of the function directory's file sizes, which Lambda holds to "
        f"{size(UNZIPPED_LIMIT)} (262,144,000 bytes, layers included; these functions have "
        "none). Zipped: the directory deflated into one zip, as the deployment package; "
        f"{size(ZIPPED_LIMIT)} is the limit for uploading it directly.",
        "Built by sam build from template.yaml and src/requirements.txt; boto3 is not "
        "packaged, the python3.13 runtime has it.",
    ]
    if not found:
        return [sizes]
    representative = min(found, key=lambda n: (-found[n].total, n))
    parts = found[representative]
    makeup = Table(title=f"What makes up {representative}", columns=PARTS)
    for entry, bytes_, count in parts.top():
        makeup.add(entry, count, size(bytes_), share(bytes_, parts.total))
    makeup.add("total", len(parts.files), size(parts.total), share(parts.total, parts.total))
    if len(found) > 1 and all(c.files == parts.files for c in found.values()):
        makeup.notes.append(
            f"All {len(found)} functions hold the same files (they share CodeUri src/): this "
            "one stands for all."
        )
    elif len(found) > 1:
        makeup.notes.append("The functions' files differ: this is the biggest of them.")
    makeup.notes.append(
        f"The {TOP} biggest top-level entries of the package, every *.dist-info counted as "
        "one, then the rest."
    )
    return [sizes, makeup]


_BUILD = tempfile.TemporaryDirectory(prefix="bench-sam-")  # removed when the bench exits


@functools.cache
def built() -> tuple[Path | None, tuple[str, str]]:
    """The template built once per bench run (the cold start imports from it too): the build
    directory, or None and why not."""
    build = Path(_BUILD.name) / "build"
    try:
        done = sam_build(build, Path(_BUILD.name) / "cache")
    except subprocess.TimeoutExpired as err:
        output = err.output if isinstance(err.output, str) else ""
        return None, (f"timed out after {SAM_TIMEOUT} s", output)
    except OSError as err:
        return None, (str(err), "")
    if done.returncode != 0:
        return None, (f"exit status {done.returncode}", done.stdout + done.stderr)
    return build, ("", "")


def run(quick: bool = False) -> list[Table]:
    """The package-size tables. Never raises: a failed build is a table saying so. quick
    changes nothing but a note: sam build is the only way to get these figures."""
    build, why = built()
    if build is None:
        return [failed(*why)]
    result = tables(build, function_names())
    if quick:
        result[0].notes.append("Quick run: sam build still runs (about 30 s to 60 s).")
    return result
