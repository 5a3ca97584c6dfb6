"""The model's speed knobs: moto's `.sync` poll interval and its ASL parse trees, set for a block
and put back after."""

from __future__ import annotations

import pytest
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback as callback,
)

from local.knobs import quick_sync_polls

NAME = "_DELAY_SECONDS_SYNC_CONDITION_CHECK"


def test_quick_sync_polls_sets_the_interval_and_puts_it_back() -> None:
    before = getattr(callback, NAME)
    assert before > 0.1, "moto's default changed: the knob may no longer be needed"
    with quick_sync_polls(0.02):
        assert getattr(callback, NAME) == 0.02
    assert getattr(callback, NAME) == before


def test_quick_sync_polls_puts_it_back_when_the_block_raises() -> None:
    before = getattr(callback, NAME)
    with pytest.raises(RuntimeError), quick_sync_polls(0.01):
        raise RuntimeError
    assert getattr(callback, NAME) == before


def test_cached_asl_trees_parse_once_and_build_fresh_components_each_time() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    from local.knobs import cached_asl_trees

    definition = '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}'
    original = AmazonStateLanguageParser.parse
    with cached_asl_trees():
        first_program, first_tree = AmazonStateLanguageParser.parse(definition)
        second_program, second_tree = AmazonStateLanguageParser.parse(definition)
        assert second_tree is first_tree, "the tree of a definition seen is kept"
        assert second_program is not first_program, "each execution gets its own components"
        assert type(second_program) is type(first_program)
    assert AmazonStateLanguageParser.parse is original
