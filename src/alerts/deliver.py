"""Deliver a batch of notifications to Slack: one message per incident, a digest in a storm,
each incident once, posts paced, Slack's answers honoured.

A record whose post did not happen is reported as failed, so SQS brings it back (and, after
its retries, keeps it in the dead-letter queue); a record whose post happened never is."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemNotFoundError,
)
from botocore.exceptions import BotoCoreError, ClientError

from alerts.messages import Notification
from alerts.render import alarm_message, digest_message, escape, incident_message
from alerts.slack import Posted, SlackError, SlackRateLimited, SlackRejected, SlackUnavailable
from common import clients
from common.settings import AlertsSettings

SAFETY_MARGIN_SECONDS = 5.0
"""Time kept back at the end of an invocation for reporting and the idempotency writes."""


class Ledger(Protocol):
    """Which notifications already reached Slack (Powertools idempotency, in production)."""

    def once(self, key: str, post: Callable[[], Posted]) -> bool:
        """Run `post` unless `key` was delivered before; True when it posted now."""

    def delivered(self, key: str) -> bool: ...

    def record(self, key: str) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Pacer:
    """When this container last posted. Module state on purpose: a warm container handles its
    batches one after another, so pacing holds across invocations, and the event source runs
    at most MaximumConcurrency containers."""

    def __init__(self) -> None:
        self.last_post: float | None = None


PACER = Pacer()


class OutOfTime(SlackError):
    """Not enough of the invocation is left to post (or to wait for Slack): back to the queue."""


@dataclass
class Outcome:
    """What happened to a batch, for the response, the logs and the metrics."""

    failed: set[str] = field(default_factory=set)
    """Record ids to report as batchItemFailures."""
    posts: int = 0
    digests: int = 0
    duplicates: int = 0
    rate_limited: int = 0
    rejected: list[str] = field(default_factory=list)
    """Slack's own reasons for rejected posts (invalid_payload, channel_is_archived, ...)."""
    errors: list[str] = field(default_factory=list)


