"""Speed knobs for long runs over moto (the model, the benchmarks): not bridges, since AWS has
nothing to match; each changes when moto does something, never what the ASL decides."""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
from collections.abc import Iterator
from typing import Any

from antlr4.RuleContext import RuleContext  # type: ignore[import-untyped]
from moto.ecs.models import EC2ContainerServiceBackend
from moto.stepfunctions.parser.asl.component.common.path import result_path
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
    state_task_service_callback as callback,
)
from moto.stepfunctions.parser.asl.parse import asl_parser
from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor
from moto.stepfunctions.parser.asl.utils import boto_client, json_path

from local.bridges import ECS_TASKS, task_copy

_SYNC_POLL = "_DELAY_SECONDS_SYNC_CONDITION_CHECK"


def set_sync_poll(seconds: float) -> float:
    """Set how often moto's interpreter polls a `.sync` task from now on (a poller asleep wakes
    at its old interval first); returns the interval it replaces."""
    before = float(getattr(callback, _SYNC_POLL))
    setattr(callback, _SYNC_POLL, seconds)
    return before


@contextlib.contextmanager
def quick_sync_polls(seconds: float = 0.02) -> Iterator[None]:
    """Not a bridge: a speed knob for long runs (the model). moto's interpreter polls a `.sync`
    task's state every 0.5 s, so every run that ends waits up to that long to be seen; polling
    faster changes when, not what, the ASL decides."""
    before = set_sync_poll(seconds)
    try:
        yield
    finally:
        set_sync_poll(before)


@contextlib.contextmanager
def cached_asl_trees() -> Iterator[None]:
    """Not a bridge: a speed knob for long runs (the model). moto lexes and parses the state
    machine's definition with antlr at every StartExecution and redrive (about a third of a
    second each, most of a model example's CPU); the parse tree of a definition already seen is
    kept, and each execution still gets evaluation components of its own, built from it."""
    trees: dict[str, Any] = {}
    original = asl_parser.AmazonStateLanguageParser.parse

    def parse(definition: str) -> tuple[Any, Any]:
        tree = trees.get(definition)
        if tree is None:
            program, tree = original(definition)
            tree.knob_complete = True  # built: its text may be kept (cached_parse_tree_text)
            trees[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]
    try:
        yield
    finally:
        asl_parser.AmazonStateLanguageParser.parse = staticmethod(original)  # type: ignore[method-assign]


@contextlib.contextmanager
def cached_parse_tree_text() -> Iterator[None]:
    """Not a bridge: a speed knob for long runs. antlr's getText walks a node's whole subtree at
    every call, and moto's preprocessor asks for the text of nearly every node while building
    an execution's components from a kept tree (most of a StartExecution's CPU with
    cached_asl_trees). A tree cached_asl_trees has built never changes: the text of each of its
    nodes is kept on the node at the first ask. A tree still being built is left alone."""
    original = RuleContext.getText

    def get_text(self: Any) -> str:
        kept = self.__dict__.get("knob_text")
        if kept is not None:
            return str(kept)
        root = self
        for _ in range(10_000):  # bounded: a tree is far shallower
            if root.parentCtx is None:
                break
            root = root.parentCtx
        text = str(original(self))
        if root.__dict__.get("knob_complete"):
            self.knob_text = text
        return text

    RuleContext.getText = get_text
    try:
        yield
    finally:
        RuleContext.getText = original


@contextlib.contextmanager
def cached_jsonpath_parses() -> Iterator[None]:
    """Not a bridge: a speed knob for long runs. moto's interpreter parses every JSONPath of the
    definition again at every state of every execution, and jsonpath_ng builds a new parser
    (its yacc tables) for each parse: about 6 ms a path, most of an execution's CPU once the
    ASL trees are kept. A path's parsed expression is kept by its text; what it reads or writes
    is still each execution's own data."""
    modules: list[Any] = [json_path, result_path]
    originals = [m.parse for m in modules]
    for module, original in zip(modules, originals, strict=True):
        module.parse = functools.lru_cache(maxsize=4096)(original)
    try:
        yield
    finally:
        for module, original in zip(modules, originals, strict=True):
            module.parse = original


@contextlib.contextmanager
def reused_integration_clients() -> Iterator[None]:
    """Not a bridge: a speed knob for long runs. moto's interpreter creates a new boto3 client for
    every service call a Task state makes (RunTask, UpdateItem, DescribeTasks at each `.sync`
    poll: about 60 ms each); one client per region and service is kept and shared (boto3's
    clients are thread-safe; creating one is not, hence the lock)."""
    lock = threading.Lock()
    made: dict[tuple[str, str], Any] = {}
    original = boto_client.boto_client_for

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if state_credentials is not None:  # credentials of the state's own: not shared
            return original(region, service, state_credentials)
        with lock:
            key = (region, service)
            if key not in made:
                made[key] = original(region, service)
            return made[key]

    modules = [
        m
        for m in list(sys.modules.values())
        if m is not None
        and m.__name__.startswith("moto.stepfunctions.parser")
        and getattr(m, "boto_client_for", None) is original
    ]
    for module in modules:
        module.boto_client_for = boto_client_for  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for module in modules:
            module.boto_client_for = original  # type: ignore[attr-defined]


@contextlib.contextmanager
def indexed_task_lookups() -> Iterator[None]:
    """Not a bridge: a speed knob for long runs. moto's DescribeTasks walks every task of every
    cluster for each task asked about, and each running execution's `.sync` poll is a
    DescribeTasks: with a thousand runs the polls alone take the CPU. A task asked for by its
    full ARN is looked up in its cluster's tasks directly; anything else is found as moto finds
    it. The same tasks come back, each advanced as moto advances it (and copied under the ECS
    lock, as `local.bridges.ecs_tasks_one_call_at_a_time` answers)."""
    original = EC2ContainerServiceBackend.describe_tasks

    def describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> Any:
        if not tasks or not all(t.startswith("arn:") for t in tasks):
            return original(self, cluster_str, tasks)
        self._get_cluster(cluster_str)
        found = []
        with ECS_TASKS:  # answers as the bridge gives them: one moment's copies
            for arn in dict.fromkeys(tasks):
                for cluster_tasks in list(self.tasks.values()):  # a copy made in one step
                    task = cluster_tasks.get(arn)
                    if task is not None:
                        task.advance()
                        found.append(task_copy(task))
                        break
        return found

    EC2ContainerServiceBackend.describe_tasks = describe_tasks  # type: ignore[method-assign]
    try:
        yield
    finally:
        EC2ContainerServiceBackend.describe_tasks = original  # type: ignore[method-assign]


@contextlib.contextmanager
def fast_moto() -> Iterator[None]:
    """Every knob that speeds moto's interpreter without changing what it decides; the `.sync`
    poll interval is left as it is (set it with quick_sync_polls where waiting is the cost)."""
    with (
        cached_asl_trees(),
        cached_parse_tree_text(),
        cached_jsonpath_parses(),
        reused_integration_clients(),
        indexed_task_lookups(),
    ):
        yield
