"""Fault injection into moto: make an AWS call fail the way AWS can, a given number of times."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

from botocore.exceptions import ClientError
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


@contextlib.contextmanager
def _on(stage: str, client: Any, operation: str, hook: Callable[..., Any]) -> Iterator[None]:
    """`hook` registered on botocore's `<stage>.<service>.<operation>` event while inside."""
    event = f"{stage}.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    client.meta.events.register(event, hook)
    try:
        yield
    finally:
        client.meta.events.unregister(event, hook)


def before_call(
    client: Any, operation: str, hook: Callable[..., Any]
) -> contextlib.AbstractContextManager[None]:
    """`hook` runs just before each `client.<operation>` call (to change the world between two
    of the code's reads, or to make the call fail)."""
    return _on("before-call", client, operation, hook)


def with_params(
    client: Any, operation: str, hook: Callable[..., Any]
) -> contextlib.AbstractContextManager[None]:
    """`hook(params, **_)` runs just before each `client.<operation>` call is built, with the
    call's parameters (to see what is written, or to fail the call for one of them)."""
    return _on("before-parameter-build", client, operation, hook)


@contextlib.contextmanager
def failing_call(
    client: Any, operation: str, code: str, message: str = "injected", times: int = 1
) -> Iterator[list[str]]:
    """`client.<operation>` raises ClientError `code` (as after botocore's own retries) on its
    next `times` calls; yields the list of failures raised."""
    raised: list[str] = []

    def fail(**_: Any) -> None:
        if len(raised) < times:
            raised.append(code)
            raise ClientError({"Error": {"Code": code, "Message": message}}, operation)

    with before_call(client, operation, fail):
        yield raised


@contextlib.contextmanager
def ecs_run_task_starts_then_fails(times: int = 1) -> Iterator[list[str]]:
    """ECS RunTask starts the task, then answers ServerException (the answer was lost): the
    caller never learns the task's ARN. Yields the ARNs of the tasks started that way."""
    original = EC2ContainerServiceBackend.run_task
    started: list[str] = []

    def run_task(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> Any:
        tasks = original(self, *args, **kwargs)
        if len(started) < times:
            started.extend(t.task_arn for t in tasks)
            raise ECSException("ServerException", "Internal error: the answer was lost")
        return tasks

    EC2ContainerServiceBackend.run_task = run_task  # type: ignore[method-assign]
    try:
        yield started
    finally:
        EC2ContainerServiceBackend.run_task = original  # type: ignore[method-assign]
