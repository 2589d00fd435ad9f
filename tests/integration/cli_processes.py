"""Running the `kvnode` command as a user would: one-shot commands and a `cluster up` in the
background, with every process it started accounted for by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from kvnode.cluster.supervisor import LocalCluster, free_ports
from tests.waiting import wait_until_sync

CLUSTER_UP_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


def kvnode(
    *args: str, stdin: bytes | None = None, timeout: float = 30
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kvnode", *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


def kvnode_against(
    local: LocalCluster, *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """`kvnode ARGS` with KVNODE_ENDPOINTS naming every node of `local`."""
    endpoints = ",".join(node.http_addr for node in local.nodes)
    return subprocess.run(
        [sys.executable, "-m", "kvnode", *args],
        env={**os.environ, "KVNODE_ENDPOINTS": endpoints},
        input=stdin,
        capture_output=True,
        timeout=timeout,
    )


def child_pids(parent: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive free ports: `cluster up` numbers nodes' ports from a
    base (+1, +2, ...), so independently chosen free ports could overlap another node's."""
    for _ in range(100):
        (base,) = free_ports(1)
        try:
            with contextlib.ExitStack() as held:
                for port in range(base, base + count):
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no run of {count} free ports found")


class ClusterUp:
    """`kvnode cluster up` on free ports in `workdir/data`; its output goes to files.

    On exit it stops the cluster with Ctrl-C as a user would, and SIGKILLs any node
    that is still alive (by the pids it saw), so a failing test leaves nothing behind.
    """

    def __init__(self, workdir: Path, *extra_args: str) -> None:
        self.workdir = workdir
        self.data = workdir / "data"  # the default --data, relative to workdir
        self.http_base = consecutive_free_ports(6)
        self.urls = [f"http://127.0.0.1:{self.http_base + i}" for i in range(3)]
        self.endpoints = ",".join(url.removeprefix("http://") for url in self.urls)
        self.out_path = workdir / "cluster-up.out"
        self.err_path = workdir / "cluster-up.err"
        self.args = ["cluster", "up", *extra_args]
        # Ports through the environment, so that documented commands run unchanged in workdir.
        self.env = {
            **os.environ,
            "KVNODE_CLUSTER_HTTP_PORT": str(self.http_base),
            "KVNODE_CLUSTER_RAFT_PORT": str(self.http_base + 3),
            "KVNODE_ENDPOINTS": self.endpoints,
        }
        self.process: subprocess.Popen | None = None
        self.node_pids: set[int] = set()

    def __enter__(self) -> ClusterUp:
        with self.out_path.open("wb") as out, self.err_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "kvnode", *self.args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=self.env,
            )
        try:
            wait_until_sync(self._is_up, CLUSTER_UP_TIMEOUT, "cluster up to print its banner")
        except AssertionError:
            self.__exit__(None, None, None)
            raise AssertionError(f"cluster up did not come up: {self.diagnostics()}") from None
        self.track_children()
        return self

    def _is_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"cluster up exited early: {self.diagnostics()}")
        return "is up; leader is" in self.output()

    def track_children(self) -> set[int]:
        """The nodes running now (remembered for the final clean-up)."""
        assert self.process is not None
        children = child_pids(self.process.pid)
        self.node_pids |= children
        return children

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def diagnostics(self) -> str:
        err = self.err_path.read_text(errors="replace")
        return f"stdout:\n{self.output()[-2000:]}\nstderr:\n{err[-3000:]}"

    def ctl(self, *args: str) -> subprocess.CompletedProcess:
        """`kvnode cluster ARGS --data <this cluster's data>`."""
        return kvnode("cluster", *args, "--data", str(self.data), timeout=60)

    def shell(self, command: str) -> subprocess.CompletedProcess:
        """A command line as a user types it, in workdir, next to this cluster."""
        return subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.workdir,
            env=self.env,
        )

    def interrupt(self) -> int:
        """Ctrl-C; returns the exit code of `cluster up`."""
        assert self.process is not None
        self.track_children()
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=STOP_TIMEOUT)

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        assert self.process is not None
        if self.process.poll() is None:
            self.track_children()
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.node_pids:  # never leave a node running, even after a failure
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def wait_for_exit_line(up: ClusterUp, node: str, nth: int = 1, timeout: float = 10.0) -> str:
    """The `nth` line `cluster up` printed to say that `node` exited."""

    def line() -> str | None:
        found = [text for text in up.output().splitlines() if text.startswith(f"{node} exited")]
        return found[nth - 1] if len(found) >= nth else None

    return wait_until_sync(line, timeout, f"cluster up to report that {node} exited")
