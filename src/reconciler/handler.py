"""ReconcilerFunction: every few minutes (EventBridge Scheduler), or by hand with
{"dryRun": true}. Thin: read the input, reconcile, log and count, return the summary."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

from common import clients
from janitor.reconcile import BadInput, Clients, Reconciler, ReconcilerSettings, dry_run_from

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "reconciler")
logger = Logger(service=SERVICE)
metrics = Metrics(service=SERVICE)


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
    aws = Clients(clients.dynamodb(), clients.stepfunctions(), clients.ecs(), clients.sns())
    result = Reconciler(settings, aws, dry_run=dry_run).run()
    summary = result.to_json()
    for status in sorted(set(result.incidents)):
        with single_metric(
            name="Incidents",
            unit=MetricUnit.Count,
            value=result.incidents.count(status),
            default_dimensions=metrics.default_dimensions,
        ) as metric:
            metric.add_dimension(name="service", value=SERVICE)
            metric.add_dimension(name="Status", value=status)
    if not dry_run:
        metrics.add_metric(
            name="LocksReleased", unit=MetricUnit.Count, value=len(summary["released"])
        )
        metrics.add_metric(
            name="TasksStopped", unit=MetricUnit.Count, value=len(summary["stopped"])
        )
    metrics.add_metric(name="OverdueLocks", unit=MetricUnit.Count, value=len(summary["overdue"]))
    logger.info("Reconciled", **summary)
    return summary
