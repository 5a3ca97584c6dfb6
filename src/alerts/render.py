"""Slack messages (Block Kit) for incidents, digests and CloudWatch alarms. Pure functions.

Everything that comes from an execution or an alarm is escaped (`&`, `<`, `>`), so a cause that
contains `<!channel>` or a link pings nobody and links nowhere, and every text is cut to Block
Kit's limits (header 150, section 3,000 characters, 50 blocks)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

HEADER_LIMIT = 150
SECTION_LIMIT = 3000
FIELD_LIMIT = 2000
FALLBACK_LIMIT = 3000
DIGEST_WORST = 3

MARKERS = {"high": ":red_circle:", "medium": ":large_orange_circle:", "low": ":large_blue_circle:"}
SEVERITY_RANK = {"high": 0, "medium": 1, "low": 2}
STATUS_RANK = {"TIMED_OUT": 0, "ABORTED": 1, "FAILED": 2, "RUNNING": 3}


def escape(text: Any) -> str:
    """Slack's three control characters, escaped; anything else is shown as written."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int = HEADER_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(" ".join(text.split()), limit), "emoji": True}


def _section(markdown: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(markdown, SECTION_LIMIT)}}


def _fields(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": cut(f"*{label}*\n{value}", FIELD_LIMIT)}
            for label, value in pairs[:10]
        ],
    }


def _code(label: str, text: str) -> dict[str, Any]:
    """A labelled code block whose escaped content is cut so the whole fits a section."""
    room = SECTION_LIMIT - len(label) - 10
    body = escape(text).replace("```", "'''")
    return _section(f"{label}\n```{cut(body, room)}```")


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, SECTION_LIMIT)}]}


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _task(incident: Mapping[str, Any]) -> str:
    return str(incident.get("lockId") or "unknown task")


def _repairs(incident: Mapping[str, Any]) -> str:
    repairs = incident.get("repairs") or {}
    lines = [f"*Lock:* {escape(repairs.get('lockDetail') or repairs.get('lock') or '-')}"]
    stopped = repairs.get("tasksStopped") or []
    lines.append(f"*Tasks stopped:* {escape(', '.join(stopped)) if stopped else 'none'}")
    earlier = (repairs.get("tasksAlreadyStopped") or []) + (repairs.get("tasksGone") or [])
    if earlier:
        lines.append(f"*Already stopped or gone:* {escape(', '.join(earlier))}")
    return "\n".join(lines)


def incident_message(incident: Mapping[str, Any]) -> dict[str, Any]:
    """One Block Kit message for one incident (see README, "Incidents")."""
    severity = str(incident.get("severity") or "medium")
    status = str(incident.get("status") or "?")
    execution = incident.get("execution") or {}
    name = escape(execution.get("name") or "?")
    url = str(execution.get("consoleUrl") or "")
    link = f"<{escape(url)}|{name}>" if url.startswith("https://") else name
    marker = MARKERS.get(severity, ":white_circle:")
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": _plain(f"{marker} {status} · {_task(incident)} · {severity}"),
        },
        _fields(
            ("Execution", link),
            ("Duration", duration_text(incident.get("durationSeconds"))),
            ("Started", escape(incident.get("startedAt") or "-")),
            ("Severity", escape(severity)),
        ),
    ]
    if incident.get("error"):
        error = escape(incident["error"]).replace("`", "'")
        blocks.append(_section(f"*Error:* `{error}`"))
    if incident.get("cause"):
        blocks.append(_code("*Cause:*", str(incident["cause"])))
    blocks.append(_section(_repairs(incident)))
    blocks.append(_section(f"*What to do:* {escape(incident.get('action') or '-')}"))
    reported = escape(incident.get("reportedBy") or "?")
    detected = escape(incident.get("detectedAt") or "")
    ident = escape(incident.get("id") or "?")
    blocks.append(_context(f"incident {ident} · reported by {reported} · {detected}"))
    text = (
        f"{status} {_task(incident)} ({severity}): execution {execution.get('name') or '?'}. "
        f"{(incident.get('repairs') or {}).get('lockDetail') or ''}"
    )
    return {"text": cut(escape(text), FALLBACK_LIMIT), "blocks": blocks}


