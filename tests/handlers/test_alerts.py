"""AlertsFunction end to end: incidents and alarms published on the alerts topic, through the
queue the template subscribes, to Slack (a real webhook server on 127.0.0.1 whose URL is in
moto's Secrets Manager) and to email (the email topic, read from a stand-in mailbox queue)."""

from __future__ import annotations

import importlib
import io
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.backends import get_backend

from common import clients
from common.incident import Incident, Severity
from local.bridges import dynamodb_item_calls_one_at_a_time
from local.harness import (
    AlertsPipe,
    FakeContext,
    LockingStack,
    cold_start,
    deploy_locking_stack,
    function_environment,
    handler_of,
    mails,
    settle,
    sqs_batch,
)
from local.webhook import SECRET_PATH, Answer, WebhookSink
from tests.support import incidents
from tests.support.faults import failing_call
from tests.support.incidents import ALARM
from tests.support.logs import captured


@dataclass
class Alerts:
    stack: LockingStack
    pipe: AlertsPipe
    sink: WebhookSink
    handler: Callable[..., Any]
    logs: io.StringIO
    capsys: pytest.CaptureFixture[str]

    def publish(self, *published: Incident) -> None:
        sns = boto3.client("sns", region_name=self.stack.region)
        for i in published:
            sns.publish(**i.sns_publish_args(self.stack.alerts_topic_arn))

    def publish_alarm(self, alarm: dict[str, Any]) -> None:
        boto3.client("sns", region_name=self.stack.region).publish(
            TopicArn=self.stack.alerts_topic_arn,
            Subject=f'ALARM: "{alarm["AlarmName"]}" in US East (N. Virginia)',
            Message=json.dumps(alarm),
        )

    def invoke(self, event: dict[str, Any], remaining_ms: int = 90_000) -> dict[str, Any]:
        context = FakeContext(function_name="lock-janitor-AlertsFunction")
        context.get_remaining_time_in_millis = lambda: remaining_ms  # type: ignore[method-assign]
        response: dict[str, Any] = self.handler(event, context)
        return response

    def run(
        self, size: int = 100, remaining_ms: int = 90_000, *, now: bool = True
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """One invocation on the next batch, settled as the poller would; (event, response).
        `now`: failed records are visible again at once (else when the function said)."""
        event = sqs_batch(self.pipe, self.stack.region, size)
        if not event["Records"]:
            return event, {"batchItemFailures": []}  # Lambda never invokes on an empty queue
        response = self.invoke(event, remaining_ms)
        settle(self.pipe, self.stack.region, event, response, now=now)
        return event, response

    def mails(self) -> list[dict[str, Any]]:
        return mails(self.pipe, self.stack.region)

    def lines(self) -> list[dict[str, Any]]:
        self.logs.write(self.capsys.readouterr().out)  # the metrics (EMF) go to stdout
        return [json.loads(x) for x in self.logs.getvalue().splitlines() if x.startswith("{")]

    def metric(self, name: str) -> float:
        return sum(sum(x[name]) for x in self.lines() if name in x)


@pytest.fixture
def make_alerts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., Alerts]]:
    """Deploys the pipeline: `webhook` is the secret's content (None: the sink's URL, "": no
    Slack); `email` is the EmailIncidents parameter; `interval` the seconds between posts
    (None: the template's). Two instances run at once in some tests: DynamoDB's conditional
    writes are made atomic between threads, as they are on AWS."""
    with mock_aws(), dynamodb_item_calls_one_at_a_time(), WebhookSink() as sink:
        made: list[Alerts] = []

        def make(
            webhook: str | None = None, email: str = "all", interval: float | None = 0.05
        ) -> Alerts:
            secret = sink.url if webhook is None else webhook
            stack = deploy_locking_stack(
                webhook_url=secret or None, alerts_visibility=30, EmailIncidents=email
            )
            pipe = stack.alerts
            for key, value in function_environment(stack, "AlertsFunction").items():
                monkeypatch.setenv(key, value)
            monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "lock-janitor-AlertsFunction")
            # Slack's pacing (2 s between posts) is tested on its own; elsewhere it only waits.
            if interval is not None:
                monkeypatch.setenv("SLACK_MIN_POST_INTERVAL_SECONDS", str(interval))
            cold_start()
            # Imported once the environment is the function's, as in Lambda.
            module, _, name = handler_of(stack, "AlertsFunction").rpartition(".")
            handler = getattr(importlib.import_module(module), name)
            logger = importlib.import_module(module).logger
            stack_ctx = captured(logger)
            buffer = stack_ctx.__enter__()
            a = Alerts(stack, pipe, sink, handler, buffer, capsys)
            a._exit = stack_ctx  # type: ignore[attr-defined]
            made.append(a)
            return a

        yield make
        for a in made:
            a.logs.write(capsys.readouterr().out)
            a._exit.__exit__(None, None, None)  # type: ignore[attr-defined]
            logged = a.logs.getvalue()
            assert SECRET_PATH not in logged, "the webhook URL reached a log line"
            assert "s3cr3t" not in logged


