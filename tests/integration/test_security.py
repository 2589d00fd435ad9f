"""A closed cluster: peers need the secret, listeners bind only where configured, and the
HTTP API can require a bearer token."""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from kvnode.client import Client, KvError
from kvnode.cluster.supervisor import LocalCluster
from kvnode.raft.pysyncobj.peer_connection import HANDSHAKE_SECONDS
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

            async def every_node_said_why() -> bool:
                # A hang-up is reported once it repeats (a peer stopping hangs up once too).
                return all("cluster_secret?" in n.log_path.read_text() for n in local.nodes)

            await wait_until(every_node_said_why, 30, "every node to log the failed secret")

        asyncio.run(scenario())
    finally:
        local.stop_all()
    # Both sides say why, once per peer and reason rather than on every reconnect.
    for node in local.nodes:
        text = node.log_path.read_text()
        drops = [line for line in text.splitlines() if "cluster_secret?" in line]
        assert drops, f"{node.node_id} did not log the failed authentication"
        assert len(drops) <= 6, f"{node.node_id} logged {len(drops)} lines: not rate-limited"


class WriteFile:
    """Unpickling this runs `touch PATH`: the test's stand-in for an attacker's code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.path}",))


def send_frame(address: str, frame: bytes) -> None:
    """Raw bytes to a Raft port; waits until the peer hangs up."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(frame)
        try:
            while sock.recv(4096):
                pass
        except (TimeoutError, ConnectionResetError):
            pass


def start_single_node(tmp_path: Path, name: str, *flags: str) -> tuple[subprocess.Popen, str]:
    from kvnode.cluster.supervisor import free_ports

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


def crafted_frame(target: Path) -> bytes:
    """A PySyncObj wire frame body whose unpickling runs `touch target`. The control: the
    same kind of payload, unpickled the way PySyncObj does, does run code, so the absence
    of `target` later is meaningful."""
    control = target.with_name(target.name + "-control")
    pickle.loads(zlib.decompress(zlib.compress(pickle.dumps(WriteFile(control)))))
    assert control.exists(), "the payload does not run code: the test would prove nothing"
    return zlib.compress(pickle.dumps(WriteFile(target)))


def test_a_lone_node_without_a_secret_opens_no_peer_port(tmp_path: Path) -> None:
    proc, raft = start_single_node(tmp_path, "solo")
    try:
        host, port = raft.rsplit(":", 1)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, int(port)), timeout=5).close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_crafted_pickle_runs_in_no_mode(tmp_path: Path) -> None:
    guarded, guarded_raft = start_single_node(tmp_path, "guarded", "--cluster-secret", "s3cret")
    insecure = make_cluster(tmp_path / "insecure", cluster_secret="", insecure=True)
    try:
        targets = {
            "secret": (guarded_raft, tmp_path / "pwned-secret"),
            **{
                f"insecure-{node.node_id}": (node.raft_addr, tmp_path / f"pwned-{node.node_id}")
                for node in insecure.nodes
            },
        }
        for mode, (address, target) in targets.items():
            frame = crafted_frame(target)
            send_frame(address, struct.pack("i", len(frame)) + frame)
            assert not target.exists(), f"{mode}: a crafted pickle ran on the node"
        load = asyncio.run(write_load(insecure.urls, 20))
        assert len(load.acked) == 20, "the insecure cluster stopped serving"
        assert guarded.poll() is None
    finally:
        guarded.terminate()
        guarded.wait(timeout=20)
        insecure.stop_all()


