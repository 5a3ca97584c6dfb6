"""Settings parsed once from the environment the template gives each function, failing fast
when something is missing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(RuntimeError):
    """The function's environment lacks a variable the template should have set."""


def require(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is missing or empty")
    return value


@dataclass(frozen=True)
class JanitorSettings:
    lock_table: str
    alerts_topic_arn: str
    state_machine_arn: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> JanitorSettings:
        return cls(
            lock_table=require(environ, "LOCK_TABLE_NAME"),
            alerts_topic_arn=require(environ, "ALERTS_TOPIC_ARN"),
            state_machine_arn=require(environ, "LOCKING_STATE_MACHINE_ARN"),
        )


def require_int(environ: Mapping[str, str], name: str, minimum: int = 0) -> int:
    raw = require(environ, name)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} is not a whole number: {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"environment variable {name} must be at least {minimum}")
    return value
