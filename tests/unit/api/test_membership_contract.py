"""The membership routes in process: the rules a change must pass (leader only, one at a
time, a quorum kept, no duplicate, well-formed input) and their answers. Real changes
are in tests/integration/test_membership.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvnode import commands
from kvnode.consensus import Voter
from kvnode.service.membership import addition_refusal, removal_refusal
from tests.unit.api.local_consensus import LEADER
from tests.unit.api.served_api import Api, error, make_api
from tests.waiting import wait_until

OWN = "127.0.0.1:4321"
NEW = {"raft_addr": "127.0.0.1:4324", "http_url": "http://127.0.0.1:8004", "id": "node4"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    served = make_api(tmp_path, cluster_secret="s3cret")
    yield served
    served.close()


def with_followers(api: Api, *reachable: bool) -> list[str]:
    addresses = [f"127.0.0.1:{4322 + n}" for n in range(len(reachable))]
    api.consensus.voter_list += [
        Voter(address, False, up, None) for address, up in zip(addresses, reachable, strict=True)
    ]
    return addresses


def test_members_lists_every_voter_with_its_directory_entry(api: Api) -> None:
    with_followers(api, True, False)
    members = api("GET", "/cluster/members").json
    assert [m["raft_addr"] for m in members] == [
        "127.0.0.1:4321",
        "127.0.0.1:4322",
        "127.0.0.1:4323",
    ]
    own = members[0]
    assert own == {
        "id": "solo",
        "raft_addr": OWN,
        "http_url": LEADER,
        "is_leader": True,
        "reachable": True,
        "applied_index": own["applied_index"],
    }
    # Not published yet: named by address, URL unknown; reachability as the leader sees it.
    assert members[1]["id"] == "127.0.0.1:4322" and members[1]["http_url"] is None
    assert [m["reachable"] for m in members] == [True, True, False]


def test_an_added_member_is_listed_with_the_url_and_id_it_was_added_with(api: Api) -> None:
    with_followers(api, True, True)
    added = api("POST", "/cluster/members", json=NEW)
    assert added.status == 201, added.body
    member = added.json["member"]
    assert (member["id"], member["raft_addr"], member["http_url"]) == (
        "node4",
        NEW["raft_addr"],
        NEW["http_url"],
    )
    assert len(added.json["members"]) == 4
    removed = api("DELETE", "/cluster/members/node4")
    assert removed.status == 200 and removed.json["removed"]["raft_addr"] == NEW["raft_addr"]
    assert [m["raft_addr"] for m in api("GET", "/cluster/members").json].count(
        NEW["raft_addr"]
    ) == 0
    assert NEW["raft_addr"] not in api.service.machine.members  # its directory entry too


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "bad_json"),
        (b"[]", "bad_member"),
        (b'{"http_url": "http://127.0.0.1:8004"}', "bad_member"),
        (b'{"raft_addr": "127.0.0.1:4324"}', "bad_member"),
        (b'{"raft_addr": "nohost", "http_url": "http://127.0.0.1:8004"}', "bad_member"),
        (b'{"raft_addr": "127.0.0.1:4324", "http_url": "ftp://x:1"}', "bad_member"),
        (b'{"raft_addr": "127.0.0.1:4324", "http_url": "http://x"}', "bad_member"),
        (b'{"raft_addr": "127.0.0.1:4324", "http_url": "http://x:1", "id": "a b"}', "bad_member"),
        (b'{"raft_addr": "127.0.0.1:4324", "http_url": "http://x:1", "role": 1}', "bad_member"),
    ],
)
def test_malformed_additions_are_400_and_change_nothing(api: Api, body: bytes, code: str) -> None:
    error(api("POST", "/cluster/members", data=body), 400, code)
    assert len(api("GET", "/cluster/members").json) == 1


@pytest.mark.parametrize(
    "clash",
    [
        {"raft_addr": OWN},
        {"http_url": LEADER},
        {"id": "solo"},
    ],
)
def test_an_address_url_or_id_already_in_use_is_409(api: Api, clash: dict[str, str]) -> None:
    body = error(api("POST", "/cluster/members", json={**NEW, **clash}), 409, "member_exists")
    assert body["member"]["raft_addr"] == OWN
    assert len(api("GET", "/cluster/members").json) == 1


def test_unknown_members_are_404(api: Api) -> None:
    error(api("DELETE", "/cluster/members/node9"), 404, "member_not_found")


def test_changes_that_would_lose_quorum_are_refused(api: Api) -> None:
    up, down = with_followers(api, True, False)
    body = error(api("POST", "/cluster/members", json=NEW), 409, "would_lose_quorum")
    assert "only 2 of the current 3 are reachable" in body["message"]
    error(api("DELETE", f"/cluster/members/{up}"), 409, "would_lose_quorum")
    assert len(api("GET", "/cluster/members").json) == 3  # nothing changed
    # Removing the unreachable one keeps a quorum (2 of 2).
    assert api("DELETE", f"/cluster/members/{down}").status == 200


def test_one_change_at_a_time(api: Api) -> None:
    with_followers(api, True, True)
    api.consensus.pending = True  # an earlier change is in the log, not yet committed
    error(api("POST", "/cluster/members", json=NEW), 409, "membership_change_in_progress")
    api.consensus.pending = False

    async def two_at_once() -> list[Any]:
        gate = api.consensus.change_gate = asyncio.Event()
        first = asyncio.ensure_future(api.client.post("/cluster/members", json=NEW))

        async def first_holds_the_change() -> bool:
            return api.service.membership._changing.locked()

        await wait_until(first_holds_the_change, 5, "the first change to start")
        second = await api.client.post(
            "/cluster/members",
            json={"raft_addr": "127.0.0.1:4325", "http_url": "http://127.0.0.1:8005"},
        )
        gate.set()
        done = await first
        return [(done.status, await done.json()), (second.status, await second.json())]

    (first_status, _), (second_status, second) = api.loop.run_until_complete(two_at_once())
    assert first_status == 201
    assert (second_status, second["error"]) == (409, "membership_change_in_progress")


def test_a_follower_sends_changes_to_the_leader(api: Api) -> None:
    (leader,) = with_followers(api, True)
    publish = commands.member_publish(leader, "node2", "http://127.0.0.1:8002", issued_at_ms=1)
    api.loop.run_until_complete(api.service.write(publish))
    api.consensus.leader_address = leader
    moved = api("POST", "/cluster/members", json=NEW, allow_redirects=False)
    assert moved.status == 307 and moved.json["error"] == "not_leader"
    assert moved.headers["Location"] == "http://127.0.0.1:8002/cluster/members"
    assert moved.headers["X-KV-Leader"] == "http://127.0.0.1:8002"
    api.consensus.leader_address = "127.0.0.1:4999"  # a leader whose URL is not known
    error(api("DELETE", "/cluster/members/solo"), 503, "no_leader")


def test_quorum_rules_match_etcds_strict_reconfiguration() -> None:
    def voters(*reachable: bool) -> list[Voter]:
        return [Voter(f"n{i}", i == 0, up, None) for i, up in enumerate(reachable)]

    assert addition_refusal(voters(True, True, True)) is None  # 4 voters, 3 up
    assert addition_refusal(voters(True, True, False)) is not None  # 4 voters, 2 up
    assert addition_refusal(voters(True, False)) is not None  # 3 voters, 1 up
    assert addition_refusal(voters(True)) is None  # a lone member may grow (etcd too)
    assert removal_refusal(voters(True, True, False), "n2") is None  # 2 of 2 remain up
    assert removal_refusal(voters(True, True, False), "n1") is not None  # 1 of 2
    assert removal_refusal(voters(True), "n0") is not None  # the last member
    assert removal_refusal(voters(True, True, True, True, False), "n4") is None
