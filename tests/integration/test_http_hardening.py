"""Every bad input a clean 4xx, and no client can stall a node: parameters, numbers, keys,
paged lists, HTTP parser errors, slow request heads, connection floods, and a fuzzer."""

from __future__ import annotations

import base64
import http.client
import socket
import string
import time
from collections.abc import Iterator
from urllib.parse import quote, unquote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvnode.cluster.supervisor import LocalCluster
from tests.waiting import wait_until_sync

pytestmark = pytest.mark.slow


def call(
    cluster: LocalCluster,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    node: int = 0,
) -> tuple[int, dict[str, str], bytes]:
    host, port = cluster.nodes[node].http_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, dict(reply.getheaders()), reply.read()
    finally:
        conn.close()


def error_of(cluster: LocalCluster, method: str, path: str, **kw: object) -> tuple[int, dict]:
    status, headers, body = call(cluster, method, path, **kw)  # type: ignore[arg-type]
    assert headers["Content-Type"].startswith("application/json"), (path, body)
    return status, orjson.loads(body)


@pytest.mark.parametrize(
    ("method", "path", "code", "parameter"),
    [
        ("PUT", "/kv/p/a?tll=5", "unknown_parameter", "tll"),
        ("PUT", "/kv/p/a?prev_vaule=x", "unknown_parameter", "prev_vaule"),
        ("GET", "/kv/p/a?consistncy=stale", "unknown_parameter", "consistncy"),
        ("GET", "/kv/p/a?ttl=5", "unknown_parameter", "ttl"),
        ("DELETE", "/kv/p/a?prev_exist=false", "unknown_parameter", "prev_exist"),
        ("DELETE", "/kv/p/a?ttl=1", "unknown_parameter", "ttl"),
        ("GET", "/kv/?prefix=p&prefix=q", "repeated_parameter", "prefix"),
        ("PUT", "/kv/p/a?ttl=5&ttl=6", "repeated_parameter", "ttl"),
        ("GET", "/status?verbose=1", "unknown_parameter", "verbose"),
        ("GET", "/ready?x", "unknown_parameter", "x"),
    ],
)
def test_unknown_repeated_and_inapplicable_parameters_are_400(
    shared_cluster: LocalCluster, method: str, path: str, code: str, parameter: str
) -> None:
    status, body = error_of(shared_cluster, method, path, body=b"v")
    assert (status, body["error"], body["parameter"]) == (400, code, parameter)
    assert parameter in body["message"]
    assert call(shared_cluster, "GET", "/kv/p/a")[0] == 404, "nothing may have been written"


@pytest.mark.parametrize(
    ("path", "headers", "code"),
    [
        ("/kv/n/a?prev_revision=18446744073709551616", {}, "bad_revision"),
        ("/kv/n/a?prev_revision=%C2%B2", {}, "bad_revision"),  # superscript two
        ("/kv/n/a?prev_revision=%EF%BC%95", {}, "bad_revision"),  # fullwidth five
        ("/kv/n/a?prev_revision=0", {}, "bad_revision"),
        ("/kv/n/a?ttl=%EF%BC%95", {}, "bad_ttl"),
        ("/kv/n/a?ttl=1e3", {}, "bad_ttl"),
        ("/kv/n/a?ttl=nan", {}, "bad_ttl"),
        ("/kv/n/a", {"If-Match": '"99999999999999999999"'}, "bad_revision"),
        ("/kv/n/a", {"If-Match": '"\u00b2"'.encode().decode("latin-1")}, "bad_revision"),
    ],
)
def test_numbers_are_ascii_digits_within_range(
    shared_cluster: LocalCluster, path: str, headers: dict[str, str], code: str
) -> None:
    status, body = error_of(shared_cluster, "PUT", path, body=b"v", headers=headers)
    assert (status, body["error"]) == (400, code)


