"""Every row of the HTTP contract, through raw HTTP against a real 3-node cluster."""

from __future__ import annotations

import asyncio
import gzip
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import orjson
import pytest

from kvnode.cluster.supervisor import LocalCluster
from tests.integration.conftest import converged, leader_of
from tests.waiting import wait_until_sync

pytestmark = pytest.mark.slow


class Http:
    """Tiny synchronous raw-HTTP helper for one cluster."""

    def __init__(self, local: LocalCluster) -> None:
        self.local = local
        self.loop = asyncio.new_event_loop()
        self.session = self.loop.run_until_complete(self._session())

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))

    def __call__(
        self, method: str, path: str, node: int = 0, **kwargs: Any
    ) -> tuple[int, dict[str, str], bytes]:
        async def go() -> tuple[int, dict[str, str], bytes]:
            url = self.local.urls[node] + path
            async with self.session.request(method, url, **kwargs) as response:
                return response.status, dict(response.headers), await response.read()

        return self.loop.run_until_complete(go())

    def json(self, method: str, path: str, node: int = 0, **kwargs: Any) -> tuple[int, Any]:
        status, headers, body = self(method, path, node, **kwargs)
        assert headers["Content-Type"].startswith("application/json"), (status, body)
        return status, orjson.loads(body)

    def close(self) -> None:
        self.loop.run_until_complete(self.session.close())
        self.loop.close()


@pytest.fixture(scope="module")
def http(shared_cluster: LocalCluster) -> Iterator[Http]:
    helper = Http(shared_cluster)
    yield helper
    helper.close()


def test_put_creates_then_replaces_with_revisions_and_node_headers(http: Http) -> None:
    status, headers, body = http("PUT", "/kv/api/a", data=b"one")
    assert status == 201
    created = orjson.loads(body)
    assert created["key"] == "api/a" and created["created"] is True and created["expire_at"] is None
    assert headers["X-KV-Revision"] == str(created["revision"])
    assert headers["X-KV-Node"] == "node1"
    leader = headers["X-KV-Leader"]  # the leader's HTTP URL, which a client can use
    assert leader in [node.url for node in http.local.nodes], leader
    status, replaced = http.json("PUT", "/kv/api/a", data=b"two")
    assert status == 200 and replaced["created"] is False
    assert replaced["revision"] > created["revision"]
    status, headers, body = http("GET", "/kv/api/a", node=1)
    assert (status, body) == (200, b"two")
    assert headers["X-KV-Revision"] == str(replaced["revision"])
    assert headers["X-KV-Create-Revision"] == str(created["revision"])


def test_put_with_ttl_reports_the_deadline(http: Http) -> None:
    before = time.time() * 1000
    status, body = http.json("PUT", "/kv/api/ttl?ttl=30", data=b"x")
    assert status == 201 and before + 29_000 <= body["expire_at"] <= time.time() * 1000 + 30_001
    status, headers, _ = http("GET", "/kv/api/ttl")
    assert headers["X-KV-Expire-At"] == str(body["expire_at"])


def test_values_are_raw_bytes_and_keys_may_hold_slashes_and_unicode(http: Http) -> None:
    value = bytes(range(256))
    assert http("PUT", "/kv/dir/sub/%C3%BC", data=value)[0] == 201
    status, _headers, body = http("GET", "/kv/dir/sub/%C3%BC", node=2)
    assert (status, body) == (200, value)


@pytest.mark.parametrize(
    ("query", "headers", "expected_status"),
    [
        ("?prev_value=old", {}, 200),
        ("?prev_value=nope", {}, 412),
        ("?prev_revision={rev}", {}, 200),
        ("?prev_revision=1", {}, 412),
        ("?prev_exist=false", {}, 412),
        ("?prev_exist=true", {}, 200),
        ("", {"If-Match": '"{rev}"'}, 200),
        ("", {"If-Match": '"1"'}, 412),
        ("", {"If-None-Match": "*"}, 412),
    ],
)
def test_compare_and_swap_conditions(
    http: Http, query: str, headers: dict[str, str], expected_status: int
) -> None:
    key = f"/kv/cas/{abs(hash((query, str(headers))))}"
    _status, created = http.json("PUT", key, data=b"old")
    rev = created["revision"]
    status, _headers_out, body = http(
        "PUT",
        key + query.format(rev=rev),
        data=b"new",
        headers={k: v.format(rev=rev) for k, v in headers.items()},
    )
    assert status == expected_status, body
    current = http("GET", key)[2]
    if expected_status == 412:
        assert orjson.loads(body) == {
            "error": "compare_failed",
            "message": f"the condition on {key[4:]!r} did not hold",
            "current_revision": rev,
        }
        assert current == b"old"
    else:
        assert current == b"new"


def test_create_only_cas_on_an_absent_key(http: Http) -> None:
    assert http("PUT", "/kv/cas/fresh?prev_exist=false", data=b"1")[0] == 201
    assert http("PUT", "/kv/cas/fresh2", data=b"1", headers={"If-None-Match": "*"})[0] == 201


