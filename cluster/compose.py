"""Driver for the docker-compose cluster: the same interface as the local supervisor, with
faults injected through Docker (`docker kill`, `docker pause`, `docker network disconnect`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .supervisor import ClusterView

ROOT = Path(__file__).resolve().parents[1]
HTTP_PORTS = (8001, 8002, 8003)


def compose_command() -> list[str]:
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise RuntimeError("neither 'docker compose' nor 'docker-compose' is installed")


def docker_available() -> str | None:
    """None if a Docker daemon answers, else why not."""
    if shutil.which("docker") is None:
        return "docker is not installed"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no Docker daemon reachable: {probe.stderr.strip()[:200]}"
    return None


@dataclass
class ComposeNode:
    node_id: str
    url: str
    container: str = ""
    paused: bool = False
    running: bool = True


@dataclass
class ComposeCluster(ClusterView):
    project: str
    secret: str
    settings: dict[str, Any] = field(default_factory=dict)
    size: int = 3
    nodes: list[ComposeNode] = field(init=False)

    def __post_init__(self) -> None:
        self.nodes = [
            ComposeNode(f"node{i + 1}", f"http://127.0.0.1:{HTTP_PORTS[i]}")
            for i in range(self.size)
        ]
        self._compose = compose_command()

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KVNODE_CLUSTER_SECRET": self.secret}
        return subprocess.run(
            [*self._compose, "-p", self.project, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=check,
        )

    def up(self) -> None:
        self.compose("up", "-d", "--no-build")
        for index, node in enumerate(self.nodes):
            node.container = self.compose("ps", "-q", f"node{index + 1}").stdout.strip()
            node.running, node.paused = True, False

    def health(self) -> list[str]:
        """Docker's health status of each node's container ("starting", "healthy", ...)."""
        containers = [node.container for node in self.nodes]
        inspected = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Health.Status}}", *containers],
            capture_output=True,
            text=True,
            check=True,
        )
        return inspected.stdout.split()

    def down(self, *, volumes: bool = False) -> None:
        self.compose("down", *(["-v"] if volumes else []), check=False)
        for node in self.nodes:
            node.running = False

    def _docker(self, *args: str) -> None:
        subprocess.run(["docker", *args], check=True, capture_output=True)

    def kill(self, index: int) -> None:
        self._docker("kill", self.nodes[index].container)
        self.nodes[index].running = False

    def start(self, index: int) -> None:
        self._docker("start", self.nodes[index].container)
        self.nodes[index].running, self.nodes[index].paused = True, False

    def pause(self, index: int) -> None:
        self._docker("pause", self.nodes[index].container)
        self.nodes[index].paused = True

    def resume(self, index: int) -> None:
        self._docker("unpause", self.nodes[index].container)
        self.nodes[index].paused = False

    @property
    def network(self) -> str:
        return f"{self.project}_kvnet"

    def disconnect(self, index: int) -> None:
        self._docker("network", "disconnect", self.network, self.nodes[index].container)

    def connect(self, index: int) -> None:
        node = self.nodes[index]
        self._docker("network", "connect", "--alias", node.node_id, self.network, node.container)

    def wipe(self, index: int) -> None:
        raise NotImplementedError("wiping a container's volume is not supported by this driver")