@pytest.fixture
def alerts(make_alerts: Callable[..., Alerts]) -> Alerts:
    return make_alerts()


def texts(body: dict[str, Any]) -> str:
    out = [body.get("text", "")]
    for block in body.get("blocks", []):
        if "text" in block:
            out.append(block["text"]["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e.get("text", "") for e in block.get("elements", [])]
    return "\n".join(out)


def ledger(alerts: Alerts) -> dict[str, str]:
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName=alerts.pipe.table)
    return {i["id"]["S"]: i["status"]["S"] for i in items["Items"]}


# --- once per incident and channel --------------------------------------------------------


def test_each_incident_reaches_slack_and_email_once_readable(alerts: Alerts) -> None:
    alerts.publish(incidents.failed(1, exit_code=137), incidents.run_timeout(2))
    _, response = alerts.run()
    assert response == {"batchItemFailures": []}
    posts = alerts.sink.ok_posts()
    assert len(posts) == 2
    failed = texts(posts[0].body)
    assert "container job exited with code 137" in failed
    assert "EssentialContainerExited" in failed
    assert "/ecs/v2/clusters/lock-janitor-Cluster/tasks/" in failed
    assert '"Attachments' not in failed
    assert "ran past its timeoutSeconds (3600 s)" in texts(posts[1].body)
    mail = alerts.mails()
    subjects = sorted(m["Subject"] for m in mail)
    assert subjects[0].startswith("[lock-janitor] HIGH FAILED nightly-report: the task ran past")
    assert subjects[1].startswith("[lock-janitor] MEDIUM FAILED nightly-report: container job")
    assert all(len(x) <= 100 and x.isascii() for x in subjects)
    assert all("Exit code: 137" in m["Message"] for m in mail if "137" in m["Subject"])


def test_duplicates_and_redeliveries_post_once_per_channel(alerts: Alerts) -> None:
    one = incidents.aborted(1)
    alerts.publish(one, one)  # SNS or the janitor delivering twice
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    alerts.publish(one)  # again, in a later batch
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    assert len(alerts.sink.ok_posts()) == 1
    assert len(alerts.mails()) == 1
    assert ledger(alerts) == {
        f"slack:incident:{one.id}": "DONE",
        f"email:incident:{one.id}": "DONE",
    }
    assert alerts.metric("SlackDuplicates") == 2


def test_two_orphan_tasks_of_one_execution_are_two_incidents(alerts: Alerts) -> None:
    base = incidents.aborted(1)
    a = Incident(**{**base.__dict__, "kind": "orphan-task", "incident_key": "task-a"})
    b = Incident(**{**base.__dict__, "kind": "orphan-task", "incident_key": "task-b"})
    alerts.publish(a, b)
    alerts.run()
    assert len(alerts.sink.ok_posts()) == 2


# --- digests ---------------------------------------------------------------------------------


def test_a_storm_is_one_digest_per_channel_and_accounts_for_every_incident(alerts: Alerts) -> None:
    storm = [
        (incidents.failed, incidents.aborted, incidents.timed_out)[n % 3](n, lock=f"job-{n % 30}")
        for n in range(100)
    ]
    alerts.publish(*storm)
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    (digest,) = alerts.sink.ok_posts()
    body = texts(digest.body)
    assert "100 incidents at once" in body
    table = next(
        b["text"]["text"]
        for b in digest.body["blocks"]
        if "By task" in b.get("text", {}).get("text", "")
    )
    header, *rows, total = table.split("```")[1].splitlines()
    assert header.split() == ["task", "status", "count"]
    more = [x for x in rows if x.startswith("+")]
    assert more, "rows cut are counted"
    hidden = int(more[0].split("(")[1].split()[0])
    assert sum(int(x.split()[-1]) for x in rows if x not in more) + hidden == 100
    assert total.split() == ["total", "100"]
    assert "logs-insights" in json.dumps(digest.body), "where the full list can be read"
    (mail,) = alerts.mails()
    assert mail["Subject"].startswith("[lock-janitor] 100 incidents at once")
    assert mail["Message"].count("\n  incident ") == 100, "email lists every incident"
    alerts.publish(*storm)  # redelivered
    alerts.run()
    assert len(alerts.sink.ok_posts()) == 1
    assert alerts.mails() == []


def test_a_digest_counts_only_fresh_incidents(alerts: Alerts) -> None:
    threshold = int(function_environment(alerts.stack, "AlertsFunction")["DIGEST_THRESHOLD"])
    old = [incidents.aborted(n) for n in range(threshold)]
    alerts.publish(*old)
    alerts.run()
    assert len(alerts.sink.ok_posts()) == threshold, "at the threshold: one post each"
    new = incidents.aborted(99)
    alerts.publish(*old, new)  # redelivered ones and one new: more than the threshold in all
    alerts.run()
    posts = alerts.sink.ok_posts()
    assert len(posts) == threshold + 1
    assert "incidents at once" not in texts(posts[-1].body)
    assert new.execution.name in texts(posts[-1].body)


def test_concurrent_instances_with_overlapping_batches_post_each_incident_once(
    alerts: Alerts,
) -> None:
    """Two instances get overlapping records (a visibility timeout ran out): each incident is
    claimed by one; the other sends its copy back and finds it done next time."""
    storm = [incidents.aborted(n) for n in range(12)]
    alerts.publish(*storm)
    event = sqs_batch(alerts.pipe, "us-east-1", 100)
    records = event["Records"]
    assert len(records) == 12
    first, second = {"Records": records[:9]}, {"Records": records[3:]}
    alerts.sink.answer(Answer(200, "ok", delay=0.5), Answer(200, "ok", delay=0.5))
    answers: list[dict[str, Any]] = []
    threads = [
        threading.Thread(target=lambda e=e: answers.append(alerts.invoke(e)))
        for e in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    names: list[str] = []
    for post in alerts.sink.ok_posts():
        body = texts(post.body)
        names += sorted({i.execution.name for i in storm if f"|{i.execution.name}>" in body})
    assert len(names) == len(set(names)), "an incident was posted twice"
    failed = {f["itemIdentifier"] for a in answers for f in a["batchItemFailures"]}
    rest = [r for r in records if r["messageId"] in failed]
    alerts.invoke({"Records": rest})
    names = []
    for post in alerts.sink.ok_posts():
        body = texts(post.body)
        names += sorted({i.execution.name for i in storm if f"|{i.execution.name}>" in body})
    assert sorted(names) == sorted(i.execution.name for i in storm), "every incident, once"


# --- failures ------------------------------------------------------------------------------


def test_a_ledger_failure_fails_only_the_records_it_touched(alerts: Alerts) -> None:
    alerts.publish(incidents.aborted(1), incidents.aborted(2))
    with failing_call(clients.dynamodb(), "PutItem", "InternalServerError") as raised:
        event, response = alerts.run(now=False)
    assert raised == ["InternalServerError"]
    (failure,) = response["batchItemFailures"]
    assert len(alerts.sink.ok_posts()) == 1, "the other record was delivered"
    assert failure["itemIdentifier"] in {r["messageId"] for r in event["Records"]}


def test_a_post_whose_record_could_not_be_saved_is_not_failed_or_posted_again(
    alerts: Alerts,
) -> None:
    alerts.publish(incidents.aborted(1))
    with failing_call(clients.dynamodb(), "UpdateItem", "ProvisionedThroughputExceededException"):
        _, response = alerts.run()
    assert response["batchItemFailures"] == [], "the post happened: the record is done"
    assert len(alerts.sink.ok_posts()) == 1
    alerts.publish(incidents.aborted(1))  # a redelivery while the claim still holds
    _, response = alerts.run()
    assert len(alerts.sink.ok_posts()) == 1


@pytest.mark.parametrize(
    "secret",
    [
        "https://hooks.slack.com" + SECRET_PATH + " x",
        "https://hooks.slack.com" + SECRET_PATH + "\nX-Injected: 1",
        "https://hooks.slack.com" + SECRET_PATH.replace("s3", "s\u00e9"),
        "http://hooks.slack.com" + SECRET_PATH,
    ],
    ids=["space", "newline", "non-ascii", "plain-http"],
)
def test_a_bad_webhook_url_never_reaches_a_log_and_email_still_gets_the_incident(
    make_alerts: Callable[..., Alerts], secret: str
) -> None:
    alerts = make_alerts(webhook=secret)
    alerts.publish(incidents.aborted(1))
    _, response = alerts.run()
    assert len(response["batchItemFailures"]) == 1, "Slack's copy goes back"
    assert len(alerts.mails()) == 1
    assert alerts.metric("SlackRejected") == 1
    assert alerts.sink.posts == []


def test_a_non_http_answer_is_retried_without_quoting_the_url(alerts: Alerts) -> None:
    alerts.sink.answer(Answer(raw=b"SSH-2.0-OpenSSH\r\n"), Answer(raw=b"garbage\r\n\r\n"))
    alerts.publish(incidents.aborted(1))
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    assert [p.status for p in alerts.sink.posts] == [0, 0, 200]


def test_invalid_blocks_posts_the_minimal_message_instead(alerts: Alerts) -> None:
    alerts.sink.answer(Answer(400, "invalid_blocks"))
    one = incidents.failed(1)
    alerts.publish(one)
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    bad, good = alerts.sink.posts
    assert (bad.status, good.status) == (400, 200)
    assert "blocks" not in good.body
    assert one.id in good.body["text"]
    assert "FAILED" in good.body["text"]
    assert "|nightly-report-1>" in good.body["text"], "with its console link"
    assert alerts.metric("SlackMinimal") == 1


def test_a_digest_slack_rejects_is_posted_minimal_not_lost(alerts: Alerts) -> None:
    alerts.sink.answer(Answer(400, "invalid_blocks"))
    storm = [incidents.aborted(n) for n in range(20)]
    alerts.publish(*storm)
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    bad, good = alerts.sink.posts
    assert bad.status == 400
    assert good.body["text"].startswith("20 incidents at once")


def test_retry_after_holds_every_post_of_the_instance_and_sets_when_records_return(
    alerts: Alerts,
) -> None:
    alerts.sink.answer(Answer(429, "rate_limited", {"Retry-After": "120"}))
    alerts.publish(incidents.aborted(1), incidents.aborted(2), incidents.aborted(3))
    event, response = alerts.run(remaining_ms=60_000, now=False)
    assert len(response["batchItemFailures"]) == 3
    assert len(alerts.sink.posts) == 1, "no post after a 429 until Retry-After has passed"
    queue = get_backend("sqs")["123456789012"]["us-east-1"].queues["lock-janitor-AlertsQueue"]
    hidden = [m for m in queue._messages if m.receipt_handle in _handles(event)]
    assert len(hidden) == 3
    for m in hidden:
        assert m.visible_at / 1000 > time.time() + 100, "visible again when Slack allows"
    # The next batch on this instance does not post either: the instance still waits.
    alerts.publish(incidents.aborted(4))
    _, response = alerts.run(remaining_ms=60_000, now=False)
    assert len(response["batchItemFailures"]) == 1
    assert len(alerts.sink.posts) == 1


def _handles(event: dict[str, Any]) -> set[str]:
    return {r["receiptHandle"] for r in event["Records"]}


def test_a_post_never_starts_without_its_timeout_and_the_record_time_left(
    make_alerts: Callable[..., Alerts],
) -> None:
    alerts = make_alerts(email="none")
    alerts.publish(incidents.aborted(1))
    _, response = alerts.run(remaining_ms=7_900)  # a 5 s post and 3 s to record: not enough
    assert len(response["batchItemFailures"]) == 1
    assert alerts.sink.posts == []
    _, response = alerts.run(remaining_ms=8_100)
    assert response["batchItemFailures"] == []
    assert len(alerts.sink.ok_posts()) == 1


def test_posts_to_the_webhook_are_paced_as_the_template_says(
    make_alerts: Callable[..., Alerts],
) -> None:
    alerts = make_alerts(email="none", interval=None)
    interval = float(
        function_environment(alerts.stack, "AlertsFunction")["SLACK_MIN_POST_INTERVAL_SECONDS"]
    )
    alerts.publish(incidents.aborted(1), incidents.aborted(2), incidents.aborted(3))
    alerts.run()
    times = [p.at for p in alerts.sink.posts]
    assert len(times) == 3
    assert all(b - a >= interval * 0.95 for a, b in itertools.pairwise(times))


def test_5xx_is_retried_in_place(alerts: Alerts) -> None:
    alerts.sink.answer(Answer(500, "oops"))
    alerts.publish(incidents.aborted(1))
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    assert [p.status for p in alerts.sink.posts] == [500, 200]


def test_a_revoked_webhook_is_loud_stops_posting_and_email_still_delivers(
    alerts: Alerts,
) -> None:
    alerts.sink.answer(*[Answer(410, "channel_is_archived")] * 10)
    alerts.publish(incidents.aborted(1), incidents.aborted(2))
    _, response = alerts.run()
    assert len(response["batchItemFailures"]) == 2
    assert len(alerts.sink.posts) == 1, "a webhook that refuses everything is not hammered"
    assert len(alerts.mails()) == 2
    errors = [x for x in alerts.lines() if x.get("level") == "ERROR"]
    assert any("channel_is_archived" in json.dumps(x) for x in errors)
    assert alerts.metric("SlackRejected") == 1


def test_slack_down_for_good_ends_in_the_dead_letter_queue_after_max_receives(
    alerts: Alerts,
) -> None:
    alerts.sink.answer(*[Answer(404, "no_service")] * 20)
    alerts.publish(incidents.aborted(1))
    max_receives = json.loads(
        boto3.client("sqs", region_name="us-east-1").get_queue_attributes(
            QueueUrl=alerts.pipe.queue_url, AttributeNames=["RedrivePolicy"]
        )["Attributes"]["RedrivePolicy"]
    )["maxReceiveCount"]
    for _ in range(int(max_receives) + 1):
        alerts.run()
    dlq = boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=alerts.pipe.dlq_url)
    assert len(dlq.get("Messages", [])) == 1
    assert len(alerts.mails()) == 1, "email had it from the first receive, once"


def test_cloudwatch_alarms_reach_slack_and_email(alerts: Alerts) -> None:
    alerts.publish_alarm(ALARM)
    alerts.run()
    (post,) = alerts.sink.ok_posts()
    header = post.body["blocks"][0]["text"]["text"]
    assert header == ":rotating_light: ALARM: lock-janitor-AlertsDeadLetterQueueAlarm"
    (mail,) = alerts.mails()
    assert mail["Subject"].startswith("ALARM: ")


def test_an_unreadable_record_is_not_acknowledged(alerts: Alerts) -> None:
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=alerts.pipe.queue_url, MessageBody="not an SNS notification"
    )
    alerts.publish(incidents.aborted(1))
    event, response = alerts.run()
    assert len(event["Records"]) == 2
    (failure,) = response["batchItemFailures"]
    bad = next(r for r in event["Records"] if r["body"] == "not an SNS notification")
    assert failure["itemIdentifier"] == bad["messageId"]
    assert len(alerts.sink.ok_posts()) == 1


