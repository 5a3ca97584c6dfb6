"""A stopped ECS task as on-call should read it: which container exited with what, why ECS says
it stopped, and links to the task in the ECS console and to its logs.

When a run's task exits non-zero, Step Functions fails RunTask (`States.TaskFailed`) with the
described task as the cause: a JSON document in the integration's PascalCase (`Containers`,
`ExitCode`, `StoppedReason`, `StopCode`, `TaskArn`, ...). Shown raw and cut, that JSON hides
exactly what matters; `stopped_task` reads it. Log links need the task definition's log
configuration (the awslogs driver names the group and the stream prefix: the stream is
`<prefix>/<container>/<task id>`), which `LogConfigs` reads once per task definition revision
(a revision never changes). Pure, except `LogConfigs.lookup`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError


@dataclass(frozen=True)
class ContainerExit:
    name: str
    exit_code: int | None
    reason: str | None


@dataclass(frozen=True)
class LogTarget:
    group: str
    region: str
    stream_prefix: str | None


@dataclass(frozen=True)
class StoppedTask:
    arn: str
    cluster_arn: str | None
    task_definition_arn: str | None
    stopped_reason: str | None
    stop_code: str | None
    containers: tuple[ContainerExit, ...] = ()
    logs: Mapping[str, LogTarget] = field(default_factory=dict)
    """Per container name, where its logs go (awslogs only)."""

    @property
    def region(self) -> str | None:
        parts = self.arn.split(":")
        return parts[3] if len(parts) > 5 and parts[3] else None

    @property
    def task_id(self) -> str:
        return self.arn.rsplit("/", 1)[-1]

    @property
    def failed_container(self) -> ContainerExit | None:
        """The container that exited non-zero (the first), else the first that exited."""
        failed = [c for c in self.containers if c.exit_code not in (0, None)]
        exited = [c for c in self.containers if c.exit_code is not None]
        chosen = failed or exited
        return chosen[0] if chosen else None

    @property
    def console_url(self) -> str | None:
        region, cluster = self.region, (self.cluster_arn or "").rsplit("/", 1)[-1]
        if not region or not cluster:
            return None
        return (
            f"https://{region}.console.aws.amazon.com/ecs/v2/clusters/{quote(cluster, safe='')}"
            f"/tasks/{quote(self.task_id, safe='')}/configuration?region={region}"
        )

    def log_url(self, container: str) -> str | None:
        target = self.logs.get(container)
        if target is None or not target.stream_prefix:
            return None
        stream = f"{target.stream_prefix}/{container}/{self.task_id}"
        return log_stream_url(target.region, target.group, stream)

    def to_json(self) -> dict[str, Any]:
        failed = self.failed_container
        return {
            "arn": self.arn,
            "consoleUrl": self.console_url,
            "container": failed.name if failed else None,
            "exitCode": failed.exit_code if failed else None,
            "containerReason": failed.reason if failed else None,
            "stoppedReason": self.stopped_reason,
            "stopCode": self.stop_code,
            "logUrl": self.log_url(failed.name) if failed else None,
        }


def _console_escape(value: str) -> str:
    """CloudWatch's console encodes path parts twice and writes `%` as `$`."""
    return quote(quote(value, safe=""), safe="").replace("%", "$")


def log_stream_url(region: str, group: str, stream: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:log-groups/log-group/{_console_escape(group)}"
        f"/log-events/{_console_escape(stream)}"
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_ERROR_PREFIX = re.compile(r"^\s*[A-Za-z][\w.]*: (?=\{)")
"""The state machine's Fail states write their cause as "<caught error>: <caught cause>"
(`States.TaskFailed: {"Attachments": ...}`)."""


def stopped_task(cause: str | None) -> StoppedTask | None:
    """The task a failed RunTask describes in its cause (bare, or after the caught error's
    name); None when the cause is not one."""
    if not cause:
        return None
    text = _ERROR_PREFIX.sub("", cause, count=1).strip()
    if not text.startswith("{"):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict) or not _str(document.get("TaskArn")):
        return None
    containers = tuple(
        ContainerExit(
            name=str(c.get("Name") or "?"),
            exit_code=_int(c.get("ExitCode")),
            reason=_str(c.get("Reason")),
        )
        for c in document.get("Containers") or []
        if isinstance(c, dict)
    )
    return StoppedTask(
        arn=str(document["TaskArn"]),
        cluster_arn=_str(document.get("ClusterArn")),
        task_definition_arn=_str(document.get("TaskDefinitionArn")),
        stopped_reason=_str(document.get("StoppedReason")),
        stop_code=_str(document.get("StopCode")),
        containers=containers,
    )


class LogConfigs:
    """Where each task definition revision's containers log, read once per revision (a
    revision is immutable) with DescribeTaskDefinition; a revision that cannot be read has no
    log links (the incident is still reported)."""

    def __init__(self) -> None:
        self._known: dict[str, dict[str, LogTarget]] = {}

    def clear(self) -> None:
        self._known.clear()

    def lookup(
        self, ecs: Any, task_definition_arn: str, default_region: str
    ) -> dict[str, LogTarget]:
        if task_definition_arn in self._known:
            return self._known[task_definition_arn]
        try:
            described = ecs.describe_task_definition(taskDefinition=task_definition_arn)
        except (ClientError, BotoCoreError):
            return {}
        targets: dict[str, LogTarget] = {}
        for container in described.get("taskDefinition", {}).get("containerDefinitions", []):
            config = container.get("logConfiguration") or {}
            options = config.get("options") or {}
            if config.get("logDriver") != "awslogs" or not options.get("awslogs-group"):
                continue
            targets[str(container.get("name"))] = LogTarget(
                group=str(options["awslogs-group"]),
                region=str(options.get("awslogs-region") or default_region),
                stream_prefix=options.get("awslogs-stream-prefix"),
            )
        self._known[task_definition_arn] = targets
        return targets


LOG_CONFIGS = LogConfigs()
"""Kept by a warm container across invocations."""
