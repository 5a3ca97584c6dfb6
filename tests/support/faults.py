"""Fault injection into moto: make an AWS call fail the way AWS can, a given number of times."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from moto.ecs.exceptions import ECSException
from moto.ecs.models import EC2ContainerServiceBackend


@contextlib.contextmanager
def ecs_run_task_fails(code: str, message: str, times: int) -> Iterator[list[str]]:
    """ECS RunTask raises error `code` on its first `times` calls, then works again. Yields the
    list of codes raised, so a test can show the failures happened."""
    original = EC2ContainerServiceBackend.run_task
    raised: list[str] = []
    lock = threading.Lock()

    def run_task(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Any:
        with lock:
            fail = len(raised) < times
            if fail:
                raised.append(code)
        if fail:
            raise ECSException(code, message)
        return original(self, *args, **kwargs)

    EC2ContainerServiceBackend.run_task = run_task  # type: ignore[method-assign]
    try:
        yield raised
    finally:
        EC2ContainerServiceBackend.run_task = original  # type: ignore[method-assign]
