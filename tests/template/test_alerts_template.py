"""The alerts pipeline, its channels, alarms and dashboard in template.yaml."""

from __future__ import annotations

import json
from typing import Any

from local.template import Context, load_template
from tests.support.translate import translated_template
from tests.template.test_template import unwrapped


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


def evaluate(expr: Any, parameters: dict[str, Any]) -> Any:
    """The intrinsic functions CloudFormation allows in Rules, evaluated as it does before any
    change (nothing can be deployed from here: this stands in for its answer)."""
    if isinstance(expr, dict) and len(expr) == 1:
        ((fn, arg),) = expr.items()
        if fn == "Ref":
            return parameters[arg]
        values = [evaluate(a, parameters) for a in arg] if isinstance(arg, list) else arg
        if fn == "Fn::Equals":
            return str(values[0]) == str(values[1])
        if fn == "Fn::Not":
            return not values[0]
        if fn == "Fn::And":
            return all(values)
        if fn == "Fn::Or":
            return any(values)
        raise AssertionError(f"not a rule function: {fn}")
    return expr


def refusals(parameters: dict[str, Any]) -> list[str]:
    """What CloudFormation's rules say to a deploy with these parameters (empty: accepted)."""
    template = translated_template()
    out = []
    for rule in template.get("Rules", {}).values():
        if not evaluate(rule.get("RuleCondition", True), parameters):
            continue
        out += [
            a["AssertDescription"]
            for a in rule["Assertions"]
            if not evaluate(a["Assert"], parameters)
        ]
    return out


def test_a_deploy_that_sends_incidents_nowhere_is_refused_with_a_clear_message() -> None:
    slack = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hook-AbCdEf"
    assert refusals({"EmailIncidents": "none", "SlackWebhookSecretArn": ""}) == [
        "EmailIncidents is none and SlackWebhookSecretArn is empty: incidents would reach "
        "nobody. Set SlackWebhookSecretArn, or EmailIncidents to all or high."
    ]
    assert refusals({"EmailIncidents": "none", "SlackWebhookSecretArn": slack}) == []
    assert refusals({"EmailIncidents": "all", "SlackWebhookSecretArn": ""}) == []
    assert refusals({"EmailIncidents": "high", "SlackWebhookSecretArn": ""}) == []


def test_an_email_address_is_required_for_the_alarms_about_the_alerts_path() -> None:
    import re

    spec = load_template()["Parameters"]["AlertsEmail"]
    assert "Default" not in spec, "no default: sam deploy asks for it"
    pattern = re.compile(spec["AllowedPattern"])
    assert pattern.fullmatch("oncall@example.com")
    for bad in ("", "oncall", "a b@example.com", "@example.com"):
        assert not pattern.fullmatch(bad), bad
    assert "without going through Slack" in spec["ConstraintDescription"]


def test_email_is_a_topic_of_its_own_fed_by_the_function_and_the_health_alarms() -> None:
    r = resources()
    sub = r["AlertsEmailSubscription"]
    assert "Condition" not in sub
    assert sub["Properties"] == {
        "TopicArn": {"Ref": "AlertsEmailTopic"},
        "Protocol": "email",
        "Endpoint": {"Ref": "AlertsEmail"},
    }, "no filter: the function decides what is mailed (EmailIncidents), once each"
    env = r["AlertsFunction"]["Properties"]["Environment"]["Variables"]
    assert env["EMAIL_TOPIC_ARN"] == {"Ref": "AlertsEmailTopic"}
    assert env["EMAIL_INCIDENTS"] == {"Ref": "EmailIncidents"}
    (alarms_publish,) = [
        st
        for st in r["AlertsEmailTopicPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        if st["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert alarms_publish["Action"] == "sns:Publish"


def test_the_alarms_about_the_alerts_path_never_go_through_it() -> None:
    """A broken webhook or alerts function is heard by email, straight from CloudWatch."""
    r = resources()
    alarms = {k: v["Properties"] for k, v in r.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    about_alerts = {
        "AlertsDeadLetterQueueAlarm",
        "AlertsErrorsAlarm",
        "SlackRejectedAlarm",
        "EmailRejectedAlarm",
    }
    assert about_alerts <= set(alarms)
    for name, alarm in alarms.items():
        topic = "AlertsEmailTopic" if name in about_alerts else "AlertsTopic"
        assert alarm["AlarmActions"] == [{"Ref": topic}], name


def test_only_the_alerts_function_may_read_the_webhook(tmp_path: Any) -> None:
    cfn = translated_template()
    readers = []
    for name, res in cfn["Resources"].items():
        if res["Type"] != "AWS::IAM::Role":
            continue
        for policy in res["Properties"].get("Policies", []):
            for st in unwrapped(policy["PolicyDocument"]["Statement"]):
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                if "secretsmanager:GetSecretValue" in actions:
                    readers.append((name, st["Resource"]))
    assert readers == [("AlertsRole", {"Ref": "SlackWebhookSecretArn"})]


def test_idempotency_table_expires_records() -> None:
    table = resources()["IdempotencyTable"]["Properties"]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]


def test_alarms_watch_every_dead_letter_queue_and_every_function() -> None:
    r = resources()
    alarms = {k: v["Properties"] for k, v in r.items() if v["Type"] == "AWS::CloudWatch::Alarm"}
    for name, alarm in alarms.items():
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


def test_alerts_doc_says_how_long_a_slack_outage_is_bridged_from_the_templates_numbers() -> None:
    """The queue dead-letters on receive maxReceiveCount; every receive before it that fails
    comes back after alerts.deliver.backoff(receive)."""
    from alerts.deliver import backoff
    from local.template import ROOT

    receives = resources()["AlertsQueue"]["Properties"]["RedrivePolicy"]["maxReceiveCount"]
    bridged = sum(backoff(n) for n in range(1, receives))
    hours, rest = divmod(bridged, 3600)
    alerts_doc = (ROOT / "docs" / "alerts.md").read_text()
    assert f"**{receives}th** receive" in alerts_doc
    assert f"({bridged:,} s, {hours} h {rest // 60:02d} min" in alerts_doc
    assert f"about {round(bridged / 3600)} hours" in alerts_doc
    visibility = resources()["AlertsQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * resources()["AlertsFunction"]["Properties"]["Timeout"]
