"""Local process supervisor: runs a kvnode cluster as child processes on 127.0.0.1.

`kvnode cluster up` uses it with the fixed ports and ./data; the integration
and chaos tests use it with ephemeral ports and temporary directories. It only
ever signals the processes it started, by PID.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvnode.client import Client, KvError

LOCAL_HOST = "127.0.0.1"
STOP_GRACE_SECONDS = 10.0


def free_ports(count: int, host: str = LOCAL_HOST) -> list[int]:
    """Ports the kernel says are free right now (bound and released together)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class LocalNode:
    node_id: str
    raft_addr: str
    http_addr: str
    data_dir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    join: str = ""  # a running member's URL: started with `--join` (it has no peers)

    @property
    def url(self) -> str:
        return f"http://{self.http_addr}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ClusterView:
    """What every cluster driver (local processes, Docker) offers the tests and the nemesis."""

    nodes: list[Any]
    size: int
    settings: dict[str, Any]
    base_dir: Path  # where the nodes' data and logs are

    @property
    def token(self) -> str | None:
        """The HTTP bearer token the nodes require, if any."""
        return self.settings.get("auth_token") or None

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    async def statuses(self, client: Client, *, digest: bool = False) -> dict[int, dict[str, Any]]:
        """/status of every reachable running node (with the state digest, which is O(keys)
        under the node's lock, only when `digest` is true)."""

        async def one(index: int) -> tuple[int, dict[str, Any] | None]:
            node = self.nodes[index]
            if not node.running or node.paused:
                return index, None
            try:
                return index, await client.status(endpoint=node.url, digest=digest)
            except KvError:
                return index, None

        results = await asyncio.gather(*(one(i) for i in range(self.size)))
        return {index: status for index, status in results if status is not None}

    async def wait_for_leader(self, client: Client, timeout: float = 30.0) -> int:
        """Index of the node that a majority of reachable nodes agree leads."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            statuses = await self.statuses(client)
            for index, status in statuses.items():
                if status["role"] != "leader":
                    continue
                followers = sum(
                    1 for s in statuses.values() if s["leader_raft_addr"] == status["raft_addr"]
                )
                if followers > self.size // 2:
                    return index
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no leader elected within {timeout} s; logs in {self.base_dir}")

    async def wait_until_ready(self, client: Client, timeout: float = 30.0) -> None:
        """Every running node knows the leader and has applied up to the commit index."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = [n for n in self.nodes if n.running and not n.paused]
            try:
                for node in running:
                    await client.request("GET", "/ready", endpoint=node.url, idempotent=True)
                return
            except KvError:
                await asyncio.sleep(0.05)
        raise TimeoutError(f"nodes not ready within {timeout} s; logs in {self.base_dir}")


@dataclass
class LocalCluster(ClusterView):
    base_dir: Path
    size: int = 3
    http_ports: list[int] | None = None
    raft_ports: list[int] | None = None
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    settings: dict[str, Any] = field(default_factory=dict)
    log_to_files: bool = True
    hosts: list[str] | None = None  # one address per node (e.g. in network namespaces)
    launch_prefix: list[list[str]] | None = None  # per node, e.g. ["ip", "netns", "exec", ns]
    nodes: list[LocalNode] = field(init=False)

    def __post_init__(self) -> None:
        self.base_dir = Path(self.base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * self.size) if self.http_ports is None else []
        http = self.http_ports or ports[: self.size]
        raft = self.raft_ports or ports[self.size :]
        hosts = self.hosts or [LOCAL_HOST] * self.size
        self.nodes = [self._new_node(i + 1, hosts[i], http[i], raft[i]) for i in range(self.size)]
        for node in self.nodes:
            self._write_config(node)

    def _new_node(self, number: int, host: str, http_port: int, raft_port: int) -> LocalNode:
        name = f"node{number}"
        return LocalNode(
            node_id=name,
            raft_addr=f"{host}:{raft_port}",
            http_addr=f"{host}:{http_port}",
            data_dir=self.base_dir / name,
            config_path=self.base_dir / f"{name}.toml",
            log_path=self.base_dir / f"{name}.log",
        )

    def add_node(self, join_url: str, host: str = LOCAL_HOST) -> int:
        """A new node (ports picked free) that starts with `--join join_url` and no peers;
        its config is written, it is not started. Returns its index."""
        http, raft = free_ports(2, host)
        node = self._new_node(len(self.nodes) + 1, host, http, raft)
        node.join = join_url
        self.nodes.append(node)
        self.size = len(self.nodes)
        self._write_config(node)
        return self.size - 1

    def reconfigure(self, index: int, **settings: Any) -> None:
        """Override settings of one node from its next start on (say, to keep a node that a
        test restarts alone from compacting the log the test is about to read)."""
        self._write_config(self.nodes[index], settings)

    def _write_config(self, node: LocalNode, overrides: dict[str, Any] | None = None) -> None:
        values: dict[str, Any] = {
            "node_id": node.node_id,
            "raft_addr": node.raft_addr,
            "http_addr": node.http_addr,
            "peers": [] if node.join else [n.raft_addr for n in self.nodes if n is not node],
            "data_dir": str(node.data_dir),
            "cluster_secret": self.secret,
            **self.settings,
            **(overrides or {}),
        }
        node.config_path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in values.items()))
        node.config_path.chmod(0o600)  # it holds the cluster secret

    # -- process control -------------------------------------------------------------

    def start(self, index: int) -> None:
        node = self.nodes[index]
        if node.running:
            raise RuntimeError(f"{node.node_id} is already running")
        output: Any = None
        if self.log_to_files:
            output = open(node.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            prefix = self.launch_prefix[index] if self.launch_prefix else []
            node.process = subprocess.Popen(
                [
                    *prefix,
                    sys.executable,
                    "-m",
                    "kvnode",
                    "serve",
                    "--config",
                    str(node.config_path),
                    *(["--join", node.join] if node.join else []),
                ],
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            if output is not None:
                output.close()
        node.paused = False

    def start_all(self) -> None:
        for index in range(self.size):
            if not self.nodes[index].running:
                self.start(index)

    def signal(self, index: int, sig: signal.Signals) -> None:
        node = self.nodes[index]
        if node.process is None:
            raise RuntimeError(f"{node.node_id} was never started")
        node.process.send_signal(sig)

    def kill(self, index: int) -> None:
        """SIGKILL: the process dies at once, wherever it is."""
        node = self.nodes[index]
        if node.running:
            self.signal(index, signal.SIGKILL)
            node.process.wait()  # type: ignore[union-attr]
        node.paused = False

    def stop(self, index: int, grace: float = STOP_GRACE_SECONDS) -> int | None:
        """SIGTERM and wait (SIGKILL after `grace`); returns the exit code."""
        node = self.nodes[index]
        if node.process is None:
            return None
        if node.running:
            if node.paused:
                self.resume(index)
            self.signal(index, signal.SIGTERM)
            try:
                node.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill(index)
        return node.process.returncode

    def pause(self, index: int) -> None:
        self.signal(index, signal.SIGSTOP)
        self.nodes[index].paused = True

    def resume(self, index: int) -> None:
        self.signal(index, signal.SIGCONT)
        self.nodes[index].paused = False

    def wipe(self, index: int) -> None:
        """Delete a stopped node's data directory (a replaced disk)."""
        if self.nodes[index].running:
            raise RuntimeError("stop the node before wiping its data")
        shutil.rmtree(self.nodes[index].data_dir, ignore_errors=True)

    def stop_all(self) -> None:
        for index in range(self.size):
            self.stop(index)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop_all()
