"""`kvnode cluster up` in the foreground: run the local cluster until Ctrl-C, whatever its
nodes do.

A node that exits (SIGKILL, a crash, a fail-stop) is reported in one line and the
others carry on: a local cluster exists to be tortured. Single nodes are killed,
paused, stopped and brought back from another terminal through the control socket
(`cluster/control.py`); the nodes stay children of this process, so Ctrl-C or
SIGTERM here stops every node that runs, including the ones started later.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kvnode.client import Client, KvError
from kvnode.config import ConfigError
from kvnode.contract import DEFAULT_ENDPOINTS
from kvnode.server import ensure_port_free

from . import control
from .control import EXIT_RUNTIME, EXIT_USAGE, SIGNALS, ControlError
from .supervisor import LocalCluster, LocalNode

MONITOR_SECONDS = 0.2
STATUS_TIMEOUT_SECONDS = 1.0
START_TIMEOUT_SECONDS = 15.0
STARTUP_TIMEOUT_SECONDS = 30.0
RESTART_BACKOFF_FIRST_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 30.0


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def is_stopped(pid: int) -> bool:
    """True if the process is stopped by a signal (SIGSTOP), whoever sent it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")


@dataclass
class RestartState:
    """Backoff of one node under `--restart on-failure` (like Docker's restart policy)."""

    backoff: float = RESTART_BACKOFF_FIRST_SECONDS
    due: float | None = None  # monotonic time of the next restart