def test_insecure_is_refused_off_loopback(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kvnode",
            "serve",
            "--insecure",
            "--raft-addr",
            "0.0.0.0:4999",
            "--peers",
            "10.0.0.2:4999",
            "--data-dir",
            str(tmp_path / "d"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "is not a loopback address" in result.stderr and "Traceback" not in result.stderr


SS_MISSING = shutil.which("ss") is None
if SS_MISSING and os.environ.get("KVNODE_REQUIRE_NETNS") == "1":
    # scripts/test.sh installs iproute2 as root: a skip there would hide a missing step.
    pytest.fail("ss (iproute2) is required but not installed", pytrace=False)


@pytest.mark.skipif(SS_MISSING, reason="ss (iproute2) is not installed")
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


def test_auth_token_guards_every_route_but_health_and_ready(tmp_path: Path) -> None:
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
                    ("GET", "/snapshot"),
                    ("GET", "/auth/tokens"),
                ]:
                    with pytest.raises(KvError) as raised:
                        await anonymous.request(method, path, data=b"v", idempotent=True)
                    assert (raised.value.status, raised.value.code) == (401, "unauthorized")
                for probe in ("/health", "/ready"):  # what load balancers and Docker ask
                    status, _body, _headers = await anonymous.request("GET", probe, idempotent=True)
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
        assert subprocess.run(cli, capture_output=True).returncode == 6  # unauthorized
        ok = subprocess.run([*cli, "--token", "t0ken"], capture_output=True)
        assert ok.returncode == 0 and ok.stdout == b"v\n"
        env = {**os.environ, "KVNODE_TOKEN": "t0ken"}
        assert subprocess.run(cli, capture_output=True, env=env).returncode == 0
    finally:
        local.stop_all()
    assert_clean_logs(local)


def closed_within(sock: socket.socket, seconds: float, drip: bytes = b"") -> bool:
    """Whether the peer closes `sock` within `seconds`, while we send `drip` (one byte at a
    time, one per 0.2 s wait for the close: a slow sender)."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.2)
    for byte in itertools.cycle(drip or [None]):
        if time.monotonic() > deadline:
            return False
        try:
            if byte is not None:
                sock.send(bytes([byte]))
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def test_a_huge_or_trickled_peer_frame_is_dropped_and_the_leader_keeps_leading(
    tmp_path: Path,
) -> None:
    local = make_cluster(tmp_path / "c")
    try:
        leader = asyncio.run(leader_of(local))
        term = asyncio.run(statuses(local))[leader]["term"]
        host, port = local.nodes[leader].raft_addr.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5) as huge:
            huge.sendall(struct.pack("i", 2**31 - 1) + b"x" * 65536)
            assert closed_within(huge, 3), "a 2 GiB frame announcement was not refused"
        with socket.create_connection((host, int(port)), timeout=5) as slow:
            slow.sendall(struct.pack("i", 100))
            assert closed_within(slow, HANDSHAKE_SECONDS + 3, drip=b"z" * 99), (
                "a connection that never authenticates was kept"
            )
        load = asyncio.run(write_load(local.urls, 50))
        assert len(load.acked) == 50, load.errors[:3]
        after = asyncio.run(statuses(local))
        assert after[leader]["role"] == "leader" and after[leader]["term"] == term
    finally:
        local.stop_all()
    text = local.nodes[leader].log_path.read_text()
    assert "announced a frame of 2147483647 bytes" in text
    assert "not authenticated as a member within" in text


def test_silent_or_half_sent_peer_connections_are_dropped(tmp_path: Path) -> None:
    """A connection that sends nothing, or half a frame, is closed at the handshake
    deadline (it used to stay for 90 s and more, each holding a descriptor); the node
    serves on."""
    local = make_cluster(tmp_path / "c")
    try:
        leader = asyncio.run(leader_of(local))
        host, port = local.nodes[leader].raft_addr.rsplit(":", 1)
        silent = [socket.create_connection((host, int(port)), timeout=5) for _ in range(8)]
        try:
            silent[0].sendall(struct.pack("i", 100) + b"a" * 50)  # half a frame, then nothing
            for sock in silent:
                assert closed_within(sock, HANDSHAKE_SECONDS + 5), "a silent connection was kept"
        finally:
            for sock in silent:
                sock.close()
        load = asyncio.run(write_load(local.urls, 20))
        assert len(load.acked) == 20, load.errors[:3]
    finally:
        local.stop_all()
    assert "not authenticated as a member within" in local.nodes[leader].log_path.read_text()
