"""The HTTP listener's own defences, below the application: what aiohttp leaves open.

- *Slow request heads* (slowloris): aiohttp waits for request headers without
  a deadline, so a client that sends one byte a minute holds a socket forever,
  and enough of them exhaust the node's file descriptors (then Raft's own file
  writes fail). A request head must arrive complete within `header_timeout`.
- *Too many connections*: beyond `max_connections` a new connection is closed
  at once, with one rate-limited log line, so descriptors stay for storage.
- *Errors from the HTTP parser* (a header over 8 KiB, a NUL in the path, a bad
  method, TLS bytes on the HTTP port): aiohttp answers them itself in plain
  text; here they get kvnode's JSON body and `X-KV-Node`, like every error.

aiohttp builds its protocol objects through `web.Server`; `GuardedAppRunner`
gives the running server the `GuardedServer` class, whose protocol factory
makes `GuardedRequestHandler`s, and whose request factory hands the single-key
routes to the lean path (kvnode.http.lean) instead of the application.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, cast

import aiohttp
import orjson
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from kvnode.config import ConfigError
from kvnode.http.lean import LeanKvPath, LeanRequest, Written, answerable_at_once, takes
from kvnode.log_limit import LogLimiter

log = logging.getLogger(__name__)

# The aiohttp releases whose internals (below) kvnode was checked against: [first, last].
TESTED_AIOHTTP = ((3, 14), (3, 14))


class UnsupportedAiohttp(ConfigError):
    """The installed aiohttp is outside the tested range (`kvnode serve` exits 2)."""


def check_aiohttp_version(version: str = aiohttp.__version__) -> None:
    """Refuse to serve with an aiohttp whose internals were not checked: this module reads
    and replaces private parts of its server, which may change in any release."""
    try:
        major_minor = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        major_minor = ()
    first, last = TESTED_AIOHTTP
    if not first <= major_minor <= last:
        tested = ".".join(map(str, first)) + " to " + ".".join(map(str, last))
        raise UnsupportedAiohttp(
            f"aiohttp {version} is installed, but kvnode relies on the internals of aiohttp"
            f" {tested}.x; install the versions in scripts/requirements.lock"
        )


PARSER_ERROR_CODES = {
    HTTPStatus.BAD_REQUEST: "bad_request",
    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE: "headers_too_large",
    HTTPStatus.REQUEST_URI_TOO_LONG: "uri_too_long",
    HTTPStatus.NOT_IMPLEMENTED: "not_implemented",
}


warnings = LogLimiter(log)
VERSIONED_REQUEST_LINE = re.compile(rb" HTTP/\d(\.\d)?\r?$")


class GuardedRequestHandler(RequestHandler):
    """One HTTP connection, with a deadline on request heads and JSON parser errors."""

    _guard: GuardedServer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._partial_since: float | None = None
        self._answering = False  # in _answer_queued (reading a body re-enters data_received)
        self._waiting_for: LeanRequest | None = None  # taken at once, now waiting (for Raft)
        super().connection_made(transport)
        guard = self._guard
        if len(guard.connections) > guard.max_connections:
            warnings.warning(
                "http-cap",
                "refusing HTTP connections: max_http_connections (%d) reached",
                guard.max_connections,
            )
            transport.close()

    def data_received(self, data: bytes) -> None:
        if not data and self._answering:
            # Reading a body calls this to resume a parser paused by a full queue of
            # pipelined requests; none is paused while requests are answered at once.
            return
        before = self._request_count
        if self._answering or self._waiting_for is not None or self._request_loop_idle():
            self._receive_for_answer_at_once(data)
        else:
            super().data_received(data)
        if self._request_count > before:
            self._partial_since = None  # a head arrived whole
        elif (
            self._partial_since is None
            and self._current_request is None
            and not self._messages
            and data
        ):
            # Bytes of a new request head, not a body of one being served: start its clock.
            started = self._partial_since = self._loop.time()
            self._loop.call_later(self._guard.header_timeout, self._head_overdue, started)
            first_line = data.split(b"\n", 1)
            if len(first_line) == 2 and not VERSIONED_REQUEST_LINE.search(first_line[0]):
                self._refuse_simple_request()

    # -- answering single-key requests as they arrive -------------------------------------
    #
    # aiohttp's request loop (`start`) wakes for each request, makes a writer and a task
    # for its handler, and waits for both: for a stale read that is more than the read.
    # While that loop is parked waiting for the next request, a lean request whose body
    # came whole is answered here as it is parsed (`LeanKvPath.answer_at_once`); one that
    # must wait (for Raft, a read barrier) goes on from the callback of the future it
    # waits for (kvnode.http.eager), and requests parsed meanwhile queue behind it
    # without waking the loop, so replies keep the order of requests. The first request
    # that is not answered here wakes the loop, which takes it and everything after it
    # the way it always does.

    def _request_loop_idle(self) -> bool:
        waiter = self._waiter
        return (
            waiter is not None
            and not waiter.done()
            and not self._messages
            and self._payload_parser is None
            and not self._upgraded
        )

    def _receive_for_answer_at_once(self, data: bytes) -> None:
        waiter, self._waiter = self._waiter, None  # parse and queue, without waking the loop
        try:
            super().data_received(data)
        finally:
            self._waiter = waiter
        if not self._answering and self._waiting_for is None:
            self._answer_queued()

    def _answer_queued(self) -> None:
        """Answer the queued requests in order while each may be answered at once; wake
        the request loop for whatever is left."""
        messages, lean = self._messages, self._guard.lean
        self._answering = True
        try:
            while (
                messages
                and not self._force_close
                and not self._close
                and not self.writing_paused
                and not self._buffer_paused  # the request loop resumes reading as it drains
                and self.transport is not None
            ):
                message, payload = messages[0]
                if not isinstance(message, RawRequestMessage) or not answerable_at_once(
                    message, payload
                ):
                    break
                messages.popleft()
                assert self._parser is not None and self._manager is not None
                self._parser.message_consumed()
                self._manager.requests_count += 1
                request = LeanRequest(message, payload, None)
                if not lean.answer_at_once(request, self._answered):
                    self._waiting_for = request
                    self._lean_request_started(request)
                    return
        finally:
            self._answering = False
        waiter = self._waiter
        if messages and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _answered(self, answer: bytes | BaseException) -> None:
        """A request taken at once is answered: write it; if it had to wait, the
        connection is free again for the requests queued behind it."""
        if isinstance(answer, BaseException):
            if not isinstance(answer, ConnectionError):  # a client gone is no error of ours
                log.error("a single-key request failed", exc_info=answer)
            self.force_close()
        else:
            self._write_answer(answer)
        if self._waiting_for is None:
            return  # answered without a wait: _answer_queued goes on with the next
        self._waiting_for = None
        self._lean_request_ended()
        self._answer_queued()

    def _write_answer(self, answer: bytes) -> None:
        """Write a reply and restart the connection's keep-alive clock, as the request
        loop does after each request it serves."""
        if self.transport is None or self.transport.is_closing():
            return  # the client left, or the connection is being closed: nothing to tell
        self.transport.write(answer)
        # The timer armed when the connection was made moves itself to this deadline.
        self._next_keepalive_close_time = self._loop.time() + self._keepalive_timeout

    def _process_keepalive(self) -> None:
        """aiohttp closes a connection whose request loop is idle at the keep-alive
        deadline; one whose request is answered at once is busy, not idle."""
        if self._waiting_for is not None:
            self._keepalive_handle = self._loop.call_later(
                self._keepalive_timeout, self._process_keepalive
            )
            return
        super()._process_keepalive()

    def _refuse_simple_request(self) -> None:
        """An HTTP/0.9 request ("GET /", no version, no headers) waits for a head that never
        ends: answer 400 at once instead of holding it until header_timeout."""
        if self.transport is None:
            return
        body = orjson.dumps(
            {"error": "bad_request", "message": "a request line needs an HTTP/1.x version"}
        )
        headers = "".join(f"{k}: {v}\r\n" for k, v in self._guard.node_headers().items())
        self.transport.write(
            b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
            + headers.encode()
            + b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        self.transport.close()

    def _head_overdue(self, started: float) -> None:
        if self._partial_since == started and self.transport is not None:
            warnings.warning(
                "http-slow-head",
                "closed an HTTP connection whose request head took over %g s (header_timeout)",
                self._guard.header_timeout,
            )
            self.transport.close()

    async def _handle_request(
        self,
        request: BaseRequest,
        start_time: float | None,
        request_handler: Callable[[BaseRequest], Any],
    ) -> tuple[web.StreamResponse, bool]:
        """A lean request is served by the lean path, with the bookkeeping aiohttp's own
        version of this method does (a shutdown waits for it; a lost connection cancels
        its body); any other goes to the application."""
        lean: object = request
        if not isinstance(lean, LeanRequest):
            return await super()._handle_request(request, start_time, request_handler)
        self._lean_request_started(lean)
        written = Written(keep_alive=False)
        try:
            written = await self._guard.lean.serve(lean)
        except ConnectionError:
            return cast(web.StreamResponse, written), True  # the client left: no reply
        finally:
            self._lean_request_ended()
        return cast(web.StreamResponse, written), False

    def _lean_request_started(self, request: LeanRequest) -> None:
        """What aiohttp notes of a request under way: a shutdown waits for it, a lost
        connection cancels its body."""
        self._request_in_progress = True
        self._current_request = cast(BaseRequest, request)

    def _lean_request_ended(self) -> None:
        self._current_request = None
        self._request_in_progress = False
        if self._handler_waiter is not None and not self._handler_waiter.done():
            self._handler_waiter.set_result(None)  # a shutdown waiting for it goes on

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """Errors raised before kvnode's handlers run (the parser): JSON like every error,
        and one debug line instead of aiohttp's traceback (anyone can send these)."""
        log.debug("unreadable HTTP request from %s: %s", request.remote, exc or message)
        if request.writer.output_size > 0:
            raise ConnectionError("the response was already started; cannot send an error")
        phrase = HTTPStatus(status).phrase
        code = PARSER_ERROR_CODES.get(HTTPStatus(status), "internal" if status >= 500 else "bad")
        body = {"error": code, "message": f"the request could not be read: {message or phrase}"}
        response = web.Response(
            status=status, body=orjson.dumps(body), content_type="application/json"
        )
        response.headers.update(self._guard.node_headers())
        response.force_close()
        return response


