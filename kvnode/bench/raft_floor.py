"""The Raft floor: what a replicated write costs on PySyncObj before kvnode adds anything.

Three processes on 127.0.0.1, each a bare PySyncObj node (`SyncObj` with one replicated
method that stores a key's value in a dict) behind the HTTP floor's front (an
`asyncio.Protocol` on aiohttp's C parser, uvloop): a `PUT /kv/<key>` is proposed and
answered with a prebuilt reply from the commit callback, a `GET` reads the dict (a stale
read). Nothing else: PySyncObj's own in-memory journal (no file, no fsync), its own
transport (pickle, no encryption), no state machine, no revisions, no checks. A write's
latency and CPU here are the least any server built on PySyncObj can have on this
machine. This module imports PySyncObj itself, not through kvnode/raft/pysyncobj/: it
measures PySyncObj as it comes.

Four designs (`scripts/bench.sh raft-floor` runs them side by side, interleaved):

- `--mode thread`: PySyncObj's own tick thread with `appendEntriesUseBatch=False`, its
  low-latency setting (a command wakes the thread through PySyncObj's pipe and is sent
  at once); the commit callback hands the reply to the event loop.
- `--mode loop`: no tick thread (`autoTick=False`): the event loop runs PySyncObj's tick
  itself, as soon as a request was proposed, whenever a peer's socket is readable (its
  sockets are on an epoll object whose descriptor the loop watches), again after a tick
  that handled events (a reply read in one tick commits and applies in the next), and
  every 50 ms. One thread: no hand-off and no GIL switch on a write's path.
- each with `--batch`: the writes of one loop turn go as one entry, as kvnode's batcher
  sends them, instead of an entry per write.

`scripts/bench-vs-etcd.sh --raft-floor` measures the loop design with batches beside
etcd and kvnode in the same interleaved rounds (the PUT rows).

A request names no revision and the front keeps no order between a connection's
requests (`hey` sends the next request only after the reply), so this front is for
measuring, not serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kvnode.bench.floor import FloorProtocol

MODES = ("thread", "loop")
OK_REPLY = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)
NOT_LEADER_REPLY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b'Content-Length: 22\r\n\r\n{"error":"not_leader"}'
)
NOT_FOUND_REPLY = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
LOOP_TICK_SECONDS = 0.05  # as often as PySyncObj's own thread ticks when idle


class EpollPoller:
    """PySyncObj's poller interface on an epoll object, whose descriptor an event loop can
    watch: readable means some socket of PySyncObj's has an event to handle."""

    def __init__(self) -> None:
        self._epoll = select.epoll()
        self._callbacks: dict[int, Callable[[int, int], None]] = {}
        self.handled = 0  # events handled by the last poll

    def fileno(self) -> int:
        return self._epoll.fileno()

    def subscribe(self, descr: int, callback: Callable[[int, int], None], event_mask: int) -> None:
        if descr in self._callbacks:
            self._epoll.modify(descr, epoll_mask(event_mask))
        else:
            self._epoll.register(descr, epoll_mask(event_mask))
        self._callbacks[descr] = callback

    def unsubscribe(self, descr: int) -> None:
        if self._callbacks.pop(descr, None) is not None:
            with contextlib.suppress(OSError):  # PySyncObj may close a socket first
                self._epoll.unregister(descr)

    def poll(self, timeout: float) -> None:
        from pysyncobj.poller import POLL_EVENT_TYPE

        events = self._epoll.poll(timeout)
        self.handled = len(events)
        for descr, event in events:
            mask = 0
            if event & select.EPOLLIN:
                mask |= POLL_EVENT_TYPE.READ
            if event & select.EPOLLOUT:
                mask |= POLL_EVENT_TYPE.WRITE
            if event & (select.EPOLLERR | select.EPOLLHUP):
                mask |= POLL_EVENT_TYPE.ERROR
            callback = self._callbacks.get(descr)
            if callback is not None:
                callback(descr, mask)


def epoll_mask(event_mask: int) -> int:
    from pysyncobj.poller import POLL_EVENT_TYPE

    mask = 0
    if event_mask & POLL_EVENT_TYPE.READ:
        mask |= select.EPOLLIN
    if event_mask & POLL_EVENT_TYPE.WRITE:
        mask |= select.EPOLLOUT
    if event_mask & POLL_EVENT_TYPE.ERROR:
        mask |= select.EPOLLERR
    return mask


