"""Finding a deployed lock-janitor: the AWS session from the options, then the stack's outputs
(the table, the state machine, the cluster, the topic, the queues), its schedules and the
reconciler's settings, all read from AWS as a deploy left them."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions as bx
from botocore.config import Config

from common.clients import Aws
from common.settings import JanitorSettings, ReconcilerSettings, SettingsError
from common.task_input import names_a_lock
from common.truth import error_code
from lock_janitor_cli.errors import CliError, NotFound

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_sqs import SQSClient

DEFAULT_STACK = "lock-janitor"
"""samconfig.toml's stack name in this repository, used when nothing else names one."""
EMULATOR_REGION = "us-east-1"
"""The region of an endpoint given with no region anywhere (moto's own default)."""
PLACEHOLDER_KEY = "lock-janitor-cli"
"""Not a secret: what requests to an emulator are signed with when no credentials are set."""
CONFIG = Config(connect_timeout=3, read_timeout=20, retries={"mode": "standard"})

# The stack outputs the CLI needs (template.yaml, Outputs), and what each is for.
OUTPUTS = {
    "LockTableName": "the lock table",
    "LockingStateMachineArn": "the locking state machine",
    "ClusterArn": "the ECS cluster",
    "AlertsTopicArn": "the alerts topic",
    "JanitorDeadLetterQueueUrl": "the janitor's dead-letter queue",
    "JanitorFunctionName": "the janitor function",
    "ReconcilerFunctionName": "the reconciler function",
}


def samconfig_defaults(directory: Path) -> dict[str, str]:
    """The stack name and region `sam deploy` would use from samconfig.toml in `directory`
    (deploy's parameters over the global ones); empty when there is no such file."""
    path = directory / "samconfig.toml"
    try:
        config = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise CliError(f"cannot read {path}: {err}") from None
    env = config.get("default", {})
    found: dict[str, str] = {}
    for section in ("global", "deploy"):
        params = env.get(section, {}).get("parameters", {})
        for key in ("stack_name", "region"):
            if isinstance(params.get(key), str) and params[key]:
                found[key] = params[key]
    return found


@dataclass(frozen=True)
class Target:
    """Where the CLI looks: the options as given, resolved against samconfig.toml."""

    stack: str
    stack_from: str
    region: str | None
    profile: str | None
    endpoint_url: str | None

    @classmethod
    def resolve(
        cls,
        stack: str | None,
        region: str | None,
        profile: str | None,
        endpoint_url: str | None,
        directory: Path | None = None,
    ) -> Target:
        sam = samconfig_defaults(directory or Path.cwd())
        if stack:
            name, source = stack, "--stack"
        elif sam.get("stack_name"):
            name, source = sam["stack_name"], "samconfig.toml"
        else:
            name, source = DEFAULT_STACK, "the default"
        return cls(name, source, region or sam.get("region"), profile, endpoint_url)


