"""AlertsFunction: incidents and alarms published on the alerts topic, through the queue the
template subscribes, to a Slack-compatible webhook on 127.0.0.1 whose URL is in moto's Secrets
Manager."""

from __future__ import annotations

import importlib
import io
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import base as parameters_base
from moto import mock_aws

from alerts import deliver
from common import clients
from common.incident import Execution, Incident, Repairs, Severity
from local.deploy import (
    AlertsPipe,
    LockingStack,
    deploy_alerts,
    deploy_locking_stack,
    function_environment,
    handler_of,
    settle,
    sqs_batch,
)
from local.webhook import SECRET_PATH, Answer, WebhookSink
from tests.handlers.conftest import FakeContext
from tests.support.logs import captured

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:lock-janitor-LockingStateMachine"


def incident(n: int, **overrides: Any) -> Incident:
    name = f"run-{n}"
    values: dict[str, Any] = {
        "kind": "execution",
        "severity": Severity.HIGH,
        "status": "ABORTED",
        "lock_id": f"task-{n % 3}",
        "execution": Execution(
            MACHINE.replace("stateMachine", "execution") + f":{name}", name, MACHINE
        ),
        "repairs": Repairs(
            "released", f"task-{n % 3}: released by the janitor", tasks_stopped=("arn:task",)
        ),
        "action": "Find who stopped it.",
        "error": "Operator",
        "cause": "stopped during a redeploy",
        "start_ms": 1_764_374_400_000,
        "stop_ms": 1_764_374_520_000,
        "detected_at": "2026-11-29T02:00:00+00:00",
    }
    values.update(overrides)
    return Incident(**values)


