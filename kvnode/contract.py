"""Names and limits of the HTTP contract that the API, the client and the CLI share, kept in
one dependency-free module so each of them (and `--help`) spells them the same way."""

from __future__ import annotations

import base64

CONSISTENCY_MODES = ("linearizable", "stale")
# In replies: the answering node's cluster id. In requests: the cluster the client means;
# a node of another cluster refuses the request (409 wrong_cluster) before acting on it.
CLUSTER_HEADER = "X-KV-Cluster"
# Where the CLI looks when told nothing else: the ports `kvnode cluster up` uses by default.
DEFAULT_ENDPOINTS = ("127.0.0.1:8001", "127.0.0.1:8002", "127.0.0.1:8003")
WRONG_CLUSTER = "wrong_cluster"
DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 100_000
MAX_TTL_SECONDS = 10 * 365 * 24 * 3600  # of a key or a lease: ten years


def value_fields(value: bytes, name: str = "value") -> dict[str, str]:
    """A value in JSON or a query: `name` when it is UTF-8 text, else `name_base64`."""
    try:
        return {name: value.decode("utf-8")}
    except UnicodeDecodeError:
        return {f"{name}_base64": base64.b64encode(value).decode()}


def value_text(value: bytes) -> str:
    """A value on one line of text: itself when it is UTF-8, else its base64, as in JSON."""
    (text,) = value_fields(value).values()
    return text
