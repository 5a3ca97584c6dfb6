"""AlertsFunction: batches from AlertsQueue (SNS notifications of AlertsTopic) to Slack.
Thin: read the webhook, parse the records, deliver, report partial batch failures."""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlsplit

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from alerts import slack
from alerts.deliver import Deliverer, Outcome, PowertoolsLedger
from alerts.messages import Notification, UnreadableRecord, parse_notification
from common.settings import AlertsSettings, SettingsError

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "alerts")
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE)
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
SECRET_MAX_AGE = 300
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class DeliveryFailed(Exception):
    """The record's notification did not reach Slack; SQS will bring it back."""


def _url_in_json(raw: str) -> str:
    """The URL in a JSON secret: under "url" (or a usual spelling of it), else its one URL."""
    try:
        document = json.loads(raw)
    except ValueError:
        return ""
    if not isinstance(document, dict):
        return ""
    for key in ("url", "webhook_url", "webhookUrl", "WEBHOOK_URL", "slack_webhook_url"):
        if isinstance(document.get(key), str):
            return str(document[key]).strip()
    urls = [v for v in document.values() if isinstance(v, str) and v.startswith("http")]
    return urls[0].strip() if len(urls) == 1 else ""


def webhook_url(secret_arn: str) -> str:
    """The webhook URL from Secrets Manager (cached): the plain URL, or JSON holding it."""
    raw = str(parameters.get_secret(secret_arn, max_age=SECRET_MAX_AGE)).strip()
    if raw.startswith("{"):
        raw = _url_in_json(raw)
    parts = urlsplit(raw)
    loopback = parts.scheme == "http" and parts.hostname in LOOPBACK
    if not (parts.scheme == "https" or loopback) or not parts.hostname:
        raise SettingsError("the Slack webhook secret does not hold an https:// URL")
    return raw


def _count(outcome: Outcome) -> None:
    for name, value in (
        ("SlackPosts", outcome.posts),
        ("SlackDigests", outcome.digests),
        ("SlackDuplicates", outcome.duplicates),
        ("SlackRateLimited", outcome.rate_limited),
        ("SlackRejected", len(outcome.rejected)),
        ("SlackFailedRecords", len(outcome.failed)),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = AlertsSettings.from_env(os.environ)
    if not event.get("Records"):
        logger.warning("Invoked without records: nothing to deliver")
        return {"batchItemFailures": []}
    url = webhook_url(settings.secret_arn)

    batch: list[tuple[str, Notification]] = []
    unreadable: set[str] = set()
    for record in event.get("Records", []):
        try:
            batch.append((record["messageId"], parse_notification(record.get("body", ""))))
        except UnreadableRecord:
            unreadable.add(record["messageId"])
            logger.error(
                "Unreadable record: not an SNS notification", message_id=record["messageId"]
            )

    deliverer = Deliverer(
        settings=settings,
        post=lambda payload: slack.post(url, payload),
        ledger=PowertoolsLedger(settings.idempotency_table, context),
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
    )
    outcome = deliverer.deliver(batch)
    _count(outcome)
    for reason in outcome.rejected:
        logger.error("Slack rejected a post: the webhook or the message is broken", slack=reason)
    for error in outcome.errors:
        logger.warning("A post did not happen; its records go back to the queue", error=error)
    failed = outcome.failed | unreadable
    logger.info(
        "Batch delivered",
        records=len(event.get("Records", [])),
        posts=outcome.posts,
        digests=outcome.digests,
        duplicates=outcome.duplicates,
        failed=len(failed),
    )

    def check(record: SQSRecord) -> None:
        if record.message_id in failed:
            raise DeliveryFailed(record.message_id)

    response = process_partial_response(
        event=event, record_handler=check, processor=processor, context=context
    )
    return dict(response)