def test_high_only_email_gets_high_incidents_and_alarms(make_alerts: Callable[..., Alerts]) -> None:
    alerts = make_alerts(email="high")
    alerts.publish(incidents.aborted(1), incidents.failed(2), incidents.stuck(3))
    alerts.publish_alarm(ALARM)
    alerts.run()
    subjects = sorted(m["Subject"] for m in alerts.mails())
    assert len(subjects) == 2
    assert subjects[0].startswith("ALARM: ")
    assert subjects[1].startswith("[lock-janitor] HIGH ")
    assert len(alerts.sink.ok_posts()) == 4


def test_email_only_deploys_deliver_without_slack(make_alerts: Callable[..., Alerts]) -> None:
    alerts = make_alerts(webhook="")
    alerts.publish(incidents.aborted(1))
    _, response = alerts.run()
    assert response["batchItemFailures"] == []
    assert len(alerts.mails()) == 1
    assert alerts.sink.posts == []


def test_an_email_storm_is_one_mail(make_alerts: Callable[..., Alerts]) -> None:
    alerts = make_alerts(webhook="")
    alerts.publish(*[incidents.aborted(n) for n in range(60)])
    for _ in range(3):
        alerts.run()
    (mail,) = alerts.mails()
    assert "60 incidents at once" in mail["Subject"]


def test_severity_is_kept_through_the_pipeline(alerts: Alerts) -> None:
    low = incidents.aborted(1)
    assert low.severity is Severity.HIGH
    alerts.publish(low)
    alerts.run()
    (post,) = alerts.sink.ok_posts()
    assert ":red_circle:" in post.body["blocks"][0]["text"]["text"]
