"""Bridges over moto's gaps: what moto 5.2 does not do that AWS does.

Each bridge fills one gap, is named for it, and is tested on its own in
tests/unit/test_bridges.py (the gap shows without it, and is filled with it). They patch moto in
this process only, and undo themselves on exit. No moto code is copied here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import botocore.session
import jsonata
from botocore.exceptions import ClientError
from botocore.model import OperationModel
from moto.core.responses import ActionResult
from moto.dynamodb.models import DynamoDBBackend
from moto.ecs.models import EC2ContainerServiceBackend
from moto.stepfunctions.exceptions import AWSError  # type: ignore[attr-defined]
from moto.stepfunctions.parser.api import (
    EvaluationFailedEventDetails,
    ExecutionStatus,
    HistoryEventType,
    TaskFailedEventDetails,
)
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
from moto.stepfunctions.parser.asl.component.common.string.string_expression import StringJSONata
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_dynamodb import (  # noqa: E501
    StateTaskServiceDynamoDB,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (  # noqa: E501
    StateTaskServiceEcs,
)
from moto.stepfunctions.parser.asl.eval.environment import Environment
from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
from moto.stepfunctions.parser.asl.jsonata import jsonata as moto_jsonata
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.backend.execution import Execution as SfnExecution
from moto.stepfunctions.parser.models import StepFunctionsParserBackend
from moto.stepfunctions.responses import StepFunctionResponse

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
            event_details=EventDetails(  # type: ignore[typeddict-item]  # moto: a total TypedDict
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
                        event_details=EventDetails(  # type: ignore[typeddict-item]  # moto: a total TypedDict
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
def parser_scopes_per_parse() -> Iterator[None]:
    """Gap: moto's ASL preprocessor keeps its stack of query-language scopes (JSONPath or
    JSONata) in a list shared by every parse, so two executions starting at once with a JSONata
    state can read each other's scope and fail to start ("Unsupported declaration in
    QueryLanguage=JSONata block"). Give each parse its own stack, as a parser should have."""
    inherited = Preprocessor.__init__

    def init(self: Preprocessor, *args: Any, **kwargs: Any) -> None:
        inherited(self, *args, **kwargs)
        self._query_language_per_scope = []

    with _patched(Preprocessor, "__init__", init):
        yield


ECS_TASKS = threading.RLock()
"""Held by every ECS call on the tasks (`ecs_tasks_one_call_at_a_time`) and by the harness when
it ends a task (`local.harness.exit_container`), so no answer shows a task half-ended."""


@contextlib.contextmanager
def _one_call_at_a_time(
    backend: type, methods: tuple[str, ...], lock: threading.RLock | None = None
) -> Iterator[None]:
    """The named methods of a moto backend, each run under one lock shared by all of them."""
    lock = lock or threading.RLock()

    def serialised(name: str) -> Callable[..., Any]:
        inner = getattr(backend, name)

        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return inner(self, *args, **kwargs)

        return call

    with contextlib.ExitStack() as stack:
        for name in methods:
            stack.enter_context(_patched(backend, name, serialised(name)))
        yield


@contextlib.contextmanager
def ecs_tasks_one_call_at_a_time() -> Iterator[None]:
    """Gap: moto's ECS backend is not thread-safe: DescribeTasks iterates the backend's dict of
    tasks while a RunTask of another thread (a state machine's, in moto's server) inserts into
    it, and fails with "dictionary changed size during iteration" (HTTP 500). AWS serves both at
    once. Let one call that reads or writes the tasks run at a time.

    Also: moto answers DescribeTasks with its live task objects, serialised after the call has
    returned, so a task that ends meanwhile could be answered half-ended (STOPPED, its
    container's exit code still moto's default 0): `.sync` then took a failed task for a
    success. DescribeTasks answers with copies taken under the same lock (`ECS_TASKS`), which
    the harness holds when it ends a task: each answer is one moment's task, as on AWS."""
    methods = ("run_task", "start_task", "describe_tasks", "list_tasks", "stop_task")
    inner = EC2ContainerServiceBackend.describe_tasks

    def describe_tasks(self: Any, *args: Any, **kwargs: Any) -> Any:
        with ECS_TASKS:
            return [task_copy(task) for task in inner(self, *args, **kwargs)]

    with (
        _patched(EC2ContainerServiceBackend, "describe_tasks", describe_tasks),
        _one_call_at_a_time(EC2ContainerServiceBackend, methods, ECS_TASKS),
    ):
        yield


