"""Slack messages: one golden file per incident kind (and the digest, the minimal forms, an
alarm), and the rules every message keeps whatever the text: escaped, within Block Kit's limits
as Slack counts them (UTF-16 units), entities never split, code blocks never closed early,
headers on one line, links only to the AWS console.

Regenerate the golden files after a deliberate change: UPDATE_GOLDEN=1 make pytest"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.channels import slack_blocks as blocks
from alerts.digest import digest_of
from common.text import utf16_len
from local.template import ROOT
from tests.support import incidents
from tests.support.incidents import ALARM, KINDS, document

GOLDEN = ROOT / "tests" / "golden" / "alerts"


def storm(n: int = 40) -> list[dict[str, Any]]:
    makers: list[Callable[..., Any]] = [
        incidents.failed,
        incidents.aborted,
        incidents.run_timeout,
        incidents.timed_out,
    ]
    locks = [f"job-{k:02d}" for k in range(25)]
    return [makers[i % 4](i, lock=locks[i % 25]).to_json() for i in range(n)]


def digest(n: int = 40) -> Any:
    return digest_of(
        storm(n), region="us-east-1", log_groups=["/aws/lambda/lock-janitor-JanitorFunction"]
    )


def _incident_message(make: Callable[[int], Any]) -> Callable[[], dict[str, Any]]:
    return lambda: blocks.incident_message(make(1).to_json())


CASES: dict[str, Callable[[], dict[str, Any]]] = {
    **{f"slack-{name}.json": _incident_message(make) for name, make in KINDS.items()},
    "slack-minimal.json": lambda: blocks.minimal_message(incidents.failed().to_json()),
    "slack-digest.json": lambda: blocks.digest_message(digest()),
    "slack-minimal-digest.json": lambda: blocks.minimal_digest_message(digest()),
    "slack-alarm.json": lambda: blocks.alarm_message(ALARM),
}


def check_limits(message: dict[str, Any]) -> None:
    """Block Kit's limits (header 150, section 3,000, field 2,000 UTF-16 units; 50 blocks; 10
    fields) and Slack's entities: every `&` starts one of the three escapes."""
    assert message["text"]
    assert utf16_len(message["text"]) <= 3000
    assert len(message.get("blocks", [])) <= 50
    for block in message.get("blocks", []):
        if block["type"] == "header":
            header = block["text"]["text"]
            assert utf16_len(header) <= 150
            assert "\n" not in header
            assert all(ord(ch) >= 32 for ch in header)
        for t in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if not t:
                continue
            assert utf16_len(t["text"]) <= (2000 if t in block.get("fields", []) else 3000)
            if t["type"] == "mrkdwn":
                rest = t["text"]
                for piece in rest.split("&")[1:]:
                    assert piece.startswith(("amp;", "lt;", "gt;")), f"split entity in {rest!r}"
        assert len(block.get("fields", [])) <= 10


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_kind_of_message_matches_its_golden_file(name: str) -> None:
    rendered = CASES[name]()
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(json.dumps(rendered, indent=2, ensure_ascii=False) + "\n")
    assert rendered == json.loads(path.read_text()), f"{name} changed: see the module docstring"
    check_limits(rendered)


def test_a_failed_task_reads_as_container_exit_code_reason_and_links() -> None:
    message = blocks.incident_message(incidents.failed(exit_code=137).to_json())
    raw = json.dumps(message)
    header = message["blocks"][0]["text"]["text"]
    assert "container job exited with code 137" in header
    assert "Essential container in task exited" in raw
    assert "EssentialContainerExited" in raw
    assert (
        "https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/lock-janitor-Cluster/tasks/"
        in raw
    )
    assert "#logsV2:log-groups/log-group/$252Fecs$252Fnightly/log-events/ecs$252Fjob$252F" in raw
    assert '"Attachments' not in raw, "no raw task JSON"
    assert "subnet-0abc" not in raw


def test_a_run_timeout_says_the_task_outran_its_timeout_and_what_was_done() -> None:
    message = blocks.incident_message(incidents.run_timeout().to_json())
    header = message["blocks"][0]["text"]["text"]
    assert "ran past its timeoutSeconds (3600 s)" in header
    assert "1 task stopped, lock released" in header
    assert "without cleaning up" not in json.dumps(message)


def test_text_from_executions_pings_nobody_and_links_nowhere() -> None:
    evil = "<!channel> see <https://evil.example|here> & <@U123>"
    doc = document(incidents.aborted(), cause=evil, error="<!here>", action=evil)
    doc["execution"]["consoleUrl"] = "https://evil.example/x"
    raw = json.dumps(blocks.incident_message(doc))
    for needle in ("<!channel>", "<!here>", "<https://evil", "<@U123>"):
        assert needle not in raw
    assert "&lt;!channel&gt;" in raw
    assert "&amp;" in raw


def test_a_cut_never_splits_an_entity() -> None:
    for pad in range(8):
        cut = blocks.text("x" * (100 - pad) + "&" * 50, 100)
        assert utf16_len(cut) <= 100
        for piece in cut.split("&")[1:]:
            assert piece.startswith("amp;")


def test_a_backtick_in_the_cause_cannot_close_the_code_block() -> None:
    doc = document(incidents.aborted(), cause="ends with a backtick ```\n`")
    (cause,) = [
        b["text"]["text"]
        for b in blocks.incident_message(doc)["blocks"]
        if b.get("text", {}).get("text", "").startswith("*Cause:*")
    ]
    assert cause.count("```") == 2
    assert cause.endswith("```")


def test_control_characters_never_reach_the_header() -> None:
    doc = document(incidents.aborted(), summary="nightly\x00\x1b[31m\r\nreport\u2028x")
    header = blocks.incident_message(doc)["blocks"][0]["text"]["text"]
    assert all(ord(ch) >= 32 and ch != "\u2028" for ch in header)
    assert "nightly" in header
    assert "report" in header


ANY_TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(["&", "<", ">", "`", "😀", "👩\u200d👩\u200d👧", "\u0301", "\n", "\x00"]),
        st.sampled_from(["&amp;", "```", "😀" * 200, "&" * 300, "x" * 2990]),
    ),
    max_size=400,
).map("".join)


@settings(max_examples=60, deadline=None)
@given(cause=ANY_TEXT, summary=ANY_TEXT, action=ANY_TEXT, error=ANY_TEXT)
def test_slacks_limits_hold_for_any_text(cause: str, summary: str, action: str, error: str) -> None:
    doc = document(incidents.aborted(), cause=cause, summary=summary, action=action, error=error)
    check_limits(blocks.incident_message(doc))
    check_limits(blocks.minimal_message(doc))
    many = [
        document(incidents.aborted(i, lock=summary[:300] or "x"), cause=cause) for i in range(8)
    ]
    d = digest_of(many, region="us-east-1", log_groups=["g"])
    check_limits(blocks.digest_message(d))
    check_limits(blocks.minimal_digest_message(d))


def test_a_header_of_150_emoji_is_cut_to_slacks_150_units() -> None:
    doc = document(incidents.aborted(), summary="😀" * 150)
    header = blocks.incident_message(doc)["blocks"][0]["text"]["text"]
    assert utf16_len(header) <= 150
    assert header.count("😀") > 60, "cut by what fits, not by a guess"