@contextmanager
def aws_errors(target: Target) -> Iterator[None]:
    """Every error AWS or the network can give, as one line a person can act on."""
    where = f" at {target.endpoint_url}" if target.endpoint_url else ""
    try:
        yield
    except bx.NoCredentialsError:
        raise CliError(
            "no AWS credentials found: pass --profile, or set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        ) from None
    except bx.ProfileNotFound as err:
        raise CliError(f"{err} (see `aws configure list-profiles`)") from None
    except bx.NoRegionError:
        raise CliError("no region: pass --region, or set AWS_REGION") from None
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as err:
        raise CliError(f"cannot reach AWS{where}: {err}") from None
    except bx.ClientError as err:
        code = error_code(err)
        message = err.response.get("Error", {}).get("Message") or str(err)
        operation = getattr(err, "operation_name", "the call")
        if code in {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}:
            raise CliError(f"access denied to {operation}: {message}") from None
        if code in {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId"}:
            raise CliError(f"your AWS credentials were refused ({code}): {message}") from None
        raise CliError(f"{operation} failed{where}: {code}: {message}") from None
    except bx.BotoCoreError as err:
        raise CliError(f"AWS call failed{where}: {err}") from None


@dataclass(frozen=True)
class Schedule:
    name: str
    group: str
    expression: str
    state: str
    input: dict[str, Any]

    @property
    def lock_id(self) -> str | None:
        lock = self.input.get("lockId")
        return lock if names_a_lock(lock) else None


@dataclass
class Stack:
    """One deployed lock-janitor, found from its stack's outputs."""

    target: Target
    session: boto3.Session
    outputs: dict[str, str]
    _clients: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def find(cls, target: Target) -> Stack:
        session = _session(target)
        with aws_errors(target):
            cfn: CloudFormationClient = _client(session, target, "cloudformation")
            try:
                stacks = cfn.describe_stacks(StackName=target.stack)["Stacks"]
            except bx.ClientError as err:
                if "does not exist" in str(err):
                    raise NotFound(
                        f"no stack named {target.stack} ({target.stack_from}) in "
                        f"{session.region_name}: pass --stack NAME (or --region)"
                    ) from None
                raise
        outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])}
        missing = [key for key in OUTPUTS if not outputs.get(key)]
        if missing:
            raise NotFound(
                f"stack {target.stack} has no output {', '.join(missing)}: is it a lock-janitor "
                f"stack, fully deployed? (status {stacks[0].get('StackStatus')})"
            )
        return cls(target, session, outputs)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = _client(self.session, self.target, service)
        return self._clients[service]

    @cached_property
    def aws(self) -> Aws:
        return Aws(
            self.client("dynamodb"),
            self.client("stepfunctions"),
            self.client("ecs"),
            self.client("sns"),
        )

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    @property
    def table(self) -> str:
        return self.outputs["LockTableName"]

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["LockingStateMachineArn"]

    @property
    def cluster_arn(self) -> str:
        return self.outputs["ClusterArn"]

    @property
    def topic_arn(self) -> str:
        return self.outputs["AlertsTopicArn"]

    @property
    def sqs(self) -> SQSClient:
        client: SQSClient = self.client("sqs")
        return client

    def janitor_settings(self) -> JanitorSettings:
        return JanitorSettings(self.table, self.topic_arn, self.state_machine_arn)

    def reconciler_settings(self) -> ReconcilerSettings:
        """The deployed reconciler's own settings (its grace and margin as deployed)."""
        environment = self.function_environment(self.outputs["ReconcilerFunctionName"])
        try:
            return ReconcilerSettings.from_env(environment)
        except SettingsError as err:
            raise CliError(f"the reconciler's configuration: {err}") from None

    def function_environment(self, name: str) -> Mapping[str, str]:
        lam: LambdaClient = self.client("lambda")
        config = lam.get_function_configuration(FunctionName=name)
        return dict(config.get("Environment", {}).get("Variables", {}))

    def schedules(self) -> list[Schedule]:
        """The schedules that start this stack's state machine, with their input (a lock per
        task). Schedules of other targets are skipped after the list call, unread."""
        scheduler: EventBridgeSchedulerClient = self.client("scheduler")
        found: list[Schedule] = []
        for page in scheduler.get_paginator("list_schedules").paginate():
            for summary in page.get("Schedules", []):
                if summary.get("Target", {}).get("Arn") != self.state_machine_arn:
                    continue
                name, group = summary["Name"], summary.get("GroupName", "default")
                detail = scheduler.get_schedule(Name=name, GroupName=group)
                found.append(
                    Schedule(
                        name,
                        group,
                        str(detail.get("ScheduleExpression", "")),
                        str(detail.get("State", "")),
                        _document(detail.get("Target", {}).get("Input")),
                    )
                )
        return found


def _document(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _session(target: Target) -> boto3.Session:
    try:
        session = boto3.Session(profile_name=target.profile, region_name=target.region)
    except bx.ProfileNotFound as err:
        raise CliError(f"{err} (see `aws configure list-profiles`)") from None
    if session.region_name is None:
        if not target.endpoint_url:
            raise CliError("no region: pass --region, or set AWS_REGION (or region in samconfig)")
        session = boto3.Session(profile_name=target.profile, region_name=EMULATOR_REGION)
    if target.endpoint_url and session.get_credentials() is None:
        # An emulator checks no signature; AWS itself would refuse these with a clear error.
        session = boto3.Session(
            aws_access_key_id=PLACEHOLDER_KEY,
            aws_secret_access_key=PLACEHOLDER_KEY,
            region_name=session.region_name,
        )
    return session


def _client(session: boto3.Session, target: Target, service: str) -> Any:
    return session.client(service, endpoint_url=target.endpoint_url, config=CONFIG)  # type: ignore[call-overload]
