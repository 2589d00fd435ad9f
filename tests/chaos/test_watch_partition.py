"""A watcher on a node that the network cuts off is told so: its stream ends with a
`no_leader` error line (not endless silence), and `Client.watch` resumes on a node that
still has the cluster, without a gap."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from kvnode.client import Client
from tests.chaos.partitions import needs_partitions, partitionable_cluster

pytestmark = [pytest.mark.slow, needs_partitions]
SECONDS = 30.0


def test_a_cut_off_node_ends_its_streams_and_the_client_moves_on(tmp_path: Path) -> None:
    with partitionable_cluster(tmp_path / "c") as (topology, cluster):

        async def scenario() -> None:
            async with Client(cluster.urls, timeout=3) as client:
                leader = await cluster.wait_for_leader(client)
                await cluster.wait_until_ready(client)
                follower = (leader + 1) % 3
                others = [i for i in range(3) if i != follower]
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(f"{cluster.urls[follower]}/kv/cut?watch=stream") as stream,
                ):
                    assert stream.status == 200
                    topology.partition([[follower], others])
                    cut_at = time.monotonic()
                    lines: list[Any] = []
                    async with asyncio.timeout(SECONDS):
                        async for line in stream.content:
                            lines.append(orjson.loads(line))
                    ended_after = time.monotonic() - cut_at
                assert lines and lines[-1]["error"] == "no_leader", lines
                assert ended_after < 10, f"the cut-off node kept quiet for {ended_after:.1f} s"

                watcher = Client([cluster.urls[follower], *(cluster.urls[i] for i in others)])
                async with watcher:
                    start = await client.put("cut", b"before", endpoint=cluster.urls[leader])
                    events = watcher.watch("cut", from_revision=start.revision)
                    first = await asyncio.wait_for(anext(events), SECONDS)
                    after = await client.put("cut", b"after", endpoint=cluster.urls[leader])
                    second = await asyncio.wait_for(anext(events), SECONDS)
                    await events.aclose()
                assert (first.value, second.value) == (b"before", b"after")
                assert second.revision == after.revision
                assert second.node != cluster.nodes[follower].node_id

        asyncio.run(scenario())
