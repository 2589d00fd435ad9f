"""`kvnode lock` is mutual exclusion without fencing, tried with real processes: a waiter
whose endpoint is paused keeps its place, a waiter paused itself past its lease starts
over instead of running, a stopped `kvnode lock` leaves neither its command nor its key
behind, and a lock lost while the command runs stops the command within the grace."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kvnode.cli.supervise import EXIT_LOCK_LOST
from kvnode.client import Client, KeyItem
from kvnode.client.coordination import LOCKS_PREFIX, Lock
from kvnode.cluster.locks import (
    SECTIONS_LOG,
    Contender,
    check_sections,
    holder_command,
    read_sections,
    write_holder_script,
)
from kvnode.cluster.supervisor import LocalCluster
from tests.integration.cli_processes import alive
from tests.waiting import wait_until, wait_until_sync

pytestmark = pytest.mark.slow
TTL = 3.0
LOCK = "guarded"
SECONDS = 60.0


class Contenders:
    """The `kvnode lock` processes of one test, all stopped at the end."""

    def __init__(self, cluster: LocalCluster, directory: Path) -> None:
        self.cluster = cluster
        self.directory = directory
        self.started: list[Contender] = []
        write_holder_script(directory)

    def start(self, name: str, endpoints: list[int] | None = None) -> Contender:
        """A contender whose critical section lasts until the test releases it."""
        hold = holder_command(self.directory, name, f"file:{self.release_path(name)}")
        return self.start_running(name, hold, endpoints=endpoints)

    def start_running(
        self, name: str, command: list[str], *extra: str, endpoints: list[int] | None = None
    ) -> Contender:
        order = endpoints if endpoints is not None else list(range(self.cluster.size))
        contender = Contender(
            name,
            LOCK,
            [self.cluster.nodes[i].http_addr for i in order],
            self.directory,
            ttl=TTL,
            command=command,
            extra=extra,
        )
        self.started.append(contender)
        return contender

    def release_path(self, name: str) -> Path:
        return self.directory / f"release-{name}"

    def release(self, name: str) -> None:
        self.release_path(name).touch()

    def sections(self) -> list:
        return read_sections(self.directory / SECTIONS_LOG)

    def holding(self, name: str) -> bool:
        return any(s.name == name and s.end is None for s in self.sections())

    def wait_holding(self, name: str) -> None:
        wait_until_sync(lambda: self.holding(name), SECONDS, f"{name} to hold the lock")

    def wait_queued(self, count: int) -> None:
        wait_until_sync(
            lambda: len(self.lock_keys()) == count, SECONDS, f"{count} keys in the queue"
        )

    def lock_keys(self) -> list[KeyItem]:
        async def listing() -> list[KeyItem]:
            async with Client(self.cluster.urls, timeout=5) as client:
                return await client.list(f"{LOCKS_PREFIX}{LOCK}/")

        return asyncio.run(listing())

    def stop_all(self) -> None:
        for contender in self.started:
            contender.stop()


@pytest.fixture
def contenders(cluster: LocalCluster, tmp_path: Path) -> Iterator[Contenders]:
    directory = tmp_path / "contenders"
    directory.mkdir()
    group = Contenders(cluster, directory)
    yield group
    group.stop_all()


def assert_exclusive(group: Contenders, order: list[str]) -> None:
    sections = group.sections()
    verdict = check_sections(sections)
    assert verdict["valid"], verdict["problems"]
    assert [s.name for s in sections] == order
    assert all(s.end is not None for s in sections)


def finish(contender: Contender) -> int:
    return contender.process.wait(timeout=SECONDS)


def test_a_waiter_whose_endpoint_is_paused_keeps_its_place(
    cluster: LocalCluster, contenders: Contenders
) -> None:
    holder = contenders.start("a")
    contenders.wait_holding("a")
    follower = next(i for i in range(3) if i != cluster_leader(cluster))
    waiter = contenders.start("b", [follower, *(i for i in range(3) if i != follower)])
    contenders.wait_queued(2)
    waiter_key = max(contenders.lock_keys(), key=lambda k: k.create_revision).key
    cluster.pause(follower)
    try:
        paused_at = time.monotonic()
        # Past two TTLs: the waiter's lease stays alive through the other endpoints.
        while time.monotonic() - paused_at < 2 * TTL:
            assert waiter_key in [k.key for k in contenders.lock_keys()], "the waiter lost its key"
        contenders.release("a")
        contenders.wait_holding("b")
    finally:
        cluster.resume(follower)
    contenders.release("b")
    assert finish(holder) == 0 and finish(waiter) == 0, waiter.stderr()
    assert "starting over" not in waiter.stderr()
    assert_exclusive(contenders, ["a", "b"])


def test_a_waiter_paused_past_its_lease_starts_over_and_never_runs_out_of_turn(
    contenders: Contenders,
) -> None:
    first = contenders.start("a")
    contenders.wait_holding("a")
    paused = contenders.start("b")
    contenders.wait_queued(2)
    third = contenders.start("c")
    contenders.wait_queued(3)
    paused.signal(signal.SIGSTOP)
    try:
        contenders.wait_queued(2)  # b's lease expired with b stopped: its key went with it
        contenders.release("a")
        contenders.wait_holding("c")
    finally:
        paused.signal(signal.SIGCONT)
    contenders.wait_queued(2)  # b is back in the queue, behind c, with a new lease
    assert not contenders.holding("b")
    contenders.release("c")
    contenders.wait_holding("b")
    contenders.release("b")
    assert [finish(c) for c in (first, third, paused)] == [0, 0, 0], paused.stderr()
    assert "starting over with a new lease" in paused.stderr()
    assert_exclusive(contenders, ["a", "c", "b"])


def test_sigterm_to_kvnode_lock_stops_the_command_and_frees_the_lock_at_once(
    contenders: Contenders,
) -> None:
    holder = contenders.start("a")
    contenders.wait_holding("a")
    (command_pid,) = [s.pid for s in contenders.sections()]
    holder.signal(signal.SIGTERM)
    assert finish(holder) == 128 + signal.SIGTERM
    assert not alive(command_pid), "the command outlived kvnode lock"
    assert contenders.lock_keys() == [], "the lock key outlived kvnode lock"
    assert_exclusive(contenders, ["a"])


def test_sigkill_to_kvnode_lock_takes_the_command_with_it(contenders: Contenders) -> None:
    holder = contenders.start("a")
    contenders.wait_holding("a")
    (command_pid,) = [s.pid for s in contenders.sections()]
    holder.signal(signal.SIGKILL)
    finish(holder)
    wait_until_sync(lambda: not alive(command_pid), 10, "the command to end with kvnode lock")


def test_a_lock_lost_while_the_command_runs_stops_it_within_the_grace(
    contenders: Contenders, cluster: LocalCluster, tmp_path: Path
) -> None:
    """The command ignores SIGTERM: only the SIGKILL after the grace ends it."""
    stubborn = (
        "import os, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        " open(sys.argv[1], 'w').write(str(os.getpid()))\nwhile True: signal.pause()"
    )
    pid_file = tmp_path / "stubborn.pid"
    command = [sys.executable, "-c", stubborn, str(pid_file)]
    holder = contenders.start_running("a", command, "--grace", "1")
    command_pid = int(wait_until_sync(lambda: read_if_exists(pid_file), SECONDS, "the command"))
    (key,) = contenders.lock_keys()
    lease = int(key.key.rsplit("/", 1)[1])

    async def revoke() -> None:
        async with Client(cluster.urls, timeout=5) as client:
            await client.lease_revoke(lease)

    asyncio.run(revoke())
    assert finish(holder) == EXIT_LOCK_LOST
    assert "lock lost" in holder.stderr() and "was lost while the command ran" in holder.stderr()
    assert not alive(command_pid)


def read_if_exists(path: Path) -> str:
    return path.read_text().strip() if path.exists() else ""


def cluster_leader(cluster: LocalCluster) -> int:
    async def find() -> int:
        async with Client(cluster.urls, timeout=5) as client:
            return await cluster.wait_for_leader(client)

    return asyncio.run(find())


def test_a_waiter_whose_key_was_deleted_queues_again_instead_of_holding(
    cluster: LocalCluster,
) -> None:
    """Its key is gone, so a later contender sees only the holder ahead of it: a waiter
    that did not check its own key would hold the lock together with that contender."""

    async def scenario() -> list[str]:
        order: list[str] = []
        async with Client(cluster.urls, timeout=5) as client:
            holder = client.lock("py", ttl=TTL)
            await holder.acquire()
            waiter, later = client.lock("py", ttl=TTL), client.lock("py", ttl=TTL)

            async def contend(name: str, lock: Lock) -> None:
                await lock.acquire()
                order.append(name)
                await lock.release()

            waiting = asyncio.ensure_future(contend("waiter", waiter))
            await wait_until(lambda: queued(client, 2), SECONDS, "the waiter to queue")
            await client.delete(waiter.key)
            queued_later = asyncio.ensure_future(contend("later", later))
            await wait_until(lambda: queued(client, 2), SECONDS, "the later one to queue")
            await holder.release()
            await asyncio.wait_for(asyncio.gather(waiting, queued_later), SECONDS)
        return order

    assert asyncio.run(scenario()) == ["later", "waiter"]


async def queued(client: Client, count: int) -> bool:
    return len(await client.list(f"{LOCKS_PREFIX}py/")) == count
