"""POST /txn and /lease over HTTP, in process: replies, headers, errors, and lease expiry,
renewal and revocation as replicated commands."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kvnode import commands
from kvnode.clock import wall_clock_ms
from tests.unit.api.served_api import Api, error, make_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    served = make_api(tmp_path, max_txn_ops=4)
    yield served
    served.close()


def write(api: Api, command: bytes) -> None:
    api.loop.run_until_complete(api.service.write(command))


def test_a_transaction_applies_one_branch_at_one_revision(api: Api) -> None:
    api("PUT", "/kv/balance/a", data=b"10")
    body = {
        "compare": [{"key": "balance/a", "target": "value", "op": "==", "value": "10"}],
        "success": [
            {"put": {"key": "balance/a", "value": "7"}},
            {"put": {"key": "balance/b", "value": "3"}},
        ],
        "failure": [{"get": {"key": "balance/a"}}],
    }
    done = api("POST", "/txn", json=body)
    assert done.status == 200, done.body
    reply = done.json
    assert reply["succeeded"] and done.headers["X-KV-Index"] == str(reply["revision"])
    assert [r["put"]["revision"] for r in reply["responses"]] == [reply["revision"]] * 2
    again = api("POST", "/txn", json=body).json
    assert not again["succeeded"]
    assert again["responses"][0]["get"]["value"] == "7"
    watched = api("GET", f"/kv/?prefix=balance/&watch=true&from_revision={reply['revision']}")
    assert [(e["key"], e["revision"]) for e in watched.json] == [
        ("balance/a", reply["revision"]),
        ("balance/b", reply["revision"]),
    ]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "bad_json"),
        (
            b'{"success": [{"put": {"key": "k", "value": "1"}}, {"delete": {"key": "k"}}]}',
            400,
            "bad_txn",
        ),
        (b'{"success": [' + b",".join([b'{"get": {"key": "k"}}'] * 5) + b"]}", 400, "bad_txn"),
        (
            b'{"success": [{"put": {"key": "k", "value": "1", "lease": 12345}}]}',
            404,
            "lease_not_found",
        ),
    ],
)
def test_bad_transactions(api: Api, body: bytes, status: int, code: str) -> None:
    found = error(api("POST", "/txn", data=body), status, code)
    if code == "bad_txn":
        assert found["at"]


def grant(api: Api, ttl: str) -> dict[str, Any]:
    granted = api("POST", f"/lease?ttl={ttl}")
    assert granted.status == 201, granted.body
    lease: dict[str, Any] = granted.json
    return lease


def test_a_lease_holds_its_keys_until_it_expires(api: Api) -> None:
    lease = grant(api, "5")
    assert lease["ttl"] == 5 and lease["expire_at"] > wall_clock_ms()
    for key in ("svc/a", "svc/b"):
        assert api("PUT", f"/kv/{key}?lease={lease['id']}", data=b"up").status == 201
    looked = api("GET", f"/lease/{lease['id']}").json
    assert looked["keys"] == ["svc/a", "svc/b"] and 0 < looked["remaining"] <= 5
    assert [item["id"] for item in api("GET", "/lease/").json] == [lease["id"]]
    kept = api("POST", f"/lease/{lease['id']}/keepalive").json
    assert kept["expire_at"] >= lease["expire_at"]
    write(api, commands.expire(kept["expire_at"] + 1))  # the leader's sweep, past the deadline
    assert api("GET", "/kv/svc/a").status == 404
    watched = api("GET", f"/kv/?prefix=svc/&watch=true&from_revision={lease['id']}").json
    expired = [e for e in watched if e["type"] == "expire"]
    assert [e["key"] for e in expired] == ["svc/a", "svc/b"]
    assert expired[0]["revision"] == expired[1]["revision"]
    error(api("POST", f"/lease/{lease['id']}/keepalive"), 404, "lease_not_found")
    error(api("PUT", f"/kv/svc/a?lease={lease['id']}", data=b"x"), 404, "lease_not_found")


def test_revoking_deletes_every_key_at_one_revision(api: Api) -> None:
    lease = grant(api, "60")
    api("PUT", f"/kv/job/1?lease={lease['id']}", data=b"x")
    api("PUT", f"/kv/job/2?lease={lease['id']}", data=b"x")
    api("PUT", "/kv/job/1?ttl=100", data=b"own ttl now")  # leaves the lease
    revoked = api("DELETE", f"/lease/{lease['id']}").json
    assert revoked["revoked"] is True
    assert api("GET", "/kv/job/1").body == b"own ttl now"
    assert api("GET", "/kv/job/2").status == 404
    error(api("GET", f"/lease/{lease['id']}"), 404, "lease_not_found")
    error(api("DELETE", f"/lease/{lease['id']}"), 404, "lease_not_found")


def test_a_new_leader_renews_every_lease(api: Api) -> None:
    lease = grant(api, "2")
    later = lease["expire_at"] + 10_000
    write(api, commands.lease_renew_all(1000, issued_at_ms=later))
    renewed = api("GET", f"/lease/{lease['id']}").json
    assert renewed["expire_at"] == later + 2000 + 1000


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("POST", "/lease", "bad_ttl"),
        ("POST", "/lease?ttl=0", "bad_ttl"),
        ("POST", "/lease?ttl=abc", "bad_ttl"),
        ("GET", "/lease/abc", "bad_lease"),
        ("PUT", "/kv/k?lease=1&ttl=5", "bad_lease"),
        ("PUT", "/kv/k?lease=1&prev_exist=false", "bad_lease"),
        ("PUT", "/kv/k?lease=0", "bad_lease"),
    ],
)
def test_bad_lease_requests_are_400(api: Api, method: str, path: str, code: str) -> None:
    error(api(method, path, data=b"v" if method == "PUT" else None), 400, code)


def test_a_transaction_whose_reply_would_be_too_large_is_413_and_applies_nothing(
    api: Api,
) -> None:
    for i in range(5):
        assert api("PUT", f"/kv/amp/{i}", data=b"x" * (1024 * 1024 - 100)).status == 201
    body = {"compare": [], "success": [{"delete": {"key": "amp/0"}}, {"list": {"prefix": ""}}]}
    error(api("POST", "/txn", json=body), 413, "txn_reply_too_large")
    assert api("GET", "/kv/amp/0").status == 200
