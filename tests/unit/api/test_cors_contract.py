"""Requests from web pages (kvnode.http.cors) and the console's files (kvnode.http.console),
on a node's real listener: the single-key routes (the lean path) and the application's
routes alike. The node's advertised URL is http://127.0.0.1:8001; the listener itself is on
another port, which is what the `Host` of every request here names."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.api.served_api import Api, error, make_api

MEMBER_ORIGIN = "http://127.0.0.1:8001"  # the node's own advertised URL
PREFLIGHT = {
    "Access-Control-Request-Method": "PUT",
    "Access-Control-Request-Headers": "authorization",
}
PATHS = ["/kv/app/a", "/kv/?prefix=app/", "/status", "/txn", "/lease/"]


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    served = make_api(tmp_path, auth_token="root-secret")
    yield served
    served.close()


def bearer(origin: str | None = None) -> dict[str, str]:
    headers = {"Authorization": "Bearer root-secret"}
    if origin is not None:
        headers["Origin"] = origin
    return headers


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("origin", [MEMBER_ORIGIN, "http://localhost:8001", "http://[::1]:8001"])
def test_a_preflight_from_a_members_origin_is_answered_without_a_token(
    api: Api, path: str, origin: str
) -> None:
    reply = api("OPTIONS", path, headers={"Origin": origin, **PREFLIGHT})
    assert reply.status == 204, (reply.status, reply.body)
    assert reply.headers["Access-Control-Allow-Origin"] == origin
    assert "PUT" in reply.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in reply.headers["Access-Control-Allow-Headers"]
    assert reply.headers["Vary"] == "Origin"


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "origin", ["http://evil.example", "http://127.0.0.1:9999", "https://127.0.0.1:8001", "null"]
)
def test_a_page_of_any_other_origin_is_refused(api: Api, path: str, origin: str) -> None:
    preflight = api("OPTIONS", path, headers={"Origin": origin, **PREFLIGHT})
    body = error(preflight, 403, "origin_not_allowed")
    assert body["origin"] == origin
    assert "Access-Control-Allow-Origin" not in preflight.headers
    # The request itself, token and all, as a browser sends a "simple" one without asking.
    error(api("GET", path, headers=bearer(origin)), 403, "origin_not_allowed")


def test_a_write_from_a_foreign_page_writes_nothing_even_without_tokens(tmp_path: Path) -> None:
    """Without tokens, any page the user visits could otherwise write through the browser."""
    open_api = make_api(tmp_path)
    try:
        for method, path in (("PUT", "/kv/planted"), ("POST", "/txn")):
            reply = open_api(method, path, data=b"{}", headers={"Origin": "http://evil.example"})
            error(reply, 403, "origin_not_allowed")
        error(open_api("GET", "/kv/planted"), 404, "not_found")
    finally:
        open_api.close()


def test_replies_to_a_members_page_carry_the_headers_it_may_read(api: Api) -> None:
    put = api("PUT", "/kv/app/a?ttl=60", data=b"v", headers=bearer(MEMBER_ORIGIN))
    assert put.status == 201
    assert put.headers["Access-Control-Allow-Origin"] == MEMBER_ORIGIN
    read = api("GET", "/kv/app/a", headers=bearer(MEMBER_ORIGIN))
    exposed = read.headers["Access-Control-Expose-Headers"]
    for name in ("X-KV-Revision", "X-KV-Expire-At", "X-KV-Lease", "X-KV-Index", "X-KV-Node"):
        assert name in exposed
    # Refusals too, so the page can show why (a compare-and-swap that failed, say).
    conflict = api("PUT", "/kv/app/a?prev_revision=999", data=b"w", headers=bearer(MEMBER_ORIGIN))
    error(conflict, 412, "compare_failed")
    assert conflict.headers["Access-Control-Allow-Origin"] == MEMBER_ORIGIN
    listed = api("GET", "/kv/?prefix=app/", headers=bearer(MEMBER_ORIGIN))
    assert listed.headers["Access-Control-Allow-Origin"] == MEMBER_ORIGIN


def test_a_page_of_the_nodes_own_origin_needs_no_listing(api: Api) -> None:
    """The origin a browser reached this node at (its `Host`), whatever the node advertises:
    a console opened through a port mapping or a proxy name."""
    own = api.url
    reply = api("PUT", "/kv/mine", data=b"v", headers=bearer(own))
    assert reply.status == 201
    assert reply.headers["Access-Control-Allow-Origin"] == own


def test_a_watch_stream_carries_the_headers(api: Api) -> None:
    """A stream's headers go out before its handler returns, so they are added as the reply
    is prepared, not after."""

    async def stream_headers() -> dict[str, str]:
        async with api.client.get(
            "/kv/?prefix=w/&watch=stream", headers=bearer(MEMBER_ORIGIN)
        ) as response:
            return dict(response.headers)

    headers = api.loop.run_until_complete(stream_headers())
    assert headers["Access-Control-Allow-Origin"] == MEMBER_ORIGIN


def test_a_leased_keys_read_names_its_lease(api: Api) -> None:
    lease = api("POST", "/lease?ttl=60", headers=bearer()).json["id"]
    assert api("PUT", f"/kv/held?lease={lease}", data=b"v", headers=bearer()).status == 201
    assert api("GET", "/kv/held", headers=bearer()).headers["X-KV-Lease"] == str(lease)
    assert api("PUT", "/kv/free", data=b"v", headers=bearer()).status == 201
    assert "X-KV-Lease" not in api("GET", "/kv/free", headers=bearer()).headers


@pytest.mark.parametrize("path", ["/ui", "/ui/", "/ui/console.js", "/ui/console.css"])
def test_the_console_is_served_without_a_token_and_may_not_run_foreign_code(
    api: Api, path: str
) -> None:
    reply = api("GET", path)
    assert reply.status == 200, reply.body
    policy = reply.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.body


def test_the_console_has_no_other_files_and_its_data_needs_the_token(api: Api) -> None:
    error(api("GET", "/ui/secrets.txt"), 404, "not_found")
    error(api("GET", "/ui/../status"), 401, "unauthorized")
    error(api("GET", "/status"), 401, "unauthorized")
