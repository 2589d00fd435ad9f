"""The single-key routes (`GET`, `HEAD`, `PUT`, `DELETE /kv/{key}`) on a lean path.

For every request aiohttp's application builds a `web.Request`, resolves the router,
runs the middleware chain, builds a `web.Response` with a header multidict and
serialises it: for a 100-byte read that was over half of the CPU a node spent
(docs/benchmarks.md#the-http-floor). These routes carry nearly all the traffic, so
for them the request is the parsed message itself (`LeanRequest`) and the reply is
written as one block of bytes. Everything below the request stays aiohttp's: the C
parser, keep-alive and pipelining, body streams (chunked, `Expect: 100-continue`),
lingering close, the guard's deadlines and connection cap, TLS. Every other request,
and a watch or a list on `/kv/`, goes to the `web.Application` as before.

The contract is the application's: the same checks in the same order (one of each
single-valued header, the token, the route's permission, the cluster), the same JSON
error bodies and headers, the same metrics series.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import NamedTuple

from aiohttp import hdrs
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import SERVER_SOFTWARE, HttpVersion11
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from multidict import CIMultiDictProxy, MultiMapping
from yarl import URL

from kvnode.http import eager
from kvnode.http.auth import authenticate, authorize_keys
from kvnode.http.checks import check_cluster, check_single_headers
from kvnode.http.cors import cors_headers, preflight
from kvnode.http.keys import delete_key, get_key, put_key
from kvnode.http.metrics import Metrics
from kvnode.http.request import (
    KV_PREFIX,
    ApiError,
    HttpRequest,
    Reply,
    api_error_of,
    error_reply,
    parse_key,
)
from kvnode.service import Service

log = logging.getLogger(__name__)

ROUTE = "/kv/{key}"  # the latency series of these requests, as the application names it
ALLOWED = "DELETE,GET,HEAD,PUT"
Handler = Callable[[HttpRequest, Service, str], Reply | Awaitable[Reply]]
"""A route's handler: its reply, or (for one that waits, on Raft or a body) an awaitable."""
HANDLERS: dict[str, Handler] = {
    "GET": get_key,
    "HEAD": get_key,
    "PUT": put_key,
    "DELETE": delete_key,
}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def takes(message: RawRequestMessage) -> bool:
    """Whether a parsed request is for this path: anything on `/kv/<key>` but a watch
    (`GET ...?watch`), and a `PUT` or an unknown method on `/kv/` (a 400 or a 405 here);
    a list (`GET /kv/`) and a range delete (`DELETE /kv/?prefix=`) are the application's."""
    url = message.url
    path = url.raw_path
    if not path.startswith(KV_PREFIX):
        return False
    method = message.method
    if len(path) == len(KV_PREFIX):
        return method not in ("GET", "HEAD", "DELETE")
    return method != "GET" or "watch" not in url.query


def answerable_at_once(message: RawRequestMessage, payload: StreamReader) -> bool:
    """Whether a request of this path may be answered as it arrives, before aiohttp's
    request loop sees it (kvnode.http.guard): it keeps the connection open, its body
    (if any) came whole, and it has no `Expect` (whose interim reply is written through
    aiohttp's writer)."""
    return (
        not message.should_close
        and payload.is_eof()
        and hdrs.EXPECT not in message.headers
        and takes(message)
    )


class LeanRequest:
    """A request on the lean path: the parsed message and its body stream, read through
    the names `web.Request` has (kvnode.http.request.HttpRequest). `writer` is None for
    a request answered as it arrived (its reply goes straight to the transport). The
    method and headers are plain attributes: a request reads them a dozen times."""

    __slots__ = ("_message", "_task", "_url", "content", "headers", "method", "writer")

    def __init__(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        writer: AbstractStreamWriter | None,
    ) -> None:
        self._message = message
        self.method: str = message.method
        self.headers: CIMultiDictProxy[str] = message.headers
        url = message.url
        self._url = url.relative() if url.absolute else url
        self.content = payload
        self.writer = writer

    @property
    def path(self) -> str:
        return self._url.path

    @property
    def raw_path(self) -> str:
        return self._message.path

    @property
    def rel_url(self) -> URL:
        return self._url

    @property
    def query(self) -> MultiMapping[str]:
        return self._url.query

    @property
    def content_length(self) -> int | None:
        length = self._message.headers.get(hdrs.CONTENT_LENGTH)
        return None if length is None else int(length)

    @property
    def keep_alive(self) -> bool:
        return not self._message.should_close

    @property
    def http_1_1(self) -> bool:
        return self._message.version == HttpVersion11

    def _cancel(self, exc: BaseException) -> None:
        """aiohttp's protocol calls this when the connection is lost mid-request: a body
        still being read fails instead of waiting for bytes that will not come."""
        self.content.set_exception(exc)


class Written(NamedTuple):
    """What aiohttp's request loop reads of a reply once it is written."""

    keep_alive: bool