@dataclass
class ForegroundCluster:
    local: LocalCluster
    data_label: str  # the --data value as the user gave it, for hints
    restart_policy: str = "no"
    echo: Callable[[str], None] = print
    _reported: set[int] = field(default_factory=set)  # pids whose exit has been told
    _requested: set[int] = field(default_factory=set)  # pids stopped through the control socket
    _restarts: dict[int, RestartState] = field(default_factory=dict)
    _started_at: dict[int, float] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    cluster_id: str | None = None  # known once the cluster is up

    @property
    def _data_flag(self) -> str:
        return "" if self.data_label == "data" else f" --data {self.data_label}"

    # -- the foreground run --------------------------------------------------------------

    async def run(self) -> None:
        """Claim the control socket, start the nodes, and supervise them until a signal."""
        server = await control.serve(self.local.base_dir, self.handle)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            self._check_ports_free()
            for index in range(self.local.size):
                self._start(index)
            leader = await self._wait_until_up(stop)
            if leader is None:
                return
            self._banner(leader)
            while not stop.is_set():
                self._report_exits()
                self._restart_due()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), MONITOR_SECONDS)
            self.echo("stopping...")
        finally:
            server.close()
            await asyncio.to_thread(self.local.stop_all)
            with contextlib.suppress(FileNotFoundError):
                control.socket_path(self.local.base_dir).unlink()

    def _check_ports_free(self) -> None:
        """Refuse to start on a port something else holds (another cluster, perhaps): its
        nodes would answer in place of the ones that could not listen."""
        for node in self.local.nodes:
            for key, address in (("http_addr", node.http_addr), ("raft_addr", node.raft_addr)):
                try:
                    ensure_port_free(address, f"{node.node_id} {key}")
                except ConfigError as exc:
                    raise ControlError(
                        f"{exc}; choose other ports with --http-port and --raft-port", EXIT_USAGE
                    ) from None

    async def _wait_until_up(self, stop: asyncio.Event) -> int | None:
        """The leader's index once every node this process started answers for itself
        (its pid), is ready, and knows the cluster's id; None if stopped first. A node
        that exits meanwhile ends the start-up with a ControlError."""

        async def ready() -> int:
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            async with Client(self.local.urls, timeout=2) as client:
                while time.monotonic() < deadline:
                    self._refuse_early_exit()
                    leader = await self._own_cluster_ready(client)
                    if leader is not None:
                        return leader
                    await asyncio.sleep(MONITOR_SECONDS)
            raise TimeoutError(
                f"not ready within {STARTUP_TIMEOUT_SECONDS:g} s; the nodes' output is above"
            )

        waiting = asyncio.create_task(ready())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not waiting.done():
            waiting.cancel()
            return None
        return waiting.result()  # raises TimeoutError when the cluster did not come up

    def _refuse_early_exit(self) -> None:
        for node in self.local.nodes:
            if node.process is not None and node.process.poll() is not None:
                raise ControlError(
                    f"{node.node_id} exited during start-up"
                    f" ({describe_exit(node.process.returncode)}); its output is above",
                    EXIT_RUNTIME,
                )

    async def _own_cluster_ready(self, client: Client) -> int | None:
        """The leader's index if every node answering is one this process started (by
        pid), all are ready and name one cluster id; None while not yet."""
        statuses = await self.local.statuses(client)
        if len(statuses) != self.local.size:
            return None
        for index, status in statuses.items():
            node = self.local.nodes[index]
            if node.process is None or status.get("pid") != node.process.pid:
                return None  # something else answers on this node's port
        cluster_ids = {status.get("cluster_id") for status in statuses.values()}
        if len(cluster_ids) != 1 or None in cluster_ids:
            return None
        leaders = [i for i, status in statuses.items() if status["role"] == "leader"]
        if len(leaders) != 1:
            return None
        try:
            await self.local.wait_until_ready(client, timeout=MONITOR_SECONDS)
        except TimeoutError:
            return None
        self.cluster_id = cluster_ids.pop()
        return leaders[0]

    def _banner(self, leader: int) -> None:
        local = self.local
        self.echo(f"kvnode cluster of {local.size} is up; leader is {local.nodes[leader].node_id}")
        self.echo(f"  cluster id {self.cluster_id}")
        for node in local.nodes:
            self.echo(
                f"  {node.node_id}: {node.url}   (raft {node.raft_addr}, data {node.data_dir})"
            )
        if tuple(node.http_addr for node in local.nodes) != DEFAULT_ENDPOINTS[: local.size]:
            self.echo(
                "Other terminals in this directory find this cluster by itself; elsewhere:\n"
                f"  export KVNODE_ENDPOINTS={','.join(n.http_addr for n in local.nodes)}"
                f" KVNODE_CLUSTER_ID={self.cluster_id}"
            )
        self.echo(
            "Press Ctrl-C to stop. From another terminal: kvnode cluster"
            " ps|add|kill|stop|start|restart|pause|resume NODE" + self._data_flag
        )

    # -- exits and restarts --------------------------------------------------------------

    def _start(self, index: int) -> None:
        self.local.start(index)
        self._started_at[index] = time.monotonic()

    def _report_exits(self) -> None:
        for index, node in enumerate(self.local.nodes):
            process = node.process
            if process is None or process.poll() is None or process.pid in self._reported:
                continue
            self._reported.add(process.pid)
            running = sum(n.running for n in self.local.nodes)
            self.echo(
                f"{node.node_id} exited ({describe_exit(process.returncode)});"
                f" {running} of {self.local.size} nodes"
                f" running; bring it back with: kvnode cluster start {node.node_id}"
                + self._data_flag
            )
            if self.restart_policy == "on-failure" and process.pid not in self._requested:
                self._schedule_restart(index)

    def _schedule_restart(self, index: int) -> None:
        state = self._restarts.setdefault(index, RestartState())
        ran_for = time.monotonic() - self._started_at.get(index, 0.0)
        if ran_for > RESTART_BACKOFF_MAX_SECONDS:
            state.backoff = RESTART_BACKOFF_FIRST_SECONDS  # it ran well: start over
        state.due = time.monotonic() + state.backoff
        self.echo(
            f"restarting {self.local.nodes[index].node_id} in {state.backoff:g} s"
            " (--restart on-failure)"
        )
        state.backoff = min(2 * state.backoff, RESTART_BACKOFF_MAX_SECONDS)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for index, state in self._restarts.items():
            if state.due is not None and state.due <= now:
                state.due = None
                if not self.local.nodes[index].running:
                    self._start(index)

    # -- control requests ----------------------------------------------------------------

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "info":  # what the key commands need to talk to this cluster only
            endpoints = [node.http_addr for node in self.local.nodes]
            return {"ok": True, "endpoints": endpoints, "cluster_id": self.cluster_id}
        if op == "ps":
            return {"ok": True, "nodes": await self.rows()}
        if op == "add":
            async with self._lock:
                return {"ok": True, "message": await self._add()}
        actions = {
            "kill": lambda index: self._kill(index, str(request.get("signal", "KILL"))),
            "stop": self._stop,
            "start": self._start_node,
            "restart": self._restart,
            "pause": self._pause,
            "resume": self._resume,
        }
        if op not in actions:
            raise ControlError(f"unknown request {op!r}")
        async with self._lock:
            message = await actions[op](await self._resolve(str(request.get("node", ""))))
            self._report_exits()
        return {"ok": True, "message": message}

    async def _resolve(self, name: str) -> int:
        """`node2`, `2` or `leader` → the node's index."""
        if name == "leader":
            async with Client(self.local.urls, timeout=STATUS_TIMEOUT_SECONDS) as client:
                statuses = await self.local.statuses(client)
            leaders = [(s["term"], i) for i, s in statuses.items() if s["role"] == "leader"]
            if not leaders:
                raise ControlError("no node leads right now; try again shortly", EXIT_RUNTIME)
            return max(leaders)[1]
        names = {node.node_id: i for i, node in enumerate(self.local.nodes)}
        names.update({str(i + 1): i for i in range(self.local.size)})
        if name not in names:
            known = ", ".join(node.node_id for node in self.local.nodes)
            raise ControlError(f"unknown node {name!r}; this cluster has {known} (or 'leader')")
        return names[name]

    def _running_node(self, index: int) -> LocalNode:
        node = self.local.nodes[index]
        if not node.running:
            raise ControlError(f"{node.node_id} is not running")
        return node

    async def _kill(self, index: int, signal_name: str) -> str:
        if signal_name not in SIGNALS:
            raise ControlError(f"unknown signal {signal_name!r}; use one of {', '.join(SIGNALS)}")
        if signal_name == "STOP":
            return await self._pause(index)
        if signal_name == "CONT":
            return await self._resume(index)
        node = self._running_node(index)
        assert node.process is not None
        self._requested.add(node.process.pid)
        if signal_name == "KILL":
            await asyncio.to_thread(self.local.kill, index)
        else:
            self.local.signal(index, signal.SIGTERM)
        return f"sent SIG{signal_name} to {node.node_id} (pid {node.process.pid})"

    async def _stop(self, index: int) -> str:
        node = self._running_node(index)
        assert node.process is not None
        self._requested.add(node.process.pid)
        code = await asyncio.to_thread(self.local.stop, index)
        return f"stopped {node.node_id} ({describe_exit(code or 0)})"

    async def _start_node(self, index: int) -> str:
        node = self.local.nodes[index]
        if node.running:
            raise ControlError(f"{node.node_id} is already running (pid {node.process.pid})")  # type: ignore[union-attr]
        self._report_exits()  # tell the old process's exit before the new one replaces it
        self._restarts.pop(index, None)
        self._start(index)
        assert node.process is not None
        await self._wait_serving(node)
        return f"started {node.node_id} (pid {node.process.pid}); it catches up from the leader"

    async def _wait_serving(self, node: LocalNode) -> None:
        """Until the new process answers HTTP; a start that fails at once is an error."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        async with Client([node.url], timeout=STATUS_TIMEOUT_SECONDS) as client:
            while time.monotonic() < deadline:
                if not node.running:
                    code = node.process.returncode  # type: ignore[union-attr]
                    raise ControlError(
                        f"{node.node_id} {describe_exit(code)} right after starting;"
                        " see its log in the `cluster up` terminal",
                        EXIT_RUNTIME,
                    )
                with contextlib.suppress(KvError):
                    await client.request("GET", "/health", idempotent=True)
                    return
                await asyncio.sleep(MONITOR_SECONDS / 4)
        raise ControlError(
            f"{node.node_id} started but does not answer on {node.url} yet", EXIT_RUNTIME
        )

    async def _add(self) -> str:
        """A new node that joins the cluster through a running member (`--join`)."""
        running = [node for node in self.local.nodes if node.running and not node.paused]
        if not running:
            raise ControlError("no node is running to join through", EXIT_RUNTIME)
        index = self.local.add_node(running[0].url)
        node = self.local.nodes[index]
        self._start(index)
        await self._wait_serving(node)
        return (
            f"added {node.node_id} (pid {node.process.pid}, {node.url}); it joined through"  # type: ignore[union-attr]
            f" {running[0].node_id} and catches up from the leader"
        )

    async def _restart(self, index: int) -> str:
        if self.local.nodes[index].running:
            await self._stop(index)
        return "re" + await self._start_node(index)

    async def _pause(self, index: int) -> str:
        node = self._running_node(index)
        assert node.process is not None
        if is_stopped(node.process.pid):
            raise ControlError(f"{node.node_id} is already paused")
        self.local.pause(index)
        return f"paused {node.node_id} (SIGSTOP); resume it with: kvnode cluster resume" + (
            f" {node.node_id}{self._data_flag}"
        )

    async def _resume(self, index: int) -> str:
        node = self._running_node(index)
        assert node.process is not None
        if not is_stopped(node.process.pid):
            raise ControlError(f"{node.node_id} is not paused")
        self.local.resume(index)
        return f"resumed {node.node_id} (SIGCONT)"

    # -- cluster ps ----------------------------------------------------------------------

    async def rows(self) -> list[dict[str, Any]]:
        async with Client(self.local.urls, timeout=STATUS_TIMEOUT_SECONDS) as client:
            statuses = await self.local.statuses(client)
        rows = []
        for index, node in enumerate(self.local.nodes):
            process = node.process
            status = statuses.get(index, {})
            if process is None or process.poll() is not None:
                state = describe_exit(process.returncode) if process else "not started"
            else:
                state = "paused" if is_stopped(process.pid) else "running"
            rows.append(
                {
                    "node": node.node_id,
                    "pid": process.pid if process and process.poll() is None else None,
                    "state": state,
                    "role": status.get("role"),
                    "term": status.get("term"),
                    "applied_index": status.get("applied_index"),
                    "url": node.url,
                }
            )
        return rows
