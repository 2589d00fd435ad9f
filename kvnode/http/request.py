"""What every HTTP handler shares: the one error type, JSON replies, and the strict query
rules (unknown, inapplicable and repeated parameters are refused; numbers are ASCII)."""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from kvnode.storage.outcome import Outcome, Status

# Numbers in queries and headers: ASCII digits only (str.isdigit and int() also take
# "²" and fullwidth digits), a bounded length, then a range check.
ASCII_UINT = re.compile(r"[0-9]{1,19}", re.ASCII)
ASCII_SECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?", re.ASCII)
MAX_REVISION = 2**63 - 1


class ApiError(Exception):
    """A request the API refuses: becomes `status` with JSON `{error: code, message, **extra}`
    (and `headers`) in the error middleware."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra
        self.headers = headers


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return json_response(status, {"error": code, "message": message, **extra}, headers)


def query_of(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query as a dict, after refusing unknown, inapplicable and repeated parameters (a
    misspelt `tll` or `prev_vaule` must not silently become an unconditional write)."""
    query = request.query
    for name in query:
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "no parameters"
            raise ApiError(
                400,
                "unknown_parameter",
                f"{name!r} is not a parameter of {request.method} {request.path}"
                f" (it takes {takes})",
                parameter=name,
            )
        if len(query.getall(name)) > 1:
            raise ApiError(
                400, "repeated_parameter", f"{name!r} is given more than once", parameter=name
            )
    return dict(query)


def parse_uint(raw: str, source: str, code: str, minimum: int, maximum: int) -> int:
    if not ASCII_UINT.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise ApiError(400, code, f"{source} {raw!r} is not an integer from {minimum} to {maximum}")
    return int(raw)


def parse_seconds(raw: str, source: str, code: str, minimum: float, maximum: float) -> float:
    """A number of seconds written in ASCII, within [minimum, maximum]."""
    if not ASCII_SECONDS.fullmatch(raw) or not minimum <= float(raw) <= maximum:
        raise ApiError(
            400,
            code,
            f"{source} {raw!r} is not a number of seconds from {minimum:g} to {maximum:g}",
        )
    return float(raw)


def index_header(index: int) -> dict[str, str]:
    """`X-KV-Index`: the store revision a reply reflects (watch from it + 1 to miss nothing)."""
    return {"X-KV-Index": str(index)}


def write_failure(outcome: Outcome, key: str) -> ApiError:
    headers = index_header(outcome.log_index)
    if outcome.status is Status.COMPARE_FAILED:
        return ApiError(
            412,
            "compare_failed",
            f"the condition on {key!r} did not hold",
            headers,
            current_revision=outcome.revision,
        )
    if outcome.status is Status.NOT_FOUND:
        return ApiError(404, "not_found", f"key {key!r} does not exist", headers)
    if outcome.status is Status.REQUEST_ID_REUSED:
        return ApiError(
            409,
            "request_id_reused",
            "this X-Request-Id was already used for a different request; nothing was applied"
            " (use a new id for every request, and the same id only to retry it)",
            headers,
        )
    return ApiError(400, "invalid_command", "the command could not be applied", headers)


async def read_json(request: web.Request, limit: int, *, what: str, too_large: str) -> Any:
    """The request body as JSON: 413 `too_large` past `limit` bytes, 400 if not JSON."""
    refusal = ApiError(413, too_large, f"the {what} is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise refusal
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > limit:
            raise refusal
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None
