"""A closed cluster: peers need the secret, listeners bind only where configured, and the
HTTP API can require a bearer token."""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from cluster.supervisor import LocalCluster
from kvnode.client import Client, KvError
from tests.integration.conftest import (
    assert_clean_logs,
    leader_of,
    make_cluster,
    statuses,
    write_load,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def test_a_node_with_a_wrong_secret_never_joins(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path / "c", settings={"append_entries_period": 0.02})
    outsider = local.nodes[2]
    outsider.config_path.write_text(
        outsider.config_path.read_text().replace(local.secret, "not-the-secret")
    )
    try:
        local.start_all()

        async def scenario() -> None:
            leader = await leader_of(local)
            assert leader != 2
            insiders = [local.urls[i] for i in range(2)]
            load = await write_load(insiders, 50)
            assert len(load.acked) == 50
            found = await statuses(local)
            peer_view = found[leader]["peers"][outsider.raft_addr]
            assert peer_view["connected"] is False
            assert found[2]["keys"] == 0 and found[2]["leader"] is None

        asyncio.run(scenario())
    finally:
        local.stop_all()


class WriteFile:
    """Unpickling this runs `touch PATH`: the test's stand-in for an attacker's code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.path}",))


def send_pickle_frame(address: str, payload: object) -> None:
    """A PySyncObj wire frame (length + zlib(pickle)); waits until the peer hangs up."""
    data = zlib.compress(pickle.dumps(payload))
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(struct.pack("i", len(data)) + data)
        try:
            while sock.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass


def start_single_node(tmp_path: Path, name: str, *flags: str) -> tuple[subprocess.Popen, str]:
    from cluster.supervisor import free_ports

    http, raft = free_ports(2)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kvnode",
            "serve",
            "--node-id",
            name,
            "--http-addr",
            f"127.0.0.1:{http}",
            "--raft-addr",
            f"127.0.0.1:{raft}",
            "--data-dir",
            str(tmp_path / name),
            *flags,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    local_url = f"http://127.0.0.1:{http}"

    async def up() -> bool:
        async with Client([local_url], timeout=1) as client:
            try:
                return bool(await client.status())
            except KvError:
                return False

    asyncio.run(wait_until(up, 20, f"{name} to serve"))
    return proc, f"127.0.0.1:{raft}"


def test_a_crafted_pickle_does_not_run_on_a_node_with_a_secret(tmp_path: Path) -> None:
    guarded, guarded_raft = start_single_node(tmp_path, "guarded", "--cluster-secret", "s3cret")
    open_node, open_raft = start_single_node(tmp_path, "open")
    try:
        blocked, control = tmp_path / "pwned-guarded", tmp_path / "pwned-open"
        send_pickle_frame(guarded_raft, WriteFile(blocked))
        assert not blocked.exists(), "a node with a secret unpickled an unauthenticated frame"
        # The control: the same frame against a node without a secret does run, so the
        # payload above was a real attack and its absence is meaningful.
        send_pickle_frame(open_raft, WriteFile(control))
        asyncio.run(wait_until(_exists(control), 10, "the control payload to run"))
    finally:
        for proc in (guarded, open_node):
            proc.terminate()
            proc.wait(timeout=20)


def _exists(path: Path):
    async def probe() -> bool:
        return path.exists()

    return probe


@pytest.mark.skipif(shutil.which("ss") is None, reason="ss (iproute2) is not installed")
def test_every_listener_binds_the_configured_address_only(
    shared_cluster: LocalCluster,
) -> None:
    pids = {str(node.process.pid) for node in shared_cluster.nodes if node.process}
    output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in output.splitlines() if any(f"pid={pid}," in line for pid in pids)]
    configured = {n.http_addr for n in shared_cluster.nodes} | {
        n.raft_addr for n in shared_cluster.nodes
    }
    listening = {line.split()[3] for line in ours}
    assert listening == configured, (listening, configured)


def test_auth_token_guards_every_route_but_health(tmp_path: Path) -> None:
    local = make_cluster(tmp_path / "c", auth_token="t0ken")
    try:

        async def scenario() -> None:
            async with Client(local.urls, timeout=5) as anonymous:
                for method, path in [
                    ("PUT", "/kv/a"),
                    ("GET", "/kv/a"),
                    ("DELETE", "/kv/a"),
                    ("GET", "/kv/"),
                    ("GET", "/status"),
                    ("GET", "/metrics"),
                    ("GET", "/ready"),
                ]:
                    with pytest.raises(KvError) as raised:
                        await anonymous.request(method, path, data=b"v", idempotent=True)
                    assert (raised.value.status, raised.value.code) == (401, "unauthorized")
                status, _body, _headers = await anonymous.request("GET", "/health", idempotent=True)
                assert status == 200
            async with Client(local.urls, timeout=5, token="wrong") as wrong:
                with pytest.raises(KvError, match="401"):
                    await wrong.get("a")
            async with Client(local.urls, timeout=5, token="t0ken") as right:
                await right.put("a", b"v")
                value = await right.get("a")
                assert value is not None and value.value == b"v"

        asyncio.run(scenario())
        endpoints = ",".join(n.http_addr for n in local.nodes)
        cli = [sys.executable, "-m", "kvnode", "get", "a", "--endpoints", endpoints]
        assert subprocess.run(cli, capture_output=True).returncode == 1
        ok = subprocess.run([*cli, "--token", "t0ken"], capture_output=True)
        assert ok.returncode == 0 and ok.stdout == b"v\n"
        env = {**os.environ, "KVNODE_TOKEN": "t0ken"}
        assert subprocess.run(cli, capture_output=True, env=env).returncode == 0
    finally:
        local.stop_all()
    assert_clean_logs(local)
