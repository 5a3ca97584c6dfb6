"""The real chain under moto: the locking machine deployed, the real ASL executing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.machine import Machine, running_machine


@pytest.fixture
def machine() -> Iterator[Machine]:
    with running_machine() as m:
        yield m
