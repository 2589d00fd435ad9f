"""Replication, restarts and snapshots on a real 3-node cluster (no mocks of PySyncObj)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from kvnode.client import Client, Indeterminate, KvError, Unavailable
from kvnode.cluster.supervisor import LocalCluster
from kvnode.storage.fileformat import KIND_SNAPSHOT
from kvnode.storage.image import peek_index
from kvnode.storage.layout import RAFT_SNAPSHOT
from tests.integration.conftest import (
    LoadResult,
    assert_all_present,
    assert_clean_logs,
    converged,
    leader_of,
    make_cluster,
    statuses,
    write_load,
)
from tests.waiting import wait_until, wait_until_sync

pytestmark = pytest.mark.slow


def test_writes_through_every_node_converge_to_identical_replicas(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        load = await write_load(cluster.urls, 5000, concurrency=64)
        assert len(load.acked) == 5000, (len(load.failed), len(load.indeterminate))
        found = await converged(cluster)
        assert all(s["keys"] == 5000 for s in found.values())
        await assert_all_present(cluster, load.acked, node=2)

    asyncio.run(scenario())


async def load_while(action, urls: list[str], count: int, prefix: str) -> LoadResult:
    """Run a write load and, once a third of it is acknowledged, do `action`."""
    result = LoadResult()
    loader = asyncio.create_task(write_load(urls, count, prefix=prefix, result=result))
    await wait_until(lambda: _true(len(result.acked) >= count // 3), 60, "load to start")
    await asyncio.to_thread(action)
    await loader
    return result


async def _true(value: bool) -> bool:
    return value


def test_killed_follower_restarts_and_converges(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        leader = await leader_of(cluster)
        follower = (leader + 1) % 3
        others = [cluster.urls[i] for i in range(3) if i != follower]
        load = await load_while(lambda: cluster.kill(follower), others, 1500, "f")
        cluster.start(follower)
        await converged(cluster)
        await assert_all_present(cluster, load.acked, node=follower)

    asyncio.run(scenario())


def test_killed_leader_is_replaced_and_no_acknowledged_write_is_lost(
    cluster: LocalCluster,
) -> None:
    async def scenario() -> None:
        old_leader = await leader_of(cluster)
        before = await write_load(cluster.urls, 300, prefix="before")
        assert len(before.acked) == 300
        cluster.kill(old_leader)
        new_leader = await leader_of(cluster)
        assert new_leader != old_leader
        survivors = [cluster.urls[i] for i in range(3) if i != old_leader]
        after = await write_load(survivors, 300, prefix="after")
        assert len(after.acked) == 300, "writes must continue under the new leader"
        await assert_all_present(cluster, {**before.acked, **after.acked}, node=new_leader)
        cluster.start(old_leader)
        await converged(cluster)

    asyncio.run(scenario())


def test_all_nodes_killed_at_once_keep_every_acknowledged_write(cluster: LocalCluster) -> None:
    def kill_all() -> None:
        for index in range(3):
            cluster.kill(index)

    async def scenario() -> None:
        load = await load_while(kill_all, cluster.urls, 3000, "all")
        assert load.acked, "some writes must have been acknowledged before the kill"
        cluster.start_all()
        leader = await leader_of(cluster)
        await assert_all_present(cluster, load.acked, node=leader)
        await converged(cluster)

    asyncio.run(scenario())


def test_wiped_follower_catches_up_from_a_snapshot(tmp_path: Path) -> None:
    local = make_cluster(tmp_path / "c", snapshot_entries=200)
    try:

        async def scenario() -> None:
            leader = await leader_of(local)
            follower = (leader + 1) % 3
            local.stop(follower)
            local.wipe(follower)
            others = [local.urls[i] for i in range(3) if i != follower]
            # One write at a time: each is a log entry of its own, so the log passes
            # snapshot_entries however the batcher would have grouped concurrent ones.
            load = await write_load(others, 1000, prefix="w", concurrency=1)
            assert len(load.acked) == 1000

            async def compacted() -> bool:
                found = await statuses(local)
                return found[leader]["snapshots_written"] >= 1

            await wait_until(compacted, 30, "the leader to compact its log")
            local.start(follower)
            found = await converged(local)
            assert found[follower]["snapshots_installed"] >= 1
            await assert_all_present(local, load.acked, node=follower)

        asyncio.run(scenario())
    finally:
        local.stop_all()
    assert_clean_logs(local)


def test_large_values_compact_the_log_by_bytes(tmp_path: Path) -> None:
    """40 writes of 100 KiB to one key: far below snapshot_entries, but past snapshot_bytes
    (1 MiB), so every node compacts and its journal stays near that size, not 4 MB."""
    local = make_cluster(tmp_path / "c", snapshot_bytes=1024 * 1024)
    try:

        async def scenario() -> None:
            async with Client(local.urls, timeout=10) as client:
                for i in range(40):
                    await client.put("big", bytes([i]) * 100 * 1024)

            async def bounded() -> bool:
                found = await statuses(local)
                return all(
                    s["snapshots_written"] >= 1 and s["journal_bytes"] < 2 * 1024 * 1024
                    for s in found.values()
                )

            await wait_until(bounded, 30, "every journal to be compacted by bytes")

        asyncio.run(scenario())
    finally:
        local.stop_all()
    assert_clean_logs(local)


def test_journal_and_wal_stay_bounded(tmp_path: Path) -> None:
    local = make_cluster(tmp_path / "c", snapshot_entries=300, checkpoint_entries=100)
    try:

        async def scenario() -> None:
            peak: dict[str, int] = {"journal": 0, "wal": 0, "log": 0}
            for round_number in range(6):
                load = await write_load(local.urls, 500, prefix=f"r{round_number}-")
                assert len(load.acked) == 500, load.errors[:5]
                for status in (await statuses(local)).values():
                    peak["journal"] = max(peak["journal"], status["journal_bytes"])
                    peak["wal"] = max(peak["wal"], status["wal_bytes"])
                    peak["log"] = max(peak["log"], status["log_entries"])
            # 3000 writes of ~200-byte entries: without compaction the journal would pass 600 KB.
            assert peak["log"] < 1200, peak
            assert peak["journal"] < 400_000, peak
            assert peak["wal"] < 400_000, peak

        asyncio.run(scenario())
    finally:
        local.stop_all()
    assert_clean_logs(local)


def test_minority_neither_acknowledges_writes_nor_serves_linearizable_reads(
    cluster: LocalCluster,
) -> None:
    async def scenario() -> None:
        async with Client(cluster.urls, timeout=15) as client:
            await client.put("before", b"1")
            survivor = await leader_of(cluster)
            url = cluster.urls[survivor]
            paused = [i for i in range(3) if i != survivor]
            for index in paused:
                cluster.pause(index)
            try:
                with pytest.raises((Unavailable, Indeterminate)):
                    await client.put("lonely", b"x", endpoint=url)
                with pytest.raises((Unavailable, Indeterminate)):
                    await client.get("before", endpoint=url)
                stale = await client.get("before", consistency="stale", endpoint=url)
                assert stale is not None and stale.value == b"1"
            finally:
                for index in paused:
                    cluster.resume(index)
            await leader_of(cluster)

            async def writable() -> bool:
                with contextlib.suppress(Unavailable, Indeterminate):
                    await client.put("after", b"2")
                    return True
                return False

            await wait_until(writable, 30, "service to resume")
            value = await client.get("after")
            assert value is not None and value.value == b"2"

    asyncio.run(scenario())


def snapshot_index(local: LocalCluster, node: int) -> int:
    """The index of the node's Raft snapshot, once its first one is written (a forked
    child writes it, which on a busy machine can lag the writes that called for it)."""
    path = local.nodes[node].data_dir / RAFT_SNAPSHOT
    head = wait_until_sync(
        lambda: path.read_bytes()[:64] if path.exists() else None,
        60,
        f"{local.nodes[node].node_id}'s first Raft snapshot",
    )
    return peek_index(head, KIND_SNAPSHOT) or 0


def test_a_restart_after_compaction_keeps_the_log_past_the_snapshot(tmp_path: Path) -> None:
    """Compaction keeps trailing entries before the snapshot; a restarted node must trim
    exactly those, not (as PySyncObj does when its log starts elsewhere) every entry after
    the snapshot, which would take acknowledged writes off this replica."""
    local = make_cluster(tmp_path / "c", snapshot_entries=40)
    try:

        async def written(count: int, prefix: str) -> int:
            load = await write_load(local.urls, count, prefix=prefix, concurrency=4)
            assert len(load.acked) == count
            found = await converged(local)
            return int(found[0]["commit_index"])

        commit = asyncio.run(written(300, "t"))
        for attempt in range(3):  # until some node's snapshot is not at the log's very end
            behind = [i for i in range(3) if snapshot_index(local, i) < commit]
            if behind:
                break
            commit = asyncio.run(written(5, f"more{attempt}"))
        node = behind[0]
        for index in range(3):
            local.kill(index)
        # Its own compaction would legitimately shorten the log this test reads (it applies
        # what it committed before the kill): give it thresholds it cannot reach.
        local.reconfigure(node, snapshot_entries=10**6, snapshot_seconds=10**6)
        local.start(node)  # alone: it can only show what its own disk holds

        async def restarted() -> dict[str, Any] | None:
            async with Client([local.urls[node]], timeout=1) as client:
                try:
                    status = await client.status()
                except KvError:
                    return None
            return status if status["raft_applied_index"] > 1 else None  # snapshot loaded

        status = asyncio.run(wait_until(restarted, 30, "the node to load its snapshot"))
        # Read now, not at the kill: a snapshot writer forked before the kill may have
        # finished since (the restarted node waits for it), and this is the one it loaded.
        expected_entries = commit - snapshot_index(local, node) + 2  # its prev and last too
        assert status["log_entries"] >= expected_entries >= 2, (status, expected_entries)
    finally:
        local.stop_all()
