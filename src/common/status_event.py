"""Step Functions "Execution Status Change" events (source aws.states), typed.

Tolerates every shape seen in the wild: with or without `inputDetails`, with or without
`error`/`cause` (TIMED_OUT carries none), with or without the redrive and version fields,
`input` left out when too large, dates as epoch millis. Anything that is not a status change of
an execution is a `MalformedEvent`: an error, never a silent success."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

DETAIL_TYPE = "Step Functions Execution Status Change"
SOURCE = "aws.states"
ENDED = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
STATUSES = frozenset({"RUNNING", "SUCCEEDED", "PENDING_REDRIVE"} | ENDED)


class MalformedEvent(ValueError):
    """The event is not a Step Functions execution status change this function can act on."""


MAX_MILLIS = 253_402_300_799_999
"""9999-12-31T23:59:59.999Z: a date past it (1e20, say) is no date."""
EXECUTION_ARN = re.compile(
    r"^arn:(?P<partition>aws[a-z-]*):states:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):"
    r"(?P<account>\d{12}):execution:(?P<machine>[^:\s]{1,80}):(?P<name>[^:\s]{1,80})$"
)
"""An execution of a standard state machine; its region is a region, not `evil.example/#`."""


def _millis(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        millis = int(value) if abs(value) <= MAX_MILLIS else None
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        millis = int(value.strip())
    else:
        return None
    return millis if millis is not None and 0 <= millis <= MAX_MILLIS else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value != "" else None


@dataclass(frozen=True)
class StatusChange:
    event_id: str
    execution_arn: str
    state_machine_arn: str
    name: str
    status: str
    region: str
    start_ms: int | None = None
    stop_ms: int | None = None
    input: str | None = None
    """The execution input as a JSON string, when the event carries it."""
    error: str | None = None
    cause: str | None = None
    redrive_count: int = 0
    claimed_state_machine_arn: str | None = None
    """`detail.stateMachineArn` as the event gives it (the machine is read from the execution's
    own ARN; a claim of another is a contradiction, logged by the janitor)."""
    claimed_name: str | None = None
    """`detail.name` as the event gives it."""

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def redriven(self) -> bool:
        return self.status == "RUNNING" and self.redrive_count > 0


def parse_status_change(event: Any) -> StatusChange:
    if not isinstance(event, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(event).__name__}")
    if event.get("source") != SOURCE or event.get("detail-type") != DETAIL_TYPE:
        raise MalformedEvent(
            f"not a Step Functions status change: source={event.get('source')!r} "
            f"detail-type={event.get('detail-type')!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("status change without a detail object")
    execution_arn = _text(detail.get("executionArn"))
    arn = EXECUTION_ARN.match(execution_arn or "")
    if execution_arn is None or arn is None:
        raise MalformedEvent(
            f"status change without a valid executionArn: {str(detail.get('executionArn'))[:300]!r}"
        )
    status = detail.get("status")
    if not isinstance(status, str) or status not in STATUSES:
        raise MalformedEvent(f"unknown execution status {str(status)[:100]!r}")
    parts = execution_arn.split(":")
    # The machine is the one the execution's own ARN names: a `stateMachineArn` claiming
    # another is not believed.
    state_machine_arn = ":".join([*parts[:5], "stateMachine", arn["machine"]])
    details = detail.get("inputDetails")
    included = not (isinstance(details, dict) and details.get("included") is False)
    raw_input = detail.get("input")
    redrives = _millis(detail.get("redriveCount")) or 0
    return StatusChange(
        event_id=str(event.get("id") or ""),
        execution_arn=execution_arn,
        state_machine_arn=state_machine_arn,
        name=arn["name"],
        status=status,
        region=arn["region"],
        start_ms=_millis(detail.get("startDate")),
        stop_ms=_millis(detail.get("stopDate")),
        input=raw_input if included and isinstance(raw_input, str) else None,
        error=_text(detail.get("error")),
        cause=_text(detail.get("cause")),
        redrive_count=max(redrives, 0),
        claimed_state_machine_arn=_text(detail.get("stateMachineArn")),
        claimed_name=_text(detail.get("name")),
    )
