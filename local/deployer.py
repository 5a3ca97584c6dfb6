"""One deployer: template.yaml, translated by the SAM translator as `sam deploy` has it translated,
created in moto resource by resource, with the wiring AWS would do recorded for whoever plays it.

It serves `make local` (moto in server mode, clients bound to its endpoint), the tests (moto in
this process) and so the CLI (which finds the deployed stack as it finds one on AWS): they are
given clients, never a different template.

moto's CloudFormation cannot create this template (a state machine it creates cannot run, and
SAM's output holds types it does not know: a moto gap), so each resource is created through its
own API from its own resolved properties, in passes until every reference resolves, and the stack
is then registered with its outputs (`register_stack`). What cannot run here (KMS keys, alarms,
the dashboard, policies, permissions) is named but not created, and listed in `skipped`.

Wiring moto does not do, recorded for the caller to play (local/wiring.py):
- a rule's Lambda target: an SQS queue stands in (moto cannot invoke Lambda); the queue's
  messages are the events the function would get;
- an SQS event source mapping: (queue, function, batch size);
- an asynchronous invocation's retries and on-failure destination;
- a schedule's target and input."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from local.template import ASL_PATH, Context, parameter_defaults, substitute_definition

Clients = Callable[[str], Any]
"""service name -> a boto3 client of the account deployed into"""

_EMPTY_ZIP = bytes.fromhex("504b0506" + "00" * 18)  # a zip archive with nothing in it
_PASSES = 10  # the template's references are at most a few resources deep

# ECS task definition properties as the template spells them -> as the ECS API does.
_CONTAINER_KEYS = {
    "Name": "name",
    "Image": "image",
    "Essential": "essential",
    "Memory": "memory",
    "Command": "command",
    "Environment": "environment",
}


@dataclass
class Function:
    logical_id: str
    handler: str
    environment: dict[str, str]
    """Globals and its own variables, resolved: what Lambda gives the handler."""


@dataclass
class Deployed:
    """Physical ids, resolved properties, and the wiring read from the translated template."""

    context: Context
    functions: dict[str, Function] = field(default_factory=dict)
    rule_targets: dict[str, str] = field(default_factory=dict)
    """stand-in SQS queue URL -> the function (logical id) the rule targets"""
    event_sources: list[tuple[str, str, int]] = field(default_factory=list)
    """(queue URL, function logical id, batch size)"""
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    """schedule logical id -> {"target": arn, "input": json text, "expression": ...}"""
    on_failure: dict[str, tuple[int, str]] = field(default_factory=dict)
    """function logical id -> (retries of an asynchronous invocation, its on-failure queue URL)"""
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    """logical id -> its properties as resolved when it was created"""
    definitions: dict[str, dict[str, Any]] = field(default_factory=dict)
    """state machine logical id -> its definition, substituted as CloudFormation does"""
    outputs: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    """"logical id (type)" of each resource named but not created: nothing to run here"""

    def ref(self, logical_id: str) -> str:
        return str(self.context.refs[logical_id])

    def arn(self, logical_id: str) -> str:
        return str(self.context.attributes[(logical_id, "Arn")])


def deploy(
    template: Mapping[str, Any],
    clients: Clients,
    *,
    parameters: Mapping[str, Any] | None = None,
    properties: Mapping[str, Mapping[str, Any]] | None = None,
    stack_name: str = "lock-janitor",
    region: str = "us-east-1",
    account_id: str = "123456789012",
) -> Deployed:
    """Create every resource of the (translated) template whose condition holds. `parameters`
    override the template's defaults; `properties` override a resource's properties by logical id
    (what no parameter reaches, such as a queue's visibility timeout in a test)."""
    made: dict[str, Any] = {}

    def client(service: str) -> Any:  # one client per service for the whole deploy
        if service not in made:
            made[service] = clients(service)
        return made[service]

    values = parameter_defaults(template)
    values.update(parameters or {})
    ctx = Context(
        template=template,
        parameters=values,
        stack_name=stack_name,
        region=region,
        account_id=account_id,
    )
    deployed = Deployed(ctx)
    pending = {
        k: v
        for k, v in template["Resources"].items()
        if "Condition" not in v or ctx.condition(v["Condition"])
    }
    waits_for: dict[str, str] = {}
    for _ in range(_PASSES):
        progress = False
        for logical_id, resource in list(pending.items()):
            props = {**resource.get("Properties", {}), **(properties or {}).get(logical_id, {})}
            try:
                _create(client, deployed, logical_id, resource["Type"], props)
            except KeyError as missing:  # a reference to what is not created yet: next pass
                waits_for[logical_id] = str(missing)
                continue
            del pending[logical_id]
            progress = True
        if not pending or not progress:
            break
    if pending:
        unresolved = ", ".join(f"{k} (needs {waits_for[k]})" for k in sorted(pending))
        raise RuntimeError(f"could not deploy: {unresolved}")
    deployed.outputs = register_stack(
        client("cloudformation"), stack_name, template.get("Outputs", {}), ctx
    )
    return deployed


# --- one resource -----------------------------------------------------------------------------


def _create(
    clients: Clients, d: Deployed, logical_id: str, kind: str, props: dict[str, Any]
) -> None:
    ctx = d.context
    name = f"{ctx.stack_name}-{logical_id}"
    creator = _CREATORS.get(kind)
    if creator is None:
        # alarms, dashboard, policies, permissions, aliases: nothing to run here, but a name
        ctx.refs.setdefault(logical_id, name)
        d.skipped.append(f"{logical_id} ({kind})")
        return
    resolved = ctx.resolve(props)  # KeyError until what it references exists
    creator(clients, d, logical_id, name, resolved)
    d.properties[logical_id] = resolved


def _table(clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]) -> None:
    d.context.refs[logical_id] = name
    d.context.attributes[(logical_id, "Arn")] = create_table(clients("dynamodb"), name, p)


