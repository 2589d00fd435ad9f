"""Watches on a real three-node cluster: list-then-watch under load, TTL expiry seen by
every node at one revision, a watcher that survives the SIGKILL of its node, the history
a restarted node rebuilds, and `kvnode watch` on the command line."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from kvnode.client import Client, SyncClient, WatchEvent
from kvnode.cluster.supervisor import LocalCluster
from kvnode.cluster.watch_checker import in_order_once
from tests.integration.conftest import assert_clean_logs, leader_of, make_cluster, write_load
from tests.waiting import wait_until

WATCH_SECONDS = 60.0  # every watch loop below ends by itself within this


async def collect(
    events: Any, wanted: set[str], seen: list[WatchEvent], timeout: float = WATCH_SECONDS
) -> None:
    """Append events to `seen` until every key in `wanted` has had one (or fail)."""

    async def run() -> None:
        async for event in events:
            seen.append(event)
            if wanted <= {e.key for e in seen}:
                return

    await asyncio.wait_for(run(), timeout)


def assert_gap_free(seen: list[WatchEvent]) -> None:
    assert in_order_once([(e.revision, e.type, e.key, None) for e in seen]), "repeated or reordered"


def test_list_then_watch_under_concurrent_writes_misses_nothing(
    shared_cluster: LocalCluster,
) -> None:
    urls = shared_cluster.urls

    async def scenario() -> None:
        stop = asyncio.Event()
        load = asyncio.ensure_future(write_load(urls, 400, prefix="lw/", concurrency=8, stop=stop))
        async with Client(urls, timeout=10) as client:
            await wait_until(lambda: client.list("lw/", limit=1), WATCH_SECONDS, "the first writes")
            listed, index = await client.list_with_index("lw/", limit=10_000, endpoint=urls[1])
            result = await load
            assert len(result.acked) == 400, result.errors[:3]
            seen: list[WatchEvent] = []
            unlisted = set(result.acked) - {item.key for item in listed}
            assert unlisted, "the list should have raced the writes"
            watcher = Client([urls[2]], timeout=10)
            async with watcher:
                await collect(watcher.watch(prefix="lw/", from_revision=index + 1), unlisted, seen)
        assert all(e.revision > index for e in seen)
        assert {e.key for e in seen} == unlisted  # each key is written once
        assert all(e.value == result.acked[e.key] for e in seen)
        assert_gap_free(seen)

    asyncio.run(scenario())


def test_ttl_expiry_is_one_expire_event_at_the_same_revision_on_every_node(
    shared_cluster: LocalCluster,
) -> None:
    async def scenario() -> None:
        async with Client(shared_cluster.urls, timeout=10) as client:
            put = await client.put("ttl/x", b"v", ttl=1)
            seen_by_node = []
            for url in shared_cluster.urls:
                seen: list[WatchEvent] = []

                async def expired(seen: list[WatchEvent] = seen, url: str = url) -> None:
                    node = Client([url], timeout=10)
                    async with node:
                        async for event in node.watch("ttl/x", from_revision=put.revision):
                            seen.append(event)
                            if event.type == "expire":
                                return

                await asyncio.wait_for(expired(), WATCH_SECONDS)
                seen_by_node.append([(e.type, e.revision, e.create_revision) for e in seen])
        first = seen_by_node[0]
        assert [kind for kind, _, _ in first] == ["put", "expire"]
        assert first[1][1] > put.revision and first[1][2] == put.revision
        assert seen_by_node == [first] * len(shared_cluster.urls)

    asyncio.run(scenario())


def test_a_watcher_on_a_killed_follower_resumes_elsewhere_without_gap_or_repeat(
    cluster: LocalCluster,
) -> None:
    leader = asyncio.run(leader_of(cluster))
    follower = next(i for i in range(cluster.size) if i != leader)
    others = [url for i, url in enumerate(cluster.urls) if i != follower]
    order = [cluster.urls[follower], *others]

    async def scenario() -> tuple[list[WatchEvent], dict[str, bytes]]:
        seen: list[WatchEvent] = []
        async with Client(order, timeout=10, write_deadline=30) as watcher:
            start = (await watcher.status(cluster.urls[leader]))["revision"] + 1
            events = watcher.watch(prefix="kf/", from_revision=start)
            first = asyncio.ensure_future(collect(events, {"kf/a000019"}, seen))
            head = await write_load(others, 20, prefix="kf/a", concurrency=1)
            await first
            assert {e.node for e in seen} == {cluster.nodes[follower].node_id}
            cluster.kill(follower)
            tail = await write_load(others, 180, prefix="kf/b", concurrency=4)
            acked = {**head.acked, **tail.acked}
            assert len(acked) == 200, tail.errors[:3]
            await collect(events, set(acked), seen)
        return seen, acked

    seen, acked = asyncio.run(scenario())
    assert_gap_free(seen)
    assert {e.key for e in seen} == set(acked) and len(seen) == len(acked)
    assert len({e.node for e in seen}) == 2, "the watch should have moved to another node"


def test_a_restarted_node_serves_the_history_its_wal_covers(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        async with Client(cluster.urls, timeout=10) as client:
            first = await client.put("rs/0", b"0")
            for i in range(1, 30):
                await client.put(f"rs/{i}", f"{i}".encode())
        reference = await window(cluster.urls[0], "rs/", first.revision)
        assert len(reference) == 30
        cluster.kill(2)
        cluster.start(2)
        async with Client(cluster.urls, timeout=2) as client:
            await cluster.wait_until_ready(client)
        assert await window(cluster.urls[2], "rs/", first.revision) == reference

    asyncio.run(scenario())


def test_a_follower_killed_after_checkpoints_serves_the_same_window_as_the_leader(
    tmp_path: Path,
) -> None:
    """Checkpoints every 20 entries: the revisions watched from are long before the
    restarted follower's last checkpoint, so its WAL alone could not serve them."""
    local = make_cluster(tmp_path / "cluster", checkpoint_entries=20, checkpoint_seconds=0.2)
    try:

        async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
            async with Client(local.urls, timeout=10) as client:
                first = await client.put("ck/0", b"0")
                for i in range(1, 150):
                    await client.put(f"ck/{i % 40}", f"{i}".encode())
                leader = await leader_of(local)
                follower = (leader + 1) % 3
                from_leader = await window(local.urls[leader], "ck/", first.revision)
                before = await window(local.urls[follower], "ck/", first.revision)
                local.kill(follower)
                local.start(follower)
                await local.wait_until_ready(client)
                after = await window(local.urls[follower], "ck/", first.revision)
            return from_leader, before, after

        from_leader, before, after = asyncio.run(scenario())
        assert len(from_leader) == 150
        assert before == from_leader
        assert after == from_leader
    finally:
        local.stop_all()
    assert_clean_logs(local)
    for node in local.nodes:  # a killed peer is not a peer with another secret
        assert "cluster_secret?" not in node.log_path.read_text(), node.node_id


