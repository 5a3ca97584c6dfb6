"""Reading what a Powertools Logger writes. Powertools binds its stream when the handler module
loads, so a test points that stream at a buffer for its duration."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def captured(logger: Any) -> Iterator[io.StringIO]:
    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.stream
    handler.stream = buffer
    try:
        yield buffer
    finally:
        handler.stream = previous


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]