def _cluster(clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]) -> None:
    arn = clients("ecs").create_cluster(clusterName=name)["cluster"]["clusterArn"]
    d.context.refs[logical_id] = name
    d.context.attributes[(logical_id, "Arn")] = arn


def _role(clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]) -> None:
    """Created with its trust policy (Lambda checks that a function's role exists)."""
    role = clients("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(p["AssumeRolePolicyDocument"])
    )["Role"]
    d.context.refs[logical_id] = name
    d.context.attributes[(logical_id, "Arn")] = role["Arn"]


def _named_only(arn_of: Callable[[Context, str], str]) -> Callable[..., None]:
    """A resource with nothing to run here, whose name and ARN others reference."""

    def create(clients: Clients, d: Deployed, logical_id: str, name: str, p: Any) -> None:
        d.context.refs[logical_id] = name
        d.context.attributes[(logical_id, "Arn")] = arn_of(d.context, name)
        d.skipped.append(f"{logical_id} (named only)")

    return create


def _task_definition(
    clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]
) -> None:
    d.context.refs[logical_id] = register_task_definition(clients("ecs"), p)


def _topic(clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]) -> None:
    d.context.refs[logical_id] = clients("sns").create_topic(Name=name)["TopicArn"]
    d.context.attributes[(logical_id, "TopicName")] = name


def _queue(clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]) -> None:
    url, arn = create_queue(clients("sqs"), name, p)
    d.context.refs[logical_id] = url
    d.context.attributes[(logical_id, "Arn")] = arn
    d.context.attributes[(logical_id, "QueueName")] = name


def _subscription(
    clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]
) -> None:
    attributes = {}
    if "RawMessageDelivery" in p:
        attributes["RawMessageDelivery"] = str(p["RawMessageDelivery"]).lower()
    if p.get("FilterPolicy"):
        attributes["FilterPolicy"] = json.dumps(p["FilterPolicy"])
        attributes["FilterPolicyScope"] = p.get("FilterPolicyScope", "MessageAttributes")
    arn = clients("sns").subscribe(
        TopicArn=p["TopicArn"],
        Protocol=p["Protocol"],
        Endpoint=p["Endpoint"],
        Attributes=attributes,
    )["SubscriptionArn"]
    d.context.refs[logical_id] = arn


