"""ReconcilerFunction: every few minutes (EventBridge Scheduler), or by hand with
{"dryRun": true}. Thin: read the input, reconcile, log and count, return the summary."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from common import clients
from common.settings import ReconcilerSettings
from reconciler.reconcile import BadInput, Reconciler, dry_run_from

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "reconciler")
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE)


def _skipped(message: str, extra: dict[str, Any]) -> None:
    logger.error(message, **extra)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    settings = ReconcilerSettings.from_env(os.environ)
    try:
        dry_run = dry_run_from(event)
    except BadInput:
        logger.exception('Bad input: expected {} or {"dryRun": true}')
        raise
    logger.append_keys(dry_run=dry_run)
    result = Reconciler(settings, clients.aws(), dry_run=dry_run, log=_skipped).run()
    summary = result.to_json()
    for incident in result.reported:
        logger.info("Incident", **incident)
    for kind in sorted(set(result.incidents)):
        with single_metric(
            name="Incidents",
            unit=MetricUnit.Count,
            value=result.incidents.count(kind),
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="Kind", value=kind)
    if not dry_run:
        metrics.add_metric(
            name="LocksReleased", unit=MetricUnit.Count, value=len(summary["released"])
        )
        metrics.add_metric(
            name="TasksStopped", unit=MetricUnit.Count, value=len(summary["stopped"])
        )
    metrics.add_metric(name="OverdueLocks", unit=MetricUnit.Count, value=len(summary["overdue"]))
    metrics.add_metric(name="Unreadable", unit=MetricUnit.Count, value=len(summary["unreadable"]))
    logger.info("Reconciled", **summary)
    return summary