def test_get_of_a_missing_key_is_a_json_404(http: Http) -> None:
    status, body = http.json("GET", "/kv/api/missing")
    assert status == 404 and body["error"] == "not_found" and body["message"]


def test_stale_and_linearizable_reads_and_bad_consistency(http: Http) -> None:
    http("PUT", "/kv/api/read", data=b"r")
    assert http("GET", "/kv/api/read?consistency=stale", node=0)[2] == b"r"
    assert http("GET", "/kv/api/read?consistency=linearizable", node=1)[2] == b"r"
    assert http("GET", "/kv/api/read", node=2)[2] == b"r"
    status, body = http.json("GET", "/kv/api/read?consistency=eventual")
    assert status == 400 and body["error"] == "bad_consistency"


def test_write_to_a_follower_is_visible_to_a_stale_read_on_that_follower(
    http: Http, shared_cluster: LocalCluster
) -> None:
    leader = asyncio.run(leader_of(shared_cluster))
    follower = (leader + 1) % 3
    for i in range(20):
        status, _h, _b = http("PUT", f"/kv/ryw/{i}", node=follower, data=f"v{i}".encode())
        assert status == 201
        read = http("GET", f"/kv/ryw/{i}?consistency=stale", node=follower)
        assert read[2] == f"v{i}".encode(), "a follower must answer after applying the write"


def test_prefix_listing_with_limit_and_values(http: Http) -> None:
    for name, value in [("b", b"2"), ("a", b"1"), ("c", b"\xff")]:
        http("PUT", f"/kv/list/{name}", data=value)
    http("PUT", "/kv/listing-other", data=b"x")
    status, items = http.json("GET", "/kv/?prefix=list/&values=true")
    assert status == 200
    assert [i["key"] for i in items] == ["list/a", "list/b", "list/c"]
    assert items[0]["value"] == "1" and items[2]["value_base64"] == "/w=="
    status, items = http.json("GET", "/kv/?prefix=list/&limit=2")
    assert [i["key"] for i in items] == ["list/a", "list/b"] and "value" not in items[0]
    for bad in ("limit=0", "limit=x", "limit=100001", "values=maybe"):
        status, _body = http.json("GET", f"/kv/?{bad}")
        assert status == 400, bad


def test_delete_with_and_without_conditions(http: Http) -> None:
    _s, created = http.json("PUT", "/kv/del/a", data=b"v")
    status, body = http.json("DELETE", "/kv/del/a?prev_value=other")
    assert status == 412 and body["current_revision"] == created["revision"]
    status, body = http.json("DELETE", f"/kv/del/a?prev_revision={created['revision']}")
    assert status == 200 and body["deleted"] is True and body["revision"] > created["revision"]
    status, body = http.json("DELETE", "/kv/del/a")
    assert status == 404 and body["error"] == "not_found"
    assert http("GET", "/kv/del/a")[0] == 404


def test_status_health_ready_and_metrics(http: Http) -> None:
    status, body = http.json("GET", "/status", node=1)
    assert status == 200
    assert body["node_id"] == "node2" and body["role"] in ("leader", "follower")
    assert body["leader"].startswith("http://") and body["leader_raft_addr"]
    assert body["applied_index"] > 0 and len(body["peers"]) == 2
    assert {"journal_bytes", "wal_bytes", "digest", "snapshots_installed"} <= set(body)
    assert http.json("GET", "/health")[0] == 200
    assert http.json("GET", "/ready")[0] == 200
    status, headers, text = http("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert b"kvnode_http_requests_total" in text and b"kvnode_applied_index" in text


def bad_requests() -> list[tuple[str, str, dict[str, Any], int, str]]:
    return [
        ("PUT", "/kv/bad?ttl=-1", {}, 400, "bad_ttl"),
        ("PUT", "/kv/bad?ttl=0", {}, 400, "bad_ttl"),
        ("PUT", "/kv/bad?ttl=abc", {}, 400, "bad_ttl"),
        ("PUT", "/kv/bad?ttl=1e309", {}, 400, "bad_ttl"),
        ("PUT", "/kv/bad?ttl=99999999999999", {}, 400, "bad_ttl"),
        ("PUT", "/kv/", {}, 400, "bad_key"),
        ("PUT", "/kv/" + "k" * 1025, {}, 400, "bad_key"),
        ("PUT", "/kv/%FF%FE", {}, 400, "bad_key"),
        ("PUT", "/kv/bad?prev_revision=abc", {}, 400, "bad_revision"),
        ("PUT", "/kv/bad", {"headers": {"If-Match": "7"}}, 400, "bad_if_match"),
        ("PUT", "/kv/bad?prev_value=a&prev_revision=3", {}, 400, "bad_condition"),
        ("PUT", "/kv/bad?prev_exist=perhaps", {}, 400, "bad_prev_exist"),
        ("PUT", "/kv/bad", {"data": b"x" * (1024 * 1024 + 1)}, 413, "value_too_large"),
        ("POST", "/kv/bad", {}, 405, "method_not_allowed"),
        ("GET", "/nothing-here", {}, 404, "not_found"),
    ]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "code"), bad_requests())