def task_copy(task: Any) -> Any:
    """A moto task as it is now, its containers included, apart from the live one."""
    copied = copy.copy(task)
    copied.containers = [copy.copy(c) for c in task.containers]
    return copied


@contextlib.contextmanager
def dynamodb_item_calls_one_at_a_time() -> Iterator[None]:
    """Gap: moto's DynamoDB conditional writes are not atomic between threads: PutItem reads the
    item, evaluates the condition, then stores it, with nothing held in between, so two threads
    claiming one key with `attribute_not_exists` can both succeed (two alerts instances both
    posted one incident). On AWS the condition is evaluated against the item as it is when the
    write applies ("If the condition expression evaluates to true, the operation succeeds;
    otherwise, the operation fails", Condition expressions, Amazon DynamoDB Developer Guide);
    lock takes and delivery claims depend on it. Let one call that reads or writes items run at
    a time."""
    methods = ("put_item", "update_item", "delete_item", "get_item", "query", "scan")
    with _one_call_at_a_time(DynamoDBBackend, (*methods, "transact_write_items")):
        yield


@contextlib.contextmanager
def ecs_list_tasks_running_by_default() -> Iterator[None]:
    """Gap: moto's ListTasks without `desiredStatus` lists every task it ever started, stopped
    ones included; AWS's default filter is RUNNING ("The default status filter is RUNNING",
    ListTasks, Amazon ECS API Reference), and with `startedBy` no other filter may be given.
    Apply AWS's default, so a ListTasks costs here what it costs there."""
    inner = EC2ContainerServiceBackend.list_tasks

    def list_tasks(  # noqa: PLR0917 - moto's own signature, called positionally
        self: EC2ContainerServiceBackend,
        cluster_str: str | None = None,
        container_instance: str | None = None,
        family: str | None = None,
        started_by: str | None = None,
        service_name: str | None = None,
        desiredStatus: str | None = None,
    ) -> Any:
        return inner(
            self,
            cluster_str,
            container_instance,
            family,
            started_by,
            service_name,
            desiredStatus or "RUNNING",
        )

    with _patched(EC2ContainerServiceBackend, "list_tasks", list_tasks):
        yield


_SURROGATE_PAIR = re.compile(r"\\ud[89ab][0-9a-f]{2}\\ud[c-f][0-9a-f]{2}", re.IGNORECASE)


@contextlib.contextmanager
def jsonata_without_jvm() -> Iterator[None]:
    """Gap: moto evaluates the JSONata of a `QueryLanguage: JSONata` state through a JVM bridge
    it never starts (the call fails). Evaluate the same expression with jsonata-python, a port
    of the jsonata-java reference implementation moto's bridge would have used."""

    def evaluate(expression: str) -> Any:
        # moto writes the state's input into the expression as ASCII JSON, astral characters as
        # surrogate-pair escapes, which jsonata-python reads as two lone surrogates: join them.
        joined = _SURROGATE_PAIR.sub(lambda m: json.loads(f'"{m.group(0)}"'), expression)
        return jsonata.Jsonata(joined).evaluate(None)

    original = moto_jsonata._eval_jsonata
    moto_jsonata._eval_jsonata = evaluate
    try:
        yield
    finally:
        moto_jsonata._eval_jsonata = original


@contextlib.contextmanager
def jsonata_errors_are_query_evaluation_errors() -> Iterator[None]:
    """Gap: a JSONata expression that throws (`$error(...)`, a type error) inside a Task's
    `Arguments` surfaces from moto as the service's own error (`DynamoDB.AmazonDynamoDBException`,
    which the ASL retries as a DynamoDB fault). On AWS the state fails with
    `States.QueryEvaluationError` and an `EvaluationFailed` history event, which a Catch can name
    (developer guide, "Handling errors in Step Functions workflows"). AWS's cause quotes the
    expression and its message, in words it does not document: this one says "The JSONata
    expression '<expression>' threw an error: <message>", so a state that reads the message
    back is tested against a cause that also quotes the expression's own text."""
    evaluate_body: Callable[[StringJSONata, Environment], None] = StringJSONata._eval_body
    dynamodb_from_error: Callable[[StateTaskServiceDynamoDB, Environment, Exception], FailureEvent]
    dynamodb_from_error = StateTaskServiceDynamoDB._from_error

    def eval_body(self: StringJSONata, env: Environment) -> None:
        try:
            evaluate_body(self, env)
        except FailureEventException:
            raise
        except Exception as err:
            name = StatesErrorNameType.StatesQueryEvaluationError.to_name()
            details = getattr(err, "details", None) or str(err)
            message = details[0] if isinstance(details, list) and details else str(details)
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesQueryEvaluationError),
                    event_type=HistoryEventType.EvaluationFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]  # moto: total
                        evaluationFailedEventDetails=EvaluationFailedEventDetails(
                            error=name,
                            cause=(
                                f"The JSONata expression '{self.expression}' threw an error: "
                                f"{message}"
                            ),
                            state=env.next_state_name,
                        )
                    ),
                )
            ) from err

    def from_error(self: StateTaskServiceDynamoDB, env: Environment, ex: Exception) -> FailureEvent:
        if isinstance(ex, FailureEventException):  # the state's own failure, as it was raised
            return ex.failure_event
        return dynamodb_from_error(self, env, ex)

    with (
        _patched(StringJSONata, "_eval_body", eval_body),
        _patched(StateTaskServiceDynamoDB, "_from_error", from_error),
    ):
        yield


