"""A bare ECS world for tests of moto's ECS on its own (bridges, knobs): a cluster and a Fargate
task definition, and RunTask on the default network."""

from __future__ import annotations

from typing import Any

from local.harness import default_network


def cluster_and_task_definition(ecs: Any, name: str) -> tuple[str, str]:
    """A cluster named `name` and a one-container Fargate task definition of that family."""
    cluster = str(ecs.create_cluster(clusterName=name)["cluster"]["clusterArn"])
    taskdef = str(
        ecs.register_task_definition(
            family=name,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[{"name": "job", "image": "busybox", "memory": 512}],
        )["taskDefinition"]["taskDefinitionArn"]
    )
    return cluster, taskdef


def fargate_network(region: str) -> Any:
    subnets, groups = default_network(region)
    return {"awsvpcConfiguration": {"subnets": subnets, "securityGroups": groups}}
