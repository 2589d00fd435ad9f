"""Two clusters on one machine never mix: each has its own id; a CLI pointed at one (by
its directory, or by --cluster-id) never reads or writes the other; `cluster up` on a port
another cluster holds fails in one line instead of announcing the other cluster; and a
node whose peer list names another cluster's node is refused, with both ids named."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kvnode.client import Client, WrongCluster
from kvnode.cluster.supervisor import LocalCluster, toml_value
from tests.integration.cli_processes import ClusterUp, consecutive_free_ports
from tests.integration.conftest import FAST_SETTINGS, all_ready
from tests.waiting import wait_until, wait_until_sync

pytestmark = pytest.mark.slow


def kvnode_in(workdir: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`kvnode ARGS` as typed in `workdir`, without KVNODE_ENDPOINTS: the CLI finds its
    cluster by itself."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KVNODE_")}
    return subprocess.run(
        [sys.executable, "-m", "kvnode", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        env={**clean, **env},
    )


def cluster_id_of(up: ClusterUp) -> str:
    line = next(line for line in up.output().splitlines() if "cluster id" in line)
    return line.split()[-1]


def test_each_cli_talks_only_to_the_cluster_of_its_directory(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ClusterUp(tmp_path / "a") as first, ClusterUp(tmp_path / "b") as second:
        first_id, second_id = cluster_id_of(first), cluster_id_of(second)
        assert first_id != second_id
        assert f"KVNODE_ENDPOINTS={second.endpoints}" in second.output()  # not the default ports

        assert kvnode_in(first.workdir, "put", "owner", "a").returncode == 0
        assert kvnode_in(second.workdir, "put", "owner", "b").returncode == 0
        assert kvnode_in(first.workdir, "get", "owner").stdout == "a\n"
        assert kvnode_in(second.workdir, "get", "owner").stdout == "b\n"

        # Pointed at the second cluster's nodes but naming the first: refused, nothing written.
        wrong = kvnode_in(
            tmp_path,
            "put",
            "owner",
            "x",
            KVNODE_ENDPOINTS=second.endpoints,
            KVNODE_CLUSTER_ID=first_id,
        )
        assert wrong.returncode == 7 and "wrong_cluster" in wrong.stderr
        assert first_id in wrong.stderr and second_id in wrong.stderr
        assert kvnode_in(second.workdir, "get", "owner").stdout == "b\n"


def test_cluster_up_on_a_taken_port_fails_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ClusterUp(tmp_path / "a") as running:
        ports = [
            "--http-port",
            str(running.http_base),
            "--raft-port",
            str(consecutive_free_ports(3)),
        ]
        taken = subprocess.run(
            [sys.executable, "-m", "kvnode", "cluster", "up", *ports],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path / "b",
        )
        assert taken.returncode == 2, taken.stderr
        assert taken.stderr.count("\n") == 1 and "cannot listen on" in taken.stderr
        assert "is up" not in taken.stdout
        assert not (tmp_path / "b" / "data" / "node1").exists()  # nothing was started


def test_a_node_started_on_another_clusters_data_is_refused_by_its_peers(
    tmp_path: Path,
) -> None:
    """An operator's mix-up: a cluster made anew on the addresses of an old one, then its
    node3 started on the old cluster's node3 data. The addresses match, and so does the
    secret: only the cluster id tells the two apart."""
    old = LocalCluster(tmp_path / "old", secret="shared", settings=FAST_SETTINGS)
    new = LocalCluster(
        tmp_path / "new",
        secret="shared",
        settings=FAST_SETTINGS,
        http_ports=[int(node.http_addr.rsplit(":", 1)[1]) for node in old.nodes],
        raft_ports=[int(node.raft_addr.rsplit(":", 1)[1]) for node in old.nodes],
    )
    try:
        old.start_all()
        old_id = asyncio.run(cluster_id_when_ready(old))
        old.stop_all()
        new.start_all()
        new_id = asyncio.run(cluster_id_when_ready(new))
        assert old_id != new_id
        new.stop(2)
        mixed_up = new.nodes[2]
        config = mixed_up.config_path.read_text().replace(
            f"data_dir = {toml_value(str(mixed_up.data_dir))}",
            f"data_dir = {toml_value(str(old.nodes[2].data_dir))}",
        )
        mixed_up.config_path.write_text(config)
        new.start(2)

        def refused() -> bool:
            text = "".join(node.log_path.read_text() for node in new.nodes[:2])
            return f"belongs to cluster {old_id}, this node to cluster {new_id}" in text

        wait_until_sync(refused, 30, "node1 or node2 to refuse the mixed-up node3")

        async def unaffected() -> None:
            async with Client(new.urls[:2], timeout=5, cluster_id=new_id) as client:
                await client.put("still", b"fine")
                found = await client.get("still")
                assert found is not None and found.value == b"fine"
            async with Client([new.urls[2]], timeout=2, cluster_id=new_id) as client:
                with pytest.raises(WrongCluster, match=old_id):
                    await client.get("still", consistency="stale")

        asyncio.run(unaffected())
    finally:
        old.stop_all()
        new.stop_all()


async def cluster_id_when_ready(local: LocalCluster) -> str:
    """The one id every node of `local` reports, once they are ready and all know it."""
    await all_ready(local)
    async with Client(local.urls, timeout=2) as client:

        async def known() -> str | None:
            found = {s.get("cluster_id") for s in (await local.statuses(client)).values()}
            return found.pop() if len(found) == 1 and None not in found else None

        return await wait_until(known, 30, "every node to know the cluster id")
