"""The whole system on this machine: moto in server mode on 127.0.0.1, template.yaml translated by
the SAM translator and deployed into it by the one deployer (local/deployer.py), and the wiring AWS
would do played between the resources (local/wiring.py):

- schedules (AWS::Scheduler::Schedule) start executions with their own input;
- the real ASL executes (moto, with the bridges in local/bridges.py);
- status changes reach the template's rules, rules invoke the janitor, the alerts queue feeds the
  alerts function, handlers run in this process with the environment the template gives them;
- Slack is a webhook sink on 127.0.0.1 that prints what on-call would see (local/timeline.py);
  what the email subscription would receive is printed too.

The stack is registered in moto's CloudFormation with its outputs, so the CLI finds it from the
endpoint alone, as it finds a stack on AWS. Nothing here is needed on AWS; it is how `make local`,
`make local SERVE=1` and the end-to-end tests run."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import boto3
from moto.moto_api import state_manager
from moto.server import ThreadedMotoServer

from local.bridges import all_bridges
from local.deployer import Deployed, deploy
from local.harness import FROZEN_TASKS, cold_start, default_network, exit_container, wait_for
from local.template import ROOT, translated_template
from local.timeline import Timeline, slack_text
from local.webhook import WebhookSink
from local.wiring import Wiring

REGION = "us-east-1"
ACCOUNT = "123456789012"
STACK = "lock-janitor"
EMAIL = "oncall@example.com"


class Emulator:
    def __init__(self, timeline: Timeline | None = None, log_dir: Path | None = None) -> None:
        self.timeline = timeline or Timeline()
        self.log_dir = log_dir or ROOT / ".local" / "logs"
        self._stack = contextlib.ExitStack()
        self.endpoint = ""
        self.deployed: Deployed | None = None
        self.wiring: Wiring | None = None
        self.sink: WebhookSink | None = None
        self.slack_posts: list[dict[str, Any]] = []
        self.slack_post_times: list[float] = []
        """time.monotonic() of each post the sink received"""
        self._saved_env: dict[str, str | None] = {}

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
        self.timeline.say(
            "deploying template.yaml (SAM-translated), defaults except: subnets and security "
            "group of moto's default VPC, the Slack secret (a webhook sink on 127.0.0.1), "
            f"AlertsEmail={EMAIL}, ReconcileGraceSeconds=0 (the demo does not wait 10 minutes)",
            "emulator",
        )
        template = translated_template()
        deployed = deploy(
            template,
            self.client,
            parameters={
                "Subnets": subnets,
                "SecurityGroups": groups,
                "SlackWebhookSecretArn": secret,
                "AlertsEmail": EMAIL,
                "ReconcileGraceSeconds": 0,
            },
            stack_name=STACK,
            region=REGION,
            account_id=ACCOUNT,
        )
        self.timeline.say(
            f"deployed {len(template['Resources']) - len(deployed.skipped)} resources; not "
            f"emulated (nothing to run locally): {len(deployed.skipped)} KMS, alarms, dashboard, "
            "policies",
            "emulator",
        )
        self.deployed = deployed
        self.wiring = Wiring(deployed, self.client, self.timeline, self.log_dir, email=EMAIL)
        return deployed

    # --- wiring -------------------------------------------------------------------------------

    def _wired(self) -> Wiring:
        if self.wiring is None:
            raise RuntimeError("deploy() first: nothing is wired before the stack exists")
        return self.wiring

    @property
    def lost_events(self) -> set[str]:
        """Executions whose status-change events (but RUNNING) never reach EventBridge."""
        return self._wired().lost_events

    @property
    def invocations(self) -> list[tuple[str, str]]:
        """(function, "ok" | error) for every invocation."""
        return self._wired().invocations

    @property
    def machine_arn(self) -> str:
        return self._wired().deployed.ref("LockingStateMachine")

    def fire_schedule(self, logical_id: str, name: str, **overrides: Any) -> str:
        """What EventBridge Scheduler does at a tick: start the target with the input."""
        schedule = self._wired().deployed.schedules[logical_id]
        document = {**json.loads(schedule["input"]), **overrides}
        arn: str = self.client("stepfunctions").start_execution(
            stateMachineArn=schedule["target"], name=name, input=json.dumps(document)
        )["executionArn"]
        return arn

    def invoke(self, logical_id: str, event: Any) -> Any:
        """Run a function's handler here, as Lambda would (local/wiring.py)."""
        return self._wired().invoke(logical_id, event)

    def _on_slack_post(self, body: dict[str, Any]) -> None:
        self.slack_post_times.append(time.monotonic())
        self.slack_posts.append(body)
        self.timeline.say(slack_text(body), "slack")

    def pump(self, quiet_rounds: int = 2, timeout: float = 60.0) -> None:
        """Run the wiring until nothing moves for `quiet_rounds` rounds (or `timeout`)."""
        wiring = self._wired()
        deadline = time.monotonic() + timeout
        quiet = 0
        while quiet < quiet_rounds and time.monotonic() < deadline:
            moved = wiring.step()
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