class LeanKvPath:
    """Serves the single-key routes of one node (see the module's docstring)."""

    def __init__(self, service: Service, metrics: Metrics) -> None:
        self._service = service
        self._metrics = metrics
        self._date = (0, "")

    async def serve(self, request: LeanRequest) -> Written:
        """Answer one request through aiohttp's writer; the caller (the connection's
        protocol) ends it."""
        assert request.writer is not None
        await request.writer.write(await self.answer(request))
        return Written(request.keep_alive)

    def answer_at_once(self, request: LeanRequest, finished: eager.Finished) -> bool:
        """Start answering now: `finished` gets the reply's bytes, at once (True) for a
        request that needs no wait (a stale read, a refusal: no coroutine is made), else
        once its wait (for Raft, a read barrier) is over."""
        started, cors, reply = self._start(request)
        if not isinstance(reply, Reply):
            return eager.drive(self._finish_later(request, started, cors, reply), finished)
        try:
            answer: bytes | Exception = self._finish(request, started, cors, reply)
        except Exception as exc:  # a bug: the caller logs it, as it would from a coroutine
            answer = exc
        finished(answer)
        return True

    async def answer(self, request: LeanRequest) -> bytes:
        """The whole reply to one request, as bytes to write."""
        started, cors, reply = self._start(request)
        if isinstance(reply, Reply):
            return self._finish(request, started, cors, reply)
        return await self._finish_later(request, started, cors, reply)

    def _start(
        self, request: LeanRequest
    ) -> tuple[float, dict[str, str], Reply | Awaitable[Reply]]:
        """When the request started, its CORS headers, and its reply or what to await
        for it."""
        started = time.perf_counter()
        cors: dict[str, str] = {}
        try:
            cors = cors_headers(request, self._service)
            return started, cors, preflight(request) or self._reply_to(request)
        except Exception as exc:  # every failure is a JSON reply; a bug is also logged
            return started, cors, error_reply(api_error_of(exc, request))

    async def _finish_later(
        self, request: LeanRequest, started: float, cors: dict[str, str], pending: Awaitable[Reply]
    ) -> bytes:
        try:
            reply = await pending
        except Exception as exc:  # as in _start
            reply = error_reply(api_error_of(exc, request))
        return self._finish(request, started, cors, reply)

    def _finish(
        self, request: LeanRequest, started: float, cors: dict[str, str], reply: Reply
    ) -> bytes:
        # Counted before it is written, like the application's replies: a client gone
        # mid-body still shows as the 400 its request got.
        self._metrics.record(request.method, reply.status, time.perf_counter() - started, ROUTE)
        return self._encode(request, reply, request.keep_alive, cors)

    def _reply_to(self, request: LeanRequest) -> Reply | Awaitable[Reply]:
        service = self._service
        check_single_headers(request)
        grant = authenticate(request, service)
        handler = HANDLERS.get(request.method)
        if handler is None:
            raise ApiError(
                405,
                "method_not_allowed",
                f"Method Not Allowed: {request.method} {request.path}",
                {"Allow": ALLOWED},
            )
        key = parse_key(request)
        authorize_keys(request, grant, key)
        check_cluster(request, service)
        if hdrs.EXPECT in request.headers:
            return self._after_expect(request, handler, key)
        return handler(request, service, key)

    async def _after_expect(self, request: LeanRequest, handler: Handler, key: str) -> Reply:
        await self._expect(request)
        reply = handler(request, self._service, key)
        return reply if isinstance(reply, Reply) else await reply

    @staticmethod
    async def _expect(request: LeanRequest) -> None:
        """`Expect: 100-continue` (HTTP/1.1): the client waits for a go-ahead before it
        sends the body, given here once the request passed its checks."""
        if not request.http_1_1:
            return  # HTTP/1.0 has no interim replies; the body comes anyway
        assert request.writer is not None  # a request with `Expect` is never answered at once
        expect = request.headers[hdrs.EXPECT]
        if expect.lower() != "100-continue":
            raise ApiError(417, "expectation_failed", f"Expect: {expect!r} is not supported")
        await request.writer.write(CONTINUE)
        request.writer.output_size = 0

    def _encode(
        self, request: LeanRequest, reply: Reply, keep_alive: bool, cors: dict[str, str]
    ) -> bytes:
        """The status line, headers and body as aiohttp would write them: the request's
        HTTP version, `Connection` only where it differs from the version's default."""
        http_1_1 = request.http_1_1
        body = reply.body
        extra = "".join([f"{name}: {value}\r\n" for name, value in reply.headers.items()])
        if cors:
            extra += "".join([f"{name}: {value}\r\n" for name, value in cors.items()])
        if keep_alive != http_1_1:
            extra += "Connection: keep-alive\r\n" if keep_alive else "Connection: close\r\n"
        head = (
            f"{STATUS_LINES[http_1_1][reply.status]}Content-Type: {reply.content_type}\r\n"
            f"Content-Length: {len(body)}\r\n{extra}{self._service.node_header_lines()}"
            f"{self._date_and_server()}"
        ).encode()
        return head if request.method == "HEAD" else head + body

    def _date_and_server(self) -> str:
        now = int(time.time())
        second, text = self._date
        if second != now:
            text = f"Date: {formatdate(now, usegmt=True)}\r\nServer: {SERVER_SOFTWARE}\r\n\r\n"
            self._date = (now, text)
        return text


STATUS_LINES = {
    http_1_1: {
        status.value: f"HTTP/1.{int(http_1_1)} {status.value} {status.phrase}\r\n"
        for status in HTTPStatus
    }
    for http_1_1 in (False, True)
}
"""By whether the request is HTTP/1.1 (else 1.0), then by status."""
