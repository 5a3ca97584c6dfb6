"""The whole system on this machine: moto in server mode on 127.0.0.1, template.yaml translated by
the SAM translator and deployed into it, and the wiring AWS would do, done from the template:

- schedules (AWS::Scheduler::Schedule) start executions with their own input;
- the real ASL executes (moto, with the bridges in local/bridges.py);
- every execution status change is put on EventBridge (moto sends none: the bridge builds it),
  where the template's rules decide what it reaches; a rule's Lambda target is an SQS queue here
  (moto cannot invoke Lambda), drained by invoking the function's handler;
- handlers run in this process with the environment the template gives the function;
- the alerts topic feeds the alerts queue (moto SNS -> SQS), and the queue's event source mapping
  is honoured (batch size) by invoking the alerts function;
- Slack is a webhook sink on 127.0.0.1 that prints what on-call would see; what the email
  subscription would receive is printed too.

Nothing here is needed on AWS; it is how `make local` and tests/e2e/test_local.py run."""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import sys
import time
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from moto.backends import get_backend
from moto.moto_api import state_manager
from moto.server import ThreadedMotoServer

from local.bridges import all_bridges, status_change_event
from local.deploy import (
    FROZEN_TASKS,
    FakeContext,
    cold_start,
    create_queue,
    create_state_machine,
    create_table,
    default_network,
    exit_container,
    register_stack,
    register_task_definition,
    sqs_records,
    wait_for,
)
from local.template import ROOT, Context, translated_template
from local.webhook import WebhookSink

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "lock-janitor"
EMAIL = "oncall@example.com"
MAIL_SHOWN = 3
_EMPTY_ZIP = bytes.fromhex("504b0506" + "00" * 18)  # a zip archive with nothing in it


@dataclass
class Function:
    logical_id: str
    handler: str
    environment: dict[str, str]


@dataclass
class Deployed:
    """Physical ids and the wiring read from the translated template."""

    context: Context
    functions: dict[str, Function] = field(default_factory=dict)
    rule_targets: dict[str, str] = field(default_factory=dict)
    """stand-in SQS queue URL -> the function (logical id) the rule targets"""
    event_sources: list[tuple[str, str, int]] = field(default_factory=list)
    """(queue URL, function logical id, batch size)"""
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    """schedule logical id -> {"target": arn, "input": json text}"""
    on_failure: dict[str, tuple[int, str]] = field(default_factory=dict)
    """function logical id -> (retries of an asynchronous invocation, its on-failure queue URL)"""
    outputs: dict[str, str] = field(default_factory=dict)

    def ref(self, logical_id: str) -> str:
        return str(self.context.refs[logical_id])


class Timeline:
    """What happens, as a person can follow it."""

    def __init__(self, write: Callable[[str], None] | None = None) -> None:
        self.start = time.monotonic()
        # Bound now: handlers run with stdout redirected to their log files, and the Slack
        # sink prints from its own thread meanwhile.
        stream = sys.stdout
        self.write = write or (lambda line: print(line, file=stream, flush=True))

    def say(self, text: str, who: str = "") -> None:
        elapsed = time.monotonic() - self.start
        label = f"{who:<10}" if who else " " * 10
        for i, line in enumerate(text.splitlines() or [""]):
            prefix = f"[{elapsed:6.1f}s] " if i == 0 else " " * 10
            self.write(f"{prefix}{label} {line}")


