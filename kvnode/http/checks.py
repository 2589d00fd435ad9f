"""What every request passes before its handler runs, whichever path serves it: one of
each single-valued header, and the cluster it names (the token: kvnode.http.auth)."""

from __future__ import annotations

from aiohttp import hdrs

from kvnode.contract import WRONG_CLUSTER
from kvnode.http.request import (
    CLUSTER_HEADER_NAME,
    REQUEST_ID_HEADER,
    ApiError,
    HttpRequest,
)
from kvnode.service import Service

SINGLE_HEADERS = (
    REQUEST_ID_HEADER,
    hdrs.IF_MATCH,
    hdrs.IF_NONE_MATCH,
    hdrs.AUTHORIZATION,
    CLUSTER_HEADER_NAME,
    hdrs.CONTENT_ENCODING,
)


def check_single_headers(request: HttpRequest) -> None:
    """A header that says one thing (a request id, a condition, a token, a cluster) given
    twice is refused: taking the first one silently could turn a retry or a
    compare-and-swap into something else."""
    headers = request.headers
    for name in SINGLE_HEADERS:
        if name in headers and len(headers.getall(name)) > 1:
            raise ApiError(400, "repeated_header", f"{name} is given more than once", header=name)


def check_cluster(request: HttpRequest, service: Service) -> None:
    """A client that names the cluster it means (`X-KV-Cluster`) is refused by a node of
    another cluster before anything is read or written, so it cannot write into the wrong
    one (ports reused by another cluster, a stale endpoint list)."""
    expected = request.headers.get(CLUSTER_HEADER_NAME)
    if not expected:
        return
    ours = service.cluster_id
    if not ours:
        raise ApiError(
            503,
            "cluster_id_unknown",
            "this node does not know its cluster's id yet (a new cluster without a leader)",
        )
    if expected != ours:
        raise ApiError(
            409,
            WRONG_CLUSTER,
            f"this node ({service.config.node_id}) belongs to cluster {ours}, not {expected}",
            cluster_id=ours,
        )
