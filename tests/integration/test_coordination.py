"""Transactions, leases, locks and elections on a real three-node cluster: a bank of
accounts whose total survives a leader SIGKILL under 16 clients, lease keys that vanish
on every node at one revision, leases kept alive across a leader change, and locks and
elections from the client and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import select
import signal
import subprocess
import sys
import time

import orjson

from kvnode.client import Client, KvError, WatchEvent
from kvnode.client.coordination import LOCKS_PREFIX, election, observe
from kvnode.cluster.supervisor import LocalCluster
from tests.integration.cli_processes import kvnode_against
from tests.integration.conftest import converged, leader_of
from tests.waiting import wait_until

ACCOUNTS = [f"bank/{name}" for name in "abcd"]
OPENING_BALANCE = 100
SECONDS = 60.0  # every loop below ends by itself within this
KEEPALIVE_SECONDS = 1.0  # how often the test's lease owner renews (ttl 3 s)


async def transfer(client: Client, rng: random.Random) -> bool:
    """Move a random amount between two random accounts, if neither changed meanwhile."""
    source, target = rng.sample(ACCOUNTS, 2)
    read = await client.txn(success=[{"get": {"key": source}}, {"get": {"key": target}}])
    (got_source, got_target) = (r["get"] for r in read["responses"])
    amount = rng.randint(0, int(got_source["value"]))
    done = await client.txn(
        compare=[
            {"key": source, "target": "revision", "op": "==", "value": got_source["revision"]},
            {"key": target, "target": "revision", "op": "==", "value": got_target["revision"]},
        ],
        success=[
            {"put": {"key": source, "value": str(int(got_source["value"]) - amount)}},
            {"put": {"key": target, "value": str(int(got_target["value"]) + amount)}},
        ],
    )
    return bool(done["succeeded"])


def test_transfers_keep_the_total_across_a_leader_sigkill(cluster: LocalCluster) -> None:
    async def scenario() -> tuple[int, int]:
        async with Client(cluster.urls, timeout=10, write_deadline=30) as client:
            await client.txn(
                success=[{"put": {"key": k, "value": str(OPENING_BALANCE)}} for k in ACCOUNTS]
            )
            stop = asyncio.Event()
            done = [0, 0]  # transfers that succeeded, and that failed on an answer

            async def teller(seed: int) -> None:
                rng = random.Random(seed)
                while not stop.is_set():
                    try:
                        done[0 if await transfer(client, rng) else 1] += 1
                    except KvError:
                        done[1] += 1

            async def transfers(count: int) -> bool:
                return done[0] >= count

            tellers = [asyncio.ensure_future(teller(seed)) for seed in range(16)]
            await wait_until(lambda: transfers(50), SECONDS, "50 transfers")
            leader = await leader_of(cluster)
            cluster.kill(leader)
            before_kill = done[0]
            await wait_until(lambda: transfers(before_kill + 50), SECONDS, "transfers after")
            stop.set()
            await asyncio.gather(*tellers)
            cluster.start(leader)
            await converged(cluster)
            total = 0
            for url in cluster.urls:
                async with Client([url], timeout=10) as node:
                    balances = await node.txn(success=[{"get": {"key": k}} for k in ACCOUNTS])
                total = sum(int(r["get"]["value"]) for r in balances["responses"])
                assert total == OPENING_BALANCE * len(ACCOUNTS), (url, balances)
            return done[0], total

    transfers, total = asyncio.run(scenario())
    assert transfers >= 100 and total == OPENING_BALANCE * len(ACCOUNTS)


async def first_expire(url: str, key: str, from_revision: int) -> WatchEvent:
    async with Client([url], timeout=10) as node:
        async for event in node.watch(key, from_revision=from_revision):
            if event.type == "expire":
                return event
    raise AssertionError("the watch ended")


def test_lease_keys_vanish_on_every_node_at_one_revision(shared_cluster: LocalCluster) -> None:
    async def scenario() -> list[tuple[int, int]]:
        async with Client(shared_cluster.urls, timeout=10) as client:
            lease = await client.lease_grant(1)
            await client.put("lease/a", b"1", lease=lease["id"])
            await client.put("lease/b", b"1", lease=lease["id"])
            seen = []
            for url in shared_cluster.urls:
                a, b = await asyncio.wait_for(
                    asyncio.gather(
                        first_expire(url, "lease/a", lease["id"]),
                        first_expire(url, "lease/b", lease["id"]),
                    ),
                    SECONDS,
                )
                seen.append((a.revision, b.revision))
            assert await client.get("lease/a") is None
            assert await client.lease(lease["id"]) is None
        return seen

    seen = asyncio.run(scenario())
    assert len(set(seen)) == 1 and seen[0][0] == seen[0][1]


def test_a_kept_alive_lease_survives_a_leader_change(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        async with Client(cluster.urls, timeout=5, write_deadline=20) as client:
            lease = await client.lease_grant(3)
            await client.put("alive/k", b"v", lease=lease["id"])
            stop = asyncio.Event()

            async def keep_alive() -> None:
                while not stop.is_set():
                    with contextlib.suppress(KvError):  # an election: the next one will do
                        await client.lease_keepalive(lease["id"])
                    with contextlib.suppress(TimeoutError):  # the owner's keepalive period
                        await asyncio.wait_for(stop.wait(), KEEPALIVE_SECONDS)

            keeper = asyncio.ensure_future(keep_alive())
            cluster.kill(await leader_of(cluster))
            await leader_of(cluster)
            unrenewed_deadline = (lease["expire_at"] + 2 * lease["ttl"] * 1000) / 1000

            async def past_it() -> bool:  # without keepalives the lease would be gone by now
                return time.time() > unrenewed_deadline

            await wait_until(past_it, SECONDS, "two ttls past the lease's first deadline")
            assert (await client.get("alive/k")) is not None, "the lease expired"
            stop.set()
            await keeper

            async def expired() -> bool:  # no keepalives now: it expires
                return await client.get("alive/k") is None

            await wait_until(expired, SECONDS, "the lease to expire without keepalives")

    asyncio.run(scenario())


def test_locks_exclude_each_other_and_fence_in_order(shared_cluster: LocalCluster) -> None:
    async def scenario() -> list[tuple[str, int]]:
        log: list[tuple[str, int]] = []
        holding = [0]
        contenders = 5

        async def contender(name: str) -> None:
            async with (
                Client(shared_cluster.urls, timeout=10) as client,
                client.lock("mutex", ttl=5) as lock,
            ):
                holding[0] += 1
                assert holding[0] == 1, "two holders at once"
                log.append((name, lock.fencing_token))
                # Hold the lock until every contender still to come is queued behind it,
                # so that each handover really is contended.
                waiting = contenders - len(log) + 1  # this holder's key included

                async def all_queued() -> bool:
                    return len(await client.list(f"{LOCKS_PREFIX}mutex/")) >= waiting

                await wait_until(all_queued, SECONDS, "the other contenders to queue")
                holding[0] -= 1

        await asyncio.wait_for(
            asyncio.gather(*(contender(f"c{i}") for i in range(contenders))), SECONDS
        )
        return log

    log = asyncio.run(scenario())
    tokens = [token for _name, token in log]
    assert len(log) == 5 and tokens == sorted(tokens) and len(set(tokens)) == 5


def test_kvnode_lock_runs_the_command_with_a_token_and_passes_its_exit_code(
    shared_cluster: LocalCluster,
) -> None:
    done = kvnode_against(
        shared_cluster, "lock", "job", "--", "sh", "-c", 'echo "$KVNODE_FENCING_TOKEN"; exit 3'
    )
    assert done.returncode == 3, done.stderr
    assert int(done.stdout.strip()) > 0
    txn = kvnode_against(shared_cluster, "txn", stdin=b'{"success":[{"get":{"key":"nothing"}}]}')
    assert txn.returncode == 0 and b'"found": false' in txn.stdout


def test_an_election_moves_on_when_its_leader_dies(shared_cluster: LocalCluster) -> None:
    endpoints = ",".join(node.http_addr for node in shared_cluster.nodes)
    with subprocess.Popen(
        [sys.executable, "-m", "kvnode", "elect", "sched", "host-a", "--ttl", "1"],
        env={**os.environ, "KVNODE_ENDPOINTS": endpoints},
        stdout=subprocess.PIPE,
        text=True,
    ) as first:
        assert first.stdout is not None
        ready, _, _ = select.select([first.stdout], [], [], SECONDS)
        assert ready and "elected" in first.stdout.readline()

        async def leaders() -> list[bytes | None]:
            async with Client(shared_cluster.urls, timeout=10) as client:
                seen: list[bytes | None] = []
                observer = observe(client, "sched")
                seen.append((await anext(observer)).value)
                first.send_signal(signal.SIGKILL)  # no resignation: its lease must expire
                async with election(client, "sched", b"host-b", ttl=5):
                    seen.append((await asyncio.wait_for(anext(observer), SECONDS)).value)
                return seen

        assert asyncio.run(leaders()) == [b"host-a", b"host-b"]


def test_kvnode_lease_commands_grant_attach_list_and_revoke(shared_cluster: LocalCluster) -> None:
    granted = kvnode_against(shared_cluster, "lease", "grant", "30")
    assert granted.returncode == 0, granted.stderr
    lease_id = granted.stdout.decode().strip()
    assert (
        kvnode_against(shared_cluster, "put", "svc/web", "up", "--lease", lease_id).returncode == 0
    )
    assert lease_id.encode() in kvnode_against(shared_cluster, "lease", "list").stdout
    kept = kvnode_against(shared_cluster, "lease", "keepalive", lease_id, "--once")
    assert kept.returncode == 0 and b"renewed" in kept.stdout
    assert kvnode_against(shared_cluster, "lease", "revoke", lease_id).returncode == 0
    assert kvnode_against(shared_cluster, "get", "svc/web").returncode == 4  # gone with its lease
    missing = kvnode_against(shared_cluster, "lease", "revoke", lease_id)
    assert missing.returncode == 4 and b"lease_not_found" in missing.stderr


def test_revoking_a_lease_deletes_its_keys_at_one_revision_on_every_node(
    shared_cluster: LocalCluster,
) -> None:
    async def scenario() -> list[list[tuple[str, int]]]:
        async with Client(shared_cluster.urls, timeout=10) as client:
            lease = await client.lease_grant(60)
            for name in "xyz":
                await client.put(f"revoke/{name}", b"1", lease=lease["id"])
            await client.lease_revoke(lease["id"])
            seen = []
            for url in shared_cluster.urls:
                async with Client([url], timeout=10) as node:
                    _s, body, _h = await node.request(
                        "GET",
                        "/kv/",
                        params={"prefix": "revoke/", "watch": "true", "from_revision": "1"},
                        idempotent=True,
                    )
                deletes = [e for e in orjson.loads(body) if e["type"] == "delete"]
                seen.append([(e["key"], e["revision"]) for e in deletes])
            assert await client.list("revoke/") == []
        return seen

    seen = asyncio.run(scenario())
    assert seen == [seen[0]] * 3
    assert [key for key, _ in seen[0]] == ["revoke/x", "revoke/y", "revoke/z"]
    assert len({revision for _, revision in seen[0]}) == 1


def test_kvnode_elect_observe_prints_the_leader(shared_cluster: LocalCluster) -> None:
    endpoints = ",".join(node.http_addr for node in shared_cluster.nodes)

    async def campaign_then_observe() -> str:
        async with (
            Client(shared_cluster.urls, timeout=10) as client,
            election(client, "observed", b"host-z", ttl=5),
        ):
            watcher = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "kvnode", "elect", "--observe", "observed"],
                env={**os.environ, "KVNODE_ENDPOINTS": endpoints},
                stdout=asyncio.subprocess.PIPE,
            )
            assert watcher.stdout is not None
            try:
                line = await asyncio.wait_for(watcher.stdout.readline(), SECONDS)
            finally:
                watcher.send_signal(signal.SIGINT)
                await watcher.wait()
            return line.decode()

    assert asyncio.run(campaign_then_observe()).startswith("host-z")