def _worst_first(incidents: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(
        incidents,
        key=lambda i: (
            SEVERITY_RANK.get(str(i.get("severity")), 3),
            STATUS_RANK.get(str(i.get("status")), 4),
            str(i.get("startedAt") or ""),
        ),
    )


def digest_message(incidents: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One message for a storm: counts by task and status, the worst few in brief."""
    total = len(incidents)
    by_task_status = Counter((_task(i), str(i.get("status"))) for i in incidents)
    by_severity = Counter(str(i.get("severity")) for i in incidents)
    width = max((len(task) for task, _ in by_task_status), default=4)
    rows = [f"{'task':<{width}}  {'status':<9}  count"]
    rows += [
        f"{task:<{width}}  {status:<9}  {count}"
        for (task, status), count in sorted(by_task_status.items(), key=lambda kv: -kv[1])
    ]
    severities = ", ".join(
        f"{by_severity[s]} {s}" for s in ("high", "medium", "low") if by_severity[s]
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f":rotating_light: {total} incidents at once")},
        _section(
            f"*{total} incidents* arrived together ({escape(severities)}). Every one was "
            "handled by the janitor; the worst are below, all are on the alerts topic."
        ),
        _code("*By task and status:*", "\n".join(rows)),
    ]
    for incident in _worst_first(incidents)[:DIGEST_WORST]:
        execution = incident.get("execution") or {}
        url = str(execution.get("consoleUrl") or "")
        name = escape(execution.get("name") or "?")
        link = f"<{escape(url)}|{name}>" if url.startswith("https://") else name
        detail = (incident.get("repairs") or {}).get("lockDetail") or ""
        cause = cut(str(incident.get("cause") or ""), 300)
        marker = MARKERS.get(str(incident.get("severity")), "")
        blocks.append(
            _section(
                f"{marker} *{escape(incident.get('status'))}* {escape(_task(incident))} · {link}\n"
                f"*Error:* {escape(incident.get('error') or '-')} · {escape(cut(cause, 300))}\n"
                f"{escape(detail)}"
            )
        )
    blocks.append(_context(f"{total} incident ids in this digest; each reaches Slack once."))
    counts = "; ".join(f"{t} {s}: {c}" for (t, s), c in by_task_status.most_common(5))
    text = f"{total} incidents at once ({severities}). {counts}"
    return {"text": cut(escape(text), FALLBACK_LIMIT), "blocks": blocks}


def alarm_message(alarm: Mapping[str, Any]) -> dict[str, Any]:
    """A CloudWatch alarm notification (the JSON CloudWatch publishes to SNS)."""
    name = str(alarm.get("AlarmName") or "?")
    state = str(alarm.get("NewStateValue") or "?")
    old = str(alarm.get("OldStateValue") or "?")
    trigger = alarm.get("Trigger") or {}
    metric = "/".join(str(trigger.get(k)) for k in ("Namespace", "MetricName") if trigger.get(k))
    dims = ", ".join(
        f"{d.get('name') or d.get('Name')}={d.get('value') or d.get('Value')}"
        for d in trigger.get("Dimensions") or []
    )
    marker = {"ALARM": ":rotating_light:", "OK": ":white_check_mark:"}.get(state, ":grey_question:")
    threshold = trigger.get("Threshold")
    condition = (
        f"{trigger.get('ComparisonOperator', '')} {threshold}" if threshold is not None else "-"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"{marker} {state}: {name}")},
        _fields(
            ("New state", escape(f"{state} (was {old})")),
            ("Metric", escape(metric or "-") + (f"\n{escape(dims)}" if dims else "")),
            ("Condition", escape(condition)),
            ("Changed at", escape(alarm.get("StateChangeTime") or "-")),
        ),
        _section(f"*Reason:* {escape(alarm.get('NewStateReason') or '-')}"),
    ]
    if alarm.get("AlarmDescription"):
        blocks.append(_section(f"*What it watches:* {escape(alarm['AlarmDescription'])}"))
    blocks.append(_context(f"CloudWatch alarm · {escape(alarm.get('Region') or '')}"))
    text = f"{state}: {name}. {alarm.get('NewStateReason') or ''}"
    return {"text": cut(escape(text), FALLBACK_LIMIT), "blocks": blocks}
