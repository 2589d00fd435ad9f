"""Hot backup and restore, and export/import: a backup taken from a live follower while
writes go on, restored to every node of a new cluster, brings back the keys, their TTL
deadlines, leases and the request-id table; export/import moves keys as JSON lines."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from kvnode.bench.stall import generate_backup
from kvnode.client import Client
from kvnode.cluster.supervisor import LocalCluster
from kvnode.storage.layout import RESTORE_MARK
from tests.integration.cli_processes import kvnode_against
from tests.integration.conftest import FAST_SETTINGS, all_ready, assert_clean_logs, leader_of
from tests.waiting import wait_until_sync


def kvnode_process(*args: str) -> subprocess.Popen[bytes]:
    """`kvnode ARGS` running in the background, to be interrupted by the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "kvnode", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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
    kept = kvnode_against(cluster, "backup", str(backup))
    assert kept.returncode == 2 and b"give --force" in kept.stderr, kept.stderr
    described = kvnode_against(cluster, "backup", "--inspect", str(backup))
    assert described.returncode == 0 and b"checksums ok; revision " in described.stdout
    damaged = tmp_path / "damaged.snap"
    data = bytearray(backup.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    refused = kvnode_against(cluster, "backup", "--inspect", str(damaged))
    assert refused.returncode == 3 and b"not a usable backup" in refused.stderr

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
    header, *lines = exported.stdout.splitlines()
    revision = orjson.loads(header)["revision"]
    assert len(lines) == 3 and revision >= 3
    assert f"exported 3 keys at revision {revision}".encode() in exported.stderr

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
    newer = kvnode_against(cluster, "import", stdin=b'{"kvnode_export": 2, "revision": 1}\n')
    assert newer.returncode == 2 and b"header this kvnode does not read" in newer.stderr


LARGE_KEYS = 300_000  # a restore and a backup that take long enough to be interrupted


def test_interrupted_restore_and_backup_leave_nothing_that_passes_for_done(
    tmp_path: Path,
) -> None:
    """A restore killed half-way leaves a directory no node starts on, and running it again
    starts over; a backup stopped by SIGTERM leaves no partial file."""
    backup = tmp_path / "large.snap"
    generate_backup(backup, LARGE_KEYS)
    restored = LocalCluster(tmp_path / "restored", settings=FAST_SETTINGS)
    first = restored.nodes[0]
    mark = first.data_dir / RESTORE_MARK
    killed = kvnode_process("restore", str(backup), "--config", str(first.config_path))
    wait_until_sync(mark.exists, 60, "the restore to start writing", poll=0.005)
    killed.kill()
    killed.wait()
    assert mark.exists(), "the restore finished before it could be killed"
    refused = kvnode_against(restored, "serve", "--config", str(first.config_path))
    assert refused.returncode == 3 and b"did not finish" in refused.stderr, refused.stderr
    for node in restored.nodes:  # the first one again: it starts over
        done = kvnode_against(restored, "restore", str(backup), "--config", str(node.config_path))
        assert done.returncode == 0, done.stderr
    assert not mark.exists()
    restored.start_all()
    try:
        asyncio.run(all_ready(restored))

        async def read_back() -> None:
            async with Client(restored.urls, timeout=30) as client:
                assert (await client.get(f"bench/{LARGE_KEYS - 1:08d}")) is not None

        asyncio.run(read_back())
        partial = tmp_path / "again.snap.tmp"
        endpoints = ",".join(node.http_addr for node in restored.nodes)
        stopped = kvnode_process("backup", str(tmp_path / "again.snap"), "--endpoints", endpoints)
        wait_until_sync(partial.exists, 60, "the backup to start writing", poll=0.005)
        stopped.send_signal(signal.SIGTERM)
        assert stopped.wait(30) != 0
        assert not partial.exists() and not (tmp_path / "again.snap").exists()
    finally:
        restored.stop_all()
    assert_clean_logs(restored)


def test_import_checks_the_whole_file_before_writing(cluster: LocalCluster, tmp_path: Path) -> None:
    good = b'{"key": "imp/a", "value": "1", "expire_at": null}\n'
    for bad, says in (
        (b'{"key": "imp/b", "value": "2", "expire_at": "x"}\n', b"line 2"),
        (b'{"key": "imp/b", "value": "2", "colour": "red"}\n', b"unknown field 'colour'"),
        (b'{"key": "imp/b", "value": "2", "value_base64": "Mg=="}\n', b"exactly one"),
        (b'{"key": "imp/b", "value_base64": "%%%"}\n', b"not base64"),
        (b"not json\n", b"line 2"),
    ):
        result = kvnode_against(cluster, "import", stdin=good + bad)
        assert result.returncode == 2, result.stderr
        assert b"nothing imported" in result.stderr and says in result.stderr, result.stderr
        assert b"Traceback" not in result.stderr
    backup = tmp_path / "state.snap"
    generate_backup(backup, 3)
    hinted = kvnode_against(cluster, "import", str(backup))
    assert hinted.returncode == 2 and b"use `kvnode restore`" in hinted.stderr, hinted.stderr

    async def nothing_written() -> None:
        async with Client(cluster.urls, timeout=10) as client:
            assert await client.get("imp/a") is None

    asyncio.run(nothing_written())
    many = b"".join(b'{"key": "imp/%d", "value": "v"}\n' % i for i in range(300))
    imported = kvnode_against(cluster, "import", stdin=many)
    assert imported.returncode == 0 and b"imported 300 keys" in imported.stdout, imported.stderr
