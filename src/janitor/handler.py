"""JanitorFunction: EventBridge delivers the locking machine's FAILED, TIMED_OUT and ABORTED
status changes, and its redriven RUNNING ones. Thin: parse, heal, log, count."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from common import clients
from common.settings import JanitorSettings
from common.status_event import MalformedEvent, parse_status_change
from common.task_input import TaskInput
from janitor.heal import RepairIncomplete, Result, heal

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "janitor")
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE)


def _settings() -> JanitorSettings:
    return JanitorSettings.from_env(os.environ)


def _count(result: Result) -> None:
    if result.locks_released:
        metrics.add_metric(name="LocksReleased", unit=MetricUnit.Count, value=result.locks_released)
    if result.tasks_stopped:
        metrics.add_metric(
            name="TasksStopped", unit=MetricUnit.Count, value=len(result.tasks_stopped)
        )
    if result.incident_id:
        # Incidents by status: its own EMF blob, so the Status dimension stays on this metric.
        with single_metric(
            name="Incidents",
            unit=MetricUnit.Count,
            value=1,
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="Status", value=result.status)


def _warn(result: Result) -> None:
    for contradiction in result.contradictions:
        logger.warning(
            "The event contradicts itself or the truth: healed from the truth",
            contradiction=contradiction,
        )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = _settings()
    try:
        change = parse_status_change(event)
        logger.append_keys(
            execution_arn=change.execution_arn,
            status=change.status,
            lock_id=TaskInput.parse(change.input).lock_id,
        )
        result = heal(change, settings, clients.aws())
    except MalformedEvent:
        logger.exception("Malformed event: not a status change the janitor can act on")
        raise
    except RepairIncomplete as err:
        logger.append_keys(lock_id=err.done.lock_id)
        _warn(err.done)
        _count(err.done)
        logger.exception("Repair incomplete; raising so the retry completes it", undone=err.undone)
        raise
    logger.append_keys(lock_id=result.lock_id)
    _warn(result)
    _count(result)
    if result.kept:
        logger.warning("Publish failed: the report is kept for the reconciler to publish")
    for incident in result.reported:
        logger.info("Incident", **incident)
    logger.info("Healed", **result.summary())
    return result.summary()
