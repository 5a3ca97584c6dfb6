"""The wiring AWS does between the deployed resources, which moto does not, played in this
process from what the deployer recorded (local/deployer.py):

- every execution status change is put on EventBridge (moto sends none: the bridge builds it in
  the documented shape), where the template's rules decide what it reaches;
- a rule's Lambda target is an SQS queue here (moto cannot invoke Lambda): each event in it is an
  asynchronous invocation, retried as Lambda retries it, then recorded to the function's
  on-failure destination;
- an SQS event source mapping hands batches to its function (batch size, partial batch failures);
- handlers run in this process with the environment the template gives the function, their log
  lines in <log dir>/<function>.log;
- what the email topic sends on-call is read off moto's topic and shown."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.backends import get_backend

from local.bridges import status_change_event
from local.deployer import Deployed, Function
from local.harness import FakeContext, sqs_records
from local.timeline import Timeline, summary

MAIL_SHOWN = 3
_BATCHES_PER_STEP = 100  # every loop bounded: a step moves at most this many batches per queue


class Wiring:
    def __init__(
        self,
        deployed: Deployed,
        client: Callable[[str], Any],
        timeline: Timeline,
        log_dir: Path,
        *,
        email: str,
    ) -> None:
        self.deployed = deployed
        self.client = client
        self.timeline = timeline
        self.log_dir = log_dir
        self.email = email
        self.lost_events: set[str] = set()
        """Executions whose status-change events (but RUNNING) never reach EventBridge."""
        self.seen: dict[str, str] = {}
        """execution ARN -> the last status an event was put for"""
        self.invocations: list[tuple[str, str]] = []
        """(function, "ok" | error) for every invocation."""
        self._mailed = 0
        self._modules: dict[str, Any] = {}

    @property
    def _ctx(self) -> Any:
        return self.deployed.context

    def step(self) -> int:
        """One round of everything: how many things moved."""
        moved = self.emit_status_changes()
        moved += self.drain_rule_targets()
        moved += self.run_event_sources()
        self.show_mail()
        return moved

    # --- Step Functions -> EventBridge --------------------------------------------------------

    def emit_status_changes(self) -> int:
        sfn = self.client("stepfunctions")
        machine = self.deployed.ref("LockingStateMachine")
        emitted = 0
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine):
            for execution in page["executions"]:
                arn, status = execution["executionArn"], execution["status"]
                if self.seen.get(arn) == status:
                    continue
                self.seen[arn] = status
                name = arn.rsplit(":", 1)[1]
                if arn in self.lost_events and status != "RUNNING":
                    self.timeline.say(f"{name} {status}: its status-change event is LOST", "events")
                    continue
                # The event of the status seen in the listing, not of what DescribeExecution
                # says a moment later: a run listed RUNNING that has just ended gets its RUNNING
                # event now and its ending's event at the next look, each once, as on AWS.
                count = execution.get("redriveCount")
                self.put_status_change(
                    status_change_event(
                        sfn, arn, status=status, redrive_count=None if count is None else int(count)
                    )
                )
                emitted += 1
        return emitted

    def put_status_change(self, event: dict[str, Any]) -> None:
        self.client("events").put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event["resources"],
                }
            ]
        )

    # --- Lambda -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _function_env(self, function: Function) -> Iterator[None]:
        saved = {k: os.environ.get(k) for k in function.environment}
        os.environ.update(function.environment)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Run a function's handler here, with the template's environment for it; its log lines
        go to <log dir>/<function>.log."""
        function = self.deployed.functions[logical_id]
        module_name, _, attr = function.handler.rpartition(".")
        with self._function_env(function):
            if module_name not in self._modules:
                self._modules[module_name] = importlib.import_module(module_name)
            module = self._modules[module_name]
            log = self.log_dir / f"{logical_id}.log"
            with log.open("a") as sink, contextlib.redirect_stdout(sink):
                handler = module.logger.registered_handler
                previous, handler.stream = handler.stream, sink
                try:
                    context = FakeContext(
                        self.deployed.ref(logical_id),
                        region=self._ctx.region,
                        account=self._ctx.account_id,
                    )
                    result = getattr(module, attr)(event, context)
                except Exception as err:
                    self.invocations.append((logical_id, f"{type(err).__name__}: {err}"))
                    raise
                finally:
                    handler.stream = previous
        self.invocations.append((logical_id, "ok"))
        return result

    def drain_rule_targets(self) -> int:
        """EventBridge invokes a Lambda target asynchronously, one event per invocation."""
        sqs = self.client("sqs")
        count = 0
        for url, function in self.deployed.rule_targets.items():
            for _ in range(_BATCHES_PER_STEP):
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get(
                    "Messages", []
                )
                if not messages:
                    break
                for message in messages:
                    event = json.loads(message["Body"])
                    detail = event.get("detail", {})
                    name = str(detail.get("executionArn", "?")).rsplit(":", 1)[-1]
                    redrive = (
                        f", redriveCount {detail['redriveCount']}"
                        if detail.get("redriveCount")
                        else ""
                    )
                    self.timeline.say(
                        f"{name} {detail.get('status')}{redrive} -> rule {function}", "events"
                    )
                    self.invoke_async(function, event)
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    count += 1
        return count

    def invoke_async(self, function: str, event: dict[str, Any]) -> None:
        """An asynchronous invocation as Lambda makes it: retried (at once here, where AWS
        waits a minute, then two) up to the function's MaximumRetryAttempts, then the record
        of the failure sent to its on-failure destination."""
        retries, destination = self.deployed.on_failure.get(function, (2, ""))
        attempts = retries + 1
        for _ in range(attempts):
            try:
                result = self.invoke(function, event)
            except Exception as err:  # noqa: BLE001 - shown, retried, then dead-lettered
                self.timeline.say(f"FAILED: {type(err).__name__}: {err}", function[:10])
                failure = err
                continue
            self.timeline.say(summary(result), function[:10])
            return
        if destination:
            record = failure_record(self.deployed.arn(function), event, failure, attempts)
            self.client("sqs").send_message(QueueUrl=destination, MessageBody=json.dumps(record))
            self.timeline.say(f"after {attempts} attempts: to its dead-letter queue", function[:10])

    def run_event_sources(self) -> int:
        """The SQS event source mapping: batches from the queue to the function, partial batch
        failures honoured."""
        sqs = self.client("sqs")
        count = 0
        for url, function, batch_size in self.deployed.event_sources:
            for _ in range(_BATCHES_PER_STEP):
                records: list[dict[str, Any]] = []
                while len(records) < batch_size:
                    got = sqs.receive_message(
                        QueueUrl=url, MaxNumberOfMessages=min(10, batch_size - len(records))
                    ).get("Messages", [])
                    if not got:
                        break
                    records += sqs_records(got, region=self._ctx.region)
                if not records:
                    break
                self.timeline.say(f"{len(records)} message(s) from the alerts queue", function[:10])
                response = self.invoke(function, {"Records": records})
                failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
                for r in records:
                    if r["messageId"] not in failed:
                        sqs.delete_message(QueueUrl=url, ReceiptHandle=r["receiptHandle"])
                count += 1
        return count

    # --- SNS email ----------------------------------------------------------------------------

    def show_mail(self) -> None:
        """What on-call's mailbox receives from the email topic (the alerts function's mails and
        the alarms about the alerts path): the first few in full, then a count, as a person
        skims an inbox."""
        sns = get_backend("sns")[self._ctx.account_id][self._ctx.region]
        topic = sns.topics.get(self.deployed.ref("AlertsEmailTopic"))
        if topic is None:
            return
        fresh = topic.sent_notifications[self._mailed :]
        self._mailed += len(fresh)
        for _, message, subject, _, _ in fresh[:MAIL_SHOWN]:
            lines = [x for x in str(message).splitlines() if x.strip()]
            self.timeline.say(f"to {self.email}: {subject}\n  " + "\n  ".join(lines[:2]), "email")
        if len(fresh) > MAIL_SHOWN:
            self.timeline.say(f"... and {len(fresh) - MAIL_SHOWN} more mails", "email")


def failure_record(
    function_arn: str, event: dict[str, Any], error: Exception, attempts: int
) -> dict[str, Any]:
    """What Lambda sends an on-failure destination when an asynchronous invocation failed
    every attempt (the record's shape: AWS Lambda Developer Guide, "Capturing records of
    Lambda asynchronous invocations")."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"{function_arn}:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": attempts,
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
    }
