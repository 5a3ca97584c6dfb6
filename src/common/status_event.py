"""Step Functions "Execution Status Change" events (source aws.states), typed.

Tolerates every shape seen in the wild: with or without `inputDetails`, with or without
`error`/`cause` (TIMED_OUT carries none), with or without the redrive and version fields,
`input` left out when too large, dates as epoch millis. Anything that is not a status change of
an execution is a `MalformedEvent`: an error, never a silent success."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DETAIL_TYPE = "Step Functions Execution Status Change"
SOURCE = "aws.states"
ENDED = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})
STATUSES = frozenset({"RUNNING", "SUCCEEDED", "PENDING_REDRIVE"} | ENDED)


class MalformedEvent(ValueError):
    """The event is not a Step Functions execution status change this function can act on."""


def _millis(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


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
    if execution_arn is None or ":execution:" not in execution_arn:
        raise MalformedEvent(
            f"status change without an executionArn: {detail.get('executionArn')!r}"
        )
    status = detail.get("status")
    if status not in STATUSES:
        raise MalformedEvent(f"unknown execution status {status!r}")
    parts = execution_arn.split(":")
    state_machine_arn = _text(detail.get("stateMachineArn")) or ":".join(
        [*parts[:5], "stateMachine", parts[6]]
    )
    details = detail.get("inputDetails")
    included = not (isinstance(details, dict) and details.get("included") is False)
    raw_input = detail.get("input")
    redrives = _millis(detail.get("redriveCount")) or 0
    return StatusChange(
        event_id=str(event.get("id") or ""),
        execution_arn=execution_arn,
        state_machine_arn=state_machine_arn,
        name=_text(detail.get("name")) or parts[-1],
        status=str(status),
        region=_text(event.get("region")) or parts[3],
        start_ms=_millis(detail.get("startDate")),
        stop_ms=_millis(detail.get("stopDate")),
        input=raw_input if included and isinstance(raw_input, str) else None,
        error=_text(detail.get("error")),
        cause=_text(detail.get("cause")),
        redrive_count=max(redrives, 0),
    )