@dataclass
class Deliverer:
    settings: AlertsSettings
    post: Callable[[dict[str, Any]], Posted]
    ledger: Ledger
    remaining_seconds: Callable[[], float]
    clock: Clock = field(default_factory=RealClock)
    pacer: Pacer = field(default_factory=lambda: PACER)

    def _pace(self) -> None:
        if self.pacer.last_post is None:
            return
        wait = self.pacer.last_post + self.settings.min_post_interval - self.clock.monotonic()
        if wait > 0:
            self._ensure_time(wait)
            self.clock.sleep(wait)

    def _ensure_time(self, seconds: float) -> None:
        if self.remaining_seconds() - seconds < SAFETY_MARGIN_SECONDS:
            raise OutOfTime("not enough time left in this invocation")

    def _post_paced(self, payload: dict[str, Any], outcome: Outcome) -> Posted:
        """One Slack post, paced, retried while Slack says so and time allows."""
        backoff = 1.0
        for attempt in range(1, self.settings.max_attempts + 1):
            self._pace()
            self._ensure_time(0)
            try:
                self.pacer.last_post = self.clock.monotonic()
                answer = self.post(payload)
                outcome.posts += 1
                return answer
            except SlackRateLimited as err:
                outcome.rate_limited += 1
                if attempt == self.settings.max_attempts:
                    raise
                self._ensure_time(err.retry_after)
                self.clock.sleep(err.retry_after)
            except SlackUnavailable:
                if attempt == self.settings.max_attempts:
                    raise
                self._ensure_time(backoff)
                self.clock.sleep(backoff)
                backoff *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def deliver(self, batch: Sequence[tuple[str, Notification]]) -> Outcome:
        """Post the batch; returns which records failed."""
        outcome = Outcome()
        incidents: dict[str, list[str]] = {}
        first: dict[str, Notification] = {}
        others: list[tuple[str, Notification]] = []
        for record_id, note in batch:
            if note.kind == "incident":
                incidents.setdefault(note.key, []).append(record_id)
                first.setdefault(note.key, note)
            else:
                others.append((record_id, note))
        outcome.duplicates += sum(len(ids) - 1 for ids in incidents.values())

        # Alarms and other messages first: rare, and often the most urgent.
        for record_id, note in others:
            payload = alarm_message(note.document) if note.kind == "alarm" else _other(note)
            self._one(note.key, payload, [record_id], outcome)

        if len(incidents) > self.settings.digest_threshold:
            self._digest(incidents, first, outcome)
        else:
            for key, record_ids in incidents.items():
                self._one(key, incident_message(first[key].document), record_ids, outcome)
        return outcome

    def _one(
        self, key: str, payload: dict[str, Any], record_ids: list[str], outcome: Outcome
    ) -> None:
        try:
            posted = self.ledger.once(key, lambda: self._post_paced(payload, outcome))
            if not posted:
                outcome.duplicates += 1
        except SlackRejected as err:
            outcome.rejected.append(f"HTTP {err.status} {err.reason}")
            outcome.failed.update(record_ids)
        except SlackError as err:
            outcome.errors.append(str(err))
            outcome.failed.update(record_ids)
        except IdempotencyAlreadyInProgressError:
            outcome.errors.append("another invocation is posting the same notification")
            outcome.failed.update(record_ids)
        except (ClientError, BotoCoreError) as err:
            outcome.errors.append(f"idempotency store: {type(err).__name__}")
            outcome.failed.update(record_ids)

    def _digest(
        self,
        incidents: Mapping[str, list[str]],
        first: Mapping[str, Notification],
        outcome: Outcome,
    ) -> None:
        try:
            fresh = [key for key in incidents if not self.ledger.delivered(key)]
        except (ClientError, BotoCoreError) as err:
            outcome.errors.append(f"idempotency store: {type(err).__name__}")
            outcome.failed.update(r for ids in incidents.values() for r in ids)
            return
        outcome.duplicates += len(incidents) - len(fresh)
        if not fresh:
            return
        payload = digest_message([first[key].document for key in fresh])
        try:
            self._post_paced(payload, outcome)
        except SlackRejected as err:
            outcome.rejected.append(f"HTTP {err.status} {err.reason}")
            outcome.failed.update(r for key in fresh for r in incidents[key])
            return
        except SlackError as err:
            outcome.errors.append(str(err))
            outcome.failed.update(r for key in fresh for r in incidents[key])
            return
        outcome.digests += 1
        for key in fresh:
            try:
                self.ledger.record(key)
            except (ClientError, BotoCoreError) as err:
                # The digest was posted: its records must not come back for another post.
                outcome.errors.append(f"idempotency store: {type(err).__name__} after posting")


def _other(note: Notification) -> dict[str, Any]:
    subject = note.subject or "Message on the alerts topic"
    text = str(note.document.get("text") or "")
    return {
        "text": escape(f"{subject}: {text}")[:3000],
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": " ".join(subject.split())[:150]},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": escape(text)[:2990] or "-"}},
        ],
    }


class PowertoolsLedger:
    """The ledger on Powertools idempotency (its own DynamoDB table, records expire by TTL)."""

    KEY_PREFIX = "lock-janitor-slack"

    def __init__(self, table: str, lambda_context: Any, expires_after_seconds: int = 86400) -> None:
        self._store = DynamoDBPersistenceLayer(table_name=table, boto3_client=clients.dynamodb())
        self._config = IdempotencyConfig(
            event_key_jmespath="key", expires_after_seconds=expires_after_seconds
        )
        self._config.register_lambda_context(lambda_context)
        self._store.configure(self._config, key_prefix=self.KEY_PREFIX)
        self._idempotent = idempotent_function(
            data_keyword_argument="item",
            persistence_store=self._store,
            config=self._config,
            key_prefix=self.KEY_PREFIX,
        )

    def once(self, key: str, post: Callable[[], Posted]) -> bool:
        ran: list[bool] = []

        def deliver(item: dict[str, str]) -> dict[str, Any]:
            ran.append(True)
            return {"status": post().status}

        self._idempotent(deliver)(item={"key": key})
        return bool(ran)

    def delivered(self, key: str) -> bool:
        try:
            record = self._store.get_record({"key": key})
        except IdempotencyItemNotFoundError:
            return False
        return record is not None and record.status == "COMPLETED" and not record.is_expired

    def record(self, key: str) -> None:
        self._store.save_success({"key": key}, {"status": "digest"})