def make_store(self_address: str, partners: list[str], mode: str) -> Any:
    """A bare PySyncObj node whose one replicated method sets keys."""
    import pysyncobj
    import pysyncobj.syncobj
    from pysyncobj import SyncObj, SyncObjConf, replicated

    class FloorStore(SyncObj):  # type: ignore[misc]
        def __init__(self) -> None:
            conf = SyncObjConf(appendEntriesUseBatch=False, autoTick=mode == "thread")
            super().__init__(self_address, partners, conf=conf)
            self.values: dict[str, bytes] = {}

        @replicated  # type: ignore[untyped-decorator]
        def put(self, items: list[tuple[str, bytes]]) -> None:
            self.values.update(items)

    if mode == "loop":  # PySyncObj makes its poller in SyncObj.__init__
        pysyncobj.syncobj.createPoller = lambda _kind: EpollPoller()
    return FloorStore()


Answer = Callable[[bytes], None]


class Proposer:
    """Proposes each write as an entry of its own, or (`batch`) the writes of one loop turn
    as one entry, as kvnode's batcher does; answers them from the commit callback."""

    def __init__(self, store: Any, mode: str, batch: bool, after_propose: Callable[[], None]):
        self._store = store
        self._loop = asyncio.get_running_loop()
        self._threaded = mode == "thread"  # the commit callback runs in PySyncObj's thread
        self._batch = batch
        self._after_propose = after_propose
        self._pending: list[tuple[str, bytes]] = []
        self._answers: list[Answer] = []

    def propose(self, key: str, value: bytes, answer: Answer) -> None:
        self._pending.append((key, value))
        self._answers.append(answer)
        if not self._batch:
            self._flush()
        elif len(self._pending) == 1:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        items, answers = self._pending, self._answers
        self._pending, self._answers = [], []
        self._store.put(items, callback=lambda _result, error: self._settle(answers, error))
        self._after_propose()

    def _settle(self, answers: list[Answer], error: Any) -> None:
        reply = OK_REPLY if error == 0 else NOT_LEADER_REPLY
        if self._threaded:
            self._loop.call_soon_threadsafe(answer_all, answers, reply)
        else:
            answer_all(answers, reply)


def answer_all(answers: list[Answer], reply: bytes) -> None:
    for answer in answers:
        answer(reply)


class RaftFloorProtocol(FloorProtocol):
    """The HTTP floor's front with a PySyncObj node behind it (see the module docstring)."""

    def __init__(self, store: Any, proposer: Proposer) -> None:
        super().__init__()
        self._store = store
        self._proposer = proposer

    def data_received(self, data: bytes) -> None:
        messages, _upgraded, _tail = self._requests.feed_data(data)
        for message, payload in messages:
            key = message.path.rpartition("/")[2]
            if message.method == "PUT":
                self._proposer.propose(key, payload.read_nowait(-1), self._write)
            else:
                value = self._store.values.get(key)
                self._write(
                    NOT_FOUND_REPLY
                    if value is None
                    else b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(value), value)
                )

    def _write(self, reply: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(reply)


async def serve(
    self_address: str, partners: list[str], http_port: int, mode: str, batch: bool
) -> None:
    loop = asyncio.get_running_loop()
    store = make_store(self_address, partners, mode)
    after_propose: Callable[[], None] = lambda: None  # noqa: E731 - PySyncObj wakes itself
    if mode == "loop":
        tick_due = False

        def tick() -> None:
            nonlocal tick_due
            tick_due = False
            store._onTick(0)
            if store._poller.handled:  # what came in may commit or apply in the next tick
                tick_soon()

        def tick_soon() -> None:
            nonlocal tick_due
            if not tick_due:
                tick_due = True
                loop.call_soon(tick)

        def tick_every_period() -> None:
            tick_soon()
            loop.call_later(LOOP_TICK_SECONDS, tick_every_period)

        loop.add_reader(store._poller.fileno(), tick_soon)
        tick_every_period()
        after_propose = tick_soon
    proposer = Proposer(store, mode, batch, after_propose)
    await loop.create_server(lambda: RaftFloorProtocol(store, proposer), "127.0.0.1", http_port)
    await asyncio.Event().wait()


class RaftFloorCluster:
    """Three floor nodes as processes of their own (stopped by PID in `stop`)."""

    def __init__(self, mode: str, batch: bool, log_dir: Path) -> None:
        from kvnode.cluster.supervisor import free_ports

        ports = free_ports(6)
        raft = [f"127.0.0.1:{port}" for port in ports[:3]]
        self.urls = [f"http://127.0.0.1:{port}" for port in ports[3:]]
        self.processes = []
        for index in range(3):
            partners = ",".join(address for n, address in enumerate(raft) if n != index)
            argv = [sys.executable, "-m", "kvnode.bench.raft_floor", "serve", "--mode", mode]
            argv += ["--batch"] if batch else []
            argv += [raft[index], partners, str(ports[3 + index])]
            with open(log_dir / f"raft-floor{index}.log", "wb") as log:
                self.processes.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))

    def system(self, name: str) -> Any:
        """The cluster as bench-vs-etcd measures one (compare.System), once it has a leader."""
        from kvnode.bench.hey_rows import System, by_role

        leader = self.leader()
        pids = [process.pid for process in self.processes]
        return System(name, self.urls[leader], by_role(pids, leader))

    def leader(self, timeout: float = 30.0) -> int:
        """The index of the node that takes a write."""
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, url in enumerate(self.urls):
                request = urllib.request.Request(f"{url}/kv/bench", data=b"v", method="PUT")
                try:
                    with urllib.request.urlopen(request, timeout=2):
                        return index
                except (urllib.error.URLError, OSError):
                    continue
            time.sleep(0.2)
        raise click.ClickException("the Raft floor cluster elected no leader")

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            process.wait(30)


