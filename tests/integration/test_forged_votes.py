"""Leader stickiness on the wire (`--insecure`, where anyone can speak the peer protocol):
a vote request for a higher term does not move a node that hears from a live leader,
and a node whose term got ahead anyway is brought back by one election, not left out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kvnode.client import Client, KvError
from kvnode.cluster.supervisor import LocalCluster
from kvnode.raft.prevote import HAND_OVER
from tests.integration import conftest
from tests.integration.conftest import leader_of, statuses, write_load
from tests.integration.peer_wire import connect_as, frame
from tests.waiting import wait_until, wait_until_sync

pytestmark = pytest.mark.slow

FORGED_TERM = 10**6


@pytest.fixture
def insecure(tmp_path: Path) -> Any:
    local = conftest.make_cluster(tmp_path / "c", cluster_secret="", insecure=True)
    try:
        yield local
    finally:
        local.stop_all()
    conftest.assert_clean_logs(local)


def dialled_by(local: LocalCluster, target: int) -> list[str]:
    """The members that connect to `target` (of two members, the higher address dials):
    the only ones a connection to `target` may claim to be."""
    own = local.nodes[target].raft_addr
    return [node.raft_addr for node in local.nodes if node.raft_addr > own]


def send_vote_request(
    local: LocalCluster,
    target: int,
    claimed: str,
    message: dict[str, Any],
    until: Callable[[], bool],
    what: str,
) -> None:
    """`message` to node `target`, from a connection that claims to be member `claimed`
    and stays open until `until()` (a node drops what a closed connection sent, unread)."""
    with connect_as(local.nodes[target].raft_addr, claimed) as sock:
        sock.sendall(frame({"type": "request_vote", **message}))
        wait_until_sync(until, 20, what)


def logged(local: LocalCluster, index: int, text: str) -> bool:
    return text in local.nodes[index].log_path.read_text()


async def one_leader(local: LocalCluster) -> tuple[int, int] | None:
    """(leader index, term) once every node follows the same leader in the same term."""
    found = await statuses(local)
    leaders = [i for i, s in found.items() if s["role"] == "leader"]
    terms = {s["term"] for s in found.values()}
    leader_urls = {s["leader"] for s in found.values()}
    if len(found) != local.size or len(leaders) != 1 or len(terms) != 1 or None in leader_urls:
        return None
    return leaders[0], terms.pop()


async def writes_pass(local: LocalCluster) -> bool:
    async with Client(local.urls, timeout=5, retry_writes=False) as client:
        try:
            for url in local.urls:
                await client.put("probe", b"x", endpoint=url)
        except KvError:
            return False
    return True


def test_a_vote_request_for_a_far_term_moves_no_node_while_the_leader_lives(
    insecure: LocalCluster,
) -> None:
    asyncio.run(leader_of(insecure))
    before = asyncio.run(wait_until(lambda: one_leader(insecure), 30, "one leader"))
    for target in range(insecure.size):
        if not dialled_by(insecure, target):
            # The highest address dials every other member: no one may claim to be one.
            claimed = insecure.nodes[(target + 1) % insecure.size].raft_addr
            send_vote_request(
                insecure,
                target,
                claimed,
                {"term": FORGED_TERM},
                lambda node=target: logged(insecure, node, "a member this node connects to"),
                f"node {target} to refuse a connection claiming to be {claimed}",
            )
            continue
        send_vote_request(
            insecure,
            target,
            dialled_by(insecure, target)[0],
            {"term": FORGED_TERM, "last_log_index": 10**9, "last_log_term": FORGED_TERM},
            lambda node=target: logged(insecure, node, f"vote request for term {FORGED_TERM}"),
            f"node {target} to ignore the vote request",
        )
    # A connection that claims to be a member displaces that member's own until it closes;
    # writes in flight meanwhile may fail. Wait for the members to reconnect.
    asyncio.run(wait_until(lambda: writes_pass(insecure), 30, "every node to take writes"))
    load = asyncio.run(write_load(insecure.urls, 20))
    assert len(load.acked) == 20, load.errors[:3]
    _leader, term = asyncio.run(wait_until(lambda: one_leader(insecure), 30, "one leader"))
    # On a loaded machine an election of the cluster's own may still happen; the forged
    # term must not have been taken.
    assert before[1] <= term < FORGED_TERM, (before, term)


def test_a_follower_whose_term_got_ahead_is_brought_back_by_one_election(
    insecure: LocalCluster,
) -> None:
    """A vote request marked as a hand-over may raise a follower's term by one (the one
    election the leader itself asks for). The leader then hears that the follower is
    ahead and steps down, and the cluster elects a leader everyone follows."""
    leader = asyncio.run(leader_of(insecure))
    _, term = asyncio.run(wait_until(lambda: one_leader(insecure), 30, "one leader"))
    follower = next(i for i in range(insecure.size) if i != leader and dialled_by(insecure, i))
    send_vote_request(
        insecure,
        follower,
        dialled_by(insecure, follower)[0],
        {"term": term + 1, "last_log_index": 0, "last_log_term": 0, HAND_OVER: True},
        lambda: logged(insecure, leader, "ahead of this leader's term"),
        "the leader to hear that a follower is ahead",
    )

    async def back_together() -> tuple[int, int] | None:
        found = await one_leader(insecure)
        return found if found is not None and found[1] > term else None

    asyncio.run(wait_until(back_together, 30, "every node to follow one leader again"))
    asyncio.run(wait_until(lambda: writes_pass(insecure), 30, "every node to take writes"))
    load = asyncio.run(write_load(insecure.urls, 20))
    assert len(load.acked) == 20, load.errors[:3]
