"""The alerts pipeline, alarms and dashboard in template.yaml (issue 4: 1, 2, 3, 7)."""

from __future__ import annotations

import json
from typing import Any

from local.template import Context, load_template
from tests.support.translate import translated_template


def resources() -> dict[str, Any]:
    r: dict[str, Any] = load_template()["Resources"]
    return r


def test_topic_feeds_an_encrypted_queue_with_its_own_dead_letter_queue() -> None:
    r = resources()
    queue, dlq = r["AlertsQueue"]["Properties"], r["AlertsDeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["AlertsDeadLetterQueue", "Arn"]
    }
    assert queue["RedrivePolicy"]["maxReceiveCount"] >= 3
    timeout = r["AlertsFunction"]["Properties"]["Timeout"]
    assert queue["VisibilityTimeout"] >= 6 * timeout
    (statement,) = r["AlertsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Ref": "AlertsTopic"}
    sub = r["AlertsQueueSubscription"]
    assert sub["Properties"]["Protocol"] == "sqs"
    assert sub["Properties"]["RawMessageDelivery"] is False
    assert sub["DependsOn"] == "AlertsQueuePolicy"


def test_batches_report_partial_failures_and_posts_stay_under_one_per_second() -> None:
    r = resources()
    source = r["AlertsQueueSource"]["Properties"]
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["MaximumBatchingWindowInSeconds"] > 0
    assert source["BatchSize"] >= 50
    concurrency = source["ScalingConfig"]["MaximumConcurrency"]
    interval = float(
        r["AlertsFunction"]["Properties"]["Environment"]["Variables"][
            "SLACK_MIN_POST_INTERVAL_SECONDS"
        ]
    )
    assert concurrency / interval <= 1.0, "at most one post per second per webhook"


def test_email_subscription_is_optional_and_can_take_only_high_severities() -> None:
    template = load_template()
    sub = template["Resources"]["AlertsEmailSubscription"]
    assert sub["Condition"] == "HasEmail"
    assert sub["Properties"]["Protocol"] == "email"
    when_high, otherwise = sub["Properties"]["FilterPolicy"]["Fn::If"][1:]
    assert {"severity": ["high"]} in when_high["$or"]
    assert otherwise == {"Ref": "AWS::NoValue"}
    for email, high, expected in (("", "false", False), ("a@b.c", "false", True)):
        ctx = Context(
            template=template,
            parameters={"AlertsEmail": email, "AlertsEmailHighSeverityOnly": high},
        )
        assert ctx.condition("HasEmail") is expected


def test_only_the_alerts_function_may_read_the_webhook(tmp_path: Any) -> None:
    cfn = translated_template()
    readers = []
    for name, res in cfn["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if "secretsmanager:GetSecretValue" in actions:
                    readers.append((name, st["Resource"]))
    assert readers == [("AlertsRole", {"Ref": "SlackWebhookSecretArn"})]
    (deny,) = resources()["SlackWebhookSecretPolicy"]["Properties"]["ResourcePolicy"]["Statement"]
    assert deny["Effect"] == "Deny"
    assert deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"] == {
        "Fn::GetAtt": ["AlertsRole", "Arn"]
    }


def test_idempotency_table_expires_records() -> None:
    table = resources()["IdempotencyTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_alarms_notify_the_topic_for_queues_and_every_function() -> None:
    r = resources()
    alarms = {k: v["Properties"] for k, v in r.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    for name, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlertsTopic"}], name
        assert alarm["TreatMissingData"] == "notBreaching", name
    watched_queues = {
        a["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for a in alarms.values()
        if a["MetricName"] == "ApproximateNumberOfMessagesVisible"
    }
    dead_letter_queues = {k for k in r if k.endswith("DeadLetterQueue")}
    assert (
        watched_queues
        == dead_letter_queues
        == {
            "JanitorDeadLetterQueue",
            "AlertsDeadLetterQueue",
            "SchedulesDeadLetterQueue",
        }
    )
    functions = {k for k, v in r.items() if v["Type"] == "AWS::Serverless::Function"}
    errored = {
        a["Dimensions"][0]["Value"]["Ref"]
        for a in alarms.values()
        if a["Namespace"] == "AWS/Lambda" and a["MetricName"] == "Errors"
    }
    assert errored == functions


def test_dashboard_is_valid_json_with_the_views_on_call_needs() -> None:
    template = load_template()
    ctx = Context(template=template, parameters={"SlackWebhookSecretArn": "arn:x"})
    for ref in ("LockingStateMachine", "JanitorFunction", "ReconcilerFunction", "AlertsFunction"):
        ctx.refs[ref] = f"{ref}-physical"
    for queue in ("JanitorDeadLetterQueue", "AlertsDeadLetterQueue", "SchedulesDeadLetterQueue"):
        ctx.attributes[(queue, "QueueName")] = f"{queue}-name"
    body = json.loads(
        ctx.resolve(template["Resources"]["Dashboard"]["Properties"]["DashboardBody"])
    )
    titles = [w["properties"]["title"] for w in body["widgets"]]
    text = json.dumps(body)
    assert "Executions by outcome" in titles
    assert "Incidents by status" in titles
    assert any("by janitor and reconciler" in t for t in titles)
    assert "Dead-letter queue depths" in titles
    assert "Function errors" in titles
    for name in ("ExecutionsAborted", "ExecutionsTimedOut", "LocksReleased", "TasksStopped"):
        assert name in text
    for physical in (
        "JanitorDeadLetterQueue-name",
        "AlertsDeadLetterQueue-name",
        "SchedulesDeadLetterQueue-name",
        "AlertsFunction-physical",
    ):
        assert physical in text


def test_every_schedule_keeps_what_it_could_not_start() -> None:
    template = load_template()
    schedules = [
        event["Properties"]
        for res in template["Resources"].values()
        if res["Type"] == "AWS::Serverless::StateMachine"
        or res["Type"] == "AWS::Serverless::Function"
        for event in res["Properties"].get("Events", {}).values()
        if event["Type"] == "ScheduleV2"
    ]
    assert len(schedules) >= 2
    for schedule in schedules:
        assert schedule["DeadLetterConfig"] == {
            "Arn": {"Fn::GetAtt": ["SchedulesDeadLetterQueue", "Arn"]}
        }
    assert template["Resources"]["SchedulesDeadLetterQueue"]["Properties"]["SqsManagedSseEnabled"]
