"""The input rules: the ASL's own JSONata (AcquireLock's problems, InvalidInput's cause) and
src/common/task_input.py say the same thing about every input, so "the state machine took a lock
for this execution" and "the janitor thinks this execution names a lock" never disagree."""

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


PROBLEMS_START = "{% ($in := $states.input; $problems := ("
PROBLEMS_END = "); $count($problems) > 0 ? $error("
"""Around the problems expression in AcquireLock's Key (the one field of its Arguments that
throws: the others take any input, whichever Step Functions evaluates first)."""


def problems_expression() -> str:
    """The ASL's problems expression: in AcquireLock's Arguments, evaluated before anything else."""
    key = asl()["States"]["AcquireLock"]["Arguments"]["Key"]["LockId"]["S"]
    assert key.startswith(PROBLEMS_START)
    return str(key[len(PROBLEMS_START) : key.index(PROBLEMS_END)])


def evaluate(expression: str, states: dict[str, Any]) -> Any:
    """A JSONata expression as Step Functions evaluates it, with `$states` bound."""
    bound = f"($states := {json.dumps(states, ensure_ascii=False)}; {expression})"
    return jsonata.Jsonata(bound).evaluate(None)


def asl_problems(document: Any) -> list[str]:
    """The ASL's problems expression, evaluated on `document` as Step Functions would."""
    result = evaluate(f"($in := $states.input; {problems_expression()})", {"input": document})
    if result is None:
        return []
    return [result] if isinstance(result, str) else list(result)


def test_the_rules_exist_once_and_are_checked_before_the_lock_is_taken() -> None:
    """One state checks the input and takes the lock (a run costs 3 transitions, a skip 2): the
    expression is written once, a bad input throws before any call, and the throw
    (States.QueryEvaluationError) is caught into the Fail state Input.Invalid."""
    states = asl()["States"]
    assert asl()["StartAt"] == "AcquireLock"
    text = ASL_PATH.read_text().replace("${ExecutionTimeoutSeconds}", str(EXECUTION_TIMEOUT))
    assert json.dumps(json.loads(text)).count(json.dumps(problems_expression())[1:-1]) == 1
    acquire = states["AcquireLock"]
    assert acquire["QueryLanguage"] == "JSONata"
    catches = {c["ErrorEquals"][0]: c["Next"] for c in acquire["Catch"]}
    assert catches["States.QueryEvaluationError"] == "InvalidInput"
    assert states["InvalidInput"]["Error"] == "Input.Invalid"
    assert "Choice" not in {state["Type"] for state in states.values()}


def invalid_input_cause(cause: str, document: Any) -> str:
    """InvalidInput's cause, from AcquireLock's caught error as the Catch passes it on."""
    expression = asl()["States"]["InvalidInput"]["Cause"]
    assert expression.startswith("{% ")
    assert expression.endswith(" %}")
    error = {"Error": "States.QueryEvaluationError", "Cause": cause}
    return str(evaluate(expression[3:-3], {"input": {"input": document, "error": error}}))


def test_the_cause_reads_the_problems_back_whatever_words_wrap_them() -> None:
    """AWS does not document the words around a thrown message (they quote the expression):
    the problems are read between their marker, and the whole cause is kept when it is not
    found. A marker in the input cannot forge them: the input is quoted apart."""
    document = {"lockId": "input problems: [forged]", "x": "]"}
    found = "lockId must be a non-blank string; container must be a non-blank string"
    wrapped = f"The JSONata expression '{problems_expression()}' threw: input problems: [{found}]."
    said = invalid_input_cause(wrapped, document)
    assert said.startswith(found + ". Input: {")
    assert '"lockId":"input problems: [forged]"' in said
    assert invalid_input_cause("it broke", document).startswith("it broke. Input: {")


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


def expressions(value: Any) -> list[str]:
    """Every `{% ... %}` expression in a piece of ASL."""
    if isinstance(value, dict):
        return [e for v in value.values() for e in expressions(v)]
    if isinstance(value, list):
        return [e for v in value for e in expressions(v)]
    if isinstance(value, str) and value.startswith("{% ") and value.endswith(" %}"):
        return [value[3:-3]]
    return []


CONTEXT = {
    "Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:m:e"},
    "State": {"EnteredTime": "2026-12-07T00:00:00.000Z"},
    "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:m"},
}


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.dictionaries(st.sampled_from(["lockId", "timeoutSeconds", "x"]), VALUES),
        VALUES,
        st.lists(VALUES, max_size=2),
    )
)
def test_only_the_check_can_throw_so_the_order_of_the_fields_does_not_matter(document: Any) -> None:
    """Step Functions does not say in which order it evaluates Arguments' fields: every field
    but the checked Key gives a string for any input, so a bad input always fails with the
    check's own words."""
    arguments = asl()["States"]["AcquireLock"]["Arguments"]
    others = expressions({k: v for k, v in arguments.items() if k != "Key"})
    assert len(others) == 4
    for expression in others:
        value = evaluate(expression, {"input": document, "context": CONTEXT})
        assert isinstance(value, str), expression
