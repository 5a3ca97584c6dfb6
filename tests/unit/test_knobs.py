"""The speed knobs over moto (the model's, the bench's): each set for a block and put back after,
each changing how fast moto does something, never what it answers."""

from __future__ import annotations

from typing import Any

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


def test_cached_jsonpath_parses_keep_one_expression_per_path() -> None:
    from moto.stepfunctions.parser.asl.utils import json_path as module

    from local.knobs import cached_jsonpath_parses

    json_path: Any = module  # its `parse` is jsonpath_ng's, imported there

    original = json_path.parse
    with cached_jsonpath_parses():
        first = json_path.parse("$.lockId")
        assert json_path.parse("$.lockId") is first
        assert json_path.extract_json("$.lockId", {"lockId": "nightly"}) == "nightly"
    assert json_path.parse is original
    assert json_path.parse("$.lockId") is not json_path.parse("$.lockId")


def test_reused_integration_clients_make_one_client_per_region_and_service() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_ecs as module,
    )
    from moto.stepfunctions.parser.asl.utils import boto_client

    ecs_service: Any = module  # its `boto_client_for` is imported there

    from local.knobs import reused_integration_clients

    original = boto_client.boto_client_for
    with reused_integration_clients():
        made = ecs_service.boto_client_for("us-east-1", "ecs")
        assert ecs_service.boto_client_for("us-east-1", "ecs") is made
        assert ecs_service.boto_client_for("eu-west-1", "ecs") is not made
    assert ecs_service.boto_client_for is original


def test_cached_parse_tree_text_keeps_the_text_of_a_finished_tree_only() -> None:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    from local.knobs import cached_asl_trees, cached_parse_tree_text

    definition = '{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}}'
    _, fresh = AmazonStateLanguageParser.parse(definition)  # never marked finished
    with cached_asl_trees(), cached_parse_tree_text():
        _, tree = AmazonStateLanguageParser.parse(definition)
        text = tree.getText()
        assert tree.__dict__.get("knob_text") == text
        assert tree.getText() == text == fresh.getText()
        assert "knob_text" not in fresh.__dict__, "a tree not known to be finished"


def test_indexed_task_lookups_find_the_tasks_moto_finds() -> None:
    import boto3
    from moto import mock_aws

    from local.knobs import indexed_task_lookups
    from tests.support.ecs import cluster_and_task_definition, fargate_network

    with mock_aws():
        ecs = boto3.client("ecs", region_name="us-east-1")
        cluster, family = cluster_and_task_definition(ecs, "knobs")
        network = fargate_network("us-east-1")
        arns = [
            ecs.run_task(
                cluster=cluster,
                taskDefinition=family,
                launchType="FARGATE",
                networkConfiguration=network,
            )["tasks"][0]["taskArn"]
            for _ in range(3)
        ]
        asked = [arns[2], arns[0], arns[2]]
        by_moto = ecs.describe_tasks(cluster=cluster, tasks=asked)["tasks"]
        with indexed_task_lookups():
            indexed = ecs.describe_tasks(cluster=cluster, tasks=asked)["tasks"]
            by_id = ecs.describe_tasks(cluster=cluster, tasks=[arns[1].rsplit("/", 1)[1]])
        assert sorted(t["taskArn"] for t in indexed) == sorted(t["taskArn"] for t in by_moto)
        assert [t["taskArn"] for t in by_id["tasks"]] == [arns[1]]
