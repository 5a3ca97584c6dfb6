"""Slack messages (Block Kit) for incidents, digests and CloudWatch alarms. Pure functions.

Everything that comes from an execution or an alarm is escaped (`&`, `<`, `>`), so a cause that
contains `<!channel>` or a link pings nobody and links nowhere; control characters are removed
(headers are one line); every text is cut to Block Kit's limits as Slack counts them (UTF-16
code units, so an emoji counts two), with a margin, after escaping and never inside an entity;
code blocks cannot be closed early by a backtick in the text. Only links to the AWS console are
ever links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.digest import Digest, task_of
from common.incident import duration_text, is_console_url, shown_cause
from common.text import ELLIPSIS, cut, one_line, utf16_len, without_controls

# Block Kit's limits, less a margin.
HEADER_LIMIT = 140  # 150
SECTION_LIMIT = 2900  # 3,000
FIELD_LIMIT = 1900  # 2,000
FALLBACK_LIMIT = 2900  # top-level text: Slack truncates far later; a notification stays short
MAX_FIELDS = 10
MAX_BLOCKS = 45  # 50
DIGEST_WORST = 3
DIGEST_ROWS = 15
GRAVE = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT: what a backtick inside a code block becomes

MARKERS = {"high": ":red_circle:", "medium": ":large_orange_circle:", "low": ":large_blue_circle:"}


def escape(text: Any) -> str:
    """Slack's three control characters, escaped; control characters removed."""
    clean = without_controls(str(text))
    return clean.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def fit(escaped: str, limit: int) -> str:
    """Escaped text within `limit` UTF-16 units, cut never inside an entity (`&amp;`)."""
    if utf16_len(escaped) <= limit:
        return escaped
    body = cut(escaped, limit)[: -len(ELLIPSIS)]
    amp = body.rfind("&")
    if amp != -1 and ";" not in body[amp:]:
        body = body[:amp]
    return body + ELLIPSIS


def text(raw: Any, limit: int) -> str:
    """Raw text, escaped and cut for mrkdwn."""
    return fit(escape(raw), limit)


def line(raw: Any, limit: int) -> str:
    """Raw text as one escaped line."""
    return fit(escape(one_line(str(raw))), limit)


def link(url: Any, label: Any, limit: int = 400, *, region: str | None = None) -> str:
    """`<url|label>` for a link to the AWS console (of `region`, the function's own, when
    given); the label alone for anything else (a document that says its console link is
    elsewhere links nowhere)."""
    shown = line(label, limit)
    if not is_console_url(url, region):
        return shown
    # `&` in a URL is written as in text (Slack unescapes it); `<`, `>`, `|` cannot be there.
    return f"<{str(url).replace('&', '&amp;')}|{shown}>"


def plain(raw: Any, limit: int = HEADER_LIMIT) -> dict[str, Any]:
    return {"type": "plain_text", "text": cut(one_line(str(raw)), limit) or "-", "emoji": True}


