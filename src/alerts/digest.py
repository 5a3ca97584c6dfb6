"""A digest: many fresh incidents told as one message. Channel-agnostic and pure: what the digest
says (every incident counted once, worst first, where the full list can be read); each channel
decides how much of it fits.

The full list lives in the janitor's and the reconciler's logs (one "Incident" line per incident
published): `insights_url` opens a CloudWatch Logs Insights query over both log groups for the
digest's time range."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
STATUS_RANK = {"TIMED_OUT": 0, "ABORTED": 1, "FAILED": 2, "RUNNING": 3}
INCIDENTS_QUERY = (
    "fields @timestamp, incidentId, severity, status, lockId, summary, executionArn\n"
    '| filter message = "Incident"\n'
    "| sort @timestamp desc\n"
    "| limit 10000"
)
MARGIN = timedelta(minutes=15)


@dataclass(frozen=True)
class Digest:
    incidents: tuple[Mapping[str, Any], ...]
    """Worst first: severity, then status, then start."""
    rows: tuple[tuple[str, str, int], ...]
    """(task, status, count), largest first: the counts add up to `total`."""
    severities: tuple[tuple[str, int], ...]
    logs_url: str | None = None

    @property
    def total(self) -> int:
        return len(self.incidents)

    @property
    def severity_text(self) -> str:
        return ", ".join(f"{count} {severity}" for severity, count in self.severities)


def task_of(incident: Mapping[str, Any]) -> str:
    return str(incident.get("lockId") or "unknown task")


def worst_first(incidents: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(
        incidents,
        key=lambda i: (
            SEVERITY_RANK.get(str(i.get("severity")), 3),
            STATUS_RANK.get(str(i.get("status")), 4),
            str(i.get("startedAt") or ""),
            str(i.get("id") or ""),
        ),
    )


def digest_of(
    incidents: Sequence[Mapping[str, Any]], *, region: str | None, log_groups: Sequence[str]
) -> Digest:
    counts = Counter((task_of(i), str(i.get("status"))) for i in incidents)
    rows = tuple(
        (task, status, n)
        for (task, status), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    )
    by_severity = Counter(str(i.get("severity")) for i in incidents)
    order = [s for s in ("high", "medium", "low") if by_severity[s]]
    order += sorted(s for s in by_severity if s not in SEVERITY_RANK)
    severities = tuple((s, by_severity[s]) for s in order)
    moments = [m for i in incidents if (m := _moment(i.get("detectedAt"))) is not None]
    logs_url = None
    if region and log_groups and moments:
        logs_url = insights_url(region, log_groups, min(moments) - MARGIN, max(moments) + MARGIN)
    return Digest(tuple(worst_first(incidents)), rows, severities, logs_url)


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _detail_value(value: Any) -> str:
    """One value of the console's queryDetail notation: strings quoted with `'` and escaped
    with `*` for `%`; lists as `~(a~b)`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "~(" + "~".join(_detail_value(v) for v in value) + ")"
    return "'" + quote(str(value), safe="-._").replace("%", "*")


def insights_url(region: str, log_groups: Sequence[str], start: datetime, end: datetime) -> str:
    """A CloudWatch Logs Insights console link running INCIDENTS_QUERY over `log_groups`
    between `start` and `end` (the console's own URL notation: the query detail in `~(...)`,
    JavaScript-escaped, then URI-encoded with `%` written `$`)."""
    detail = {
        "end": end.isoformat(timespec="seconds"),
        "start": start.isoformat(timespec="seconds"),
        "timeType": "ABSOLUTE",
        "tz": "UTC",
        "editorString": INCIDENTS_QUERY,
        "source": list(log_groups),
    }
    encoded = "~(" + "~".join(f"{k}~{_detail_value(v)}" for k, v in detail.items()) + ")"
    js_escaped = quote(encoded, safe="@*_+-./")
    fragment = quote("?queryDetail=" + js_escaped, safe="").replace("%", "$")
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
        f"#logsV2:logs-insights{fragment}"
    )