def _slack_text(body: dict[str, Any]) -> str:
    """A Block Kit message as the lines a person reads in Slack."""
    lines = []
    for block in body.get("blocks", []):
        if "text" in block:
            lines.append(block["text"]["text"])
        for f in block.get("fields", []):
            lines.append(f["text"].replace("\n", ": ", 1))
        for e in block.get("elements", []):
            lines.append(e.get("text", ""))
    text = "\n".join(line if len(line) <= 240 else line[:239] + "…" for line in lines)
    for a, b in (("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
        text = text.replace(a, b)
    return text


class Emulator:
    def __init__(self, timeline: Timeline | None = None, log_dir: Path | None = None) -> None:
        self.timeline = timeline or Timeline()
        self.log_dir = log_dir or ROOT / ".local" / "logs"
        self._stack = contextlib.ExitStack()
        self.endpoint = ""
        self.deployed: Deployed | None = None
        self.sink: WebhookSink | None = None
        self.lost_events: set[str] = set()
        self.seen: dict[str, str] = {}
        self.invocations: list[tuple[str, str]] = []
        """(function, "ok" | error) for every invocation."""
        self.slack_posts: list[dict[str, Any]] = []
        self._mailed = 0
        self._saved_env: dict[str, str | None] = {}
        self._modules: dict[str, Any] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _setenv(self, **values: str) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def start(self) -> None:
        # moto's request log and its interpreter's error log of every Fail state: noise here.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        logging.getLogger("moto").setLevel(logging.CRITICAL)
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._stack.callback(server.stop)
        host, port = server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self._setenv(
            AWS_ENDPOINT_URL=self.endpoint,
            MOTO_PORT=str(port),
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",  # noqa: S106 - moto accepts anything
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
        )
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            self._saved_env.setdefault(key, os.environ.pop(key, None))
        # moto keeps its backends per process: an emulator started after another one starts
        # from an empty account, as a new deploy would.
        self._moto_api("/moto-api/reset", {})
        self._moto_api("/moto-api/config", {"stepfunctions": {"execute_state_machine": True}})
        self._moto_api(
            "/moto-api/state-manager/set-transition",
            {"model_name": "ecs::task", "transition": FROZEN_TASKS},
        )
        self._stack.enter_context(all_bridges())
        self.sink = self._stack.enter_context(WebhookSink(on_post=self._on_slack_post))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cold_start()
        self.timeline.say(f"moto server on {self.endpoint} (no AWS account involved)", "emulator")

    def stop(self) -> None:
        self._stack.close()
        state_manager.unset_transition(model_name="ecs::task")
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_env.clear()
        cold_start()

    def _moto_api(self, path: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            self.endpoint + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            answer.read()

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    # --- deploy -------------------------------------------------------------------------------

    def deploy(self) -> Deployed:
        """template.yaml, translated, with its own parameter defaults and the few values only
        this machine can give (printed)."""
        subnets, groups = default_network(REGION)
        assert self.sink is not None
        secret = self.client("secretsmanager").create_secret(
            Name=f"{STACK}/slack-webhook", SecretString=self.sink.url
        )["ARN"]
        template = translated_template()
        values = {k: v["Default"] for k, v in template["Parameters"].items() if "Default" in v}
        overrides: dict[str, Any] = {
            "Subnets": subnets,
            "SecurityGroups": groups,
            "SlackWebhookSecretArn": secret,
            "AlertsEmail": EMAIL,
            "ReconcileGraceSeconds": 0,
        }
        values.update(overrides)
        self.timeline.say(
            "deploying template.yaml (SAM-translated), defaults except: subnets and security "
            "group of moto's default VPC, the Slack secret (a webhook sink on 127.0.0.1), "
            f"AlertsEmail={EMAIL}, ReconcileGraceSeconds=0 (the demo does not wait 10 minutes)",
            "emulator",
        )
        ctx = Context(template=template, parameters=values, stack_name=STACK, region=REGION)
        deployed = Deployed(ctx)
        pending = {
            k: v
            for k, v in template["Resources"].items()
            if "Condition" not in v or ctx.condition(v["Condition"])
        }
        skipped: list[str] = []
        for _ in range(10):  # passes, until every resource's references resolve
            progress = False
            for logical_id, resource in list(pending.items()):
                try:
                    created = self._create(deployed, logical_id, resource)
                except KeyError:
                    continue
                if not created:
                    skipped.append(f"{logical_id} ({resource['Type']})")
                del pending[logical_id]
                progress = True
            if not pending or not progress:
                break
        if pending:
            raise RuntimeError(f"could not deploy: {sorted(pending)}")
        self.timeline.say(
            f"deployed {len(template['Resources']) - len(skipped)} resources; not emulated "
            f"(nothing to run locally): {len(skipped)} KMS, alarms, dashboard, policies",
            "emulator",
        )
        deployed.outputs = register_stack(
            self.client("cloudformation"), STACK, template.get("Outputs", {}), ctx
        )
        self.deployed = deployed
        return deployed

    def _create(self, d: Deployed, logical_id: str, resource: dict[str, Any]) -> bool:  # noqa: PLR0911, PLR0912, PLR0915
        ctx, kind = d.context, resource["Type"]
        props = resource.get("Properties", {})
        name = f"{STACK}-{logical_id}"
        if kind == "AWS::DynamoDB::Table":
            ctx.refs[logical_id] = name
            ctx.attributes[(logical_id, "Arn")] = create_table(
                self.client("dynamodb"), name, ctx.resolve(props)
            )
            return True
        if kind == "AWS::ECS::Cluster":
            arn = self.client("ecs").create_cluster(clusterName=name)["cluster"]["clusterArn"]
            ctx.refs[logical_id] = name
            ctx.attributes[(logical_id, "Arn")] = arn
            return True
        if kind == "AWS::IAM::Role":  # created, with its trust policy (Lambda checks it exists)
            trust = ctx.resolve(props["AssumeRolePolicyDocument"])
            role = self.client("iam").create_role(
                RoleName=name, AssumeRolePolicyDocument=json.dumps(trust)
            )["Role"]
            ctx.refs[logical_id] = name
            ctx.attributes[(logical_id, "Arn")] = role["Arn"]
            return True
        if kind == "AWS::Logs::LogGroup":
            ctx.refs[logical_id] = name
            ctx.attributes[(logical_id, "Arn")] = (
                f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
            )
            return False
        if kind == "AWS::KMS::Key":
            ctx.refs[logical_id] = f"{logical_id}-key"
            ctx.attributes[(logical_id, "Arn")] = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}"
            return False
        if kind == "AWS::ECS::TaskDefinition":
            ctx.refs[logical_id] = register_task_definition(self.client("ecs"), ctx.resolve(props))
            return True
        if kind == "AWS::SNS::Topic":
            arn = self.client("sns").create_topic(Name=name)["TopicArn"]
            ctx.refs[logical_id] = arn
            ctx.attributes[(logical_id, "TopicName")] = name
            return True
        if kind == "AWS::SQS::Queue":
            url, arn = create_queue(self.client("sqs"), name, ctx.resolve(props))
            ctx.refs[logical_id] = url
            ctx.attributes[(logical_id, "Arn")] = arn
            ctx.attributes[(logical_id, "QueueName")] = name
            return True
        if kind == "AWS::SNS::Subscription":
            p = ctx.resolve(props)
            attributes = {}
            if "RawMessageDelivery" in p:
                attributes["RawMessageDelivery"] = str(p["RawMessageDelivery"]).lower()
            if p.get("FilterPolicy"):
                attributes["FilterPolicy"] = json.dumps(p["FilterPolicy"])
                attributes["FilterPolicyScope"] = p.get("FilterPolicyScope", "MessageAttributes")
            self.client("sns").subscribe(
                TopicArn=p["TopicArn"],
                Protocol=p["Protocol"],
                Endpoint=p["Endpoint"],
                Attributes=attributes,
            )
            return True
        if kind == "AWS::StepFunctions::StateMachine":
            ctx.refs[logical_id] = create_state_machine(
                self.client("stepfunctions"),
                name,
                ctx.resolve(props["DefinitionSubstitutions"]),
                ctx.resolve(props["RoleArn"]),
                props["StateMachineType"],
            )
            ctx.attributes[(logical_id, "Name")] = name
            return True
        if kind == "AWS::Lambda::Function":
            p = ctx.resolve(props)
            env = {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}
            d.functions[logical_id] = Function(logical_id, p["Handler"], env)
            # Created in moto's Lambda too (never invoked there: the handler runs here), so its
            # configuration reads back as on AWS (the CLI reads the reconciler's settings).
            self.client("lambda").create_function(
                FunctionName=name,
                Runtime=p["Runtime"],
                Role=p["Role"],
                Handler=p["Handler"],
                Code={"ZipFile": _EMPTY_ZIP},
                Timeout=int(p.get("Timeout", 3)),
                MemorySize=int(p.get("MemorySize", 128)),
                Environment={"Variables": env},
            )
            ctx.refs[logical_id] = name
            ctx.attributes[(logical_id, "Arn")] = (
                f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"
            )
            return True
        if kind == "AWS::Events::Rule":
            p = ctx.resolve(props)
            events = self.client("events")
            rule_arn = events.put_rule(Name=name, EventPattern=json.dumps(p["EventPattern"]))[
                "RuleArn"
            ]
            targets = []
            for target in p["Targets"]:
                function = next(
                    f for f, a in ctx.attributes.items() if a == target["Arn"] and f[1] == "Arn"
                )[0]
                url, arn = create_queue(self.client("sqs"), f"{name}-{target['Id']}-target")
                d.rule_targets[url] = function
                targets.append({"Id": target["Id"], "Arn": arn})
            events.put_targets(Rule=name, Targets=targets)
            ctx.refs[logical_id] = name
            ctx.attributes[(logical_id, "Arn")] = rule_arn
            return True
        if kind == "AWS::Lambda::EventSourceMapping":
            p = ctx.resolve(props)
            queue_arn = p["EventSourceArn"]
            url = next(
                str(ctx.refs[lid])
                for (lid, attr), v in ctx.attributes.items()
                if attr == "Arn" and v == queue_arn
            )
            function = next(f for f, fn in d.functions.items() if ctx.refs[f] == p["FunctionName"])
            d.event_sources.append((url, function, int(p.get("BatchSize", 10))))
            return True
        if kind == "AWS::Lambda::EventInvokeConfig":
            p = ctx.resolve(props)
            destination = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
            function = next(f for f in d.functions if ctx.refs[f] == p["FunctionName"])
            url = next(
                (
                    str(ctx.refs[lid])
                    for (lid, attr), v in ctx.attributes.items()
                    if attr == "Arn" and v == destination
                ),
                "",
            )
            d.on_failure[function] = (int(p.get("MaximumRetryAttempts", 2)), url)
            return True
        if kind == "AWS::Scheduler::Schedule":
            p = ctx.resolve(props)
            self.client("scheduler").create_schedule(
                Name=p["Name"],
                ScheduleExpression=p["ScheduleExpression"],
                FlexibleTimeWindow=p["FlexibleTimeWindow"],
                State=p.get("State", "ENABLED"),
                Target={k: p["Target"][k] for k in ("Arn", "RoleArn", "Input") if k in p["Target"]},
            )
            d.schedules[logical_id] = {
                "target": p["Target"]["Arn"],
                "input": p["Target"].get("Input", "{}"),
                "expression": p["ScheduleExpression"],
            }
            return True
        # alarms, dashboard, policies, permissions, aliases: nothing to run here, but a name
        ctx.refs.setdefault(logical_id, name)
        return False

    # --- wiring -------------------------------------------------------------------------------

    @property
    def machine_arn(self) -> str:
        assert self.deployed is not None
        return self.deployed.ref("LockingStateMachine")

    def fire_schedule(self, logical_id: str, name: str, **overrides: Any) -> str:
        """What EventBridge Scheduler does at a tick: start the target with the input."""
        assert self.deployed is not None
        schedule = self.deployed.schedules[logical_id]
        document = {**json.loads(schedule["input"]), **overrides}
        arn: str = self.client("stepfunctions").start_execution(
            stateMachineArn=schedule["target"], name=name, input=json.dumps(document)
        )["executionArn"]
        return arn

    def _emit_status_changes(self) -> int:
        sfn = self.client("stepfunctions")
        emitted = 0
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=self.machine_arn):
            for execution in page["executions"]:
                arn, status = execution["executionArn"], execution["status"]
                if self.seen.get(arn) == status:
                    continue
                self.seen[arn] = status
                name = arn.rsplit(":", 1)[1]
                if arn in self.lost_events and status != "RUNNING":
                    self.timeline.say(f"{name} {status}: its status-change event is LOST", "events")
                    continue
                self.put_status_change(status_change_event(sfn, arn))
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
        go to .local/logs/<function>.log."""
        assert self.deployed is not None
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
                        f"{STACK}-{function.logical_id}", region=REGION, account=ACCOUNT
                    )
                    result = getattr(module, attr)(event, context)
                except Exception as err:
                    self.invocations.append((logical_id, f"{type(err).__name__}: {err}"))
                    raise
                finally:
                    handler.stream = previous
        self.invocations.append((logical_id, "ok"))
        return result

    def _drain_rule_targets(self) -> int:
        """EventBridge invokes a Lambda target asynchronously, one event per invocation."""
        assert self.deployed is not None
        sqs = self.client("sqs")
        count = 0
        for url, function in self.deployed.rule_targets.items():
            for _ in range(100):
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
                    self._invoke_async(function, event)
                    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
                    count += 1
        return count

    def _invoke_async(self, function: str, event: dict[str, Any]) -> None:
        """An asynchronous invocation as Lambda makes it: retried (at once here, where AWS
        waits a minute, then two) up to the function's MaximumRetryAttempts, then the record
        of the failure sent to its on-failure destination."""
        assert self.deployed is not None
        retries, destination = self.deployed.on_failure.get(function, (2, ""))
        attempts = retries + 1
        for _ in range(attempts):
            try:
                result = self.invoke(function, event)
            except Exception as err:  # noqa: BLE001 - shown, retried, then dead-lettered
                self.timeline.say(f"FAILED: {type(err).__name__}: {err}", function[:10])
                failure = err
                continue
            self.timeline.say(_summary(result), function[:10])
            return
        if destination:
            record = failure_record(self.deployed.ref(function), event, failure, attempts)
            self.client("sqs").send_message(QueueUrl=destination, MessageBody=json.dumps(record))
            self.timeline.say(f"after {attempts} attempts: to its dead-letter queue", function[:10])

    def _run_event_sources(self) -> int:
        """The SQS event source mapping: batches from the queue to the function, partial batch
        failures honoured."""
        assert self.deployed is not None
        sqs = self.client("sqs")
        count = 0
        for url, function, batch_size in self.deployed.event_sources:
            for _ in range(100):
                records: list[dict[str, Any]] = []
                while len(records) < batch_size:
                    got = sqs.receive_message(
                        QueueUrl=url, MaxNumberOfMessages=min(10, batch_size - len(records))
                    ).get("Messages", [])
                    if not got:
                        break
                    records += sqs_records(got, region=REGION)
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

    def _on_slack_post(self, body: dict[str, Any]) -> None:
        self.slack_posts.append(body)
        self.timeline.say(_slack_text(body), "slack")

    def _print_mail(self) -> None:
        """What on-call's mailbox receives from the email topic (the alerts function's mails and
        the alarms about the alerts path): the first few in full, then a count, as a person
        skims an inbox."""
        sns = get_backend("sns")[ACCOUNT][REGION]
        topic = sns.topics.get(self.deployed.ref("AlertsEmailTopic")) if self.deployed else None
        if topic is None:
            return
        fresh = topic.sent_notifications[self._mailed :]
        self._mailed += len(fresh)
        for _, message, subject, _, _ in fresh[:MAIL_SHOWN]:
            lines = [x for x in str(message).splitlines() if x.strip()]
            self.timeline.say(f"to {EMAIL}: {subject}\n  " + "\n  ".join(lines[:2]), "email")
        if len(fresh) > MAIL_SHOWN:
            self.timeline.say(f"... and {len(fresh) - MAIL_SHOWN} more mails", "email")

    def pump(self, quiet_rounds: int = 2, timeout: float = 60.0) -> None:
        """Run the wiring until nothing moves for `quiet_rounds` rounds (or `timeout`)."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < quiet_rounds and time.monotonic() < deadline:
            moved = self._emit_status_changes()
            moved += self._drain_rule_targets()
            moved += self._run_event_sources()
            self._print_mail()
            quiet = 0 if moved else quiet + 1
            if not moved:
                time.sleep(0.3)

    # --- the world's state ---------------------------------------------------------------------

    def finish_task(self, task_arn: str, exit_code: int) -> None:
        """The container exits: moto never runs one, so the harness says when and how."""
        exit_container(task_arn, exit_code)

    def task_of(self, execution_arn: str, timeout: float = 30.0) -> str:
        sfn = self.client("stepfunctions")

        def submitted() -> str | None:
            history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)
            for e in history["events"]:
                if e["type"] == "TaskSubmitted":
                    output = json.loads(e["taskSubmittedEventDetails"]["output"])
                    return str(output["Tasks"][0]["TaskArn"])
            return None

        task: str = wait_for(submitted, timeout=timeout)
        return task

    def wait_done(self, execution_arn: str, timeout: float = 30.0) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        done: dict[str, Any] = wait_for(
            lambda: (
                (d := sfn.describe_execution(executionArn=execution_arn))["status"] != "RUNNING"
                and d
            ),
            timeout=timeout,
        )
        return done

    def locks(self) -> dict[str, dict[str, str]]:
        assert self.deployed is not None
        items = self.client("dynamodb").scan(
            TableName=self.deployed.ref("LockTable"), ConsistentRead=True
        )["Items"]
        return {i["LockId"]["S"]: {k: next(iter(v.values())) for k, v in i.items()} for i in items}

    def running_tasks(self) -> list[str]:
        assert self.deployed is not None
        ecs = self.client("ecs")
        cluster = str(self.deployed.context.attributes[("Cluster", "Arn")])
        arns = ecs.list_tasks(cluster=cluster)["taskArns"]
        if not arns:
            return []
        found = []
        for i in range(0, len(arns), 100):
            tasks = ecs.describe_tasks(cluster=cluster, tasks=arns[i : i + 100])["tasks"]
            found += [t["taskArn"] for t in tasks if t["lastStatus"] != "STOPPED"]
        return found

    def queue_depth(self, logical_id: str) -> int:
        assert self.deployed is not None
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=self.deployed.ref(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(
            attrs["ApproximateNumberOfMessagesNotVisible"]
        )

    def stop_running_executions(self) -> None:
        sfn = self.client("stepfunctions")
        for e in sfn.list_executions(stateMachineArn=self.machine_arn, statusFilter="RUNNING")[
            "executions"
        ]:
            sfn.stop_execution(executionArn=e["executionArn"])


def failure_record(
    function_name: str, event: dict[str, Any], error: Exception, attempts: int
) -> dict[str, Any]:
    """What Lambda sends an on-failure destination when an asynchronous invocation failed
    every attempt (the record's shape: AWS Lambda Developer Guide, "Capturing records of
    Lambda asynchronous invocations")."""
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function_name}:$LATEST",
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


def _summary(result: Any) -> str:
    if not isinstance(result, dict):
        return str(result)
    keys = ("lockId", "lock", "tasksStopped", "severity", "incidentId")
    parts = [f"{k}={result[k]}" for k in keys if result.get(k) not in (None, [], "")]
    return "healed: " + ", ".join(parts) if parts else json.dumps(result)[:200]
