"""AlertsFunction: batches from AlertsQueue (SNS notifications of AlertsTopic) to every channel
configured (Slack, email). Thin: settings, channels, parse the records, deliver, send the failed
records back with the delay each needs, report partial batch failures.

Cold start: Powertools' parameters and batch utilities are not imported (they bring appconfig,
asyncio and every event source's classes, for what a GetSecretValue and a list do): the secret
is read with GetSecretValue and kept SECRET_MAX_AGE seconds, and the partial batch response is
the documented `batchItemFailures` list."""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from alerts.channels import Channel, ChannelError, Rejected, RetryLater
from alerts.channels.email import Email
from alerts.channels.slack import BadWebhook, Slack, checked_url
from alerts.deliver import Deliverer, Outcome, Record, backoff
from alerts.ledger import Ledger
from alerts.messages import UnreadableRecord, parse_notification
from common import clients
from common.settings import AlertsSettings, SettingsError

if TYPE_CHECKING:
    from mypy_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef as Entry

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "alerts")
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE)
SECRET_MAX_AGE = 300
_SECRETS: dict[str, tuple[float, str]] = {}
"""Secret ARN -> (when it was read, its value): a warm instance reads it every SECRET_MAX_AGE
seconds at most, so a rotated webhook is picked up within that."""
METRICS = ("Posts", "Digests", "Duplicates", "RateLimited", "Rejected", "Minimal")
MAX_VISIBILITY = 43_200  # SQS: 12 hours


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


def forget_secrets() -> None:
    """Forget every secret read (a new Lambda environment; tests)."""
    _SECRETS.clear()


def _secret(secret_arn: str) -> str:
    kept = _SECRETS.get(secret_arn)
    now = time.monotonic()
    if kept is not None and now - kept[0] < SECRET_MAX_AGE:
        return kept[1]
    value = str(clients.secretsmanager().get_secret_value(SecretId=secret_arn)["SecretString"])
    _SECRETS[secret_arn] = (now, value)
    return value


def webhook_url(secret_arn: str) -> str:
    """The webhook URL from Secrets Manager (cached): the plain URL, or JSON holding it."""
    raw = _secret(secret_arn).strip()
    if raw.startswith("{"):
        raw = _url_in_json(raw)
    try:
        return checked_url(raw)
    except BadWebhook as err:
        raise SettingsError(str(err)) from None


def slack(secret_arn: str, min_interval: float, region: str | None) -> Slack:
    """Slack, or, when its secret cannot be read or holds no usable URL, a Slack whose every
    post fails with why (never the URL): Slack's records go back and are counted, email is
    still fed."""
    try:
        return Slack(webhook_url(secret_arn), min_interval=min_interval, region=region)
    except SettingsError as err:
        broken: ChannelError = Rejected(str(err), payload=False)
    except (ClientError, BotoCoreError, KeyError) as err:  # KeyError: a binary-only secret
        code = (
            str(err.response.get("Error", {}).get("Code"))
            if isinstance(err, ClientError)
            else type(err).__name__
        )
        broken = RetryLater(f"cannot read the Slack webhook secret: {code}")
    logger.error("Slack is not usable; its records go back to the queue", reason=str(broken))
    return Slack("", min_interval=min_interval, broken=broken, region=region)


def channels(settings: AlertsSettings) -> list[Channel]:
    found: list[Channel] = []
    if settings.slack_secret_arn:
        found.append(slack(settings.slack_secret_arn, settings.min_post_interval, settings.region))
    if settings.email_topic_arn:
        found.append(
            Email(
                clients.sns(),
                settings.email_topic_arn,
                settings.email_high_only,
                region=settings.region,
            )
        )
    return found


def _records(event: dict[str, Any]) -> tuple[list[Record], set[str]]:
    records: list[Record] = []
    unreadable: set[str] = set()
    for raw in event.get("Records", []):
        message_id = str(raw.get("messageId"))
        try:
            note = parse_notification(str(raw.get("body") or ""))
        except UnreadableRecord:
            unreadable.add(message_id)
            logger.error("Unreadable record: not an SNS notification", message_id=message_id)
            continue
        try:
            receives = int((raw.get("attributes") or {}).get("ApproximateReceiveCount") or 1)
        except (TypeError, ValueError):
            receives = 1
        records.append(Record(message_id, note, receives))
    return records, unreadable


def _send_back(settings: AlertsSettings, event: dict[str, Any], outcome: Outcome) -> None:
    """Each failed record visible again when it can be delivered (Retry-After, a back-off), not
    after the queue's visibility timeout."""
    handles = {r.get("messageId"): r.get("receiptHandle") for r in event.get("Records", [])}
    entries: list[Entry] = [
        {
            "Id": str(i),
            "ReceiptHandle": str(handles[rid]),
            "VisibilityTimeout": min(delay, MAX_VISIBILITY),
        }
        for i, (rid, delay) in enumerate(sorted(outcome.failed.items()))
        if handles.get(rid)
    ]
    sqs = clients.sqs()
    for start in range(0, len(entries), 10):
        try:
            answer = sqs.change_message_visibility_batch(
                QueueUrl=settings.queue_url, Entries=entries[start : start + 10]
            )
        except (ClientError, BotoCoreError) as err:
            logger.warning("Could not set when failed records come back", error=type(err).__name__)
            continue
        for failure in answer.get("Failed", []):
            logger.warning("Could not set when a record comes back", code=failure.get("Code"))


def _count(outcome: Outcome, names: list[str]) -> None:
    for prefix in names:
        for name in METRICS:
            value = outcome.counts.get(f"{prefix}{name}", 0)
            metrics.add_metric(name=f"{prefix}{name}", unit=MetricUnit.Count, value=value)
    metrics.add_metric(name="FailedRecords", unit=MetricUnit.Count, value=len(outcome.failed))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = AlertsSettings.from_env(os.environ)
    if not event.get("Records"):
        logger.warning("Invoked without records: nothing to deliver")
        return {"batchItemFailures": []}
    records, unreadable = _records(event)
    feeds = channels(settings)
    deliverer = Deliverer(
        channels=feeds,
        ledger=Ledger(
            clients.dynamodb(),
            settings.ledger_table,
            owner=f"{getattr(context, 'aws_request_id', '')}/{uuid.uuid4()}",
        ),
        digest_threshold=settings.digest_threshold,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        region=settings.region,
        log_groups=settings.log_groups,
    )
    outcome = deliverer.deliver(records)
    for rid in unreadable:
        # Nothing will make it readable: straight to the dead-letter queue's count, slowly.
        outcome.failed[rid] = backoff(5)
    _count(outcome, [c.metric for c in feeds])
    for reason in outcome.rejected:
        logger.error("A channel rejected a post", reason=reason)
    for error in outcome.errors:
        logger.warning("A post did not happen; its records go back to the queue", error=error)
    if outcome.failed:
        _send_back(settings, event, outcome)
    logger.info(
        "Batch delivered",
        records=len(event.get("Records", [])),
        failed=len(outcome.failed),
        counts={k: v for k, v in sorted(outcome.counts.items()) if v},
    )

    # The partial batch response (ReportBatchItemFailures): every record not listed is deleted.
    failures = [
        {"itemIdentifier": str(r.get("messageId"))}
        for r in event.get("Records", [])
        if str(r.get("messageId")) in outcome.failed
    ]
    return {"batchItemFailures": failures}
