"""Transactions in the state machine: every compare target and operator, both branches,
gets that see the branch's own puts, the lease check, exactly-once, and a model-based
property test against a dict."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvnode import commands
from kvnode.http.request import ApiError
from kvnode.http.txn import parse_txn, reply_json
from kvnode.storage.machine import Entry, StateMachine
from kvnode.storage.outcome import Outcome, Status

NOW = 1_000_000


class Store:
    """A state machine fed transactions in the HTTP JSON form."""

    def __init__(self, path: Path) -> None:
        self.machine = StateMachine(path, fsync=False)
        self.index = itertools.count(1)

    def apply(self, command: bytes) -> Outcome:
        (outcome,) = self.machine.apply([Entry(next(self.index), 1, command)])
        assert outcome is not None
        return outcome

    def txn(self, body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
        txn = parse_txn(body, 128, NOW)
        outcome = self.apply(commands.txn(txn, issued_at_ms=NOW, request_id=request_id))
        assert outcome.status is Status.OK, outcome
        return reply_json(txn, outcome)

    def put(self, key: str, value: str) -> int:
        return self.apply(commands.put(key, value.encode(), issued_at_ms=NOW)).revision


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "sm")


def compare(key: str, target: str, op: str, value: Any) -> dict[str, Any]:
    return {"key": key, "target": target, "op": op, "value": value}


@pytest.mark.parametrize(
    ("target", "op", "value", "holds"),
    [
        ("value", "==", "v1", True),
        ("value", "!=", "v1", False),
        ("value", "<", "v2", True),
        ("value", ">", "v0", True),
        ("revision", "==", 1, True),
        ("revision", ">", 1, False),
        ("revision", "<", 2, True),
        ("create_revision", "==", 1, True),
        ("create_revision", "!=", 1, False),
        ("exists", "==", True, True),
        ("exists", "==", False, False),
    ],
)
def test_each_compare_target_and_operator(
    store: Store, target: str, op: str, value: Any, holds: bool
) -> None:
    store.put("k", "v1")  # revision 1
    reply = store.txn({"compare": [compare("k", target, op, value)]})
    assert reply["succeeded"] is holds


def test_a_missing_key_has_revision_zero_and_no_value(store: Store) -> None:
    assert store.txn({"compare": [compare("nope", "revision", "==", 0)]})["succeeded"]
    assert store.txn({"compare": [compare("nope", "create_revision", "<", 1)]})["succeeded"]
    assert store.txn({"compare": [compare("nope", "exists", "==", False)]})["succeeded"]
    assert not store.txn({"compare": [compare("nope", "value", "!=", "x")]})["succeeded"]


def test_the_chosen_branch_runs_in_order_and_gets_see_its_puts(store: Store) -> None:
    store.put("a", "1")
    store.put("gone/x", "1")
    store.put("gone/y", "1")
    body = {
        "compare": [compare("a", "value", "==", "1")],
        "success": [
            {"put": {"key": "a", "value": "2"}},
            {"get": {"key": "a"}},
            {"put": {"key": "b", "value_base64": "/w=="}},
            {"delete_prefix": {"prefix": "gone/"}},
            {"list": {"prefix": "", "limit": 1}},
            {"delete": {"key": "missing"}},
        ],
        "failure": [{"put": {"key": "never", "value": "x"}}],
    }
    reply = store.txn(body)
    revision = reply["revision"]
    assert reply["succeeded"]
    put_a, get_a, put_b, deleted, listed, missing = reply["responses"]
    assert put_a == {"put": {"revision": revision, "created": False}}
    assert get_a["get"]["value"] == "2" and get_a["get"]["revision"] == revision
    assert put_b == {"put": {"revision": revision, "created": True}}
    assert deleted == {"delete_prefix": {"deleted": 2}}
    assert [item["key"] for item in listed["list"]["items"]] == ["a"]
    assert listed["list"]["more"] is True
    assert missing == {"delete": {"deleted": 0}}
    assert store.machine.read("b")[0].value == b"\xff"  # type: ignore[union-attr]
    assert store.machine.read("never")[0] is None
    failed = store.txn(body)  # a is 2 now: the failure branch
    assert not failed["succeeded"] and failed["responses"][0]["put"]["created"] is True


def test_a_put_to_a_lease_that_is_gone_applies_nothing(store: Store) -> None:
    txn = parse_txn(
        {
            "success": [
                {"put": {"key": "x", "value": "1"}},
                {"put": {"key": "y", "value": "1", "lease": 99}},
            ]
        },
        128,
        NOW,
    )
    outcome = store.apply(commands.txn(txn, issued_at_ms=NOW))
    assert outcome.status is Status.NOT_FOUND
    assert store.machine.read("x")[0] is None


def test_a_retried_txn_gets_the_first_reply(store: Store) -> None:
    body = {"success": [{"put": {"key": "n", "value": "1"}}, {"get": {"key": "n"}}]}
    first = store.txn(body, request_id="t-1")
    store.put("n", "changed")
    again = store.txn(body, request_id="t-1")
    assert again == first
    assert store.machine.read("n")[0].value == b"changed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    [
        {"success": [{"put": {"key": "k", "value": "1"}}, {"delete": {"key": "k"}}]},
        {"success": [{"put": {"key": "p/k", "value": "1"}}, {"delete_prefix": {"prefix": "p/"}}]},
        {"success": [{"put": {"key": "k"}}]},
        {"success": [{"put": {"key": "k", "value": "1", "ttl": 1, "lease": 5}}]},
        {"success": [{"get": {"key": "k"}, "put": {"key": "k", "value": "1"}}]},
        {"compare": [compare("k", "revision", "==", "3")]},
        {"compare": [compare("k", "exists", "==", 1)]},
        {"compare": [compare("k", "size", "==", 1)]},
        {"compare": [compare("k", "value", "=~", "a")]},
        {"compare": [], "extra": []},
        {"compare": [{"key": "", "target": "exists", "op": "==", "value": True}]},
        {"success": [{"get": {"key": "k"}}] * 129},
        {"success": [{"put": {"key": "k", "value": "1", "lease": 0}}]},
        {"success": [{"list": {"prefix": "p/", "limit": 0}}]},
        {"success": [{"delete_prefix": {"prefix": ""}}]},
    ],
)
def test_bad_transactions_are_refused_before_anything_is_proposed(body: dict[str, Any]) -> None:
    with pytest.raises(ApiError) as refused:
        parse_txn(body, 128, NOW)
    assert refused.value.status == 400 and refused.value.code == "bad_txn"


KEYS = ["a", "b", "c"]
VALUES = ["1", "2", "3"]
ops = st.one_of(
    st.builds(
        lambda k, v: {"put": {"key": k, "value": v}}, st.sampled_from(KEYS), st.sampled_from(VALUES)
    ),
    st.builds(lambda k: {"delete": {"key": k}}, st.sampled_from(KEYS)),
    st.builds(lambda k: {"get": {"key": k}}, st.sampled_from(KEYS)),
)
compares = st.builds(
    lambda k, v, op: compare(k, "value", op, v),
    st.sampled_from(KEYS),
    st.sampled_from(VALUES),
    st.sampled_from(["==", "!=", "<", ">"]),
)
txns = st.builds(
    lambda c, s, f: {"compare": c, "success": s, "failure": f},
    st.lists(compares, max_size=2),
    st.lists(ops, max_size=4),
    st.lists(ops, max_size=4),
)


def model_txn(model: dict[str, str], body: dict[str, Any]) -> tuple[bool, list[Any]]:
    """What a transaction does to a plain dict, and the values its gets return."""
    tests = {"==": str.__eq__, "!=": str.__ne__, "<": str.__lt__, ">": str.__gt__}
    succeeded = all(
        c["key"] in model and tests[c["op"]](model[c["key"]], c["value"]) for c in body["compare"]
    )
    seen = []
    for op in body["success"] if succeeded else body["failure"]:
        ((kind, args),) = op.items()
        if kind == "put":
            model[args["key"]] = args["value"]
        elif kind == "delete":
            model.pop(args["key"], None)
        else:
            seen.append(model.get(args["key"]))
    return succeeded, seen


@settings(max_examples=60, deadline=None)
@given(st.lists(txns, min_size=1, max_size=12))
def test_transactions_behave_like_a_dict(
    tmp_path_factory: pytest.TempPathFactory, bodies: list[Any]
) -> None:
    store = Store(tmp_path_factory.mktemp("model") / "sm")
    model: dict[str, str] = {}
    for body in bodies:
        try:
            parse_txn(body, 128, NOW)
        except ApiError:
            continue  # a key written twice in a branch: refused before it is proposed
        reply = store.txn(body)
        succeeded, seen = model_txn(model, body)
        assert reply["succeeded"] is succeeded
        gets = [r["get"] for r in reply["responses"] if "get" in r]
        assert [g["value"] if g["found"] else None for g in gets] == seen
    assert {k: r.value.decode() for k, r in store.machine.scan("", NOW)[0]} == model


def test_leases_and_txn_replies_survive_checkpoint_restart_and_snapshot(tmp_path: Path) -> None:
    store = Store(tmp_path / "a")
    lease = store.apply(commands.lease_grant(5000, issued_at_ms=NOW)).revision
    store.apply(commands.put("held", b"v", issued_at_ms=NOW, lease=lease))
    body = {"success": [{"put": {"key": "t", "value": "1"}}, {"get": {"key": "held"}}]}
    first = store.txn(body, request_id="txn-1")
    store.machine.checkpoint()
    digest = store.machine.digest()
    store.machine.close()
    reopened = Store(tmp_path / "a")
    reopened.index = itertools.count(reopened.machine.last_applied + 1)
    assert reopened.machine.digest() == digest
    assert reopened.machine.lease(lease)[1] == ["held"]
    assert reopened.txn(body, request_id="txn-1") == first  # the reply, from the image
    other = Store(tmp_path / "b")
    other.machine.restore(reopened.machine.snapshot(tmp_path / "handoff.snap"))
    assert other.machine.digest() == reopened.machine.digest()
    other.index = itertools.count(other.machine.last_applied + 1)
    revoked = other.apply(commands.lease_revoke(lease, issued_at_ms=NOW))
    assert revoked.status is Status.OK and other.machine.read("held")[0] is None


def test_the_member_directory_survives_checkpoint_restart_and_snapshot(tmp_path: Path) -> None:
    store = Store(tmp_path / "a")
    for n in (1, 2, 3):
        store.apply(
            commands.member_publish(
                f"10.0.0.{n}:4321", f"node{n}", f"http://10.0.0.{n}:8001", issued_at_ms=NOW
            )
        )
    forgot = store.apply(commands.member_forget("10.0.0.2:4321", issued_at_ms=NOW))
    missing = store.apply(commands.member_forget("10.0.0.9:4321", issued_at_ms=NOW))
    assert forgot.status is Status.OK and missing.status is Status.NOT_FOUND
    store.machine.checkpoint()
    store.machine.close()
    reopened = Store(tmp_path / "a")
    expected = {
        "10.0.0.1:4321": ("node1", "http://10.0.0.1:8001"),
        "10.0.0.3:4321": ("node3", "http://10.0.0.3:8001"),
    }
    assert {a: tuple(m) for a, m in reopened.machine.members.items()} == expected
    other = Store(tmp_path / "b")
    other.machine.restore(reopened.machine.snapshot(tmp_path / "handoff.snap"))
    assert {a: tuple(m) for a, m in other.machine.members.items()} == expected


def test_a_transaction_whose_reply_could_pass_the_bound_is_refused_whole(store: Store) -> None:
    big = "x" * (1024 * 1024)
    for i in range(3):
        store.put(f"amp/{i}", big)
    lists = [{"list": {"prefix": "amp/"}}] * 2  # 6 MiB of reply from 3 MiB of data
    body = {"compare": [], "success": [{"put": {"key": "amp/new", "value": "1"}}, *lists]}
    txn = parse_txn(body, 128, NOW)
    outcome = store.apply(commands.txn(txn, issued_at_ms=NOW, request_id="amp"))
    assert outcome.status is Status.TOO_LARGE
    assert store.machine.read("amp/new", NOW)[0] is None, "nothing of it was applied"
    fits = {"compare": [], "success": [{"list": {"prefix": "amp/", "limit": 2}}]}
    assert len(store.txn(fits)["responses"][0]["list"]["items"]) == 2
