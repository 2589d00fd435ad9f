"""Requests from web pages: the console (`/ui`) of one node asks the other members too.

A browser sends `Origin` with a request a page makes to another origin, and reads the
reply only when the node names that origin in `Access-Control-Allow-Origin`; for a
request with a token or a `PUT`/`DELETE` it first asks with a preflight `OPTIONS`. A node
allows its own origin (the `Host` the request was sent to) and the origins of the
cluster's members (a console served by one member reaches the others), and treats the
loopback names of one port as one origin (`localhost:8001` is `127.0.0.1:8001`).

Any other origin is refused with `403 origin_not_allowed` before the token is read.
Browsers send `PUT`s by form or `POST`s as "simple" requests without asking first, so
without this check a page on any site the user visits could write to a cluster that runs
without tokens; with it, such a page gets nothing done. Clients that are not browsers send
no `Origin` and are not affected.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import hdrs
from yarl import URL

from kvnode.contract import CLUSTER_HEADER
from kvnode.http.request import ApiError, HttpRequest, Reply
from kvnode.service import Service

# What a page may read of a reply besides the few headers browsers always expose.
EXPOSED_HEADERS = ", ".join(
    (
        "X-KV-Node",
        "X-KV-Leader",
        CLUSTER_HEADER,
        "X-KV-Index",
        "X-KV-Revision",
        "X-KV-Create-Revision",
        "X-KV-Expire-At",
        "X-KV-Lease",
        "X-KV-More",
        "X-KV-Next-Start-After",
        "X-KV-Next-Revision",
        "Retry-After",
        "Location",
    )
)
ALLOWED_METHODS = "GET, HEAD, PUT, POST, DELETE"
ALLOWED_HEADERS = ", ".join(
    ("Authorization", "Content-Type", "If-Match", "If-None-Match", CLUSTER_HEADER, "X-Request-Id")
)
PREFLIGHT_MAX_AGE_SECONDS = "600"


def cors_headers(request: HttpRequest, service: Service) -> dict[str, str]:
    """The headers that let the page which sent the request read the reply ({} for a
    request with no `Origin`: not from a browser, or same-origin). Raises
    `403 origin_not_allowed` for a page of an origin the node does not allow."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return {}
    if not origin_allowed(origin, request.headers.get(hdrs.HOST, ""), member_urls(service)):
        raise ApiError(
            403,
            "origin_not_allowed",
            f"a web page of {origin} may not use this node: only its own origin and the"
            " origins of the cluster's members may",
            origin=origin,
        )
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


def preflight(request: HttpRequest) -> Reply | None:
    """The reply to a browser's preflight (`OPTIONS` with `Access-Control-Request-Method`),
    or None for any other request; the caller adds `cors_headers` as to every reply. A
    preflight carries no token, so it is answered before the token is checked; the request
    it announces is checked in full when it comes."""
    if request.method != "OPTIONS" or hdrs.ACCESS_CONTROL_REQUEST_METHOD not in request.headers:
        return None
    return Reply(
        204,
        b"",
        {
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": PREFLIGHT_MAX_AGE_SECONDS,
        },
        "text/plain",
    )


def member_urls(service: Service) -> list[str]:
    """Every member's HTTP URL this node knows (its own among them: the listing names the
    node itself with its configured URL)."""
    return [member["http_url"] for member in service.membership.members() if member["http_url"]]


def origin_allowed(origin: str, host: str, urls: Iterable[str]) -> bool:
    """Whether a page of `origin` may use a node reached as `host` in a cluster whose
    members serve `urls`."""
    try:
        page = URL(origin)
    except ValueError:
        return False
    if not page.absolute or page.scheme not in ("http", "https") or page.raw_path not in ("", "/"):
        return False  # "null" (a file, a sandboxed frame) and anything malformed
    if page.raw_authority.lower() == host.lower():
        return True  # its own origin: the page this node served
    return any(same_origin(page, URL(url)) for url in urls)


def same_origin(page: URL, member: URL) -> bool:
    """One scheme and port, and one host, counting every loopback name as one."""
    if (page.scheme, page.port) != (member.scheme, member.port):
        return False
    page_host, member_host = (page.host or "").lower(), (member.host or "").lower()
    return page_host == member_host or (is_loopback(page_host) and is_loopback(member_host))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
