"""Translate template.yaml with the SAM translator, offline, and lint it with cfn-lint.

cfn-lint no longer checks the ASL inside a SAM state machine nor the IAM inside SAM `Policies`
(aws-facts.md): linting the translated template, and the ASL wrapped in a plain
AWS::StepFunctions::StateMachine, is how both get checked."""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from cfnlint.api import ManualArgs, lint
from samtranslator.translator.transform import transform

from local.template import load_template

REGION = "us-east-1"


class _NoManagedPolicies:
    """The translator asks IAM for managed policy ARNs; offline there are none to ask."""

    def load(self) -> dict[str, str]:
        return {}


def translated_template() -> dict[str, Any]:
    """template.yaml as CloudFormation sees it after `sam package`: local code and definition
    paths become s3:// placeholders."""
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
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    result: dict[str, Any] = transform(template, {}, _NoManagedPolicies())
    return result


def lint_template(template: dict[str, Any]) -> list[str]:
    """cfn-lint's findings on a CloudFormation template, as readable lines."""
    matches = lint(json.dumps(template), config=ManualArgs(regions=[REGION]))
    return [f"{m.rule.id} {m.linenumber}: {m.message}" for m in matches]
