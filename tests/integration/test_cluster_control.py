"""`kvnode cluster up` survives its nodes, and `kvnode cluster ps/kill/stop/start/restart/
pause/resume` control them from a second terminal. Real processes throughout."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from kvnode.client import Client, KvError
from tests.integration.cli_processes import (
    ClusterUp,
    alive,
    kvnode,
    wait_for_exit_line,
)
from tests.integration.conftest import write_load
from tests.waiting import wait_until, wait_until_sync

pytestmark = pytest.mark.slow

ELECTION_GRACE = 10.0  # seconds for the survivors to elect a leader and take writes again
CATCH_UP = 30.0


async def node_statuses(urls: list[str]) -> dict[str, dict[str, Any]]:
    """/status of every node that answers, by URL."""
    async with Client(urls, timeout=1) as client:

        async def one(url: str) -> tuple[str, dict[str, Any] | None]:
            try:
                return url, await client.status(endpoint=url, digest=True)
            except KvError:
                return url, None

        found = await asyncio.gather(*(one(url) for url in urls))
    return {url: status for url, status in found if status is not None}


async def the_leader(urls: list[str]) -> tuple[str, dict[str, Any]]:
    async def probe() -> tuple[str, dict[str, Any]] | None:
        for url, status in (await node_statuses(urls)).items():
            if status["role"] == "leader":
                return url, status
        return None

    return await wait_until(probe, ELECTION_GRACE, "a leader")


async def writes_resume(urls: list[str], key: str) -> None:
    """A write through these nodes succeeds within the election grace."""
    async with Client(urls, timeout=2, retry_writes=False) as client:

        async def attempt() -> bool:
            try:
                await client.put(key, b"after")
            except KvError:
                return False
            return True

        await wait_until(attempt, ELECTION_GRACE, f"a write through {urls} to succeed")


async def all_converged(urls: list[str]) -> dict[str, dict[str, Any]]:
    """Every node answers with the same applied index and state digest."""

    async def probe() -> dict[str, dict[str, Any]] | None:
        found = await node_statuses(urls)
        views = {(s["applied_index"], s["digest"]) for s in found.values()}
        return found if len(found) == len(urls) and len(views) == 1 else None

    return await wait_until(probe, CATCH_UP, "every node to reach the same applied index")


async def read_back(urls: list[str], acked: dict[str, bytes]) -> None:
    async with Client(urls, timeout=10) as client:
        for key, value in acked.items():
            found = await client.get(key)
            assert found is not None, f"acknowledged write {key} was lost"
            assert found.value == value


def node_name(url: str, up: ClusterUp) -> str:
    return f"node{up.urls.index(url) + 1}"


def ps_rows(up: ClusterUp) -> list[dict[str, Any]]:
    result = up.ctl("ps", "--json")
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def test_a_leader_killed_from_outside_leaves_the_cluster_serving_and_comes_back(
    tmp_path: Path,
) -> None:
    with ClusterUp(tmp_path) as up:
        before = asyncio.run(write_load(up.urls, 200, prefix="before"))
        assert len(before.acked) == 200, before.errors[:5]
        leader_url, leader = asyncio.run(the_leader(up.urls))
        name = node_name(leader_url, up)
        os.kill(leader["pid"], signal.SIGKILL)  # from outside: the pid /status reported

        line = wait_for_exit_line(up, name)
        assert "killed by SIGKILL" in line and "2 of 3 nodes running" in line
        assert f"kvnode cluster start {name}" in line
        survivors = [url for url in up.urls if url != leader_url]
        asyncio.run(writes_resume(survivors, "resumed"))
        after = asyncio.run(write_load(survivors, 100, prefix="after"))
        assert len(after.acked) == 100, after.errors[:5]
        assert up.process is not None and up.process.poll() is None, up.diagnostics()
        asyncio.run(read_back(survivors, {**before.acked, **after.acked}))

        started = up.ctl("start", name)
        assert started.returncode == 0, started.stderr
        assert f"started {name}" in started.stdout.decode()
        statuses = asyncio.run(all_converged(up.urls))
        assert statuses[leader_url]["pid"] != leader["pid"]
        asyncio.run(read_back([leader_url], {**before.acked, **after.acked}))


def test_cli_kills_pauses_and_restarts_nodes_and_ctrl_c_stops_every_one(tmp_path: Path) -> None:
    with ClusterUp(tmp_path) as up:
        acked = asyncio.run(write_load(up.urls, 200, prefix="before")).acked
        killed = up.ctl("kill", "leader")
        assert killed.returncode == 0, killed.stderr
        match = re.match(rb"sent SIGKILL to (node\d)", killed.stdout)
        assert match, killed.stdout
        name = match.group(1).decode()
        assert "killed by SIGKILL" in wait_for_exit_line(up, name)
        survivors = [url for url in up.urls if node_name(url, up) != name]
        asyncio.run(writes_resume(survivors, "after-kill"))
        assert up.ctl("start", name).returncode == 0
        up.track_children()
        asyncio.run(all_converged(up.urls))

        paused = up.ctl("pause", "leader")
        assert paused.returncode == 0, paused.stderr
        name = re.match(rb"paused (node\d)", paused.stdout).group(1).decode()  # type: ignore[union-attr]
        rows = {row["node"]: row for row in ps_rows(up)}
        assert rows[name]["state"] == "paused"
        survivors = [url for url in up.urls if node_name(url, up) != name]
        asyncio.run(writes_resume(survivors, "while-paused"))
        acked.update(asyncio.run(write_load(survivors, 100, prefix="paused")).acked)
        assert up.ctl("resume", name).returncode == 0
        asyncio.run(all_converged(up.urls))
        asyncio.run(read_back(up.urls, acked))

        restarted = up.ctl("restart", "2")
        assert restarted.returncode == 0, restarted.stderr
        assert b"restarted node2" in restarted.stdout
        up.track_children()
        asyncio.run(all_converged(up.urls))

        def caught_up() -> dict[str, dict[str, Any]] | None:
            # A new leader writes an entry of its own soon after its election (it renews
            # leases), so a single look could fall between two nodes applying it.
            rows = {row["node"]: row for row in ps_rows(up)}
            return rows if len({row["applied_index"] for row in rows.values()}) == 1 else None

        rows = wait_until_sync(caught_up, CATCH_UP, "cluster ps to show one applied index")
        assert {row["state"] for row in rows.values()} == {"running"}

        up.track_children()
        assert up.interrupt() == 0, up.diagnostics()
        assert len(up.node_pids) >= 5  # the three first nodes and the two started again
        assert not [pid for pid in up.node_pids if alive(pid)]


def test_restart_on_failure_brings_a_killed_node_back(tmp_path: Path) -> None:
    with ClusterUp(tmp_path, "--restart", "on-failure") as up:
        (first,) = [row for row in ps_rows(up) if row["node"] == "node3"]
        os.kill(first["pid"], signal.SIGKILL)
        wait_for_exit_line(up, "node3")

        def back() -> dict[str, Any] | None:
            (row,) = [row for row in ps_rows(up) if row["node"] == "node3"]
            return row if row["state"] == "running" and row["pid"] != first["pid"] else None

        wait_until_sync(back, CATCH_UP, "node3 to be restarted")
        assert "restarting node3 in 1 s" in up.output()
        asyncio.run(all_converged(up.urls))


def test_bad_control_requests_are_one_line_and_exit_code_2(tmp_path: Path) -> None:
    def refused(result: Any, words: str) -> None:
        err = result.stderr.decode()
        assert result.returncode == 2, (result.returncode, err)
        assert err.count("\n") == 1 and words in err and "Traceback" not in err, err

    refused(kvnode("cluster", "ps", "--data", str(tmp_path / "none")), "no kvnode cluster")
    with ClusterUp(tmp_path) as up:
        refused(up.ctl("kill", "node7"), "unknown node 'node7'")
        assert up.ctl("kill", "node1", "--signal", "HUP").returncode == 2  # click's usage error
        refused(up.ctl("start", "1"), "node1 is already running")
        assert up.ctl("stop", "node3").returncode == 0
        refused(up.ctl("kill", "node3"), "node3 is not running")
        refused(up.ctl("resume", "node1"), "node1 is not paused")
        second = subprocess.run(
            [sys.executable, "-m", "kvnode", *up.args],
            capture_output=True,
            cwd=tmp_path,
            env=up.env,
        )
        refused(second, "already running")
        rows = ps_rows(up)
        assert [row["state"] for row in rows] == ["running", "running", "exited with code 0"]


def test_cluster_add_grows_the_running_cluster_by_a_node_that_joins(tmp_path: Path) -> None:
    with ClusterUp(tmp_path) as up:
        acked = asyncio.run(write_load(up.urls, 100, prefix="before")).acked
        added = up.ctl("add")
        assert added.returncode == 0, added.stderr
        match = re.match(rb"added node4 \(pid \d+, (http://[0-9.:]+)\)", added.stdout)
        assert match, added.stdout
        url = match.group(1).decode()
        up.track_children()
        urls = [*up.urls, url]
        asyncio.run(all_converged(urls))
        asyncio.run(read_back([url], acked))

        async def four_members() -> bool:
            async with Client(urls, timeout=2) as client:
                members = await client.members()
            return sorted(m["id"] for m in members) == ["node1", "node2", "node3", "node4"]

        asyncio.run(wait_until(four_members, CATCH_UP, "node4 to be a listed member"))
        rows = {row["node"]: row for row in ps_rows(up)}
        assert rows["node4"]["state"] == "running" and rows["node4"]["url"] == url
        assert up.interrupt() == 0, up.diagnostics()
        assert not [pid for pid in up.node_pids if alive(pid)]
