"""Posting to a Slack incoming webhook, with Slack's answers told apart.

The webhook URL is a secret: it never appears in an exception, a log line or a metric."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_RETRY_AFTER = 1.0


class SlackError(Exception):
    """A post that did not succeed. Messages never contain the webhook URL."""


class SlackRateLimited(SlackError):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Slack answered 429; retry after {retry_after:g}s")
        self.retry_after = retry_after


class SlackUnavailable(SlackError):
    """5xx, a timeout, a connection failure: worth trying again."""


class SlackRejected(SlackError):
    """400/403/404/410 and other 4xx: the webhook or the payload is broken; retrying the same
    post will not help. `reason` is Slack's own text (invalid_payload, channel_is_archived...)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"Slack rejected the post: HTTP {status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Posted:
    status: int


def _retry_after(headers: Any) -> float:
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return max(float(raw), 0.0) if raw is not None else DEFAULT_RETRY_AFTER
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER


def post(url: str, payload: dict[str, Any], timeout: float = 5.0) -> Posted:
    data = json.dumps(payload).encode()
    request = urllib.request.Request(  # noqa: S310 - the URL comes from our own secret
        url, data=data, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            return Posted(answer.status)
    except urllib.error.HTTPError as err:
        status = err.code
        try:
            reason = err.read(500).decode(errors="replace").strip() or str(err.reason)
        except OSError:
            reason = str(err.reason)
        headers = err.headers
        err.close()
        if status == 429:
            raise SlackRateLimited(_retry_after(headers)) from None
        if status >= 500:
            raise SlackUnavailable(f"Slack answered HTTP {status}") from None
        raise SlackRejected(status, reason) from None
    except TimeoutError:
        raise SlackUnavailable("Slack did not answer in time") from None
    except urllib.error.URLError as err:
        raise SlackUnavailable(f"cannot reach Slack: {type(err.reason).__name__}") from None
    except OSError as err:
        raise SlackUnavailable(f"cannot reach Slack: {type(err).__name__}") from None