def _failed_state(history: list[dict[str, Any]]) -> tuple[str, Any]:
    """The state an execution stopped in (entered, never exited) and the input it entered with."""
    open_states: dict[str, Any] = {}
    last: str | None = None
    for event in history:
        kind = str(event["type"])
        if kind.endswith("StateEntered"):
            details = event["stateEnteredEventDetails"]
            open_states[details["name"]] = json.loads(details.get("input") or "{}")
            last = details["name"]
        elif kind.endswith("StateExited"):
            open_states.pop(event["stateExitedEventDetails"]["name"], None)
    if last is None or last not in open_states:
        # Ended in a Fail state (entered, never exited): that is the state to run again.
        for event in reversed(history):
            if str(event["type"]).endswith("StateEntered"):
                details = event["stateEnteredEventDetails"]
                return details["name"], json.loads(details.get("input") or "{}")
        raise ValueError("the execution entered no state")
    return last, open_states[last]


def _redrive(execution: Any) -> None:
    # Any: moto's Execution, given the attributes a redrive needs (redrive_count, ...).
    """Run the execution again from the state it stopped in, under its own ARN and context,
    keeping its history (plus an ExecutionRedriven event) as Step Functions does."""
    old_env = execution.exec_worker.env
    previous = list(getattr(execution, "bridge_previous_events", []))
    previous += old_env.event_manager.get_event_history()
    state, state_input = _failed_state(previous)
    definition = json.loads(execution.state_machine.definition)
    definition["StartAt"] = state
    execution.redrive_count = getattr(execution, "redrive_count", 0) + 1
    execution.redrive_date = datetime.now(UTC)
    redriven_event = {
        "timestamp": execution.redrive_date,
        "type": "ExecutionRedriven",
        "id": 0,
        "previousEventId": 0,
        "executionRedrivenEventDetails": {"redriveCount": execution.redrive_count},
    }
    execution.bridge_previous_events = [*previous, redriven_event]
    execution.exec_status = ExecutionStatus.RUNNING
    execution.stop_date = None
    execution.error = execution.cause = None
    worker = execution._get_start_execution_worker()
    details = worker._evaluation_details
    details.state_machine_details.definition = json.dumps(definition)
    env = worker._get_evaluation_environment()
    env.states.reset(state_input)
    worker.env = env
    execution.exec_worker = worker
    program = AmazonStateLanguageParser.parse(json.dumps(definition))[0]

    def run() -> None:
        program.eval(env)
        worker._execution_communication.terminated()

    threading.Thread(target=run, daemon=True).start()


