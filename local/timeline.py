"""What happens in the emulator, as a person can follow it: one timestamped line per step, the
Slack messages as Slack shows them, each function's result in a few words."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any


class Timeline:
    """What happens, as a person can follow it."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self.start = time.monotonic()
        # Bound now: handlers run with stdout redirected to their log files, and the Slack
        # sink prints from its own thread meanwhile.
        stream = sys.stdout
        self.write = write or (lambda line: print(line, file=stream, flush=True))

    def say(self, text: str, who: str = "") -> None:
        elapsed = time.monotonic() - self.start
        label = f"{who:<10}" if who else " " * 10
        for i, line in enumerate(text.splitlines() or [""]):
            prefix = f"[{elapsed:6.1f}s] " if i == 0 else " " * 10
            self.write(f"{prefix}{label} {line}")


def slack_text(body: dict[str, Any]) -> str:
    """A Block Kit message as the lines a person reads in Slack."""
    lines = []
    for block in body.get("blocks", []):
        if "text" in block:
            lines.append(block["text"]["text"])
        for f in block.get("fields", []):
            lines.append(f["text"].replace("\n", ": ", 1))
        for e in block.get("elements", []):
            lines.append(e.get("text", ""))
    text = "\n".join(line if len(line) <= 240 else line[:239] + "…" for line in lines)
    for a, b in (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
        text = text.replace(a, b)
    return text


def summary(result: Any) -> str:
    """A function's result in a line: what the janitor healed, else the result itself."""
    if not isinstance(result, dict):
        return str(result)
    keys = ("lockId", "lock", "tasksStopped", "severity", "incidentId")
    parts = [f"{k}={result[k]}" for k in keys if result.get(k) not in (None, [], "")]
    return "healed: " + ", ".join(parts) if parts else json.dumps(result)[:200]
