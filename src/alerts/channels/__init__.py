"""Alert channels: where incidents and alarms go. Each channel is one module behind one seam:
render (a single incident, a digest, an alarm, and the minimal forms used when the full one is
rejected), post, and classify what went wrong as "retry later" or "rejected". The deliverer
(alerts.deliver) does the rest for every channel alike: exactly once per key, digests in a storm,
pacing, fallbacks, and sending records back when a post did not happen. docs/alerts.md, "Adding
an alert channel", walks through adding one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from alerts.digest import Digest
from alerts.messages import Notification


class ChannelError(Exception):
    """A post that did not happen. Its message never holds a secret (a webhook URL)."""


class RetryLater(ChannelError):
    """Worth trying again: rate limited (`after` = what the channel asked for), unavailable, a
    timeout (`after` None: the deliverer's own back-off)."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class Rejected(ChannelError):
    """The channel refused the post. `payload`: the message was at fault (a smaller one may
    pass); otherwise the destination refuses everything (a revoked webhook, no permission)."""

    def __init__(self, reason: str, *, payload: bool) -> None:
        super().__init__(reason)
        self.payload = payload


class Channel(Protocol):
    name: str
    """Part of every ledger key, and of the metric names (`<Metric>Posts`, ...)."""
    metric: str
    min_interval: float
    """Seconds between two posts of one instance."""
    post_timeout: float
    """The longest one post may take."""

    def accepts(self, note: Notification) -> bool:
        """Whether this channel carries the notification at all (a severity filter, say)."""

    def incident(self, incident: Mapping[str, Any]) -> Any: ...

    def minimal(self, incident: Mapping[str, Any]) -> Any:
        """The incident in the fewest, safest fields: sent when the full message is rejected."""

    def digest(self, digest: Digest) -> Any: ...

    def minimal_digest(self, digest: Digest) -> Any: ...

    def alarm(self, alarm: Mapping[str, Any], subject: str | None) -> Any: ...

    def other(self, subject: str | None, text: str) -> Any: ...

    def post(self, message: Any, timeout: float) -> None:
        """Post; raises RetryLater or Rejected."""