ALARM = {
    "AlarmName": "lock-janitor-JanitorDeadLetterQueueAlarm",
    "AlarmDescription": "Status changes the janitor could not handle wait in the DLQ.",
    "AWSAccountId": "123456789012",
    "NewStateValue": "ALARM",
    "NewStateReason": (
        "Threshold Crossed: 1 datapoint [3.0 (29/11/26 02:00:00)] was greater than the "
        "threshold (0.0)."
    ),
    "StateChangeTime": "2026-11-29T02:01:00.000+0000",
    "Region": "US East (N. Virginia)",
    "OldStateValue": "OK",
    "Trigger": {
        "MetricName": "ApproximateNumberOfMessagesVisible",
        "Namespace": "AWS/SQS",
        "Statistic": "MAXIMUM",
        "Dimensions": [{"value": "lock-janitor-JanitorDeadLetterQueue", "name": "QueueName"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.0,
    },
}


@dataclass
class Alerts:
    stack: LockingStack
    pipe: AlertsPipe
    sink: WebhookSink
    handler: Callable[..., Any]
    logs: io.StringIO

    def publish(self, *incidents: Incident) -> None:
        sns = boto3.client("sns", region_name=self.stack.region)
        for i in incidents:
            sns.publish(**i.sns_publish_args(self.stack.alerts_topic_arn))

    def publish_alarm(self, alarm: dict[str, Any]) -> None:
        boto3.client("sns", region_name=self.stack.region).publish(
            TopicArn=self.stack.alerts_topic_arn,
            Subject=f'ALARM: "{alarm["AlarmName"]}" in US East (N. Virginia)',
            Message=json.dumps(alarm),
        )

    def run(
        self, size: int = 100, remaining_ms: int = 90_000
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One invocation on the next batch, settled as the poller would; (event, response)."""
        event = sqs_batch(self.pipe, self.stack.region, size)
        if not event["Records"]:
            return event, {"batchItemFailures": []}  # Lambda never invokes on an empty queue
        context = FakeContext(function_name="lock-janitor-AlertsFunction")
        context.get_remaining_time_in_millis = lambda: remaining_ms  # type: ignore[method-assign]
        response = self.handler(event, context)
        settle(self.pipe, self.stack.region, event, response)
        return event, response

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.logs.getvalue().splitlines() if x.startswith("{")]


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Alerts]:
    with mock_aws(), WebhookSink() as sink:
        stack = deploy_locking_stack()
        pipe = deploy_alerts(stack, sink.url, visibility=30)
        for key, value in function_environment(stack, "AlertsFunction").items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "lock-janitor-AlertsFunction")
        clients.reset()
        parameters_base.DEFAULT_PROVIDERS.clear()
        deliver.PACER.last_post = None
        # Imported once the environment is the function's, as in Lambda.
        module, _, name = handler_of(stack, "AlertsFunction").rpartition(".")
        handler = getattr(importlib.import_module(module), name)
        logger = importlib.import_module(module).logger
        with captured(logger) as buffer:
            yield Alerts(stack, pipe, sink, handler, buffer)
            buffer.write(capsys.readouterr().out)
        assert SECRET_PATH not in buffer.getvalue(), "the webhook URL reached a log line"
        assert "s3cr3t" not in buffer.getvalue()


def texts(body: dict[str, Any]) -> list[str]:
    out = [body.get("text", "")]
    for block in body["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        for f in block.get("fields", []):
            out.append(f["text"])
        for e in block.get("elements", []):
            out.append(e.get("text", ""))
    return out


def test_one_message_per_incident_with_what_on_call_needs(alerts: Alerts) -> None:
    alerts.publish(incident(1), incident(2, severity=Severity.MEDIUM, status="FAILED"))
    _, response = alerts.run()
    assert response == {"batchItemFailures": []}
    posts = alerts.sink.ok_posts()
    assert len(posts) == 2
    first = posts[0].body
    header = first["blocks"][0]
    assert header["type"] == "header"
    assert "ABORTED" in header["text"]["text"]
    assert "task-1" in header["text"]["text"]
    assert ":red_circle:" in header["text"]["text"]
    everything = "\n".join(texts(first))
    assert "<https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1" in everything
    assert "|run-1>" in everything
    assert "2m00s" in everything
    assert "`Operator`" in everything
    assert "```stopped during a redeploy```" in everything
    assert "released by the janitor" in everything
    assert "Find who stopped it." in everything
    assert first["text"].startswith("ABORTED task-1 (high)")
    assert ":large_orange_circle:" in posts[1].body["blocks"][0]["text"]["text"]


def test_text_from_executions_pings_nobody_and_links_nowhere(alerts: Alerts) -> None:
    evil = "<!channel> see <https://evil.example|here> & <@U123>"
    alerts.publish(incident(1, cause=evil, error="<!here>", action=evil))
    alerts.run()
    (post,) = alerts.sink.ok_posts()
    raw = json.dumps(post.body)
    for needle in ("<!channel>", "<!here>", "<https://evil", "<@U123>"):
        assert needle not in raw
    assert "&lt;!channel&gt;" in raw
    assert "&amp;" in raw


def test_long_text_is_cut_to_block_kit_limits(alerts: Alerts) -> None:
    alerts.publish(incident(1, cause="x" * 20_000, lock_id="t" * 400, action="y" * 5000))
    alerts.run()
    (post,) = alerts.sink.ok_posts()
    blocks = post.body["blocks"]
    assert len(blocks) <= 50
    assert len(blocks[0]["text"]["text"]) <= 150
    for block in blocks:
        if block["type"] == "section" and "text" in block:
            assert len(block["text"]["text"]) <= 3000
        for f in block.get("fields", []):
            assert len(f["text"]) <= 2000
    assert len(post.body["text"]) <= 3000


def test_each_incident_reaches_slack_once(alerts: Alerts) -> None:
    alerts.publish(incident(1), incident(1))  # SNS or the janitor delivering twice
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    assert len(alerts.sink.ok_posts()) == 1
    alerts.publish(incident(1))  # again, in a later batch
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    assert len(alerts.sink.ok_posts()) == 1
    table = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=alerts.pipe.table)
    (record,) = table["Items"]
    assert record["status"]["S"] == "COMPLETED"
    assert int(record["expiration"]["N"]) > 0, "records expire by TTL"


def test_a_storm_becomes_one_digest_and_is_not_posted_twice(alerts: Alerts) -> None:
    storm = [incident(n, status=("FAILED", "ABORTED", "TIMED_OUT")[n % 3]) for n in range(50)]
    alerts.publish(*storm)
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    (digest,) = alerts.sink.ok_posts()
    everything = "\n".join(texts(digest.body))
    assert "50 incidents" in digest.body["blocks"][0]["text"]["text"]
    assert "task-0" in everything
    assert "TIMED_OUT" in everything
    worst = [
        b
        for b in digest.body["blocks"]
        if b["type"] == "section" and "*TIMED_OUT*" in b["text"]["text"]
    ]
    assert worst, "the worst incidents are shown in full"
    alerts.publish(*storm)  # redelivered
    alerts.run()
    assert len(alerts.sink.ok_posts()) == 1


def test_500_incidents_in_a_minute_are_a_handful_of_posts(alerts: Alerts) -> None:
    alerts.publish(*[incident(n) for n in range(500)])
    for _ in range(10):
        event, _ = alerts.run()
        if not event["Records"]:
            break
    assert 1 <= len(alerts.sink.ok_posts()) <= 6
    assert sum(1 for _ in alerts.sink.posts) == len(alerts.sink.ok_posts())


def test_posts_to_the_webhook_are_paced(alerts: Alerts) -> None:
    interval = float(
        function_environment(alerts.stack, "AlertsFunction")["SLACK_MIN_POST_INTERVAL_SECONDS"]
    )
    alerts.publish(incident(1), incident(2), incident(3))
    alerts.run()
    times = [p.at for p in alerts.sink.posts]
    assert len(times) == 3
    assert all(b - a >= interval * 0.95 for a, b in itertools.pairwise(times))


def test_429_waits_for_retry_after_when_time_allows(alerts: Alerts) -> None:
    alerts.sink.answer(Answer(429, "rate_limited", {"Retry-After": "1"}))
    alerts.publish(incident(1))
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    first, second = alerts.sink.posts
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95


def test_429_longer_than_the_time_left_sends_the_records_back(alerts: Alerts) -> None:
    alerts.sink.answer(Answer(429, "rate_limited", {"Retry-After": "120"}))
    alerts.publish(incident(1))
    event, response = alerts.run(remaining_ms=60_000)
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        r["messageId"] for r in event["Records"]
    ]
    assert len(alerts.sink.posts) == 1, "no waiting past the invocation's end"
    _, response = alerts.run()  # the redelivery, once Slack is willing
    assert response["batchItemFailures"] == []
    assert len(alerts.sink.ok_posts()) == 1


def test_5xx_is_retried(alerts: Alerts) -> None:
    alerts.sink.answer(Answer(500, "oops"))
    alerts.publish(incident(1))
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    assert [p.status for p in alerts.sink.posts] == [500, 200]


def test_persistent_5xx_sends_the_records_back(alerts: Alerts) -> None:
    alerts.sink.answer(*[Answer(503, "unavailable")] * 3)
    alerts.publish(incident(1))
    _, response = alerts.run()
    assert len(response["batchItemFailures"]) == 1
    assert len(alerts.sink.posts) == 3
    assert (
        boto3.client("dynamodb", region_name="us-east-1").scan(TableName=alerts.pipe.table)["Items"]
        == []
    ), "nothing is remembered as delivered"


def test_a_broken_webhook_is_loud_and_its_records_end_in_the_dead_letter_queue(
    alerts: Alerts, capsys: pytest.CaptureFixture[str]
) -> None:
    alerts.sink.answer(*[Answer(410, "channel_is_archived")] * 10)
    alerts.publish(incident(1))
    max_receives = json.loads(
        boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
            QueueUrl=alerts.pipe.queue_url, AttributeNames=["RedrivePolicy"]
        )["Attributes"]["RedrivePolicy"]
    )["maxReceiveCount"]
    for _ in range(int(max_receives) + 1):
        alerts.run()
    dlq = boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=alerts.pipe.dlq_url)
    assert len(dlq.get("Messages", [])) == 1, "the record ended in the dead-letter queue"
    assert len(alerts.sink.posts) == int(max_receives), "a rejected post is not retried in place"
    alerts.logs.write(capsys.readouterr().out)
    errors = [x for x in alerts.lines() if x.get("level") == "ERROR"]
    assert any("channel_is_archived" in json.dumps(x) for x in errors)
    emf = [x for x in alerts.lines() if "SlackRejected" in x]
    assert emf
    assert all(x["SlackRejected"] == [1.0] for x in emf)


def test_cloudwatch_alarms_are_rendered_as_alarms(alerts: Alerts) -> None:
    alerts.publish_alarm(ALARM)
    alerts.run()
    (post,) = alerts.sink.ok_posts()
    header = post.body["blocks"][0]["text"]["text"]
    assert header == ":rotating_light: ALARM: lock-janitor-JanitorDeadLetterQueueAlarm"
    everything = "\n".join(texts(post.body))
    assert "ALARM (was OK)" in everything
    assert "AWS/SQS/ApproximateNumberOfMessagesVisible" in everything
    assert "Threshold Crossed" in everything


def test_an_unreadable_record_is_not_acknowledged(alerts: Alerts) -> None:
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=alerts.pipe.queue_url, MessageBody="not an SNS notification"
    )
    alerts.publish(incident(1))
    event, response = alerts.run()
    assert len(event["Records"]) == 2
    (failure,) = response["batchItemFailures"]
    bad = next(r for r in event["Records"] if r["body"] == "not an SNS notification")
    assert failure["itemIdentifier"] == bad["messageId"]
    assert len(alerts.sink.ok_posts()) == 1


def test_high_only_email_filter_passes_high_incidents_and_alarms(alerts: Alerts) -> None:
    """The email subscription's filter policy, from the template, applied by SNS (moto) to a
    stand-in queue: high incidents and alarms pass, the rest do not."""
    template = alerts.stack.context.template
    ctx = alerts.stack.context
    ctx.parameters.update(AlertsEmail="oncall@example.com", AlertsEmailHighSeverityOnly="true")
    props = ctx.resolve(template["Resources"]["AlertsEmailSubscription"]["Properties"])
    sqs = boto3.client("sqs", region_name="us-east-1")
    inbox = sqs.create_queue(QueueName="email-stand-in")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    boto3.client("sns", region_name="us-east-1").subscribe(
        TopicArn=props["TopicArn"],
        Protocol="sqs",
        Endpoint=arn,
        Attributes={
            "FilterPolicy": json.dumps(props["FilterPolicy"]),
            "FilterPolicyScope": props["FilterPolicyScope"],
        },
    )
    alerts.publish(
        incident(1), incident(2, severity=Severity.MEDIUM), incident(3, severity=Severity.LOW)
    )
    alerts.publish_alarm(ALARM)
    got = []
    for _ in range(5):
        got += sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", [])
    subjects = sorted(json.loads(m["Body"]).get("Subject", "") for m in got)
    assert len(subjects) == 2
    assert subjects[0].startswith("ALARM: ")
    assert subjects[1].startswith("[lock-janitor] HIGH ")
