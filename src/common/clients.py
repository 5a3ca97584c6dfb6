"""boto3 clients, created lazily (so moto is active first and cold starts stay short) and
reused across invocations. Timeouts are short and retries standard: a Lambda that cannot reach
a service raises, and the platform's retry takes over."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_stepfunctions import SFNClient

CONFIG = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"mode": "standard", "total_max_attempts": 4},
)


@cache
def dynamodb() -> DynamoDBClient:
    return boto3.client("dynamodb", config=CONFIG)


@cache
def ecs() -> ECSClient:
    return boto3.client("ecs", config=CONFIG)


@cache
def sns() -> SNSClient:
    return boto3.client("sns", config=CONFIG)


@cache
def secretsmanager() -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=CONFIG)


@cache
def sqs() -> SQSClient:
    return boto3.client("sqs", config=CONFIG)


@cache
def stepfunctions() -> SFNClient:
    return boto3.client("stepfunctions", config=CONFIG)


@dataclass(frozen=True)
class Aws:
    """The clients the janitor, the reconciler and the CLI work with, passed as one value."""

    dynamodb: DynamoDBClient
    stepfunctions: SFNClient
    ecs: ECSClient
    sns: SNSClient


def aws() -> Aws:
    """The process's clients, as one bundle."""
    return Aws(dynamodb(), stepfunctions(), ecs(), sns())


def reset() -> None:
    """Forget every client (tests switch mocks between cases)."""
    for factory in (dynamodb, ecs, secretsmanager, sns, sqs, stepfunctions):
        factory.cache_clear()
