"""Settings parsed once from the environment the template gives each function, failing fast
when something is missing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class SettingsError(RuntimeError):
    """The function's environment lacks a variable the template should have set."""


def _require(environ: Mapping[str, str], name: str) -> str:
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
            lock_table=_require(environ, "LOCK_TABLE_NAME"),
            alerts_topic_arn=_require(environ, "ALERTS_TOPIC_ARN"),
            state_machine_arn=_require(environ, "LOCKING_STATE_MACHINE_ARN"),
        )
