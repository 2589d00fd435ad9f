"""Pre-vote and check-quorum: a follower that restarts, or that was cut off and comes back,
does not depose a healthy leader; a leader cut off from the others steps down."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from kvnode.client import Client
from kvnode.cluster.supervisor import LocalCluster
from tests.integration import conftest
from tests.integration.conftest import LoadResult, converged, leader_of, statuses, write_load
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def leader_view(found: dict[int, dict[str, Any]]) -> set[tuple[int, int]]:
    """(leader index, term) as every running node sees it."""
    return {(i, s["term"]) for i, s in found.items() if s["role"] == "leader"}


def test_a_restarted_follower_under_load_leaves_the_leader_alone(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        leader = await leader_of(cluster)
        before = leader_view(await statuses(cluster))
        follower = (leader + 1) % 3
        others = [url for i, url in enumerate(cluster.urls) if i != follower]
        load = asyncio.create_task(write_load(others, 400, concurrency=8))
        cluster.stop(follower)
        cluster.start(follower)
        result = await load
        assert len(result.acked) == 400, result.errors[:3]
        found = await converged(cluster)
        assert leader_view(found) == before, "the restarted follower deposed the leader"
        assert all(s["term"] == next(iter(before))[1] for s in found.values())

    asyncio.run(scenario())


def test_a_follower_cut_off_and_back_leaves_the_leader_alone(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        leader = await leader_of(cluster)
        before = leader_view(await statuses(cluster))
        follower = (leader + 2) % 3
        cluster.pause(follower)  # it hears nothing; its election timer runs out meanwhile

        async def leader_lost_it() -> bool:
            # Silent for over an election timeout (the leader's view): resumed, its timer
            # has run out and it stands at once.
            async with Client([cluster.urls[leader]], timeout=2) as client:
                members = await client.members()
            return any(m["raft_addr"] == paused and not m["reachable"] for m in members)

        paused = cluster.nodes[follower].raft_addr
        await wait_until(leader_lost_it, 20, "the leader to lose the paused follower")
        cluster.resume(follower)
        load = await write_load(cluster.urls, 100)
        assert len(load.acked) == 100, load.errors[:3]
        found = await converged(cluster)
        assert leader_view(found) == before, "the returning follower deposed the leader"

    asyncio.run(scenario())


def test_a_leader_cut_off_from_both_followers_steps_down(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        leader = await leader_of(cluster)
        followers = [i for i in range(3) if i != leader]
        for i in followers:
            cluster.pause(i)
        started = time.monotonic()

        async def stepped_down() -> bool:
            found = await statuses(cluster)
            return leader in found and found[leader]["role"] != "leader"

        try:
            await wait_until(stepped_down, 10, "the isolated leader to step down")
        finally:
            for i in followers:
                cluster.resume(i)
        assert time.monotonic() - started < 5, "check-quorum should act within ~1.4 s"

    asyncio.run(scenario())


def test_a_leader_stopped_on_purpose_hands_over_first(tmp_path: Path) -> None:
    """SIGTERM to the leader while writes stream in: it asks a follower to take over
    before it stops (waiting for one to catch up with the entries it keeps appending), so
    the others have a new leader without waiting out an election timeout."""
    local = conftest.make_cluster(tmp_path / "c")
    try:

        async def scenario() -> int:
            leader = await leader_of(local)
            followers = [url for i, url in enumerate(local.urls) if i != leader]
            stop_load, result = asyncio.Event(), LoadResult()
            load = asyncio.create_task(
                write_load(followers, 100_000, result=result, stop=stop_load)
            )

            async def writes_landing() -> bool:
                return len(result.acked) >= 50

            await wait_until(writes_landing, 30, "writes to land")
            code = await asyncio.to_thread(local.stop, leader)
            stop_load.set()
            await load
            return leader if code == 0 else -1

        leader = asyncio.run(scenario())
        assert leader >= 0, "the leader did not stop cleanly"
        assert "handed leadership over before stopping" in local.nodes[leader].log_path.read_text()
        others = [i for i in range(local.size) if i != leader]

        async def new_leader() -> bool:
            found = await statuses(local)
            return {found[i]["role"] for i in others} == {"leader", "follower"}

        asyncio.run(wait_until(new_leader, 30, "the others to have a leader"))
    finally:
        local.stop_all()
    conftest.assert_clean_logs(local)
