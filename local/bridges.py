"""Bridges over moto's gaps (../shared/reference/aws-facts.md, "moto as the local AWS").

Each bridge fills one gap, is named for it, and is tested on its own in
tests/support/test_moto_bridges.py. They patch moto's vendored Step Functions interpreter in
this process only, and undo themselves on exit. No moto code is copied here.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.exceptions import ClientError
from botocore.model import OperationModel
from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
    CustomErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
    FailureEvent,
    FailureEventException,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
    StatesErrorName,
)
from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
    StatesErrorNameType,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (  # noqa: E501
    StateTaskServiceEcs,
)
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

_SESSION = botocore.session.get_session()


def _operation(service: str, action: str) -> OperationModel:
    model = _SESSION.get_service_model(service)
    for name in model.operation_names:
        if name.lower() == action.replace("_", "").lower():
            return model.operation_model(name)
    raise KeyError(f"{service} has no operation {action}")


@contextlib.contextmanager
def _patched(owner: type, name: str, replacement: Any) -> Iterator[None]:
    """Set owner.name for the duration; restore exactly what the class itself had (an inherited
    method is restored by deleting the override)."""
    missing = object()
    original = owner.__dict__.get(name, missing)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        if original is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, original)


@contextlib.contextmanager
def ecs_integration_shapes() -> Iterator[None]:
    """Gap: moto's ecs:runTask(.sync) passes the ASL's PascalCase parameters to boto unconverted
    (`Cluster` instead of `cluster`) and reads boto's camelCase answers as if converted: its
    normalisers are no-ops for ECS. Fill them from botocore's operation shapes, as Step
    Functions does."""

    def normalise_parameters(
        self: StateTaskServiceEcs,
        parameters: dict[str, Any],
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        op = _operation(
            self._get_boto_service_name(boto_service_name),
            self._get_boto_service_action(service_action_name),
        )
        if op.input_shape is not None:
            self._to_boto_request(parameters, op.input_shape)

    def normalise_response(
        self: StateTaskServiceEcs,
        response: Any,
        boto_service_name: str | None = None,
        service_action_name: str | None = None,
    ) -> None:
        op = _operation(
            self._get_boto_service_name(boto_service_name),
            self._get_boto_service_action(service_action_name),
        )
        if op.output_shape is not None:
            self._from_boto_response(response, op.output_shape)

    with (
        _patched(StateTaskServiceEcs, "_normalise_parameters", normalise_parameters),
        _patched(StateTaskServiceEcs, "_normalise_response", normalise_response),
    ):
        yield


def _ecs_error_name(code: str) -> str:
    """Step Functions names an ECS error after the SDK exception: a modelled error keeps its
    name (ECS.ClientException, ECS.ServerException, ...); anything else, throttling included,
    is ECS.AmazonECSException."""
    modelled = {shape.name for shape in _SESSION.get_service_model("ecs").error_shapes}
    return f"ECS.{code}" if code in modelled else "ECS.AmazonECSException"


@contextlib.contextmanager
def ecs_integration_errors() -> Iterator[None]:
    """Gap: an error from ECS inside moto's runTask integration surfaces as the uncatchable
    `States.Runtime`. On AWS it is a catchable `ECS.<Error>` Task failure."""
    original: Callable[[StateTaskServiceEcs, Environment, Exception], FailureEvent] = (
        StateTaskServiceEcs._from_error
    )

    def from_error(self: StateTaskServiceEcs, env: Environment, ex: Exception) -> FailureEvent:
        if not isinstance(ex, ClientError):
            return original(self, env, ex)
        code = ex.response.get("Error", {}).get("Code", "Unknown")
        message = ex.response.get("Error", {}).get("Message", str(ex))
        name = _ecs_error_name(code)
        cause = f"{message} (Service: AmazonECS; Status Code: 400; Error Code: {code})"
        return FailureEvent(
            env=env,
            error_name=CustomErrorName(name),
            event_type=HistoryEventType.TaskFailed,
            event_details=EventDetails(
                taskFailedEventDetails=TaskFailedEventDetails(
                    error=name,
                    cause=cause,
                    resource=self._get_sfn_resource(),
                    resourceType=self._get_sfn_resource_type(),
                )
            ),
        )

    with _patched(StateTaskServiceEcs, "_from_error", from_error):
        yield


@contextlib.contextmanager
def ecs_sync_fails_on_nonzero_exit() -> Iterator[None]:
    """Gap: moto's ecs:runTask.sync succeeds whatever the containers' exit codes. On AWS a task
    whose essential container stops with a non-zero exit code fails the state with
    `States.TaskFailed`, the described task as its cause."""
    original = StateTaskServiceEcs._build_sync_resolver

    def build_sync_resolver(
        self: StateTaskServiceEcs, env: Environment, *args: Any, **kwargs: Any
    ) -> Callable[[], Any] | None:
        resolve = original(self, env, *args, **kwargs)
        if resolve is None:
            return None

        def resolve_or_fail() -> Any:
            task = resolve()
            if task is None:
                return None
            if any(c.get("ExitCode", 0) not in (0, None) for c in task.get("Containers", [])):
                error = StatesErrorNameType.StatesTaskFailed.to_name()
                raise FailureEventException(
                    FailureEvent(
                        env=env,
                        error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                        event_type=HistoryEventType.TaskFailed,
                        event_details=EventDetails(
                            taskFailedEventDetails=TaskFailedEventDetails(
                                error=error,
                                cause=json.dumps(task, default=str),
                                resource=self._get_sfn_resource(),
                                resourceType=self._get_sfn_resource_type(),
                            )
                        ),
                    )
                )
            return task

        return resolve_or_fail

    with _patched(StateTaskServiceEcs, "_build_sync_resolver", build_sync_resolver):
        yield


@contextlib.contextmanager
def all_bridges() -> Iterator[None]:
    """Every bridge at once: what a test of the real ASL against moto needs."""
    with ecs_integration_shapes(), ecs_integration_errors(), ecs_sync_fails_on_nonzero_exit():
        yield


def status_change_event(
    sfn: Any,
    execution_arn: str,
    *,
    redrive_count: int = 0,
    event_id: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Gap: moto sends no "Step Functions Execution Status Change" events at all. Build the one
    AWS sends for the execution's current status, from DescribeExecution, in the documented
    shape (dates as epoch millis, input as a JSON string). `status` and `redrive_count` stand in
    for what moto cannot do at all (a redrive: RUNNING again, redriveCount 1)."""
    d = dict(sfn.describe_execution(executionArn=execution_arn))
    if status is not None:
        d["status"] = status

    def millis(value: Any) -> int | None:
        return int(value.timestamp() * 1000) if value is not None else None

    region, account = execution_arn.split(":")[3], execution_arn.split(":")[4]
    detail: dict[str, Any] = {
        "executionArn": execution_arn,
        "stateMachineArn": d["stateMachineArn"],
        "name": d["name"],
        "status": d["status"],
        "startDate": millis(d.get("startDate")),
        "stopDate": millis(d.get("stopDate")) if d["status"] != "RUNNING" else None,
        "input": d.get("input"),
        "inputDetails": {"included": True},
        "output": d.get("output"),
        "outputDetails": {"included": True} if d.get("output") is not None else None,
        "redriveCount": redrive_count,
        "redriveStatus": "NOT_REDRIVABLE" if d["status"] == "RUNNING" else "REDRIVABLE",
        "stateMachineVersionArn": None,
        "stateMachineAliasArn": None,
    }
    if d.get("error") or d.get("cause"):
        detail["error"], detail["cause"] = d.get("error"), d.get("cause")
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [execution_arn],
        "detail": detail,
    }
