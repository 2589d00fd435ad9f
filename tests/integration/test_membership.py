"""Membership changes on real clusters: grow 3 -> 5 and shrink 5 -> 3 while clients run,
with the chaos checker proving every history linearizable and no acknowledged write
lost; the quorum refusals with a member down; the CLI; a restart keeps the membership."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from kvnode.client import Client, KvError
from kvnode.cluster.chaos import final_reads, judge
from kvnode.cluster.supervisor import LocalCluster
from kvnode.cluster.workload import Workload
from tests.integration.cli_processes import kvnode_against
from tests.integration.conftest import assert_clean_logs, converged, make_cluster, write_load
from tests.waiting import wait_until

JOIN_TIMEOUT = 60.0
LOAD_SECONDS = 30.0


async def member_ids(client: Client, endpoint: str | None = None) -> list[str]:
    if endpoint is None:
        return sorted(m["id"] for m in await client.members())
    _status, body, _headers = await client.request(
        "GET", "/cluster/members", endpoint=endpoint, idempotent=True
    )
    return sorted(m["id"] for m in orjson.loads(body))


async def join_one(local: LocalCluster, client: Client) -> int:
    """Start a new node with --join through a running member; wait until it serves."""
    through = next(n for n in local.nodes if n.running)
    index = local.add_node(through.url)
    local.start(index)
    node = local.nodes[index]

    async def ready() -> bool:
        try:
            await client.request("GET", "/ready", endpoint=node.url, idempotent=True)
        except KvError:
            return False
        return True

    await wait_until(ready, JOIN_TIMEOUT, f"{node.node_id} to join and catch up")
    return index


async def published(client: Client, ids: list[str]) -> bool:
    """Every endpoint of `client` lists exactly these members, each under its own id and
    with its URL. (A node names itself from its config, so only the others' views show
    that its directory entry is replicated.)"""
    for endpoint in client.endpoints:
        try:
            _status, body, _headers = await client.request(
                "GET", "/cluster/members", endpoint=endpoint, idempotent=True
            )
        except KvError:
            return False  # not serving yet
        members = orjson.loads(body)
        if sorted(m["id"] for m in members) != sorted(ids) or not all(
            m["http_url"] for m in members
        ):
            return False
    return True


@pytest.fixture
def growing(tmp_path: Path) -> Any:
    # Snapshots every 50 entries: a joining node catches up from a snapshot, as it would
    # from a cluster with any history.
    local = make_cluster(tmp_path / "cluster", snapshot_entries=50)
    yield local
    local.stop_all()
    assert_clean_logs(local)


def test_grow_to_five_and_shrink_to_three_under_load_loses_nothing(growing: LocalCluster) -> None:
    local = growing

    async def scenario() -> dict[str, Any]:
        # History enough that the leader has compacted its log past a new node's start.
        assert len((await write_load(local.urls, 120, prefix="history/")).acked) == 120
        workload = Workload(list(local.urls), clients=6, rate=15.0, seed=7)
        load = asyncio.create_task(workload.run(LOAD_SECONDS))
        async with Client(local.urls, timeout=10, write_deadline=30) as client:
            for _ in range(2):  # 3 -> 4 -> 5, one at a time
                index = await join_one(local, client)
                workload.endpoints.append(local.nodes[index].url)
                joined = await client.status(endpoint=local.nodes[index].url)
                assert joined["snapshots_installed"] >= 1, joined
            async with Client([n.url for n in local.nodes], timeout=10) as every:
                await wait_until(
                    lambda: published(every, [f"node{n}" for n in range(1, 6)]),
                    30,
                    "five published members",
                )
            # 5 -> 3: node1 and node2 go (one of them may lead: it hands over first).
            for name in ("node1", "node2"):
                running = [n.url for n in local.nodes if n.running]
                async with Client(running, timeout=10, write_deadline=30) as changer:
                    reply = await changer.member_remove(name)
                assert reply["removed"]["id"] == name
                assert name not in [m["id"] for m in reply["members"]]
                local.stop(int(name[-1]) - 1)
            survivors = [n.url for n in local.nodes if n.running]
            async with Client(survivors, timeout=10) as after:
                assert await member_ids(after) == ["node3", "node4", "node5"]
        await load
        await final_reads(local, workload.history)
        return judge(workload.history)

    verdict = asyncio.run(scenario())
    assert verdict["valid"], verdict
    assert verdict["keys_checked"] >= 6
    # The survivors hold the same state, and keep their membership across a restart (the
    # joined nodes' configs name no peers: they start from what they saved).
    asyncio.run(converged(local))
    for index in (2, 3, 4):
        local.stop(index)
    for index in (2, 3, 4):
        local.start(index)

    async def after_restart() -> None:
        survivors = [local.nodes[i].url for i in (2, 3, 4)]
        async with Client(survivors, timeout=10, write_deadline=30) as client:
            await wait_until(
                lambda: published(client, ["node3", "node4", "node5"]), 30, "membership back"
            )
            written = await client.put("after/restart", b"ok")
            for url in survivors:
                assert await member_ids(client, url) == ["node3", "node4", "node5"]
            assert written.revision > 0

    asyncio.run(after_restart())


def test_changes_that_would_lose_quorum_are_refused_with_a_member_down(
    growing: LocalCluster,
) -> None:
    local = growing

    async def scenario() -> None:
        async with Client(local.urls, timeout=10) as client:
            await wait_until(
                lambda: published(client, ["node1", "node2", "node3"]), 30, "members published"
            )
            leader = await local.wait_for_leader(client)
            down = (leader + 1) % 3
            up = (leader + 2) % 3
            local.kill(down)
            survivors = [local.nodes[i].url for i in (leader, up)]
        async with Client(survivors, timeout=10) as client:

            async def seen_down() -> bool:
                members = await client.members()
                return any(not m["reachable"] for m in members if m["is_leader"] is False) and (
                    sum(m["reachable"] for m in members) == 2
                )

            # The leader's view is what counts; ask it directly.
            client.endpoints = [local.nodes[leader].url]
            await wait_until(seen_down, 20, "the leader to see the member down")
            with pytest.raises(KvError) as added:
                await client.member_add("127.0.0.1:1", "http://127.0.0.1:2", "node9")
            assert (added.value.status, added.value.code) == (409, "would_lose_quorum")
            with pytest.raises(KvError) as removed:
                await client.member_remove(local.nodes[up].node_id)
            assert (removed.value.status, removed.value.code) == (409, "would_lose_quorum")
            assert await member_ids(client) == ["node1", "node2", "node3"]
            # Removing the member that is down keeps a quorum of the rest: allowed.
            reply = await client.member_remove(local.nodes[down].node_id)
            assert len(reply["members"]) == 2
            assert (await client.put("still/writable", b"yes")).revision > 0

    asyncio.run(scenario())


def test_member_cli_lists_adds_and_removes(growing: LocalCluster) -> None:
    local = growing

    async def all_published() -> None:
        async with Client(local.urls, timeout=10) as client:
            ids = [n.node_id for n in local.nodes]
            await wait_until(lambda: published(client, ids), 30, "members published")

    asyncio.run(all_published())
    listed = kvnode_against(local, "member", "list")
    assert listed.returncode == 0, listed.stderr
    assert all(node.node_id in listed.stdout.decode() for node in local.nodes)
    assert "yes" in listed.stdout.decode()  # the leader is marked
    index = local.add_node(local.nodes[0].url)
    node = local.nodes[index]
    added = kvnode_against(
        local, "member", "add", node.raft_addr, node.url, "--id", node.node_id, "--json"
    )
    assert added.returncode == 0, added.stderr
    assert orjson.loads(added.stdout)["member"]["id"] == node.node_id
    again = kvnode_against(local, "member", "add", node.raft_addr, node.url)
    assert again.returncode == 1 and b"member_exists" in again.stderr
    unknown = kvnode_against(local, "member", "remove", "node9")
    assert unknown.returncode == 4 and b"member_not_found" in unknown.stderr
    removed = kvnode_against(local, "member", "remove", node.node_id)
    assert removed.returncode == 0, removed.stderr
    assert node.node_id not in removed.stdout.decode().split("members now:")[1]
