"""Read template.yaml and resolve the intrinsic functions it uses, so tests and the local
emulation take their facts (key schema, substitutions, schedule inputs, ...) from the template
itself rather than from a second copy."""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from samcli.yamlhelper import yaml_parse
from samtranslator.translator.transform import transform

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"
ASL_PATH = ROOT / "statemachine" / "locking.asl.json"

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_:.]+)\}")


@cache
def _parsed(path: Path) -> Any:
    return yaml_parse(path.read_text())


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain dicts ({"Ref": ...} for !Ref); cached, so treat it as read-only."""
    parsed: dict[str, Any] = _parsed(path)
    return parsed


def parameter_defaults(template: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in template.get("Parameters", {}).items():
        if "Default" in spec:
            out[name] = spec["Default"]
    return out


@dataclass
class Context:
    """What intrinsic functions resolve against: parameter values, pseudo parameters, and the
    physical ids and attributes of resources already created."""

    template: Mapping[str, Any]
    parameters: dict[str, Any]
    stack_name: str = "lock-janitor"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    partition: str = "aws"
    refs: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def pseudo(self) -> dict[str, str]:
        return {
            "AWS::StackName": self.stack_name,
            "AWS::StackId": (
                f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:stack/"
                f"{self.stack_name}/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
            ),
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": "",
        }

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def ref(self, name: str) -> Any:
        pseudo = self.pseudo()
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            spec = self.template["Parameters"][name]
            if spec["Type"].startswith("List<") or spec["Type"] == "CommaDelimitedList":
                return value if isinstance(value, list) else str(value).split(",")
            return str(value)
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"Ref {name}: no parameter or created resource of that name")

    def resolve(self, value: Any) -> Any:  # noqa: PLR0911, PLR0912 - one branch per intrinsic
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, Mapping):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        ((key, arg),) = value.items()
        if key == "Ref":
            return self.ref(arg)
        if key == "Fn::GetAtt":
            logical, attr = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.attributes[(logical, attr)]
        if key == "Fn::If":
            name, when_true, when_false = arg
            return self.resolve(when_true if self.condition(name) else when_false)
        if key == "Fn::Equals":
            left, right = (self.resolve(v) for v in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(v) for v in arg)
        if key == "Fn::Or":
            return any(self.resolve(v) for v in arg)
        if key == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            sep, text = arg
            return str(self.resolve(text)).split(sep)
        if key == "Fn::Join":
            sep, items = arg
            return sep.join(str(i) for i in self.resolve(items))
        if key == "Fn::Sub":
            text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            local = {k: self.resolve(v) for k, v in extra.items()}
            return _PLACEHOLDER.sub(lambda m: str(self._sub_value(m.group(1), local)), text)
        if key == "Condition":
            return self.condition(arg)
        return {key: self.resolve(arg)}

    def _sub_value(self, name: str, local: Mapping[str, Any]) -> Any:
        if name in local:
            return local[name]
        if "." in name and not name.startswith("AWS::"):
            logical, attr = name.split(".", 1)
            return self.attributes[(logical, attr)]
        return self.ref(name)


def substitute_definition(asl_text: str, substitutions: Mapping[str, str]) -> str:
    """Apply DefinitionSubstitutions to the ASL text as CloudFormation does; every placeholder
    must have a value."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in substitutions:
            raise KeyError(f"ASL placeholder ${{{name}}} has no DefinitionSubstitutions entry")
        return str(substitutions[name])

    return _PLACEHOLDER.sub(value, asl_text)


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs; offline there are none to ask."""

    def load(self) -> dict[str, str]:
        return {}


def translated_template() -> dict[str, Any]:
    """template.yaml as CloudFormation sees it after `sam package`: local code and definition
    paths become s3:// placeholders. Translated once per process (a copy each call)."""
    return copy.deepcopy(_translated())


@cache
def _translated() -> dict[str, Any]:
    template = copy.deepcopy(load_template())
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::StateMachine" and "DefinitionUri" in props:
            props["DefinitionUri"] = f"s3://placeholder-bucket/{props['DefinitionUri']}"
        if resource["Type"] == "AWS::Serverless::Function" and "CodeUri" in props:
            props["CodeUri"] = f"s3://placeholder-bucket/{props['CodeUri'].strip('/')}.zip"
    globals_code = template.get("Globals", {}).get("Function", {})
    if isinstance(globals_code.get("CodeUri"), str):
        globals_code["CodeUri"] = (
            f"s3://placeholder-bucket/{globals_code['CodeUri'].strip('/')}.zip"
        )
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    result: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return result
