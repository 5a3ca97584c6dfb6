"""The model's speed knob: moto's `.sync` poll interval, set for a block and put back after."""

from __future__ import annotations

import pytest
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback as callback,
)

from tests.support.machine import quick_sync_polls

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