@contextlib.contextmanager
def redrive_execution() -> Iterator[None]:
    """Gap: moto has no RedriveExecution (NotImplementedError), and DescribeExecution and
    ListExecutions never say `redriveCount`. Redrive as AWS documents it: a FAILED, TIMED_OUT or
    ABORTED execution runs again under the same ARN from the state it stopped in, with that
    state's input; its history goes on (an ExecutionRedriven event, then the new attempt's);
    DescribeExecution says `redriveCount` and `redriveDate`. Limit: the redriven attempt's
    $$.Execution.Input is the failed state's input (the locking ASL never reads it)."""
    redrivable = {"FAILED", "TIMED_OUT", "ABORTED"}

    def redrive(self: StepFunctionsParserBackend, execution_arn: str) -> Any:
        execution: Any = self.describe_execution(execution_arn)
        if execution.status not in redrivable:
            raise AWSError(
                f"Execution {execution_arn} is {execution.status}", "ExecutionNotRedrivable"
            )
        _redrive(execution)
        return execution

    def redrive_response(self: StepFunctionResponse) -> Any:
        arn = self._get_param("executionArn")
        backend: Any = self.stepfunction_backend
        execution = backend.redrive_execution(arn)
        return ActionResult({"redriveDate": execution.redrive_date})

    def history(self: SfnExecution) -> Any:
        out: Any = original_history(self)
        previous = getattr(self, "bridge_previous_events", [])
        if previous:
            offset = len(previous)
            events = []
            for i, event in enumerate(previous, start=1):
                events.append({**event, "id": i, "previousEventId": max(i - 1, 0)})
            for event in out["events"]:
                renumbered = {**event, "id": event["id"] + offset}
                renumbered["previousEventId"] = event.get("previousEventId", 0) + offset
                events.append(renumbered)
            out["events"] = events
        return out

    def redrive_fields(execution: Any, into: dict[str, Any]) -> None:
        into["redriveCount"] = getattr(execution, "redrive_count", 0)
        if getattr(execution, "redrive_date", None) is not None:
            into["redriveDate"] = execution.redrive_date

    def describe(self: StepFunctionResponse) -> Any:
        result: Any = original_describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        redrive_fields(execution, result.result)
        return result

    def list_executions(self: StepFunctionResponse) -> Any:
        result: Any = original_list(self)
        arn = self._get_param("stateMachineArn")
        machine = self.stepfunction_backend.describe_state_machine(arn)
        by_arn = {e.execution_arn: e for e in machine.executions}
        for item in result.result["executions"]:
            redrive_fields(by_arn.get(item["executionArn"]), item)
        return result

    original_history = SfnExecution.to_history_output
    original_describe = StepFunctionResponse.describe_execution
    original_list = StepFunctionResponse.list_executions
    with (
        _patched(StepFunctionsParserBackend, "redrive_execution", redrive),
        _patched(StepFunctionResponse, "redrive_execution", redrive_response),
        _patched(SfnExecution, "to_history_output", history),
        _patched(StepFunctionResponse, "describe_execution", describe),
        _patched(StepFunctionResponse, "list_executions", list_executions),
    ):
        yield


@contextlib.contextmanager
def stop_execution_keeps_error_and_cause() -> Iterator[None]:
    """Gap: moto's StopExecution drops the `error` and `cause` it is given (the history's
    ExecutionAborted event says "" for both). AWS keeps them there (the API reference,
    ExecutionAbortedEventDetails): the janitor reads from them who stopped a run on purpose."""

    def stop_response(self: StepFunctionResponse) -> Any:
        arn = self._get_param("executionArn")
        execution: Any = self.stepfunction_backend.describe_execution(arn)
        if execution.status != ExecutionStatus.RUNNING:
            return original_stop(self)  # moto's own answer for an execution already ended
        execution.stop(
            stop_date=datetime.now(UTC),
            error=self._get_param("error") or "",
            cause=self._get_param("cause") or "",
        )
        return ActionResult({"stopDate": execution.stop_date})

    original_stop = StepFunctionResponse.stop_execution
    with _patched(StepFunctionResponse, "stop_execution", stop_response):
        yield


@contextlib.contextmanager
def all_bridges() -> Iterator[None]:
    """Every bridge at once: what a test of the real ASL against moto needs."""
    with (
        ecs_integration_shapes(),
        ecs_integration_errors(),
        ecs_sync_fails_on_nonzero_exit(),
        ecs_tasks_one_call_at_a_time(),
        ecs_list_tasks_running_by_default(),
        dynamodb_item_calls_one_at_a_time(),
        jsonata_without_jvm(),
        jsonata_errors_are_query_evaluation_errors(),
        parser_scopes_per_parse(),
        redrive_execution(),
        stop_execution_keeps_error_and_cause(),
    ):
        yield


def status_change_event(
    sfn: Any,
    execution_arn: str,
    *,
    redrive_count: int | None = None,
    event_id: str | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Gap: moto sends no "Step Functions Execution Status Change" events at all. Build the one
    AWS sends for the execution's current status, from DescribeExecution, in the documented
    shape (dates as epoch millis, input as a JSON string). `status` and `redrive_count` make it
    an event of an earlier moment (a late or out-of-order one)."""
    d = dict(sfn.describe_execution(executionArn=execution_arn))
    if status is not None:
        d["status"] = status
    if redrive_count is None:
        redrive_count = int(d.get("redriveCount") or 0)

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