def test_bad_input_is_a_json_4xx_and_changes_nothing(
    http: Http, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    digest_before = http.json("GET", "/status?digest=true")[1]["digest"]
    got, body = http.json(method, path, **{"data": b"v", **kwargs})
    assert (got, body["error"]) == (status, code), body
    assert body["message"]
    assert http("GET", "/kv/bad")[0] == 404
    assert http.json("GET", "/status?digest=true")[1]["digest"] == digest_before
    assert http.json("GET", "/health")[0] == 200, "the server keeps serving"


@pytest.mark.parametrize("request_head", [b"PUT /kv/slow", b"POST /txn", b"POST /cluster/members"])
def test_a_body_slower_than_the_read_timeout_is_refused(
    http: Http, shared_cluster: LocalCluster, request_head: bytes
) -> None:
    host, port = shared_cluster.nodes[0].http_addr.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            request_head + b' HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"'
        )  # 8 bytes never come; the node's body_timeout is 1 s
        response = sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 408"), response[:100]
    assert b'"error":"body_timeout"' in response
    assert http("GET", "/kv/slow")[0] == 404
    assert http.json("GET", "/health")[0] == 200


@pytest.mark.parametrize("path", ["/kv/gz", "/txn", "/cluster/members"])
@pytest.mark.parametrize("body", [b"abc", gzip.compress(b'{"compare":[]}')])
def test_compressed_bodies_are_refused_whole_or_malformed(
    http: Http, path: str, body: bytes
) -> None:
    method = "PUT" if path.startswith("/kv/") else "POST"
    got, reply = http.json(method, path, data=body, headers={"Content-Encoding": "gzip"})
    assert (got, reply["error"]) == (415, "unsupported_encoding"), reply
    assert http("GET", "/kv/gz")[0] == 404


def test_ttl_expires_on_every_node_and_the_expiry_is_replicated(
    http: Http, shared_cluster: LocalCluster
) -> None:
    keys_before = http.json("GET", "/status")[1]["keys"]
    assert http("PUT", "/kv/api/short?ttl=1", data=b"x")[0] == 201
    for node in range(3):
        assert http("GET", "/kv/api/short", node=node)[2] == b"x", "readable at once everywhere"

    def gone_everywhere() -> bool:
        return all(
            http("GET", "/kv/api/short?consistency=stale", node=n)[0] == 404 for n in range(3)
        )

    wait_until_sync(gone_everywhere, 10, "the key to expire on every node")

    def physically_removed() -> bool:
        """Reads hide an expired key at once; only the replicated Expire removes it."""
        return all(http.json("GET", "/status", node=n)[1]["keys"] == keys_before for n in range(3))

    wait_until_sync(physically_removed, 10, "the Expire command to be applied")
    asyncio.run(converged(shared_cluster))


@pytest.mark.parametrize("target", [b"/kv/bend/a%zz", b"/kv/bend/a%2", b"/kv/bend/a#b"])
def test_a_key_path_the_parser_would_bend_is_refused(
    http: Http, shared_cluster: LocalCluster, target: bytes
) -> None:
    """A malformed escape or a raw '#' (which the URL parser takes as a fragment, cutting
    the key) is refused, never stored under a key other than the one written."""
    host, port = shared_cluster.nodes[0].http_addr.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"PUT " + target + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
            b"Connection: close\r\n\r\nv"
        )
        response = b""
        while chunk := sock.recv(4096):
            response += chunk
    assert response.startswith(b"HTTP/1.1 400"), response[:200]
    assert b'"error":"bad_key"' in response
    assert http("GET", "/kv/?prefix=bend/")[2] == b"[]"


def test_a_client_gone_mid_body_writes_nothing_and_logs_no_traceback(
    http: Http, shared_cluster: LocalCluster
) -> None:
    def refused_puts() -> int:
        text = http("GET", "/metrics")[2].decode()
        found = re.search(r'kvnode_http_requests_total\{method="PUT",status="400"\} (\S+)', text)
        return int(float(found.group(1))) if found else 0

    before = refused_puts()
    host, port = shared_cluster.nodes[0].http_addr.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"PUT /kv/midbody HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123")
    wait_until_sync(lambda: refused_puts() > before, 10, "the cut request to be answered 400")
    assert http("GET", "/kv/midbody")[0] == 404
    assert "unhandled error" not in shared_cluster.nodes[0].log_path.read_text()


def test_a_request_line_without_a_version_is_answered_at_once(
    http: Http, shared_cluster: LocalCluster
) -> None:
    """HTTP/0.9's "GET /path" has no head to wait for: 400 now, not a wait for
    header_timeout (10 s, past this socket's own timeout)."""
    host, port = shared_cluster.nodes[0].http_addr.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /kv/x\r\n")
        response = sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 400"), response[:100]
    assert b'"error":"bad_request"' in response and b"X-KV-Node" in response
    assert http.json("GET", "/health")[0] == 200
