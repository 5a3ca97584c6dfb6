"""Translate template.yaml with the SAM translator, offline, and lint it with cfn-lint.

cfn-lint no longer checks the ASL inside a SAM state machine nor the IAM inside SAM `Policies`
(a cfn-lint limit): linting the translated template, and the ASL wrapped in a plain
AWS::StepFunctions::StateMachine, is how both get checked."""

from __future__ import annotations

import json
from typing import Any

from cfnlint.api import ManualArgs, lint

from local.template import translated_template

REGION = "us-east-1"
__all__ = ["REGION", "lint_template", "translated_template"]


def lint_template(template: dict[str, Any]) -> list[str]:
    """cfn-lint's findings on a CloudFormation template, as readable lines."""
    matches = lint(json.dumps(template), config=ManualArgs(regions=[REGION]))
    return [f"{m.rule.id} {m.linenumber}: {m.message}" for m in matches]