def _state_machine(
    clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]
) -> None:
    substitutions = {k: str(v) for k, v in p.get("DefinitionSubstitutions", {}).items()}
    definition = substitute_definition(ASL_PATH.read_text(), substitutions)
    arn = create_state_machine(
        clients("stepfunctions"), name, definition, p["RoleArn"], p["StateMachineType"]
    )
    d.context.refs[logical_id] = arn
    d.context.attributes[(logical_id, "Name")] = name
    d.definitions[logical_id] = json.loads(definition)


def _function(clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]) -> None:
    env = {k: str(v) for k, v in p.get("Environment", {}).get("Variables", {}).items()}
    d.functions[logical_id] = Function(logical_id, p["Handler"], env)
    # Created in moto's Lambda too (never invoked there: the handler runs in this process), so
    # its configuration reads back as on AWS (the CLI reads the reconciler's settings).
    arn = clients("lambda").create_function(
        FunctionName=name,
        Runtime=p["Runtime"],
        Role=p["Role"],
        Handler=p["Handler"],
        Code={"ZipFile": _EMPTY_ZIP},
        Timeout=int(p.get("Timeout", 3)),
        MemorySize=int(p.get("MemorySize", 128)),
        Environment={"Variables": env},
    )["FunctionArn"]
    d.context.refs[logical_id] = name
    d.context.attributes[(logical_id, "Arn")] = arn


def _owner_of(d: Deployed, arn: str) -> str:
    """The logical id of the created resource whose ARN this is."""
    return next(
        lid for (lid, attr), v in d.context.attributes.items() if attr == "Arn" and v == arn
    )


def _rule(clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]) -> None:
    events = clients("events")
    arn = events.put_rule(Name=name, EventPattern=json.dumps(p["EventPattern"]))["RuleArn"]
    targets = []
    for target in p["Targets"]:
        function = _owner_of(d, target["Arn"])
        url, queue_arn = create_queue(clients("sqs"), f"{name}-{target['Id']}-target")
        d.rule_targets[url] = function
        targets.append({"Id": target["Id"], "Arn": queue_arn})
    events.put_targets(Rule=name, Targets=targets)
    d.context.refs[logical_id] = name
    d.context.attributes[(logical_id, "Arn")] = arn


def _function_named(d: Deployed, name_or_arn: str) -> str:
    return next(f for f in d.functions if name_or_arn in {d.ref(f), d.arn(f)})


def _event_source(
    clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]
) -> None:
    url = d.ref(_owner_of(d, p["EventSourceArn"]))
    function = _function_named(d, p["FunctionName"])
    d.event_sources.append((url, function, int(p.get("BatchSize", 10))))
    d.context.refs[logical_id] = name


def _invoke_config(
    clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]
) -> None:
    destination = p.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
    function = _function_named(d, p["FunctionName"])
    url = d.ref(_owner_of(d, destination)) if destination else ""
    d.on_failure[function] = (int(p.get("MaximumRetryAttempts", 2)), url)
    d.context.refs[logical_id] = name


