"""The Slack client against a real HTTP server on 127.0.0.1: every answer Slack gives, told
apart, and never a webhook URL in an error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from alerts import slack
from local.webhook import SECRET_PATH, Answer, WebhookSink


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    with WebhookSink() as s:
        yield s


def test_ok(sink: WebhookSink) -> None:
    assert slack.post(sink.url, {"text": "hi"}).status == 200
    assert sink.posts[0].body == {"text": "hi"}


def test_429_carries_retry_after(sink: WebhookSink) -> None:
    sink.answer(Answer(429, "rate_limited", {"Retry-After": "7"}))
    with pytest.raises(slack.SlackRateLimited) as err:
        slack.post(sink.url, {"text": "hi"})
    assert err.value.retry_after == 7.0


def test_429_without_a_usable_retry_after_waits_a_second(sink: WebhookSink) -> None:
    sink.answer(Answer(429, "rate_limited", {"Retry-After": "soon"}))
    with pytest.raises(slack.SlackRateLimited) as err:
        slack.post(sink.url, {"text": "hi"})
    assert err.value.retry_after == 1.0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_unavailable(sink: WebhookSink, status: int) -> None:
    sink.answer(Answer(status, "oops"))
    with pytest.raises(slack.SlackUnavailable):
        slack.post(sink.url, {"text": "hi"})


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "invalid_payload"),
        (403, "action_prohibited"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ],
)
def test_4xx_is_rejected_with_slacks_text(sink: WebhookSink, status: int, reason: str) -> None:
    sink.answer(Answer(status, reason))
    with pytest.raises(slack.SlackRejected) as err:
        slack.post(sink.url, {"text": "hi"})
    assert (err.value.status, err.value.reason) == (status, reason)
    assert SECRET_PATH not in str(err.value)


def test_a_hanging_slack_times_out(sink: WebhookSink) -> None:
    sink.answer(Answer(200, "ok", delay=1.0))
    with pytest.raises(slack.SlackUnavailable) as err:
        slack.post(sink.url, {"text": "hi"}, timeout=0.2)
    assert SECRET_PATH not in str(err.value)


def test_nobody_listening_is_unavailable_and_names_no_url() -> None:
    with WebhookSink() as s:
        url = s.url
    with pytest.raises(slack.SlackUnavailable) as err:
        slack.post(url, {"text": "hi"}, timeout=1)
    assert SECRET_PATH not in str(err.value)
    assert err.value.__cause__ is None


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


@pytest.mark.parametrize(
    ("secret", "ok"),
    [
        ("https://hooks.slack.com/services/T/B/X", True),
        ("http://127.0.0.1:8080/services/T/B/X", True),
        ("http://hooks.slack.com/services/T/B/X", False),
        ("ftp://example.com/x", False),
        ("", False),
    ],
)
def test_only_https_or_loopback_webhooks(
    secret: str, ok: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alerts import handler
    from common.settings import SettingsError

    monkeypatch.setattr(handler.parameters, "get_secret", lambda *_a, **_k: secret)
    if ok:
        assert handler.webhook_url("arn:secret") == secret
    else:
        with pytest.raises(SettingsError, match="https://"):
            handler.webhook_url("arn:secret")
