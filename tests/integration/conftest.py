"""Real kvnode clusters on 127.0.0.1 for the integration tests."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kvnode.client import Client, Indeterminate, KvError, Unavailable
from kvnode.cluster.supervisor import LocalCluster
from tests.waiting import wait_until

FAST_SETTINGS: dict[str, Any] = {"append_entries_period": 0.02, "request_timeout": 5.0}


def make_cluster(base: Path, **settings: Any) -> LocalCluster:
    local = LocalCluster(base, settings={**FAST_SETTINGS, **settings})
    local.start_all()
    try:
        asyncio.run(all_ready(local))
    except BaseException:
        local.stop_all()  # never leave nodes behind when the cluster did not come up
        raise
    return local


async def all_ready(local: LocalCluster) -> None:
    async with Client(local.urls, timeout=2, token=local.token) as client:
        await local.wait_for_leader(client)
        await local.wait_until_ready(client)


async def leader_of(local: LocalCluster, timeout: float = 30.0) -> int:
    async with Client(local.urls, timeout=2, token=local.token) as client:
        return await local.wait_for_leader(client, timeout=timeout)


def assert_clean_logs(local: LocalCluster) -> None:
    """No node logged a CRITICAL line (divergence warnings, fail-stops) or a traceback."""
    for node in local.nodes:
        text = node.log_path.read_text() if node.log_path.exists() else ""
        bad = [line for line in text.splitlines() if "CRITICAL" in line or "Traceback" in line]
        assert not bad, f"{node.node_id}: {bad[:3]}"


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for a whole module of tests that do not kill or pause nodes."""
    local = make_cluster(tmp_path_factory.mktemp("shared"), body_timeout=1.0)
    yield local
    local.stop_all()
    assert_clean_logs(local)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    local = make_cluster(tmp_path / "cluster")
    yield local
    local.stop_all()
    assert_clean_logs(local)


@dataclass
class LoadResult:
    acked: dict[str, bytes] = field(default_factory=dict)
    indeterminate: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)  # a sample, for failure messages


async def write_load(
    urls: list[str],
    count: int,
    *,
    prefix: str = "k",
    concurrency: int = 32,
    result: LoadResult | None = None,
    stop: asyncio.Event | None = None,
) -> LoadResult:
    """`count` writes of distinct keys spread over `urls`; records what was acknowledged."""
    result = result or LoadResult()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(client: Client) -> None:
        while not queue.empty() and not (stop and stop.is_set()):
            i = queue.get_nowait()
            key, value = f"{prefix}{i:06d}", f"value-{prefix}-{i}".encode()
            url = urls[i % len(urls)]
            try:
                await client.put(key, value, endpoint=url)
                result.acked[key] = value
            except Indeterminate as exc:
                result.indeterminate.add(key)
                result.errors.append(f"{url} {key}: {exc}")
            except (Unavailable, KvError) as exc:
                result.failed.add(key)
                result.errors.append(f"{url} {key}: {exc}")

    async with Client(urls, timeout=10, retry_writes=False) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return result


async def statuses(local: LocalCluster, *, digest: bool = False) -> dict[int, dict[str, Any]]:
    async with Client(local.urls, timeout=2, token=local.token) as client:
        return await local.statuses(client, digest=digest)


async def converged(local: LocalCluster, timeout: float = 30.0) -> dict[int, dict[str, Any]]:
    """Wait until every running node reports the same applied index and digest."""
    running = {i for i, node in enumerate(local.nodes) if node.running and not node.paused}

    async def probe() -> dict[int, dict[str, Any]] | None:
        found = await statuses(local, digest=True)
        if set(found) != running:
            return None
        if len({(s["applied_index"], s["digest"]) for s in found.values()}) != 1:
            return None
        return found

    return await wait_until(probe, timeout, "replicas to converge")


async def assert_all_present(local: LocalCluster, acked: dict[str, bytes], node: int) -> None:
    """Every acknowledged write is readable (linearizably) through `node`."""
    async with Client([local.urls[node]], timeout=10) as client:
        keys = list(acked)
        random.shuffle(keys)
        for start in range(0, len(keys), 200):
            batch = keys[start : start + 200]
            found = await asyncio.gather(*(client.get(k) for k in batch))
            for key, value in zip(batch, found, strict=True):
                assert value is not None, f"acknowledged write {key} was lost"
                assert value.value == acked[key]
