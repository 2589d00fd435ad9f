"""The docker-compose cluster: built from the repository, driven through Docker.

Skipped only where no Docker daemon answers; on a machine with one, these run.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvnode.client import Client, Indeterminate, Unavailable
from kvnode.cluster.chaos import final_reads, final_values
from kvnode.cluster.checker import check_history, lost_writes
from kvnode.cluster.compose import ROOT, ComposeCluster, docker_available
from kvnode.cluster.nemesis import Nemesis
from kvnode.cluster.workload import Workload
from tests.integration.test_readme import README, section_commands
from tests.waiting import wait_until, wait_until_sync

UNAVAILABLE = docker_available()
if UNAVAILABLE and os.environ.get("KVNODE_REQUIRE_DOCKER") == "1":
    # scripts/test.sh sets this where Docker is installed: a skip there would hide a failure.
    pytest.fail(f"Docker is installed but unusable: {UNAVAILABLE}", pytrace=False)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE)),
]
REPORT = Path("/tmp/kvnode-docker-report.json")


@pytest.fixture(scope="module")
def compose() -> Iterator[ComposeCluster]:
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "docker-build.sh")], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr[-2000:]
    cluster = ComposeCluster(
        project=f"kvnodetest{secrets.token_hex(3)}", secret=secrets.token_hex(16)
    )
    started = time.monotonic()
    cluster.up()
    # Nothing but Docker's own health status: the first test then uses the cluster at once,
    # as the README tells a user to.
    wait_until_sync(
        lambda: set(cluster.health()) == {"healthy"}, 90, "all three containers healthy"
    )
    cold_start = time.monotonic() - started
    size = subprocess.run(
        ["docker", "image", "inspect", "kvnode:local", "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    REPORT.write_text(json.dumps({"image_bytes": int(size), "cold_start_s": round(cold_start, 2)}))
    print(
        f"\nimage kvnode:local {int(size) / 1e6:.0f} MB, cold start to all ready {cold_start:.1f} s"
    )
    yield cluster
    cluster.down(volumes=True)


async def ready(cluster: ComposeCluster, timeout: float = 90) -> int:
    async with Client(cluster.urls, timeout=2) as client:
        leader = await cluster.wait_for_leader(client, timeout=timeout)
        await cluster.wait_until_ready(client, timeout=timeout)
        return leader


async def converged(cluster: ComposeCluster) -> dict:
    async with Client(cluster.urls, timeout=2) as client:

        async def same() -> dict | None:
            found = await cluster.statuses(client, digest=True)
            views = {(s["applied_index"], s["digest"]) for s in found.values()}
            return found if len(found) == cluster.size and len(views) == 1 else None

        return await wait_until(same, 60, "containers to converge")


def test_readme_curl_runs_as_soon_as_the_containers_are_healthy(compose: ComposeCluster) -> None:
    """The first test of the module: it runs right after the fixture saw "healthy"."""
    curls = [c for c in section_commands(README.read_text(), "Docker") if c.startswith("curl ")]
    assert len(curls) == 2
    put, get = (
        subprocess.run(["bash", "-c", c], capture_output=True, text=True, check=True).stdout
        for c in curls
    )
    created = json.loads(put)
    assert created["key"] == "foo" and created["created"] is True, put
    assert get == "bar"


def test_compose_file_checks_readiness_and_has_no_version_key() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "/ready" in text and "/health" not in text
    assert not re.search(r"^version:", text, re.MULTILINE)


def test_killed_leader_container_is_replaced_and_converges(compose: ComposeCluster) -> None:
    async def scenario() -> None:
        leader = await ready(compose)
        compose.kill(leader)
        survivors = [compose.urls[i] for i in range(3) if i != leader]
        async with Client(survivors, timeout=10) as client:
            for i in range(50):
                await client.put(f"docker/k{i}", f"v{i}".encode())
        compose.start(leader)
        await ready(compose)
        found = await converged(compose)
        assert all(s["keys"] >= 50 for s in found.values())
        async with Client([compose.urls[leader]]) as client:
            value = await client.get("docker/k49")
            assert value is not None and value.value == b"v49"

    asyncio.run(scenario())


def test_down_then_up_keeps_the_data(compose: ComposeCluster) -> None:
    async def write() -> None:
        async with Client(compose.urls) as client:
            await client.put("docker/durable", b"kept")

    async def read() -> bytes | None:
        async with Client(compose.urls) as client:
            found = await client.get("docker/durable")
            return found.value if found else None

    asyncio.run(write())
    compose.down()
    compose.up()
    asyncio.run(ready(compose))
    assert asyncio.run(read()) == b"kept"


def test_a_disconnected_node_refuses_writes(compose: ComposeCluster) -> None:
    async def scenario() -> None:
        leader = await ready(compose)
        lonely = leader  # cut off the leader itself: the worst case
        compose.disconnect(lonely)
        try:
            async with Client([compose.urls[lonely]], timeout=6, retry_writes=False) as client:
                with pytest.raises((Indeterminate, Unavailable)):
                    await client.put("docker/minority", b"x")
        finally:
            compose.connect(lonely)
        await ready(compose)
        async with Client(compose.urls) as client:
            await client.put("docker/after", b"ok")
        await converged(compose)

    asyncio.run(scenario())


def test_short_chaos_run_against_the_containers(compose: ComposeCluster) -> None:
    async def scenario() -> dict:
        await ready(compose)
        workload = Workload(compose.urls, clients=6, rate=10, seed=5)
        nemesis = Nemesis(compose, ["kill", "pause"], seed=5)
        await asyncio.gather(workload.run(30), nemesis.run(30))
        nemesis.heal_all()
        await ready(compose)
        await final_reads(compose, workload.history)
        await converged(compose)
        return {"history": workload.history, "faults": nemesis.counts}

    result = asyncio.run(scenario())
    verdicts = check_history(result["history"])
    assert all(v.linearizable for v in verdicts), [v for v in verdicts if not v.linearizable]
    assert lost_writes(result["history"], final_values(result["history"])) == []
    assert sum(result["faults"].values()) >= 3