@click.group()
def main() -> None:
    """The Raft floor (see the module's docstring)."""


@main.command("serve")
@click.option("--mode", type=click.Choice(MODES), default="thread", show_default=True)
@click.option("--batch", is_flag=True, help="One entry for the writes of one loop turn.")
@click.argument("self_address")
@click.argument("partners")
@click.argument("http_port", type=int)
def serve_command(mode: str, batch: bool, self_address: str, partners: str, http_port: int) -> None:
    """Run one floor node (the cluster starts three)."""
    import uvloop

    uvloop.install()
    asyncio.run(serve(self_address, partners.split(","), http_port, mode, batch))


DESIGNS = (("thread", False), ("thread", True), ("loop", False), ("loop", True))
CONNECTIONS = (1, 16, 64)


def design_name(mode: str, batch: bool) -> str:
    return f"{mode}, {'entry per loop turn' if batch else 'entry per write'}"


@main.command("run")
@click.option("--seconds", type=click.FloatRange(min=1), default=5.0, help="Seconds per run (5).")
@click.option("--rounds", type=click.IntRange(min=1), default=3, help="Interleaved rounds (3).")
def run(seconds: float, rounds: int) -> None:
    """PUTs at 1, 16 and 64 connections against each design's cluster, interleaved."""
    from kvnode.bench import hey_rows

    if shutil.which("hey") is None:
        raise click.ClickException("hey is not installed (apt-get install hey)")
    value = b"v" * 100
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        clusters = {
            design_name(*design): RaftFloorCluster(*design, Path(tmp)) for design in DESIGNS
        }
        try:
            systems = [cluster.system(name) for name, cluster in clusters.items()]
            for round_number in range(rounds):
                order = systems if round_number % 2 == 0 else systems[::-1]
                for connections in CONNECTIONS:
                    for system in order:
                        row = hey_rows.measure(
                            system, "put", connections, seconds, value, Path(tmp)
                        )
                        results.setdefault((system.name, connections), []).append(row)
        finally:
            for cluster in clusters.values():
                cluster.stop()
    click.echo(
        f"{'design':<34} {'conns':>5} {'ok/s':>9} {'p50 ms':>7} {'p99 ms':>7}"
        "  CPU µs/write leader/follower/follower"
    )
    for (name, connections), rows in results.items():
        row = hey_rows.median_row(rows)
        cpu = "/".join(f"{v:g}" for v in row["cpu_us_per_op"].values())
        click.echo(
            f"{name:<34} {connections:>5} {row['ok_per_s']:>9} {row['latency']['p50_ms']:>7} "
            f"{row['latency']['p99_ms']:>7}  {cpu}"
        )


if __name__ == "__main__":
    main()