def test_list_limits_are_ascii_and_bounded(shared_cluster: LocalCluster) -> None:
    for limit in ("%C2%B2", "0", "100001", "-1", "99999999999999999999999"):
        status, body = error_of(shared_cluster, "GET", f"/kv/?limit={limit}")
        assert (status, body["error"]) == (400, "bad_limit")


def test_conditions_that_do_not_apply_to_delete_are_refused(shared_cluster: LocalCluster) -> None:
    assert call(shared_cluster, "PUT", "/kv/d/keep", body=b"v")[0] == 201
    status, body = error_of(shared_cluster, "DELETE", "/kv/d/keep", headers={"If-None-Match": "*"})
    assert (status, body["error"]) == (400, "bad_if_none_match")
    assert call(shared_cluster, "GET", "/kv/d/keep")[2] == b"v"


def test_keys_may_hold_newlines_and_binary_values_can_be_compared(
    shared_cluster: LocalCluster,
) -> None:
    status, _headers, body = call(shared_cluster, "PUT", "/kv/nl/cr%0D%0Alf", body=b"x")
    assert status == 201 and orjson.loads(body)["key"] == "nl/cr\r\nlf"
    assert call(shared_cluster, "GET", "/kv/nl/cr%0D%0Alf", node=1)[2] == b"x"
    listed = orjson.loads(call(shared_cluster, "GET", "/kv/?prefix=nl/")[2])
    assert [item["key"] for item in listed] == ["nl/cr\r\nlf"]

    assert call(shared_cluster, "PUT", "/kv/bin/v", body=b"\xff\x00")[0] == 201
    wrong = base64.b64encode(b"\xff").decode()
    status, body_ = error_of(shared_cluster, "PUT", f"/kv/bin/v?prev_value_base64={quote(wrong)}")
    assert (status, body_["error"]) == (412, "compare_failed")
    right = quote(base64.b64encode(b"\xff\x00").decode())
    assert call(shared_cluster, "PUT", f"/kv/bin/v?prev_value_base64={right}", body=b"n")[0] == 200
    status, body_ = error_of(shared_cluster, "PUT", "/kv/bin/v?prev_value_base64=%%%")
    assert (status, body_["error"]) == (400, "bad_prev_value")


def test_a_list_is_cut_at_max_list_bytes_and_pages_on(shared_cluster: LocalCluster) -> None:
    value = b"v" * (512 * 1024)
    names = [f"big/{i:02d}" for i in range(12)]
    for name in names:
        assert call(shared_cluster, "PUT", f"/kv/{name}", body=value)[0] == 201
    seen: list[str] = []
    query = "/kv/?prefix=big/&values=true"
    pages = 0
    while True:
        status, headers, body = call(shared_cluster, "GET", query)
        assert status == 200 and len(body) <= 4 * 1024 * 1024 + 64 * 1024
        seen += [item["key"] for item in orjson.loads(body)]
        pages += 1
        if headers.get("X-KV-More") != "true":
            break
        start_after = headers["X-KV-Next-Start-After"]
        assert unquote(start_after) == seen[-1]
        query = f"/kv/?prefix=big/&values=true&start_after={start_after}"
    assert seen == names and pages >= 2
    status, headers, body = call(shared_cluster, "GET", "/kv/?prefix=big/&limit=5")
    assert len(orjson.loads(body)) == 5 and headers["X-KV-More"] == "true"


def raw_exchange(address: str, data: bytes) -> bytes:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /kv/\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /kv/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"FROB /kv/a HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PUT /kv/a HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n"
        b"\r\nab",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),  # a TLS client hello
    ],
    ids=["header-9k", "nul-path", "ff-path", "bad-method", "cl-and-te", "tls"],
)
def test_requests_the_parser_rejects_get_kvnodes_json_error(
    shared_cluster: LocalCluster, request_bytes: bytes
) -> None:
    reply = raw_exchange(shared_cluster.nodes[0].http_addr, request_bytes)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", reply[:300]
    assert b"Content-Type: application/json" in head and b"X-KV-Node: node1" in head
    assert orjson.loads(body)["error"] == "bad_request"


