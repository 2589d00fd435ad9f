"""The double vote of a wiped node, constructed on the wire: a node votes for one
candidate, loses its disk, and is asked again in the same term by another. Without
`--initial-state existing` it votes a second time (two leaders could follow); with it,
it stays silent until it has caught up with a real leader, and the guard survives a
crash during catch-up."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kvnode.client import Client, KvError
from kvnode.cluster.supervisor import LocalCluster, free_ports
from tests.integration.conftest import converged, leader_of, statuses, write_load
from tests.integration.peer_wire import connect_as, frame, read_frame
from tests.waiting import wait_until

TERM = 7


class Voter:
    """One node with two (absent) peers, on loopback without a secret, whose votes the test
    asks for by speaking its peer protocol as one peer or the other."""

    def __init__(self, base: Path) -> None:
        self.data = base / "voter"
        self.http, *raft_ports = free_ports(4)
        # A node takes a connection only from a peer of higher address (the lower one is
        # dialled, never dials): the voter gets the lowest, so that both may ask it.
        own, *peers = sorted(f"127.0.0.1:{port}" for port in raft_ports)
        self.raft = int(own.rsplit(":", 1)[1])
        self.peers = peers
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *flags: str) -> None:
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "kvnode", "serve", "--insecure"),
                *("--http-addr", f"127.0.0.1:{self.http}", "--raft-addr", f"127.0.0.1:{self.raft}"),
                *("--peers", ",".join(self.peers), "--data-dir", str(self.data), *flags),
            ],
            stderr=subprocess.DEVNULL,
        )

        async def up() -> dict[str, Any] | None:
            async with Client([f"127.0.0.1:{self.http}"], timeout=1) as client:
                try:
                    return await client.status()
                except KvError:
                    return None

        asyncio.run(wait_until(up, 20, "the voter to serve"))

    def status(self) -> dict[str, Any]:
        async def get() -> dict[str, Any]:
            async with Client([f"127.0.0.1:{self.http}"], timeout=2) as client:
                return await client.status()

        return asyncio.run(get())

    def crash(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def ask_vote(self, candidate: int) -> bool:
        """Request a vote in TERM as peer `candidate`; True if the node grants it."""
        with connect_as(f"127.0.0.1:{self.raft}", self.peers[candidate]) as sock:
            request = {
                "type": "request_vote",
                "term": TERM,
                "last_log_index": 1000,
                "last_log_term": TERM - 1,
            }
            sock.sendall(frame(request))
            sock.settimeout(3)
            try:
                while True:
                    reply = read_frame(sock)
                    if isinstance(reply, dict) and reply.get("type") == "response_vote":
                        return reply.get("term") == TERM
            except (TimeoutError, ConnectionError):
                return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=20)


def test_a_wiped_node_votes_twice_in_a_term_unless_it_joins_as_existing(tmp_path: Path) -> None:
    voter = Voter(tmp_path)
    try:
        voter.start()
        assert voter.ask_vote(0), "the control failed: the node does not vote at all"
        assert not voter.ask_vote(1), "a node with its disk must not vote twice in a term"
        voter.crash()
        shutil.rmtree(voter.data)
        voter.start()
        assert voter.ask_vote(1), "the hazard: a wiped node votes again in the same term"
        voter.crash()
        shutil.rmtree(voter.data)
        voter.start("--initial-state", "existing")
        assert voter.status()["catching_up"] is True
        assert not voter.ask_vote(1), "a replacement voted before catching up"
        voter.crash()  # a crash during catch-up keeps the guard
        voter.start("--initial-state", "existing")
        assert voter.status()["catching_up"] is True
        assert not voter.ask_vote(0)
    finally:
        voter.stop()


def test_a_replacement_catches_up_then_votes_and_serves(
    cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        leader = await leader_of(cluster)
        lost = (leader + 1) % cluster.size
        load = await write_load(cluster.urls, 30)
        assert len(load.acked) == 30
        cluster.kill(lost)
        cluster.wipe(lost)
        with monkeypatch.context() as env:
            env.setenv("KVNODE_INITIAL_STATE", "existing")  # wins over the config file
            cluster.start(lost)
        await converged(cluster)

        async def voting_again() -> bool:
            # Cleared at the replacement's first tick that knows the leader and holds an
            # entry of its term: a tick after the apply that made it converge.
            return (await statuses(cluster))[lost]["catching_up"] is False

        await wait_until(voting_again, 30, "the replacement to clear its catch-up guard")
        async with Client([cluster.urls[lost]], timeout=10) as client:
            for key, value in load.acked.items():
                got = await client.get(key)
                assert got is not None and got.value == value

    asyncio.run(scenario())