def section(markdown: str) -> dict[str, Any]:
    """A section of already escaped mrkdwn (cut as a last resort)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit(markdown, SECTION_LIMIT)}}


def fields(*pairs: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "section",
        "fields": [
            {"type": "mrkdwn", "text": fit(f"*{label}*\n{value}", FIELD_LIMIT)}
            for label, value in pairs[:MAX_FIELDS]
        ],
    }


def code(label: str, raw: Any) -> dict[str, Any]:
    """A labelled code block whose content cannot end it early and fits one section."""
    body = escape(raw).replace("`", GRAVE)
    room = SECTION_LIMIT - utf16_len(label) - 8
    return section(f"{label}\n```{fit(body, room)}```")


def context(markdown: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": fit(markdown, SECTION_LIMIT)}],
    }


def _marker(severity: Any) -> str:
    return MARKERS.get(str(severity), ":white_circle:")


def _repairs(incident: Mapping[str, Any]) -> str:
    repairs = incident.get("repairs") or {}
    lines = [f"*Lock:* {text(repairs.get('lockDetail') or repairs.get('lock') or '-', 1000)}"]
    stopped = [str(t) for t in repairs.get("tasksStopped") or []]
    lines.append(f"*Tasks stopped:* {text(', '.join(stopped), 1000) if stopped else 'none'}")
    earlier = [
        str(t)
        for t in (repairs.get("tasksAlreadyStopped") or []) + (repairs.get("tasksGone") or [])
    ]
    if earlier:
        lines.append(f"*Already stopped or gone:* {text(', '.join(earlier), 600)}")
    return "\n".join(lines)


def _task_blocks(task: Mapping[str, Any], region: str | None) -> list[dict[str, Any]]:
    exit_code = task.get("exitCode")
    pairs = [
        (
            "ECS task",
            link(
                task.get("consoleUrl"),
                str(task.get("arn") or "?").rsplit("/", 1)[-1],
                region=region,
            ),
        ),
        ("Container", line(task.get("container") or "-", 300)),
        ("Exit code", "-" if exit_code is None else line(exit_code, 20)),
        ("Stop code", line(task.get("stopCode") or "-", 100)),
    ]
    if task.get("logUrl"):
        pairs.append(("Logs", link(task.get("logUrl"), "log stream", region=region)))
    blocks = [fields(*pairs)]
    reasons = [f"*Stopped:* {text(task.get('stoppedReason') or '-', 1000)}"]
    if task.get("containerReason"):
        reasons.append(f"*Container:* {text(task['containerReason'], 1000)}")
    blocks.append(section("\n".join(reasons)))
    return blocks


def incident_message(incident: Mapping[str, Any], region: str | None = None) -> dict[str, Any]:
    """One Block Kit message for one incident; links only to the console of `region`."""
    severity = str(incident.get("severity") or "medium")
    status = str(incident.get("status") or "?")
    execution = incident.get("execution") or {}
    summary = incident.get("summary") or f"{task_of(incident)}: {status}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(f"{_marker(severity)} {summary}")},
        fields(
            (
                "Execution",
                link(execution.get("consoleUrl"), execution.get("name") or "?", region=region),
            ),
            ("Status", line(status, 100)),
            ("Duration", duration_text(_number(incident.get("durationSeconds")))),
            ("Started", line(incident.get("startedAt") or "-", 100)),
            ("Severity", line(severity, 20)),
            ("Task", line(task_of(incident), 500)),
        ),
    ]
    task = incident.get("task")
    if isinstance(task, Mapping):
        blocks += _task_blocks(task, region)
    if incident.get("error"):
        blocks.append(section(f"*Error:* {line(incident['error'], 500).replace('`', GRAVE)}"))
    if cause := shown_cause(dict(incident)):
        blocks.append(code("*Cause:*", cause))
    blocks.append(section(_repairs(incident)))
    blocks.append(section(f"*What to do:* {text(incident.get('action') or '-', 2000)}"))
    blocks.append(
        context(
            f"incident {line(incident.get('id') or '?', 100)} · reported by "
            f"{line(incident.get('reportedBy') or '?', 50)} · "
            f"{line(incident.get('detectedAt') or '', 50)}"
        )
    )
    fallback = f"{severity.upper()} {status} {summary}"
    return {"text": line(fallback, FALLBACK_LIMIT), "blocks": blocks}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def minimal_message(incident: Mapping[str, Any], region: str | None = None) -> dict[str, Any]:
    """Plain text, safe fields only: what is posted when Slack rejected the full message."""
    execution = incident.get("execution") or {}
    name = execution.get("name") or "?"
    words = (
        f"{line(str(incident.get('severity') or '?').upper(), 20)} "
        f"{line(incident.get('status') or '?', 50)} {line(task_of(incident), 300)}: "
        f"execution {link(execution.get('consoleUrl'), name, region=region)} · incident "
        f"{line(incident.get('id') or '?', 100)} (the full message was rejected by Slack; "
        "the alerts log group has it)"
    )
    return {"text": words}


def _rows_table(digest: Digest, rows: int) -> str:
    shown = digest.rows[:rows]
    width = min(max((len(task) for task, _, _ in shown), default=4), 40)
    lines = [f"{'task':<{width}}  {'status':<9}  count"]
    lines += [f"{cut(task, width):<{width}}  {status:<9}  {n}" for task, status, n in shown]
    hidden = digest.rows[rows:]
    if hidden:
        lines.append(f"+{len(hidden)} more rows ({sum(n for _, _, n in hidden)} incidents)")
    lines.append(f"{'total':<{width}}  {'':<9}  {digest.total}")
    return "\n".join(lines)


def _entry(incident: Mapping[str, Any], region: str | None) -> str:
    execution = incident.get("execution") or {}
    return (
        f"{link(execution.get('consoleUrl'), execution.get('name') or '?', 200, region=region)} "
        f"({line(incident.get('status') or '?', 30)}, {line(task_of(incident), 100)})"
    )


def _listing(entries: list[str], budget: int, more_where: str) -> str:
    """As many entries as fit `budget`, then "+N more"."""
    out: list[str] = []
    used = 0
    for i, entry in enumerate(entries):
        rest = len(entries) - i - 1
        tail = f" +{rest} more {more_where}" if rest else ""
        cost = utf16_len(entry) + 2
        if used + cost + utf16_len(tail) + 20 > budget:
            out.append(f"+{len(entries) - i} more {more_where}")
            break
        out.append(entry)
        used += cost
    return ", ".join(out)


def digest_message(digest: Digest, region: str | None = None) -> dict[str, Any]:
    """One message for a storm: every incident counted (rows that add up to the total, "+N
    more" when rows are cut), the worst few in brief, every execution linked while room lasts,
    and the Logs Insights query that lists them all."""
    where = (
        link(digest.logs_url, "in the logs (Logs Insights)", region=region)
        if digest.logs_url
        else "in the logs"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(f":rotating_light: {digest.total} incidents at once")},
        section(
            f"*{digest.total} incidents* arrived together ({line(digest.severity_text, 200)}). "
            f"Each is counted below; the worst are in brief; all are listed {where}."
        ),
        code("*By task and status:*", _rows_table(digest, DIGEST_ROWS)),
    ]
    for incident in digest.incidents[:DIGEST_WORST]:
        task = incident.get("task")
        cause = (task.get("stoppedReason") if isinstance(task, Mapping) else None) or (
            shown_cause(dict(incident)) or ""
        )
        summary = line(incident.get("summary") or task_of(incident), 300)
        details = [_entry(incident, region)]
        if incident.get("error"):
            details.append(f"*Error:* {line(incident['error'], 200)}")
        if cause:
            details.append(line(cause, 300))
        blocks.append(
            section(f"{_marker(incident.get('severity'))} *{summary}*\n" + " · ".join(details))
        )
    blocks.append(
        section(
            "*Every execution:* "
            + _listing(
                [_entry(i, region) for i in digest.incidents], SECTION_LIMIT - 40, "(see the logs)"
            )
        )
    )
    blocks.append(context(f"{digest.total} incident ids in this digest; each reaches Slack once."))
    counts = "; ".join(f"{t} {s}: {n}" for t, s, n in digest.rows[:5])
    fallback = f"{digest.total} incidents at once ({digest.severity_text}). {counts}"
    return {"text": line(fallback, FALLBACK_LIMIT), "blocks": blocks}


def minimal_digest_message(digest: Digest) -> dict[str, Any]:
    """Plain text: the counts and each incident's id and status, while room lasts."""
    head = f"{digest.total} incidents at once ({line(digest.severity_text, 200)}). "
    rows = "; ".join(f"{line(t, 80)} {line(s, 20)}: {n}" for t, s, n in digest.rows[:10])
    if len(digest.rows) > 10:
        rows += f"; +{len(digest.rows) - 10} more rows"
    ids = _listing(
        [
            f"{line(i.get('id') or '?', 40)} {line(i.get('status') or '?', 20)}"
            for i in digest.incidents
        ],
        FALLBACK_LIMIT - utf16_len(head + rows) - 60,
        "(see the logs)",
    )
    return {"text": f"{head}{rows}. Incidents: {ids}"}


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
        if isinstance(d, Mapping)
    )
    marker = {"ALARM": ":rotating_light:", "OK": ":white_check_mark:"}.get(state, ":grey_question:")
    threshold = trigger.get("Threshold")
    condition = (
        f"{trigger.get('ComparisonOperator', '')} {threshold}" if threshold is not None else "-"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(f"{marker} {state}: {name}")},
        fields(
            ("New state", line(f"{state} (was {old})", 200)),
            ("Metric", line(metric or "-", 500) + (f"\n{line(dims, 800)}" if dims else "")),
            ("Condition", line(condition, 200)),
            ("Changed at", line(alarm.get("StateChangeTime") or "-", 100)),
        ),
        section(f"*Reason:* {text(alarm.get('NewStateReason') or '-', 2500)}"),
    ]
    if alarm.get("AlarmDescription"):
        blocks.append(section(f"*What it watches:* {text(alarm['AlarmDescription'], 2500)}"))
    blocks.append(context(f"CloudWatch alarm · {line(alarm.get('Region') or '', 100)}"))
    fallback = f"{state}: {name}. {alarm.get('NewStateReason') or ''}"
    return {"text": line(fallback, FALLBACK_LIMIT), "blocks": blocks}


def other_message(subject: str | None, body: str) -> dict[str, Any]:
    title = subject or "Message on the alerts topic"
    return {
        "text": line(f"{title}: {body}", FALLBACK_LIMIT),
        "blocks": [
            {"type": "header", "text": plain(title)},
            section(text(body, SECTION_LIMIT) or "-"),
        ],
    }
