"""lock-janitor's command line: what on-call types at 3 a.m.

It reads and heals with the same code the janitor and the reconciler run in Lambda (`src/`):
an installed copy carries that code in `_functions/`, put on the import path here; in the
repository, `src/` is already on it (pytest's pythonpath)."""

from __future__ import annotations

import sys
from pathlib import Path

_FUNCTIONS = Path(__file__).with_name("_functions")
if _FUNCTIONS.is_dir() and str(_FUNCTIONS) not in sys.path:
    sys.path.insert(0, str(_FUNCTIONS))
