"""The reconciler's small pure pieces."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.settings import ReconcilerSettings, SettingsError
from common.truth import lock_env, parse_time
from reconciler.reconcile import BadInput, dry_run_from


@pytest.mark.parametrize(
    "text",
    ["2026-11-29T01:02:03.456Z", "2026-11-29T01:02:03.456789+00:00", "2026-11-29T01:02:03"],
)
def test_times_from_step_functions_and_moto_parse_as_utc(text: str) -> None:
    moment = parse_time(text)
    assert moment is not None
    assert moment.replace(microsecond=0) == datetime(2026, 11, 29, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize("text", [None, "", "yesterday"])
def test_unreadable_times_are_none(text: str | None) -> None:
    assert parse_time(text) is None


def test_lock_env_reads_only_lock_variables() -> None:
    task = {
        "overrides": {
            "containerOverrides": [
                {
                    "name": "job",
                    "environment": [
                        {"name": "LOCK_OWNER", "value": "arn:x"},
                        {"name": "LOCK_ID", "value": "j"},
                        {"name": "OTHER", "value": "1"},
                    ],
                }
            ]
        }
    }
    assert lock_env(task) == {"LOCK_OWNER": "arn:x", "LOCK_ID": "j"}
    assert lock_env({}) == {}


@pytest.mark.parametrize(("event", "dry"), [(None, False), ({}, False), ({"dryRun": True}, True)])
def test_dry_run_input(event: object, dry: bool) -> None:
    assert dry_run_from(event) is dry


def test_bad_input() -> None:
    with pytest.raises(BadInput):
        dry_run_from({"dryRun": "true"})


def test_settings_fail_fast() -> None:
    env = {
        "LOCK_TABLE_NAME": "t",
        "ALERTS_TOPIC_ARN": "arn:t",
        "LOCKING_STATE_MACHINE_ARN": "arn:sm",
        "CLUSTER_ARN": "arn:c",
        "RECONCILE_GRACE_SECONDS": "600",
        "OVERDUE_MARGIN_SECONDS": "300",
    }
    assert ReconcilerSettings.from_env(env).grace_seconds == 600
    with pytest.raises(SettingsError, match="RECONCILE_GRACE_SECONDS"):
        ReconcilerSettings.from_env({**env, "RECONCILE_GRACE_SECONDS": "ten"})
    with pytest.raises(SettingsError, match="CLUSTER_ARN"):
        ReconcilerSettings.from_env({k: v for k, v in env.items() if k != "CLUSTER_ARN"})
