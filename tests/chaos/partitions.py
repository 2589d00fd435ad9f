"""Partition tests need network namespaces (root, iproute2, iptables).

`scripts/test.sh` installs those tools and sets KVNODE_REQUIRE_NETNS=1 when it
runs as root, as CI does: there, unusable namespaces are a failure, never a skip.
"""

from __future__ import annotations

import os

import pytest
from kvnode.cluster.netns import available

PARTITIONS_UNAVAILABLE = available()
if PARTITIONS_UNAVAILABLE and os.environ.get("KVNODE_REQUIRE_NETNS") == "1":
    pytest.fail(f"partitions are required but unusable: {PARTITIONS_UNAVAILABLE}", pytrace=False)

needs_partitions = pytest.mark.skipif(
    PARTITIONS_UNAVAILABLE is not None, reason=f"partitions unavailable: {PARTITIONS_UNAVAILABLE}"
)
