"""The input rules: the ASL's own JSONata (ValidateInput, InvalidInput) and src/common/task_input.py
say the same thing about every input, so "the state machine took a lock for this execution" and
"the janitor thinks this execution names a lock" never disagree."""

from __future__ import annotations

import json
from typing import Any

import jsonata
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.task_input import TaskInput, names_a_lock, problems
from local.template import ASL_PATH, load_template

EXECUTION_TIMEOUT = int(load_template()["Parameters"]["ExecutionTimeoutSeconds"]["Default"])


def asl() -> dict[str, Any]:
    text = ASL_PATH.read_text().replace("${ExecutionTimeoutSeconds}", str(EXECUTION_TIMEOUT))
    definition: dict[str, Any] = json.loads(text)
    return definition


def expression(template: str, prefix: str, suffix: str) -> str:
    assert template.startswith("{% " + prefix)
    assert template.endswith(suffix + " %}")
    return template[len("{% " + prefix) : -len(suffix + " %}")]


def asl_problems(document: Any) -> list[str]:
    """The ASL's problems expression, evaluated on `document` as Step Functions would."""
    rule = asl()["States"]["ValidateInput"]["Choices"][0]["Condition"]
    states = json.dumps({"input": document}, ensure_ascii=False)
    bound = f"($states := {states}; {expression(rule, '$count(', ') = 0')})"
    result = jsonata.Jsonata(bound).evaluate(None)
    if result is None:
        return []
    return [result] if isinstance(result, str) else list(result)


def test_the_choice_and_the_fail_state_use_one_expression() -> None:
    states = asl()["States"]
    condition = expression(states["ValidateInput"]["Choices"][0]["Condition"], "$count(", ") = 0")
    cause = states["InvalidInput"]["Cause"]
    assert cause.startswith("{% $join(" + condition + ", '; ')")
    assert states["InvalidInput"]["Error"] == "Input.Invalid"
    assert states["ValidateInput"]["Default"] == "InvalidInput"
    assert states["ValidateInput"]["Choices"][0]["Next"] == "AcquireLock"


GOOD = {"lockId": "nightly", "taskDefinition": "arn:td", "timeoutSeconds": 300, "container": "c"}


@pytest.mark.parametrize(
    ("change", "wrong"),
    [
        ({}, []),
        ({"lockId": "   \t"}, ["lockId"]),
        ({"lockId": ""}, ["lockId"]),
        ({"lockId": "x" * 2048}, []),
        ({"lockId": "x" * 2049}, ["lockId"]),
        ({"lockId": "é" * 1024}, []),
        ({"lockId": "é" * 1025}, ["lockId"]),
        ({"lockId": "#pending"}, ["lockId"]),
        ({"lockId": 7}, ["lockId"]),
        ({"timeoutSeconds": 1.5}, ["timeoutSeconds"]),
        ({"timeoutSeconds": 1.0}, []),
        ({"timeoutSeconds": 0}, ["timeoutSeconds"]),
        ({"timeoutSeconds": EXECUTION_TIMEOUT}, ["timeoutSeconds"]),
        ({"timeoutSeconds": EXECUTION_TIMEOUT - 1}, []),
        ({"timeoutSeconds": "300"}, ["timeoutSeconds"]),
        ({"timeoutSeconds": True}, ["timeoutSeconds"]),
        ({"container": " "}, ["container"]),
        ({"taskDefinition": None}, ["taskDefinition"]),
    ],
)
def test_each_rule(change: dict[str, Any], wrong: list[str]) -> None:
    document = {**GOOD, **change}
    found = problems(document, EXECUTION_TIMEOUT)
    assert [p.split(" ", 1)[0] for p in found] == wrong
    assert asl_problems(document) == found


def test_missing_fields_and_other_shapes() -> None:
    documents: list[Any] = [{}, [], "x", 3, None, {"lockId": None}]
    for document in documents:
        assert problems(document, EXECUTION_TIMEOUT) == asl_problems(document)
    assert len(problems({}, EXECUTION_TIMEOUT)) == 4


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-10, max_value=EXECUTION_TIMEOUT + 10),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=10_000),
    st.text(alphabet=st.sampled_from(" \t\r\n#aé😀\u00a0\u2003x"), max_size=6),
    st.text(max_size=20),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["lockId", "taskDefinition", "timeoutSeconds", "container", "other"]),
        VALUES,
    )
)
def test_the_asl_and_python_agree_on_any_input(document: dict[str, Any]) -> None:
    assert asl_problems(document) == problems(document, EXECUTION_TIMEOUT)


@pytest.mark.parametrize(
    ("raw", "lock_id", "timeout"),
    [
        (json.dumps(GOOD), "nightly", 300),
        (json.dumps({**GOOD, "lockId": "  "}), None, 300),
        (json.dumps({**GOOD, "timeoutSeconds": 1.5}), "nightly", None),
        ("not json", None, None),
        (None, None, None),
        ("[1]", None, None),
    ],
)
def test_task_input_names_a_lock_by_the_same_rule(
    raw: str | None, lock_id: str | None, timeout: int | None
) -> None:
    parsed = TaskInput.parse(raw)
    assert (parsed.lock_id, parsed.timeout_seconds) == (lock_id, timeout)


def test_a_lone_surrogate_names_no_lock() -> None:
    assert not names_a_lock("a\ud800")
