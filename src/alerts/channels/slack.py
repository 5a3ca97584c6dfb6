"""Slack, through an incoming webhook: Block Kit messages (slack_blocks), posted over HTTPS, with
Slack's answers told apart.

The webhook URL is a secret: it is checked before use (https, or http on loopback for the local
stand-in; printable ASCII only, so `http.client` never raises an error quoting it), and no
exception, log line or metric ever carries it: every failure below is re-raised as a channel
error naming only its kind."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from alerts.channels import ChannelError, Rejected, RetryLater
from alerts.channels import slack_blocks as blocks
from alerts.digest import Digest
from alerts.messages import Notification

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
PAYLOAD_STATUSES = {400, 413}
"""Slack's answers that blame the message (invalid_payload, invalid_blocks, no_text, too large):
a smaller message may pass. 403/404/410 (action_prohibited, no_service, channel_not_found,
channel_is_archived) blame the webhook: nothing will pass until it is fixed."""


class BadWebhook(ValueError):
    """The secret does not hold a usable webhook URL (the message never quotes it)."""


def checked_url(raw: str) -> str:
    """The webhook URL, if it is one Slack (or the local stand-in) can be posted to."""
    url = raw.strip()
    if not url or any(not 32 < ord(ch) < 127 for ch in url):
        raise BadWebhook("the Slack webhook secret holds spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise BadWebhook("the Slack webhook secret is not a URL") from None
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK
    if not (parts.scheme == "https" or loopback) or not parts.hostname or parts.username:
        raise BadWebhook("the Slack webhook secret does not hold an https:// URL")
    return url


def _retry_after(headers: Any, default: float) -> float:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return min(max(float(raw), 0.0), 3600.0) if raw is not None else default
    except (TypeError, ValueError):
        return default


@dataclass
class Slack:
    url: str
    min_interval: float = 2.0
    broken: ChannelError | None = None
    region: str | None = None
    """The function's region: only links to its console are links."""
    """Why no post can happen (the secret holds no usable URL, or cannot be read): every post
    raises it, so Slack's records go back (and count as rejected) while email is still fed."""
    post_timeout: float = 5.0
    name: str = "slack"
    metric: str = "Slack"

    def accepts(self, note: Notification) -> bool:
        return True

    def incident(self, incident: Mapping[str, Any]) -> Any:
        return blocks.incident_message(incident, self.region)

    def minimal(self, incident: Mapping[str, Any]) -> Any:
        return blocks.minimal_message(incident, self.region)

    def digest(self, digest: Digest) -> Any:
        return blocks.digest_message(digest, self.region)

    def minimal_digest(self, digest: Digest) -> Any:
        return blocks.minimal_digest_message(digest)

    def alarm(self, alarm: Mapping[str, Any], subject: str | None) -> Any:
        return blocks.alarm_message(alarm)

    def other(self, subject: str | None, text: str) -> Any:
        return blocks.other_message(subject, text)

    def post(self, message: Any, timeout: float) -> None:
        if self.broken is not None:
            raise self.broken
        post(self.url, message, timeout)


def post(url: str, payload: Mapping[str, Any], timeout: float) -> None:
    """One POST to the webhook; raises RetryLater or Rejected, never with the URL in it."""
    data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(  # noqa: S310 - the URL is checked_url()'s
        url, data=data, headers={"Content-Type": "application/json; charset=utf-8"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            answer.read(1000)
            return
    except urllib.error.HTTPError as err:
        status = err.code
        try:
            reason = err.read(300).decode(errors="replace").strip() or str(err.reason)
        except Exception:  # noqa: BLE001 - the body is only for the log line
            reason = "no reason given"
        headers = err.headers
        err.close()
        reason = " ".join(reason.split())[:200]
        if status == 429:
            raise RetryLater("Slack answered 429", _retry_after(headers, 1.0)) from None
        if status >= 500:
            raise RetryLater(f"Slack answered HTTP {status}") from None
        raise Rejected(f"HTTP {status} {reason}", payload=status in PAYLOAD_STATUSES) from None
    except TimeoutError:
        raise RetryLater("Slack did not answer in time") from None
    except urllib.error.URLError as err:
        raise RetryLater(f"cannot reach Slack: {type(err.reason).__name__}") from None
    except http.client.InvalidURL:
        raise Rejected("the webhook URL is not valid", payload=False) from None
    except (http.client.HTTPException, OSError, ValueError) as err:
        # BadStatusLine (not an HTTP answer), a reset connection, ...: named, never quoted.
        raise RetryLater(f"no usable answer from Slack: {type(err).__name__}") from None
