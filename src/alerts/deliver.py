"""Deliver a batch of notifications to every channel.

- Exactly once per key and channel: each key (an incident id, an alarm's SNS message id) is
  claimed in the ledger before its post and marked done after it; a duplicate in the batch, a
  redelivery, another instance's overlapping batch all find it claimed or done.
- A digest when more than the threshold of *fresh* incidents (claimed now, not duplicates) are
  to be posted to a channel; each incident alone otherwise.
- Posts paced per instance and channel; a `Retry-After` holds the whole instance's posts to
  that channel until it has passed.
- A message the channel rejects for its content is retried once in its minimal form (a digest:
  the minimal digest, which still accounts for every incident).
- A record whose post did not happen goes back to the queue with the delay it needs: what the
  channel asked for (`Retry-After`), at once when this invocation ran out of time, else a
  back-off that grows with its receives (`backoff`). A record whose post happened is never
  reported failed, even when the ledger could not be told."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from alerts.channels import Channel, ChannelError, Rejected, RetryLater
from alerts.digest import digest_of
from alerts.ledger import Claim, Ledger
from alerts.messages import Notification

RECORD_SECONDS = 3.0
"""Kept after a post's own timeout: the ledger's write and the invocation's report. A post only
starts when its timeout and this still fit in the invocation, so it never outlives it."""
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600


def backoff(receive_count: int) -> int:
    """Seconds before a record that failed on its `receive_count`-th receive comes back: 30 s,
    doubling, at most an hour (docs/alerts.md, "When Slack is down", adds these up)."""
    return int(min(BACKOFF_BASE_SECONDS * 2 ** max(receive_count - 1, 0), BACKOFF_CAP_SECONDS))


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class Pacer:
    """When this instance last posted to each channel, and until when a channel asked it to
    wait. Module state on purpose: a warm instance handles its batches one after another, so
    pacing and Retry-After hold across invocations."""

    def __init__(self) -> None:
        self.last_post: dict[str, float] = {}
        self.blocked_until: dict[str, float] = {}


PACER = Pacer()


class OutOfTime(ChannelError):
    """Not enough of the invocation is left to post (or to wait): back to the queue at once."""


@dataclass(frozen=True)
class Record:
    record_id: str
    note: Notification
    receive_count: int = 1


@dataclass
class Outcome:
    """What happened to a batch, for the response, the logs and the metrics."""

    failed: dict[str, int] = field(default_factory=dict)
    """Record id -> seconds until it should be received again."""
    counts: Counter[str] = field(default_factory=Counter)
    """Metric name -> count (SlackPosts, EmailDigests, SlackRejected, ...)."""
    rejected: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def fail(self, records: Sequence[Record], delay: float) -> None:
        for r in records:
            self.failed[r.record_id] = max(self.failed.get(r.record_id, 0), int(delay + 0.999))


@dataclass
class Unit:
    """One post: the keys it delivers, its message, and its minimal form."""

    keys: list[str]
    full: Callable[[], Any]
    minimal: Callable[[], Any] | None
    digest: bool = False


@dataclass
class Deliverer:
    channels: Sequence[Channel]
    ledger: Ledger
    digest_threshold: int
    remaining_seconds: Callable[[], float]
    region: str | None = None
    log_groups: Sequence[str] = ()
    clock: Clock = field(default_factory=RealClock)
    pacer: Pacer = field(default_factory=lambda: PACER)
    max_attempts: int = 3

    def deliver(self, records: Sequence[Record]) -> Outcome:
        outcome = Outcome()
        for channel in self.channels:
            self._deliver_to(channel, [r for r in records if channel.accepts(r.note)], outcome)
        return outcome

    # --- one channel ------------------------------------------------------------------------

    def _deliver_to(self, channel: Channel, records: Sequence[Record], outcome: Outcome) -> None:
        by_key: dict[str, list[Record]] = {}
        for r in records:
            by_key.setdefault(r.note.key, []).append(r)
        outcome.counts[f"{channel.metric}Duplicates"] += len(records) - len(by_key)
        units = self._units(channel, self._claim(channel, by_key, outcome), by_key)
        stopped: ChannelError | None = None
        for unit in units:
            recs = [r for k in unit.keys for r in by_key[k]]
            if stopped is not None:
                # The channel refused everything or is down: do not hammer it; back they go.
                self._give_back(channel, unit, recs, stopped, outcome, counted=True)
                continue
            try:
                self._post_unit(channel, unit, outcome)
            except ChannelError as err:
                self._give_back(channel, unit, recs, err, outcome)
                if not isinstance(err, Rejected) or not err.payload:
                    stopped = err
                continue
            for key in unit.keys:
                problem = self.ledger.done(f"{channel.name}:{key}")
                if problem:
                    outcome.errors.append(
                        f"{channel.name}: posted {key}, but the ledger could not record it "
                        f"({problem}); its claim will expire"
                    )

    def _claim(
        self, channel: Channel, by_key: Mapping[str, list[Record]], outcome: Outcome
    ) -> list[str]:
        """The keys this instance may post now; the rest are duplicates or go back."""
        hold = self.remaining_seconds() + 30
        mine: list[str] = []
        for key, recs in by_key.items():
            claimed = self.ledger.claim(f"{channel.name}:{key}", hold)
            if claimed.state is Claim.DONE:
                outcome.counts[f"{channel.metric}Duplicates"] += 1
            elif claimed.state is Claim.BUSY:
                outcome.errors.append(f"{channel.name}: another instance is posting {key}")
                outcome.fail(recs, claimed.retry_in)
            elif claimed.state is Claim.UNKNOWN:
                outcome.errors.append(f"{channel.name}: delivery ledger: {claimed.error}")
                outcome.fail(recs, self._backoff(recs))
            else:
                mine.append(key)
        return mine

    def _units(
        self, channel: Channel, keys: list[str], by_key: Mapping[str, list[Record]]
    ) -> list[Unit]:
        """Alarms and other messages first (rare, often the most urgent), then the incidents:
        one digest when more than the threshold are fresh, else one post each."""
        notes = {k: by_key[k][0].note for k in keys}
        incidents = [k for k in keys if notes[k].kind == "incident"]
        units = [self._other_unit(channel, k, notes[k]) for k in keys if k not in incidents]
        if len(incidents) > self.digest_threshold:
            documents = [notes[k].document for k in incidents]
            digest = digest_of(documents, region=self.region, log_groups=self.log_groups)
            units.append(
                Unit(
                    incidents,
                    lambda: channel.digest(digest),
                    lambda: channel.minimal_digest(digest),
                    digest=True,
                )
            )
        else:
            units += [self._incident_unit(channel, k, notes[k].document) for k in incidents]
        return units

    def _other_unit(self, channel: Channel, key: str, note: Notification) -> Unit:
        if note.kind == "alarm":
            return Unit([key], lambda: channel.alarm(note.document, note.subject), None)
        text = str(note.document.get("text") or "")
        return Unit([key], lambda: channel.other(note.subject, text), None)

    def _incident_unit(self, channel: Channel, key: str, doc: Mapping[str, Any]) -> Unit:
        return Unit([key], lambda: channel.incident(doc), lambda: channel.minimal(doc))

    def _post_unit(self, channel: Channel, unit: Unit, outcome: Outcome) -> None:
        try:
            self._post(channel, unit.full(), outcome)
        except Rejected as err:
            if not err.payload or unit.minimal is None:
                raise
            outcome.rejected.append(f"{channel.name}: {err} (posting the minimal form)")
            outcome.counts[f"{channel.metric}Rejected"] += 1
            self._post(channel, unit.minimal(), outcome)
            outcome.counts[f"{channel.metric}Minimal"] += 1
        if unit.digest:
            outcome.counts[f"{channel.metric}Digests"] += 1

    def _give_back(
        self,
        channel: Channel,
        unit: Unit,
        recs: Sequence[Record],
        err: ChannelError,
        outcome: Outcome,
        *,
        counted: bool = False,
    ) -> None:
        """`counted`: the error was already counted and logged (a unit not even tried)."""
        for key in unit.keys:
            self.ledger.release(f"{channel.name}:{key}")
        if isinstance(err, Rejected):
            if not counted:
                outcome.rejected.append(f"{channel.name}: {err}")
                outcome.counts[f"{channel.metric}Rejected"] += 1
            outcome.fail(recs, self._backoff(recs))
            return
        if not counted:
            outcome.errors.append(f"{channel.name}: {err}")
        if isinstance(err, OutOfTime):
            outcome.fail(recs, 0)
        elif isinstance(err, RetryLater) and err.after is not None:
            outcome.fail(recs, max(err.after, self._blocked_for(channel)))
        else:
            outcome.fail(recs, max(self._backoff(recs), self._blocked_for(channel)))

    # --- one post -------------------------------------------------------------------------

    def _post(self, channel: Channel, message: Any, outcome: Outcome) -> None:
        """One post, paced, retried in place while the channel says so and time allows."""
        wait = 1.0
        for attempt in range(1, self.max_attempts + 1):
            self._wait_turn(channel)
            self._ensure_time(channel.post_timeout + RECORD_SECONDS)
            self.pacer.last_post[channel.name] = self.clock.monotonic()
            try:
                channel.post(message, channel.post_timeout)
            except RetryLater as err:
                if err.after is not None:
                    outcome.counts[f"{channel.metric}RateLimited"] += 1
                    self.pacer.blocked_until[channel.name] = self.clock.monotonic() + err.after
                if attempt == self.max_attempts:
                    raise
                if err.after is None:
                    if not self._affordable(wait + channel.post_timeout + RECORD_SECONDS):
                        raise
                    self.clock.sleep(wait)
                    wait *= 2
                elif not self._affordable(err.after + channel.post_timeout + RECORD_SECONDS):
                    raise
                continue
            outcome.counts[f"{channel.metric}Posts"] += 1
            return
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait_turn(self, channel: Channel) -> None:
        now = self.clock.monotonic()
        until = self.pacer.blocked_until.get(channel.name, 0.0)
        last = self.pacer.last_post.get(channel.name)
        if last is not None:
            until = max(until, last + channel.min_interval)
        wait = until - now
        if wait <= 0:
            return
        if not self._affordable(wait + channel.post_timeout + RECORD_SECONDS):
            if self._blocked_for(channel) > 0:
                raise RetryLater(
                    "the channel asked to wait (Retry-After)", self._blocked_for(channel)
                )
            raise OutOfTime("not enough time left in this invocation to wait for a turn")
        self.clock.sleep(wait)

    def _blocked_for(self, channel: Channel) -> float:
        return max(self.pacer.blocked_until.get(channel.name, 0.0) - self.clock.monotonic(), 0.0)

    def _affordable(self, seconds: float) -> bool:
        return self.remaining_seconds() >= seconds

    def _ensure_time(self, seconds: float) -> None:
        if not self._affordable(seconds):
            raise OutOfTime("not enough time left in this invocation to post")

    @staticmethod
    def _backoff(recs: Sequence[Record]) -> int:
        return backoff(max((r.receive_count for r in recs), default=1))