async def window(url: str, prefix: str, from_revision: int) -> list[Any]:
    """A long-poll watch of `prefix` from `from_revision` on one node: the events it
    answers (without the answering node's name)."""
    async with Client([url], timeout=10) as client:
        _status, body, _headers = await client.request(
            "GET",
            "/kv/",
            params={"prefix": prefix, "watch": "true", "from_revision": str(from_revision)},
            idempotent=True,
        )
    found: list[Any] = orjson.loads(body)
    return [{k: v for k, v in event.items() if k != "node"} for event in found]


def ignore_sigint() -> None:
    """What a shell does to a background job (`kvnode watch k &`): SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize(
    ("stop_signal", "started_ignoring_sigint"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["ctrl-c", "ctrl-c-to-a-background-job", "sigterm"],
)
def test_kvnode_watch_prints_changes_as_json_lines_until_ctrl_c(
    shared_cluster: LocalCluster, stop_signal: signal.Signals, started_ignoring_sigint: bool
) -> None:
    endpoints = ",".join(node.http_addr for node in shared_cluster.nodes)
    lines: list[Any] = []
    with (
        subprocess.Popen(
            [sys.executable, "-m", "kvnode", "watch", "--prefix", "cli/", "--json"],
            env={**os.environ, "KVNODE_ENDPOINTS": endpoints},
            stdout=subprocess.PIPE,
            preexec_fn=ignore_sigint if started_ignoring_sigint else None,
        ) as watcher,
        SyncClient(shared_cluster.urls, timeout=10) as client,
    ):
        assert watcher.stdout is not None
        try:
            # The watch starts from "now", once it is connected: write until it shows one.
            deadline = time.monotonic() + WATCH_SECONDS
            while not lines and time.monotonic() < deadline:
                client.put("cli/a", b"1")
                if select.select([watcher.stdout], [], [], 0.5)[0]:
                    lines.append(orjson.loads(watcher.stdout.readline()))
        finally:
            watcher.send_signal(stop_signal)
        assert watcher.wait(timeout=30) == 0
    assert lines, "kvnode watch printed nothing"
    assert {k: lines[0][k] for k in ("type", "key", "value")} == {
        "type": "put",
        "key": "cli/a",
        "value": "1",
    }


def test_abandoned_long_polls_end_and_free_their_watcher_slots(tmp_path: Path) -> None:
    """Clients that ask for a 300 s long-poll and hang up: the node notices and ends each,
    so they hold neither memory nor the `max_watchers` slots they took."""
    local = make_cluster(tmp_path / "c", max_watchers=5)
    try:
        host, port = local.nodes[0].http_addr.split(":")
        for _ in range(5):
            with socket.create_connection((host, int(port)), timeout=5) as sock:
                sock.sendall(b"GET /kv/g?watch=true&timeout=300 HTTP/1.1\r\nHost: x\r\n\r\n")

        async def a_watch_is_served() -> bool:
            async with Client([local.urls[0]], timeout=5) as client:
                status, _body, _headers = await client.request(
                    "GET", "/kv/g", params={"watch": "true", "timeout": "0"}, idempotent=True
                )
                return status == 200

        asyncio.run(wait_until(a_watch_is_served, 15, "the abandoned long-polls to end"))
    finally:
        local.stop_all()
    assert_clean_logs(local)


def test_the_blocking_client_watches_too(shared_cluster: LocalCluster) -> None:
    with SyncClient(shared_cluster.urls, timeout=10) as client:
        first = client.put("sync/w", b"1")
        client.put("sync/w", b"2")
        events = client.watch("sync/w", from_revision=first.revision)
        seen = [next(events), next(events)]
        events.close()  # ends the watch
        assert [(e.type, e.value) for e in seen] == [("put", b"1"), ("put", b"2")]
        assert client.get("sync/w").value == b"2"  # the client is still usable
