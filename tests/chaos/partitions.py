"""Partition tests need network namespaces (root, iproute2, iptables).

`scripts/test.sh` installs those tools and sets KVNODE_REQUIRE_NETNS=1 when it
runs as root, as CI does: there, unusable namespaces are a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvnode.cluster.netns import Topology, available
from kvnode.cluster.supervisor import LocalCluster

PARTITIONS_UNAVAILABLE = available()
if PARTITIONS_UNAVAILABLE and os.environ.get("KVNODE_REQUIRE_NETNS") == "1":
    pytest.fail(f"partitions are required but unusable: {PARTITIONS_UNAVAILABLE}", pytrace=False)

needs_partitions = pytest.mark.skipif(
    PARTITIONS_UNAVAILABLE is not None, reason=f"partitions unavailable: {PARTITIONS_UNAVAILABLE}"
)


@contextlib.contextmanager
def partitionable_cluster(base: Path) -> Iterator[tuple[Topology, LocalCluster]]:
    """Three started nodes, each in its own network namespace; torn down afterwards."""
    topology = Topology(3)
    topology.setup()
    cluster = LocalCluster(
        base,
        hosts=topology.addresses,
        http_ports=[8001] * 3,
        raft_ports=[4321] * 3,
        launch_prefix=[topology.prefix(i) for i in range(3)],
        settings={"append_entries_period": 0.02, "request_timeout": 2.0},
    )
    try:
        cluster.start_all()
        yield topology, cluster
    finally:
        topology.heal()
        cluster.stop_all()
        topology.teardown()
