"""The errors of kvnode's client: one class per definite answer the API gives, so callers
catch what they can act on (retry an `Unavailable`, re-read after `CompareFailed`,
list again after `WatchCompacted`)."""

from __future__ import annotations

from typing import Any

import orjson

from kvnode.contract import WRONG_CLUSTER


class KvError(Exception):
    """A definite error answer from kvnode (4xx/5xx with a JSON body)."""

    def __init__(
        self, status: int, code: str, message: str, body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.body = status, code, message, body or {}


class NotFound(KvError):
    pass


class CompareFailed(KvError):
    @property
    def current_revision(self) -> int:
        return int(self.body.get("current_revision", 0))


class Unavailable(KvError):
    """503: certainly not applied; safe to retry."""


class Indeterminate(KvError):
    """The write may or may not have been applied (504, timeout, connection lost mid-request)."""


class Unauthorized(KvError):
    """401: no valid bearer token (or 403: the token may not do this)."""


class WrongCluster(KvError):
    """409 wrong_cluster: the node belongs to another cluster than the one the client names;
    it acted on nothing."""


class WatchCompacted(KvError):
    """410: the changes from the asked revision are no longer retained; list again and
    watch from the list's index + 1."""

    @property
    def oldest_revision(self) -> int:
        return int(self.body.get("oldest_revision", 0))


ERRORS_BY_STATUS: dict[int, type[KvError]] = {
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    410: WatchCompacted,
    412: CompareFailed,
    503: Unavailable,
    504: Indeterminate,
}


def error_from(status: int, body: bytes) -> KvError:
    """The error a non-2xx answer stands for, from its status and JSON body."""
    try:
        parsed = orjson.loads(body)
        code, message = parsed.get("error", "error"), parsed.get("message", "")
    except orjson.JSONDecodeError:
        parsed, code, message = {}, "error", body[:200].decode(errors="replace")
    if code == WRONG_CLUSTER:
        return WrongCluster(status, code, message, parsed)
    return ERRORS_BY_STATUS.get(status, KvError)(status, code, message, parsed)


def is_wrong_cluster(body: bytes) -> bool:
    """A 409 that says the node is of another cluster (it acted on nothing)."""
    return error_from(409, body).code == WRONG_CLUSTER


__all__ = [
    "ERRORS_BY_STATUS",
    "CompareFailed",
    "Indeterminate",
    "KvError",
    "NotFound",
    "Unauthorized",
    "Unavailable",
    "WatchCompacted",
    "WrongCluster",
    "error_from",
    "is_wrong_cluster",
]
