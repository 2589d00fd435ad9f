"""A node whose disk fills up stops at the first failed write, with one clear line, and
refuses to start again until the disk can take writes. The disk is a real, small tmpfs."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvnode.client import Client, KvError
from kvnode.cluster.supervisor import LocalCluster
from kvnode.raft.failstop import EXIT_STORAGE_FAILURE
from tests.integration.conftest import FAST_SETTINGS, all_ready, leader_of, write_load
from tests.waiting import wait_until_sync

pytestmark = pytest.mark.slow
SMALL_DISK = "3m"
EXIT_REFUSED_TO_START = 3


def mount_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root"
    if shutil.which("mount") is None:
        return "mount is not installed"
    return None


UNAVAILABLE = mount_unavailable()
if UNAVAILABLE and os.environ.get("KVNODE_REQUIRE_NETNS") == "1":
    pytest.fail(f"running as root under scripts/test.sh, yet: {UNAVAILABLE}", pytrace=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if UNAVAILABLE:
        pytest.skip(UNAVAILABLE)
    mountpoint = tmp_path / "c" / "node3"
    mountpoint.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK}", "tmpfs", str(mountpoint)],
        check=True,
    )
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.mark.expect_critical  # the fail-stop line is what the test checks for
def test_a_full_disk_stops_the_node_at_once_and_it_refuses_to_restart(
    tmp_path: Path, small_disk: Path
) -> None:
    local = LocalCluster(tmp_path / "c", settings=FAST_SETTINGS)
    full = local.nodes[2]
    assert full.data_dir == small_disk
    local.start_all()
    try:
        asyncio.run(all_ready(local))
        value_urls = local.urls[:2]

        async def fill() -> None:
            async with Client(value_urls, timeout=5) as client:
                for i in range(2000):  # 32 MB at most: ten times the small disk
                    if not full.running:
                        return
                    try:
                        await client.put(f"fill/{i}", os.urandom(16 * 1024))
                    except KvError:
                        continue

        asyncio.run(fill())
        code = wait_until_sync(lambda: full.process.poll(), 30, "the full node to stop")  # type: ignore[union-attr]
        assert code == EXIT_STORAGE_FAILURE
        log = full.log_path.read_text()
        critical = [line for line in log.splitlines() if "CRITICAL" in line]
        assert len(critical) == 1 and "No space left on device" in critical[0], critical
        assert "Traceback" not in log

        # The full node may have been the leader: the two others elect one first.
        asyncio.run(leader_of(local, timeout=10))
        load = asyncio.run(write_load(value_urls, 20, prefix="after"))
        assert len(load.acked) == 20, "the two healthy nodes stopped serving"

        local.start(2)  # the disk is still full
        code = wait_until_sync(lambda: full.process.poll(), 30, "the restart to be refused")  # type: ignore[union-attr]
        assert code == EXIT_REFUSED_TO_START
        assert "cannot write to the data directory" in full.log_path.read_text()
    finally:
        local.stop_all()