@pytest.fixture(scope="module")
def guarded_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One node with a short header timeout and a small connection cap."""
    local = LocalCluster(
        tmp_path_factory.mktemp("guarded"),
        size=1,
        settings={"header_timeout": 1.0, "max_http_connections": 20},
    )
    local.start_all()
    try:
        wait_until_sync(lambda: _serves(local), 30, "the node to serve")
        yield local
    finally:
        local.stop_all()


def _serves(local: LocalCluster) -> bool:
    try:
        return call(local, "GET", "/ready")[0] == 200
    except OSError:
        return False


def closed_by_peer(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_a_slow_request_head_is_cut_off(guarded_node: LocalCluster) -> None:
    host, port = guarded_node.nodes[0].http_addr.rsplit(":", 1)
    started = time.monotonic()
    with socket.create_connection((host, int(port))) as slow:
        slow.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert closed_by_peer(slow, within=10), "a slow request head was kept open"
    assert time.monotonic() - started < 5
    assert call(guarded_node, "GET", "/ready")[0] == 200
    log = guarded_node.nodes[0].log_path.read_text()
    assert "request head took over 1 s" in log


def test_connections_beyond_the_cap_are_refused_and_the_node_serves_on(
    guarded_node: LocalCluster,
) -> None:
    host, port = guarded_node.nodes[0].http_addr.rsplit(":", 1)
    held = [socket.create_connection((host, int(port))) for _ in range(30)]
    try:
        refused = [sock for sock in held[20:] if closed_by_peer(sock, within=2)]
        assert len(refused) >= 5, "connections beyond max_http_connections were kept"
    finally:
        for sock in held:
            sock.close()
    wait_until_sync(lambda: _serves(guarded_node), 10, "the node to serve again")
    assert "max_http_connections (20) reached" in guarded_node.nodes[0].log_path.read_text()


# -- fuzzing ---------------------------------------------------------------------------

SAFE_PATH = string.ascii_letters + string.digits + "-_.~/"
names = st.sampled_from(
    [
        "ttl",
        "prev_value",
        "prev_value_base64",
        "prev_revision",
        "prev_exist",
        "consistency",
        "prefix",
        "limit",
        "values",
        "start_after",
        "watch",
        "x",
        "",
        "tll",
    ]
)
values = st.text(max_size=12).map(lambda v: quote(v, safe=""))
queries = st.lists(st.tuples(names, values), max_size=4).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
)
paths = st.one_of(
    st.text(max_size=30).map(lambda key: "/kv/" + quote(key, safe="/")),
    st.sampled_from(["/kv/", "/kv", "/status", "/health", "/ready", "/metrics", "/", "/kv//"]),
    st.text(alphabet=SAFE_PATH, max_size=20).map(lambda p: "/" + p),
)
header_values = st.text(alphabet=string.printable.strip() + " ", max_size=30)
headers = st.dictionaries(
    st.sampled_from(["If-Match", "If-None-Match", "X-Request-Id", "Content-Type", "X-Kv"]),
    header_values,
    max_size=3,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "PUT", "DELETE", "POST", "PATCH", "HEAD"]),
    path=paths,
    query=queries,
    header_map=headers,
    body=st.binary(max_size=64),
)
def test_fuzzed_requests_get_json_2xx_or_4xx_and_never_a_5xx(
    shared_cluster: LocalCluster,
    method: str,
    path: str,
    query: str,
    header_map: dict[str, str],
    body: bytes,
) -> None:
    target = f"{path}?{query}" if query else path
    status, reply_headers, reply = call(
        shared_cluster, method, target, body=body, headers=header_map, node=1
    )
    assert status < 500, (method, target, header_map, status, reply[:300])
    assert "X-KV-Node" in reply_headers
    kind = reply_headers.get("Content-Type", "")
    if status >= 400 and method != "HEAD":
        assert kind.startswith("application/json") and "error" in orjson.loads(reply), reply
    assert b"Traceback" not in reply
