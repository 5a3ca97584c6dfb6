"""The Slack channel against a real HTTP server on 127.0.0.1: every answer Slack gives told
apart as retry-later or rejected (for the message, or for good), and never a webhook URL in an
error, whatever the secret holds or the server answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerts.channels import Rejected, RetryLater
from alerts.channels.slack import BadWebhook, checked_url, post
from local.webhook import SECRET_PATH, Answer, WebhookSink


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as s:
        yield s


def test_ok(sink: WebhookSink) -> None:
    post(sink.url, {"text": "hi 😀"}, 2)
    assert sink.posts[0].body == {"text": "hi 😀"}


def test_429_carries_retry_after(sink: WebhookSink) -> None:
    sink.answer(Answer(429, "rate_limited", {"Retry-After": "7"}))
    with pytest.raises(RetryLater) as err:
        post(sink.url, {"text": "hi"}, 2)
    assert err.value.after == 7.0


@pytest.mark.parametrize(("header", "after"), [("soon", 1.0), ("-5", 0.0), ("99999", 3600.0)])
def test_an_odd_retry_after_is_made_sane(sink: WebhookSink, header: str, after: float) -> None:
    sink.answer(Answer(429, "rate_limited", {"Retry-After": header}))
    with pytest.raises(RetryLater) as err:
        post(sink.url, {"text": "hi"}, 2)
    assert err.value.after == after


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_retry_later_with_the_deliverers_own_backoff(sink: WebhookSink, status: int) -> None:
    sink.answer(Answer(status, "oops"))
    with pytest.raises(RetryLater) as err:
        post(sink.url, {"text": "hi"}, 2)
    assert err.value.after is None


@pytest.mark.parametrize(
    ("status", "reason", "payload"),
    [
        (400, "invalid_blocks", True),
        (400, "invalid_payload", True),
        (413, "too_large", True),
        (403, "action_prohibited", False),
        (404, "no_service", False),
        (410, "channel_is_archived", False),
    ],
)
def test_4xx_is_rejected_for_the_message_or_for_good(
    sink: WebhookSink, status: int, reason: str, payload: bool
) -> None:
    sink.answer(Answer(status, reason))
    with pytest.raises(Rejected) as err:
        post(sink.url, {"text": "hi"}, 2)
    assert err.value.payload is payload
    assert reason in str(err.value)
    assert SECRET_PATH not in str(err.value)


def test_a_hanging_slack_times_out(sink: WebhookSink) -> None:
    sink.answer(Answer(200, "ok", delay=1.0))
    with pytest.raises(RetryLater) as err:
        post(sink.url, {"text": "hi"}, 0.2)
    assert SECRET_PATH not in str(err.value)


def test_nobody_listening_is_retry_later_and_names_no_url() -> None:
    with WebhookSink() as s:
        url = s.url
    with pytest.raises(RetryLater) as err:
        post(url, {"text": "hi"}, 1)
    assert SECRET_PATH not in str(err.value)
    assert err.value.__cause__ is None
    assert err.value.__suppress_context__


@pytest.mark.parametrize("raw", [b"SSH-2.0-OpenSSH_9.6\r\n", b"\x00\x01\x02", b""])
def test_an_answer_that_is_not_http_is_retry_later_and_names_no_url(
    sink: WebhookSink, raw: bytes
) -> None:
    sink.answer(Answer(raw=raw))
    with pytest.raises(RetryLater) as err:
        post(sink.url, {"text": "hi"}, 2)
    assert SECRET_PATH not in str(err.value)
    assert err.value.__suppress_context__


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T/B/x y",
        "https://hooks.slack.com/services/T/B/x\ny",
        "https://hooks.slack.com/services/T/B/x\ty",
        "https://hooks.slack.com/services/T/B/xé",
        "https://hooks.slack.com:99999/services/T/B/x",
        "https://user:pass@hooks.slack.com/services/T/B/x",
        "http://hooks.slack.com/services/T/B/x",
        "ftp://hooks.slack.com/services/T/B/x",
        "https:///services/T/B/x",
        "not a url",
        "",
    ],
)
def test_a_secret_that_is_no_usable_url_is_refused_without_quoting_it(url: str) -> None:
    with pytest.raises(BadWebhook) as err:
        checked_url(url)
    assert "services" not in str(err.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/services/T/B/X",
        "  https://hooks.slack.com/services/T/B/X\n",
        "http://127.0.0.1:8080/services/T/B/X",
        "http://localhost:8080/x",
    ],
)
def test_https_or_loopback_webhooks_pass(url: str) -> None:
    assert checked_url(url) == url.strip()


@pytest.mark.parametrize(
    ("raw", "url"),
    [
        ('{"url": "https://hooks.slack.com/services/A"}', "https://hooks.slack.com/services/A"),
        (
            '{"webhook_url": "https://hooks.slack.com/services/B"}',
            "https://hooks.slack.com/services/B",
        ),
        (
            '{"team": "x", "hook": "https://hooks.slack.com/services/C"}',
            "https://hooks.slack.com/services/C",
        ),
        ('{"a": "https://one", "b": "https://two"}', ""),
        ("[1, 2]", ""),
        ("{not json", ""),
    ],
)
def test_the_url_is_found_in_a_json_secret(raw: str, url: str) -> None:
    from alerts.handler import _url_in_json

    assert _url_in_json(raw) == url
