"""What every HTTP handler shares: the one error type, JSON replies, and the strict query
rules (unknown, inapplicable and repeated parameters are refused; numbers are ASCII)."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, unquote_to_bytes

import orjson
from aiohttp import hdrs, web
from aiohttp.streams import StreamReader
from multidict import CIMultiDictProxy, MultiMapping, istr
from yarl import URL

from kvnode.config import MAX_KEY_BYTES
from kvnode.consensus import Indeterminate, Unavailable
from kvnode.contract import CLUSTER_HEADER
from kvnode.service import QuotaExceeded
from kvnode.storage.outcome import Outcome, Status

log = logging.getLogger(__name__)

# Numbers in queries and headers: ASCII digits only (str.isdigit and int() also take
# "²" and fullwidth digits), a bounded length, then a range check.
ASCII_UINT = re.compile(r"[0-9]{1,19}", re.ASCII)
ASCII_SECONDS = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?", re.ASCII)
MAX_REVISION = 2**63 - 1
KV_PREFIX = "/kv/"
BAD_PERCENT_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
BODY_TIMEOUT = web.AppKey("body_timeout", float)  # seconds a request body may take
RETRY_AFTER_SECONDS = "1"
MAX_REQUEST_ID_LENGTH = 128
# Request header names as multidict's case-insensitive strings (like aiohttp's `hdrs`): a
# lookup with one skips folding the name's case, on every request's path.
REQUEST_ID_HEADER = istr("X-Request-Id")
CLUSTER_HEADER_NAME = istr(CLUSTER_HEADER)
REQUEST_ID = re.compile(f"[!-~]{{0,{MAX_REQUEST_ID_LENGTH}}}", re.ASCII)  # visible ASCII


class HttpRequest(Protocol):
    """What the request helpers read of a request: served by aiohttp's `web.Request` and
    by the single-key path's lean request (kvnode.http.lean) alike."""

    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def rel_url(self) -> URL: ...
    @property
    def query(self) -> MultiMapping[str]: ...
    @property
    def headers(self) -> CIMultiDictProxy[str]: ...
    @property
    def content_length(self) -> int | None: ...
    @property
    def content(self) -> StreamReader: ...


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


class Reply(NamedTuple):
    """A reply before it is written: what the single-key handlers return."""

    status: int
    body: bytes
    headers: dict[str, str]
    content_type: str = "application/json"


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, orjson.dumps(body), headers or {})


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def api_error_of(exc: Exception, request: HttpRequest) -> ApiError:
    """The refusal a failure becomes: the service's `Unavailable` is 503 with Retry-After,
    `Indeterminate` 504 with `"indeterminate": true`, `QuotaExceeded` 507; any other
    failure is a bug, logged with its traceback and answered 500."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, Unavailable):
        return ApiError(503, exc.reason, str(exc), {"Retry-After": RETRY_AFTER_SECONDS})
    if isinstance(exc, Indeterminate):
        return ApiError(504, "indeterminate", str(exc), indeterminate=True)
    if isinstance(exc, QuotaExceeded):
        return ApiError(507, "quota_exceeded", str(exc))
    log.error("unhandled error in %s %s", request.method, request.path, exc_info=exc)
    return ApiError(500, "internal", "internal error; see the node's log")


def error_reply(error: ApiError) -> Reply:
    """An `ApiError` as its reply: JSON `{error, message, **extra}` with its headers."""
    return json_reply(
        error.status, {"error": error.code, "message": error.message, **error.extra}, error.headers
    )


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> web.Response:
    return json_response(status, {"error": code, "message": message, **extra}, headers)


def query_of(request: HttpRequest, allowed: frozenset[str]) -> dict[str, str]:
    """The query as a dict, after refusing unknown, inapplicable and repeated parameters (a
    misspelt `tll` or `prev_vaule` must not silently become an unconditional write), and
    any that is not UTF-8 once percent-decoded."""
    raw = request.rel_url.raw_query_string
    if not raw:
        return {}
    refuse_undecodable(raw)
    pairs = plain_query_pairs(raw) if "%" not in raw else list(request.query.items())
    query = dict(pairs)
    if len(query) == len(pairs) and allowed.issuperset(query):
        return query
    names = [name for name, _value in pairs]
    for name in names:  # the first that is unknown or repeated, in the order given
        if name not in allowed:
            takes = ", ".join(sorted(allowed)) or "no parameters"
            raise ApiError(
                400,
                "unknown_parameter",
                f"{name!r} is not a parameter of {request.method} {request.path}"
                f" (it takes {takes})",
                parameter=name,
            )
        if names.count(name) > 1:
            raise ApiError(
                400, "repeated_parameter", f"{name!r} is given more than once", parameter=name
            )
    raise AssertionError("a query with no unknown or repeated name was refused")


def plain_query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The (name, value) pairs of a query with nothing percent-encoded, as yarl's
    `URL.query` gives them (only `+` stands for a space), without the multidict it builds
    for each request: this runs on every read's path."""
    pairs = []
    for pair in raw_query.replace("+", " ").split("&"):
        if pair:
            name, _equals, value = pair.partition("=")
            pairs.append((name, value))
    return pairs