def _schedule(clients: Clients, d: Deployed, logical_id: str, name: str, p: dict[str, Any]) -> None:
    clients("scheduler").create_schedule(
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
    d.context.refs[logical_id] = p["Name"]


_CREATORS: dict[str, Callable[..., None]] = {
    "AWS::DynamoDB::Table": _table,
    "AWS::ECS::Cluster": _cluster,
    "AWS::IAM::Role": _role,
    "AWS::Logs::LogGroup": _named_only(
        lambda c, name: f"arn:aws:logs:{c.region}:{c.account_id}:log-group:{name}:*"
    ),
    "AWS::KMS::Key": _named_only(
        lambda c, name: f"arn:aws:kms:{c.region}:{c.account_id}:key/{name}"
    ),
    "AWS::ECS::TaskDefinition": _task_definition,
    "AWS::SNS::Topic": _topic,
    "AWS::SQS::Queue": _queue,
    "AWS::SNS::Subscription": _subscription,
    "AWS::StepFunctions::StateMachine": _state_machine,
    "AWS::Lambda::Function": _function,
    "AWS::Events::Rule": _rule,
    "AWS::Lambda::EventSourceMapping": _event_source,
    "AWS::Lambda::EventInvokeConfig": _invoke_config,
    "AWS::Scheduler::Schedule": _schedule,
}


# --- through each resource's own API ------------------------------------------------------------


def create_table(ddb: Any, name: str, props: Mapping[str, Any]) -> str:
    """A DynamoDB table as the template describes it; returns its ARN."""
    ddb.create_table(
        TableName=name,
        KeySchema=props["KeySchema"],
        AttributeDefinitions=props["AttributeDefinitions"],
        BillingMode=props["BillingMode"],
    )
    if "TimeToLiveSpecification" in props:
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
        )
    arn: str = ddb.describe_table(TableName=name)["Table"]["TableArn"]
    return arn


def register_task_definition(ecs: Any, props: Mapping[str, Any]) -> str:
    """An ECS task definition from its CloudFormation properties; returns its ARN."""
    containers = []
    for c in props["ContainerDefinitions"]:
        container = {_CONTAINER_KEYS[k]: v for k, v in c.items() if k in _CONTAINER_KEYS}
        if "LogConfiguration" in c:  # where the incident's log link points
            log = c["LogConfiguration"]
            container["logConfiguration"] = {
                "logDriver": log["LogDriver"],
                "options": {k: str(v) for k, v in log.get("Options", {}).items()},
            }
        containers.append(container)
    arn: str = ecs.register_task_definition(
        family=props["Family"],
        requiresCompatibilities=props["RequiresCompatibilities"],
        networkMode=props["NetworkMode"],
        cpu=props["Cpu"],
        memory=props["Memory"],
        executionRoleArn=props["ExecutionRoleArn"],
        taskRoleArn=props["TaskRoleArn"],
        containerDefinitions=containers,
    )["taskDefinition"]["taskDefinitionArn"]
    return arn


def create_state_machine(sfn: Any, name: str, definition: str, role_arn: str, kind: str) -> str:
    """A state machine through the API (moto runs only those); returns its ARN."""
    arn: str = sfn.create_state_machine(
        name=name, definition=definition, roleArn=role_arn, type=kind
    )["stateMachineArn"]
    return arn


def create_queue(sqs: Any, name: str, props: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """An SQS queue with what the emulation needs of its resolved template properties
    (visibility timeout, redrive policy); returns (URL, ARN)."""
    props = props or {}
    attributes = {
        key: json.dumps(props[key]) if isinstance(props[key], dict) else str(props[key])
        for key in ("VisibilityTimeout", "RedrivePolicy")
        if key in props
    }
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def register_stack(cfn: Any, name: str, outputs: Mapping[str, Any], ctx: Context) -> dict[str, str]:
    """Gap: moto's CloudFormation cannot create this template (see the module's docstring), so
    the stack is registered here with its outputs only, resolved as CloudFormation would:
    DescribeStacks then answers as it does on AWS (the CLI finds everything from it). Returns
    the outputs."""
    values: dict[str, str] = {}
    body: dict[str, Any] = {
        "Resources": {"Registered": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {},
    }
    for key, output in outputs.items():
        if "Condition" in output and not ctx.condition(output["Condition"]):
            continue
        value = ctx.resolve(output["Value"])
        values[key] = ",".join(value) if isinstance(value, list) else str(value)
        body["Outputs"][key] = {"Value": values[key], "Description": output.get("Description", "")}
    with warnings.catch_warnings():  # moto: "WaitConditionHandle ... not supported": none needed
        warnings.simplefilter("ignore")
        cfn.create_stack(StackName=name, TemplateBody=json.dumps(body))
    return values
