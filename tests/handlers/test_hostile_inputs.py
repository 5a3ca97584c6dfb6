"""Malformed and hostile inputs, kept as files in tests/fixtures/hostile/<handler>/, run through
the handler they target, as Lambda would call it.

Each file says what it is (`why`) and what must come of it (`expect`):
- janitor: `refused` (it raises with an ERROR line: Lambda retries, then the dead-letter
  queue), or `healed` (the execution is healed as the truth shows it, whatever the event says);
- reconciler: `refused` (it raises with an ERROR line; nothing is touched);
- alerts: `failed` (the record is reported failed with an ERROR line: back to the queue, then
  the dead-letter queue; never acknowledged and lost) or `posted` (delivered once, escaped).
And for every case: no crash outside the handler's own errors, nothing unescaped reaches Slack,
and every link posted points at the AWS console of the function's own region."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local.harness import received_incidents, settle
from local.template import ROOT
from tests.handlers.conftest import Janitor, Reconcile
from tests.handlers.test_alerts import Alerts, make_alerts  # noqa: F401 - a fixture
from tests.support.logs import captured
from tests.support.machine import Machine

CORPUS = ROOT / "tests" / "fixtures" / "hostile"
CASES = sorted(CORPUS.glob("*/*.json"))
REGION = "us-east-1"
LINK = re.compile(r"<([^<>|]*)(\|[^<>]*)?>")


def test_the_corpus_covers_every_handler_with_thirty_cases_or_more() -> None:
    assert len(CASES) >= 30
    assert {p.parent.name for p in CASES} == {"janitor", "reconciler", "alerts"}


def load(path: Path) -> dict[str, Any]:
    case: dict[str, Any] = json.loads(path.read_text())
    assert case["why"]
    return case


def substituted(payload: Any, values: dict[str, str]) -> Any:
    text = json.dumps(payload)
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", json.dumps(value)[1:-1])
    return json.loads(text)


def errors(buffer: io.StringIO) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in buffer.getvalue().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("level") == "ERROR"]


def mrkdwn(body: dict[str, Any]) -> list[str]:
    """Every text Slack parses for mentions and links (plain_text it shows as it is)."""
    texts = [str(body.get("text", ""))]
    for block in body.get("blocks", []):
        parts = [block.get("text"), *block.get("fields", []), *block.get("elements", [])]
        texts += [p["text"] for p in parts if isinstance(p, dict) and p.get("type") == "mrkdwn"]
    return texts


def assert_safe_for_slack(body: dict[str, Any]) -> None:
    """Nothing that pings or links anywhere but this region's console."""
    for text in mrkdwn(body):
        for needle in ("<!", "<@", "<#"):
            assert needle not in text, needle
        for match in LINK.finditer(text):
            assert match.group(1).startswith(f"https://{REGION}.console.aws.amazon.com/"), text


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_hostile_input_is_handled_or_refused_loudly(
    path: Path, request: pytest.FixtureRequest
) -> None:
    case = load(path)
    handler = path.parent.name
    if handler == "janitor":
        run_janitor(case, request.getfixturevalue("janitor"), request.getfixturevalue("machine"))
    elif handler == "reconciler":
        run_reconciler(case, request.getfixturevalue("reconcile"))
    else:
        run_alerts(case, request.getfixturevalue("make_alerts"))


def run_janitor(case: dict[str, Any], janitor: Janitor, machine: Machine) -> None:
    from janitor.handler import logger

    arn, task = machine.abort("hostile")
    described = machine.describe(arn)
    event = substituted(
        case["payload"],
        {
            "EXECUTION_ARN": arn,
            "EXECUTION_NAME": described["name"],
            "EXECUTION_INPUT": described["input"],
        },
    )
    with captured(logger) as buffer:
        if case["expect"] == "refused":
            with pytest.raises(Exception):  # noqa: B017, PT011 - any error Lambda retries
                janitor(event)
            assert errors(buffer), "refused without an ERROR line"
            assert machine.lock("sample").get("Owner") == arn, "a refused event changed a lock"
            assert received_incidents(machine.stack) == []
            return
        janitor(event)
    lock = machine.lock("sample")
    assert "Owner" not in lock, "the execution's own lock is released"
    assert lock["LastOwner"] == arn
    assert machine.task_status(task)["lastStatus"] == "STOPPED"
    assert machine.lock("someone-elses-lock") == {}, "a lock the event names is never touched"
    (note,) = received_incidents(machine.stack)
    incident = json.loads(note["Message"])
    assert incident["lockId"] == "sample"
    assert incident["execution"]["consoleUrl"].startswith(f"https://{REGION}.console.")
    assert len(note["Message"].encode()) <= 256 * 1024
    assert note.get("Subject", "").isascii()


def run_reconciler(case: dict[str, Any], reconcile: Reconcile) -> None:
    from reconciler.handler import logger

    before = reconcile.machine.start("live")
    reconcile.machine.wait_task_of(before)
    with captured(logger) as buffer, pytest.raises(ValueError, match=r"."):
        reconcile(case["payload"])
    assert errors(buffer), "refused without an ERROR line"
    assert reconcile.machine.describe(before)["status"] == "RUNNING"


def run_alerts(case: dict[str, Any], make: Callable[..., Alerts]) -> None:
    import boto3

    alerts = make()
    sqs = boto3.client("sqs", region_name=REGION)
    bodies = [str(b).replace("{{N}}", str(i)) for i, b in enumerate(case["payload"])]
    for body in bodies:
        sqs.send_message(QueueUrl=alerts.pipe.queue_url, MessageBody=body)
    event, response = alerts.run(now=False)
    assert len(event["Records"]) == len(bodies)
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    if case["expect"] == "failed":
        assert failed == {r["messageId"] for r in event["Records"]}, "acknowledged and lost"
        assert errors(alerts.logs), "failed without an ERROR line"
        assert alerts.sink.posts == []
    else:
        assert failed == set(), "a readable notification was not delivered"
        posts = alerts.sink.ok_posts()
        assert len(posts) == len(bodies), "each notification posted once"
        for post in posts:
            assert_safe_for_slack(post.body)
        for mail in alerts.mails():
            assert len(mail["Subject"]) <= 100
            assert mail["Subject"].isascii()
            assert "evil.example" not in mail["Message"]
    settle(alerts.pipe, REGION, event, response)