class GuardedServer(web.Server):
    header_timeout: float
    max_connections: int
    node_headers: Callable[[], dict[str, str]]
    lean: LeanKvPath
    app_request: Callable[..., BaseRequest]

    def __call__(self) -> RequestHandler:
        handler = GuardedRequestHandler(self, loop=self._loop, **self._kwargs)
        handler._guard = self
        return handler

    def lean_or_app_request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> BaseRequest:
        """aiohttp's request loop makes each request through this: a lean one for the
        single-key routes, the application's own otherwise."""
        if takes(message):
            return cast(BaseRequest, LeanRequest(message, payload, writer))
        return self.app_request(message, payload, protocol, writer, task)


class GuardedAppRunner(web.AppRunner):
    def __init__(
        self,
        app: web.Application,
        *,
        header_timeout: float,
        max_connections: int,
        node_headers: Callable[[], dict[str, str]],
        lean: LeanKvPath,
        **kwargs: Any,
    ) -> None:
        # Bodies stay as sent: kvnode refuses compressed ones (415) before reading them, and
        # aiohttp would otherwise inflate them as they arrive (a bomb, or a traceback when
        # it drains a malformed one after the refusal).
        super().__init__(app, auto_decompress=False, **kwargs)
        self._limits = (header_timeout, max_connections, node_headers)
        self._lean = lean

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # aiohttp builds a plain web.Server; give it the guarded protocol factory.
        server.__class__ = GuardedServer
        guarded = cast(GuardedServer, server)
        guarded.header_timeout, guarded.max_connections, guarded.node_headers = self._limits
        guarded.lean = self._lean
        guarded.app_request = guarded.request_factory
        guarded.request_factory = guarded.lean_or_app_request
        return guarded


class GuardedTCPSite(web.TCPSite):
    """aiohttp's TCPSite with a deadline on the TLS handshake: asyncio's default is 60 s,
    so a client that opens a connection and stalls the handshake held it that long,
    where a plain connection's request head gets `header_timeout`."""

    def __init__(
        self, runner: web.BaseRunner, *args: Any, handshake_timeout: float, **kwargs: Any
    ) -> None:
        super().__init__(runner, *args, **kwargs)
        self._handshake_timeout = handshake_timeout

    async def start(self) -> None:
        await web.BaseSite.start(self)  # aiohttp's own bookkeeping of its sites
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            ssl_handshake_timeout=self._handshake_timeout if self._ssl_context else None,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
