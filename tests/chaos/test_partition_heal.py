"""Pre-vote under a real partition: a follower cut off by the network, then healed, does not
depose the leader (before pre-vote, each heal raised the term and cost a burst of 503s)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kvnode.client import Client
from tests.chaos.partitions import needs_partitions, partitionable_cluster
from tests.integration.conftest import converged, write_load
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, needs_partitions]


def test_healing_an_isolated_follower_keeps_the_leader_and_term(tmp_path: Path) -> None:
    with partitionable_cluster(tmp_path / "c") as (topology, cluster):

        async def scenario() -> None:
            async with Client(cluster.urls, timeout=3) as client:
                leader = await cluster.wait_for_leader(client)
                await cluster.wait_until_ready(client)
                before = (await cluster.statuses(client))[leader]["term"]
                follower = (leader + 1) % 3
                others = [i for i in range(3) if i != follower]
                topology.partition([[follower], others])

                async def gave_up_on_the_leader() -> bool:
                    # Its election timer ran out: it forgot the leader and asks for votes.
                    status = await client.status(cluster.urls[follower])
                    return status["leader_raft_addr"] is None

                await wait_until(gave_up_on_the_leader, 20, "the cut-off follower to stand")
                topology.heal()
                load = await write_load([cluster.urls[i] for i in others], 50)
                assert len(load.acked) == 50, load.errors[:3]
                found = await converged(cluster)
                leaders = {(i, s["term"]) for i, s in found.items() if s["role"] == "leader"}
                assert leaders == {(leader, before)}, f"leader/term changed: {leaders}"

        asyncio.run(scenario())
