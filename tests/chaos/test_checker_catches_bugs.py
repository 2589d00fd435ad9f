"""The checker finds a real bug: with reads served locally (a deliberately unsafe, test-only
setting) an isolated old leader answers a stale read, and the checker reports it; with the
default read barrier the same scenario stays linearizable."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from kvnode.client import Client, Indeterminate, KvError
from kvnode.cluster.checker import check_history
from kvnode.cluster.history import FAIL, INFO, OK, Op
from kvnode.cluster.netns import Topology
from kvnode.cluster.supervisor import LocalCluster
from tests.chaos.partitions import needs_partitions
from tests.waiting import wait_until

pytestmark = [
    pytest.mark.slow,
    needs_partitions,
]


async def record(history: list[Op], kind: str, key: str, action, **fields) -> Op:
    op = Op(id=len(history) + 1, process=len(history), kind=kind, key=key, **fields)
    history.append(op)
    op.invoke = time.monotonic()
    try:
        result = await action()
        if kind == "get":
            op.value = result.value.decode() if result is not None else None
        else:
            op.result = "applied"
        op.outcome = OK
        op.complete = time.monotonic()
    except Indeterminate:
        op.outcome = INFO
    except KvError:
        op.outcome, op.complete = FAIL, time.monotonic()
    return op


def stale_read_scenario(tmp_path: Path, unsafe: bool) -> list[Op]:
    topology = Topology(3)
    topology.setup()
    cluster = LocalCluster(
        tmp_path / ("unsafe" if unsafe else "safe"),
        hosts=topology.addresses,
        http_ports=[8001] * 3,
        raft_ports=[4321] * 3,
        launch_prefix=[topology.prefix(i) for i in range(3)],
        settings={
            "append_entries_period": 0.02,
            "request_timeout": 2.0,
            "unsafe_local_reads": unsafe,
        },
    )
    history: list[Op] = []
    try:
        cluster.start_all()

        async def scenario() -> None:
            async with Client(cluster.urls, timeout=3, retry_writes=False) as client:
                old = await cluster.wait_for_leader(client)
                await cluster.wait_until_ready(client)
                majority = [i for i in range(3) if i != old]
                await record(
                    history,
                    "put",
                    "k",
                    lambda: client.put("k", b"v1", endpoint=cluster.urls[old]),
                    value="v1",
                )
                topology.partition([[old], majority])

                async def another_leader() -> tuple[int] | None:
                    found = await cluster.wait_for_leader(client, timeout=30)
                    return (found,) if found != old else None  # a tuple: node 0 is falsy

                (new,) = await wait_until(another_leader, 30, "the majority to elect a leader")
                await record(
                    history,
                    "put",
                    "k",
                    lambda: client.put("k", b"v2", endpoint=cluster.urls[new]),
                    value="v2",
                )
                # The old leader still believes it leads (for leaderFallbackTimeout).
                await record(
                    history, "get", "k", lambda: client.get("k", endpoint=cluster.urls[old])
                )
                topology.heal()

        asyncio.run(scenario())
    finally:
        cluster.stop_all()
        topology.teardown()
    return history


def test_checker_reports_the_stale_read_of_an_unsafe_configuration(tmp_path: Path) -> None:
    history = stale_read_scenario(tmp_path, unsafe=True)
    read = history[-1]
    assert read.outcome == OK and read.value == "v1", [op.describe() for op in history]
    (verdict,) = check_history(history)
    assert not verdict.linearizable
    assert [op.value for op in verdict.minimal if op.kind == "get"] == ["v1"]


def test_the_default_read_barrier_refuses_the_stale_read(tmp_path: Path) -> None:
    history = stale_read_scenario(tmp_path, unsafe=False)
    assert history[-1].outcome in (FAIL, INFO), [op.describe() for op in history]
    (verdict,) = check_history(history)
    assert verdict.linearizable
