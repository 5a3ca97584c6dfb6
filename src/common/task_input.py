"""The execution input: what a schedule (or an operator) asks the locking state machine to run.

`{"lockId": "...", "taskDefinition": "...", "timeoutSeconds": N, "container": "..."}`

The state machine checks it before it takes a lock (in `AcquireLock`, the state that takes it:
a bad input throws before the write, and the Fail state `InvalidInput` says why) and the
janitor, the reconciler and the CLI read it with the rules below. The two are the same rules,
written twice in two languages: tests/unit/test_task_input.py runs the ASL's own expression
against these functions on generated inputs, so they cannot drift apart.

- `lockId`: a string that is not blank (blank = empty or only spaces, tabs, CR and LF, what
  JSONata's `$trim` removes), at most 2,048 bytes in UTF-8 (DynamoDB's limit for a partition
  key), and not starting with `#` (reserved for the janitor's own records in the table);
- `taskDefinition`, `container`: strings that are not blank;
- `timeoutSeconds`: a whole number from 1 to below the execution timeout
  (`ExecutionTimeoutSeconds`), so the run timeout always fires before the execution's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

LOCK_ID_MAX_BYTES = 2048
RESERVED_PREFIX = "#"
BLANK = " \t\n\r"
INVALID_INPUT_ERROR = "Input.Invalid"
"""The error of an execution the state machine refused before taking a lock."""


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.strip(BLANK) != ""


def _whole(value: Any) -> float | None:
    """The value when it is a whole number (1 and 1.0 alike), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value != math.floor(value):
        return None
    return float(value)


def names_a_lock(lock_id: Any) -> bool:
    """The rule for `lockId`: the state machine takes a lock for an execution exactly when
    its input's lockId passes it (and the rest of the input is valid)."""
    if not _text(lock_id) or lock_id.startswith(RESERVED_PREFIX):
        return False
    try:
        return len(lock_id.encode("utf-8")) <= LOCK_ID_MAX_BYTES
    except UnicodeEncodeError:  # a lone surrogate: not a string DynamoDB can store
        return False


def problems(document: Any, execution_timeout: int) -> list[str]:
    """What is wrong with an execution input, in the words of the state machine's error."""
    if not isinstance(document, dict):
        return ["the input must be a JSON object"]
    found = []
    if not names_a_lock(document.get("lockId")):
        found.append("lockId must be a non-blank string of at most 2048 bytes, not starting with #")
    if not _text(document.get("taskDefinition")):
        found.append("taskDefinition must be a non-blank string")
    timeout = _whole(document.get("timeoutSeconds"))
    if timeout is None or not 1 <= timeout < execution_timeout:
        found.append(f"timeoutSeconds must be a whole number from 1 to {execution_timeout - 1}")
    if not _text(document.get("container")):
        found.append("container must be a non-blank string")
    return found


def document_of(raw: str | None) -> Any:
    """The execution input (a JSON string) as a value; None when it is missing or not JSON."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass(frozen=True)
class TaskInput:
    """What the janitor and the reconciler read from an execution's input."""

    lock_id: str | None
    """The lock it names, by the state machine's rule; None when it names none."""
    timeout_seconds: int | None

    @classmethod
    def parse(cls, raw: str | None) -> TaskInput:
        document = document_of(raw)
        if not isinstance(document, dict):
            return cls(None, None)
        lock_id = document.get("lockId")
        timeout = _whole(document.get("timeoutSeconds"))
        return cls(
            lock_id if names_a_lock(lock_id) else None,
            int(timeout) if timeout is not None and timeout >= 1 else None,
        )
