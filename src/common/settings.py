"""Every function's settings, parsed once from the environment the template gives it, failing
fast when something is missing or malformed. One place: a handler never reads os.environ for
anything else than handing it here."""

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


def require_int(environ: Mapping[str, str], name: str, minimum: int = 0) -> int:
    raw = require(environ, name)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name} is not a whole number: {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"environment variable {name} must be at least {minimum}")
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


@dataclass(frozen=True)
class ReconcilerSettings:
    lock_table: str
    alerts_topic_arn: str
    state_machine_arn: str
    cluster_arn: str
    grace_seconds: int
    overdue_margin_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ReconcilerSettings:
        return cls(
            lock_table=require(environ, "LOCK_TABLE_NAME"),
            alerts_topic_arn=require(environ, "ALERTS_TOPIC_ARN"),
            state_machine_arn=require(environ, "LOCKING_STATE_MACHINE_ARN"),
            cluster_arn=require(environ, "CLUSTER_ARN"),
            grace_seconds=require_int(environ, "RECONCILE_GRACE_SECONDS"),
            overdue_margin_seconds=require_int(environ, "OVERDUE_MARGIN_SECONDS"),
        )


@dataclass(frozen=True)
class AlertsSettings:
    """The alerts function: which channels it feeds, and how."""

    ledger_table: str
    queue_url: str
    digest_threshold: int
    min_post_interval: float
    slack_secret_arn: str | None
    """None: no Slack."""
    email_topic_arn: str | None
    """None: incidents do not go to email (its alarms still do, straight from CloudWatch)."""
    email_high_only: bool
    region: str | None
    log_groups: tuple[str, ...]
    """Where the janitor and the reconciler log each incident (a digest links a query on them)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AlertsSettings:
        try:
            threshold = int(require(environ, "DIGEST_THRESHOLD"))
            interval = float(require(environ, "SLACK_MIN_POST_INTERVAL_SECONDS"))
        except ValueError as err:
            raise SettingsError(f"bad number in the alerts settings: {err}") from None
        if threshold < 1 or not interval >= 0:
            raise SettingsError("DIGEST_THRESHOLD >= 1 and an interval >= 0, please")
        email = environ.get("EMAIL_INCIDENTS", "").strip() or "all"
        if email not in {"all", "high", "none"}:
            raise SettingsError(f"EMAIL_INCIDENTS must be all, high or none, not {email!r}")
        topic = environ.get("EMAIL_TOPIC_ARN", "").strip()
        slack = environ.get("SLACK_WEBHOOK_SECRET_ARN", "").strip()
        if not slack and (email == "none" or not topic):
            raise SettingsError("no channel for incidents: neither Slack nor email is configured")
        return cls(
            ledger_table=require(environ, "IDEMPOTENCY_TABLE_NAME"),
            queue_url=require(environ, "ALERTS_QUEUE_URL"),
            digest_threshold=threshold,
            min_post_interval=interval,
            slack_secret_arn=slack or None,
            email_topic_arn=topic if topic and email != "none" else None,
            email_high_only=email == "high",
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            log_groups=tuple(
                g.strip() for g in environ.get("INCIDENT_LOG_GROUPS", "").split(",") if g.strip()
            ),
        )