def refuse_undecodable(raw_query: str) -> None:
    """400 for a parameter whose percent-decoded bytes are not UTF-8: the parser would
    turn them into U+FFFD, so `prev_value=%ff` would compare equal to a stored U+FFFD and
    a compare-and-swap succeed that must not."""
    if "%" not in raw_query and raw_query.isascii():
        return  # nothing to decode (most queries: on every read's path)
    for pair in raw_query.split("&"):
        name, _equals, value = pair.partition("=")
        for part, what in ((name, "name"), (value, "value")):
            try:
                unquote_to_bytes(part.replace("+", " ")).decode()
            except UnicodeDecodeError:
                shown = unquote(name, errors="replace")
                raise ApiError(
                    400,
                    "bad_encoding",
                    f"the {what} of parameter {shown!r} is not UTF-8 once percent-decoded"
                    " (use prev_value_base64 for a value that is not text)",
                    parameter=shown,
                ) from None


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


INDEX_HEADER = "X-KV-Index"


def index_header(index: int) -> dict[str, str]:
    """`X-KV-Index`: the store revision a reply reflects (watch from it + 1 to miss nothing)."""
    return {INDEX_HEADER: str(index)}


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


def parse_request_id(request: HttpRequest) -> str:
    """The client's id for this write (X-Request-Id); a retry under it is applied at most once."""
    request_id = request.headers.get(REQUEST_ID_HEADER, "")
    if not REQUEST_ID.fullmatch(request_id):
        raise ApiError(
            400,
            "bad_request_id",
            f"X-Request-Id must be up to {MAX_REQUEST_ID_LENGTH} visible ASCII characters",
        )
    return request_id


def body_if_whole(request: HttpRequest, limit: int, *, what: str, too_large: str) -> bytes | None:
    """The request body if it came whole with the headers (a small value usually does),
    else None: then `read_rest_of_body` waits for the rest. `too_large` past `limit` bytes, 415
    when it is compressed (an unchecked gzip body is a decompression bomb, and a
    malformed one would fail deep in the parser). `what` names the body in the 413's
    message, `too_large` is its code. No coroutine, so a write whose value is here
    makes none for its body."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(
            415,
            "unsupported_encoding",
            f"bodies with Content-Encoding {encoding!r} are not accepted; send them as is",
        )
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, what, too_large)
    stream = request.content
    if not stream.is_eof():
        return None
    # Taken as it is, without a timeout to arm (10% more PUTs/s at 64 connections). A
    # body that outgrows the reader's buffer never gets here whole (reading pauses), so
    # `limit` is still checked chunk by chunk in read_rest_of_body.
    body = stream.read_nowait()
    if len(body) > limit:
        raise _too_large(limit, what, too_large)
    return body


def _too_large(limit: int, what: str, too_large: str) -> ApiError:
    return ApiError(413, too_large, f"the {what} is larger than {limit} bytes")


async def read_body(
    request: HttpRequest, limit: int, timeout: float, *, what: str, too_large: str
) -> bytes:
    """The request body, for every route that takes one (checked as `body_if_whole`
    says); 408 when it arrives slower than the body timeout."""
    body = body_if_whole(request, limit, what=what, too_large=too_large)
    if body is not None:
        return body
    return await read_rest_of_body(request, limit, timeout, what=what, too_large=too_large)


async def read_rest_of_body(
    request: HttpRequest, limit: int, timeout: float, *, what: str, too_large: str
) -> bytes:
    """A body `body_if_whole` found still arriving (its checks passed): read it chunk by
    chunk, 413 past `limit`, 408 when it arrives slower than the body timeout."""
    stream = request.content
    try:
        chunks, size = [], 0
        async with asyncio.timeout(timeout):
            async for chunk in stream.iter_any():
                size += len(chunk)
                if size > limit:
                    raise _too_large(limit, what, too_large)
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(408, "body_timeout", "the request body arrived too slowly") from None
    except ConnectionError:  # the client went before its body ended: nothing was applied
        raise ApiError(400, "incomplete_body", "the connection closed mid-body") from None
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int, *, what: str, too_large: str) -> Any:
    """The request body as JSON: 413 `too_large` past `limit` bytes, 400 if not JSON."""
    data = await read_body(
        request, limit, request.app[BODY_TIMEOUT], what=what, too_large=too_large
    )
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"the body is not JSON: {exc}") from None


def parse_key(request: HttpRequest) -> str:
    raw = request.rel_url.raw_path[len(KV_PREFIX) :]
    if request.rel_url.raw_fragment or "#" in request.raw_path:
        raise ApiError(400, "bad_key", "the key holds a raw '#'; percent-encode it as %23")
    if "%" not in raw and raw.isascii():
        key = raw  # nothing to decode (most keys)
    else:
        if BAD_PERCENT_ESCAPE.search(raw):
            raise ApiError(400, "bad_key", "the key holds a '%' that is not a %XX escape")
        try:
            key = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise ApiError(
                400, "bad_key", "the key is not valid UTF-8 after percent-decoding"
            ) from None
    if not key:
        raise ApiError(400, "bad_key", "the key is empty; use /kv/<key>")
    # A character is at most 4 bytes in UTF-8: a short key needs no encoding to measure.
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode()) > MAX_KEY_BYTES:
        raise ApiError(400, "bad_key", f"the key is longer than {MAX_KEY_BYTES} bytes")
    return key
