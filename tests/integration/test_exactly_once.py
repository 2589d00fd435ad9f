"""A write retried under the same request id is applied exactly once."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from kvnode.client import Client, CompareFailed, KvError
from kvnode.cluster.supervisor import LocalCluster
from tests.integration.conftest import (
    assert_clean_logs,
    converged,
    leader_of,
    make_cluster,
    statuses,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def send_and_drop_reply(address: str, request: bytes) -> None:
    """Send a raw HTTP request and hang up before the reply: the client never learns it."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)


def test_a_write_whose_reply_was_lost_is_applied_once_on_retry(
    shared_cluster: LocalCluster,
) -> None:
    async def scenario() -> None:
        async with Client(shared_cluster.urls) as client:
            node = shared_cluster.nodes[1]
            send_and_drop_reply(
                node.http_addr,
                b"PUT /kv/once/k HTTP/1.1\r\nHost: x\r\nX-Request-Id: lost-1\r\n"
                b"Content-Length: 2\r\n\r\nv1",
            )

            async def applied() -> bool:
                return await client.get("once/k") is not None

            await wait_until(applied, 10, "the first attempt to be applied")
            first = await client.get("once/k")
            assert first is not None
            await client.put("once/other", b"x")  # the log moves on in between
            retry = await client.put("once/k", b"v1", request_id="lost-1", endpoint=node.url)
            assert retry.revision == first.revision and retry.created
            after = await client.get("once/k")
            assert after is not None
            assert (after.revision, after.create_revision) == (first.revision, first.revision)

    asyncio.run(scenario())


def test_a_retried_cas_reports_success_not_a_compare_failure(
    shared_cluster: LocalCluster,
) -> None:
    async def scenario() -> None:
        async with Client(shared_cluster.urls) as client:
            await client.put("once/cas", b"old")
            first = await client.put("once/cas", b"new", prev_value=b"old", request_id="cas-1")
            retry = await client.put("once/cas", b"new", prev_value=b"old", request_id="cas-1")
            assert retry == first
            with pytest.raises(CompareFailed):  # a new id is a new attempt, and it fails
                await client.put("once/cas", b"newer", prev_value=b"old", request_id="cas-2")

    asyncio.run(scenario())


def test_request_ids_still_deduplicate_after_a_snapshot_transfer(tmp_path: Path) -> None:
    local = make_cluster(tmp_path / "c", snapshot_entries=100)
    try:

        async def scenario() -> None:
            leader = await leader_of(local)
            follower = (leader + 1) % 3
            async with Client([local.urls[leader]]) as client:
                first = await client.put("snap/k", b"v", request_id="before-snapshot")
                local.stop(follower)
                local.wipe(follower)
                for i in range(300):
                    await client.put(f"snap/fill{i}", b"x")

                async def compacted() -> bool:
                    return (await statuses(local))[leader]["snapshots_written"] >= 1

                await wait_until(compacted, 30, "the leader to compact")
                local.start(follower)
                found = await converged(local)
                assert found[follower]["snapshots_installed"] >= 1
                retry = await client.put(
                    "snap/k", b"v", request_id="before-snapshot", endpoint=local.urls[follower]
                )
                assert retry.revision == first.revision

        asyncio.run(scenario())
    finally:
        local.stop_all()
    assert_clean_logs(local)


def test_a_request_id_reused_for_a_different_request_is_refused_with_409(
    shared_cluster: LocalCluster,
) -> None:
    async def scenario() -> None:
        async with Client(shared_cluster.urls) as client:
            first = await client.put("reuse/alpha", b"a", request_id="client-42")
            attempts = [
                client.put("reuse/beta", b"a", request_id="client-42"),
                client.delete("reuse/alpha", request_id="client-42"),
                client.put("reuse/alpha", b"a", prev_value=b"zzz", request_id="client-42"),
            ]
            for attempt in attempts:
                with pytest.raises(KvError) as refused:
                    await attempt
                assert (refused.value.status, refused.value.code) == (409, "request_id_reused")
            assert await client.get("reuse/beta") is None
            alpha = await client.get("reuse/alpha")
            assert alpha is not None and alpha.revision == first.revision
            retry = await client.put("reuse/alpha", b"a", request_id="client-42")
            assert retry.revision == first.revision

    asyncio.run(scenario())
