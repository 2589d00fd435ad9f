"""Hot backup and restore, and export/import: a backup taken from a live follower while
writes go on, restored to every node of a new cluster, brings back the keys, their TTL
deadlines, leases and the request-id table; export/import moves keys as JSON lines."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from kvnode.client import Client
from kvnode.cluster.supervisor import LocalCluster
from tests.integration.cli_processes import kvnode_against
from tests.integration.conftest import FAST_SETTINGS, all_ready, assert_clean_logs, leader_of


def test_a_backup_restored_to_three_nodes_is_the_same_store(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    backup = tmp_path / "kvnode.snap"

    async def fill() -> dict[str, Any]:
        async with Client(cluster.urls, timeout=10) as client:
            for i in range(50):
                await client.put(f"keep/{i:02d}", f"v{i}".encode())
            ttl = await client.put("keep/ttl", b"t", ttl=600)
            lease = await client.lease_grant(600)
            await client.put("keep/leased", b"l", lease=lease["id"])
            once = await client.put("keep/once", b"1", request_id="backup-req-1")
            return {"ttl": ttl, "lease": lease, "once": once}

    before = asyncio.run(fill())
    follower = (asyncio.run(leader_of(cluster)) + 1) % cluster.size

    async def writes_meanwhile() -> Any:
        async with Client(cluster.urls, timeout=10) as client:
            running = asyncio.ensure_future(
                asyncio.gather(*(client.put(f"during/{i}", b"x") for i in range(100)))
            )
            done = await asyncio.to_thread(
                kvnode_against,
                cluster,
                "backup",
                str(backup),
                "--endpoint",
                cluster.nodes[follower].http_addr,
            )
            await running
            return done

    saved = asyncio.run(writes_meanwhile())
    assert saved.returncode == 0, saved.stderr
    assert b"backup of revision" in saved.stdout

    restored = LocalCluster(tmp_path / "restored", settings=FAST_SETTINGS)
    try:
        for node in restored.nodes:
            done = kvnode_against(
                restored, "restore", str(backup), "--config", str(node.config_path)
            )
            assert done.returncode == 0, done.stderr
        again = kvnode_against(
            restored, "restore", str(backup), "--config", str(restored.nodes[0].config_path)
        )
        assert again.returncode == 2 and b"not empty" in again.stderr
        restored.start_all()
        asyncio.run(all_ready(restored))

        async def check() -> None:
            async with Client(restored.urls, timeout=10) as client:
                for i in range(50):
                    got = await client.get(f"keep/{i:02d}")
                    assert got is not None and got.value == f"v{i}".encode()
                ttl = await client.get("keep/ttl")
                assert ttl is not None and ttl.expire_at == before["ttl"].expire_at
                lease = await client.lease(before["lease"]["id"])
                assert lease is not None and lease["keys"] == ["keep/leased"]
                retried = await client.put("keep/once", b"1", request_id="backup-req-1")
                assert retried.revision == before["once"].revision  # the first answer
                fresh = await client.put("keep/new", b"n")
                assert fresh.revision > retried.revision

        asyncio.run(check())
    finally:
        restored.stop_all()
    assert_clean_logs(restored)


def test_export_then_import_moves_keys_and_their_deadlines(cluster: LocalCluster) -> None:
    async def fill() -> None:
        async with Client(cluster.urls, timeout=10) as client:
            await client.put("move/text", b"hello")
            await client.put("move/bytes", b"\xff\x00")
            await client.put("move/ttl", b"t", ttl=600)

    asyncio.run(fill())
    exported = kvnode_against(cluster, "export", "--prefix", "move/")
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 3

    async def wipe_keys() -> None:
        async with Client(cluster.urls, timeout=10) as client:
            for key in ("move/text", "move/bytes", "move/ttl"):
                await client.delete(key)

    asyncio.run(wipe_keys())
    imported = kvnode_against(cluster, "import", stdin=exported.stdout)
    assert imported.returncode == 0 and b"imported 3 keys" in imported.stdout, imported.stderr

    async def check() -> None:
        async with Client(cluster.urls, timeout=10) as client:
            assert (await client.get("move/text")).value == b"hello"  # type: ignore[union-attr]
            assert (await client.get("move/bytes")).value == b"\xff\x00"  # type: ignore[union-attr]
            ttl = await client.get("move/ttl")
            assert ttl is not None and ttl.expire_at is not None

    asyncio.run(check())
    broken = kvnode_against(cluster, "import", stdin=b'{"key": 1}\n')
    assert broken.returncode == 2 and b"line 1" in broken.stderr
