"""The client's write retries must never turn an unknown outcome into "not applied".

A scripted HTTP server stands in for kvnode so the exact answer sequence is
under the test's control (a real cluster cannot be made to answer 504 then 503
on demand).
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web

from kvnode.client import Client, Indeterminate, Unavailable
from kvnode.client.kv import in_words


def _answer(status: int, code: str) -> web.Response:
    body = orjson.dumps({"error": code, "message": code})
    return web.Response(status=status, body=body, content_type="application/json")


async def _run_against(answers: list[tuple[int, str]]) -> tuple[Exception, list[str]]:
    """PUT once through a retrying client against a server that replays `answers`."""
    seen_ids: list[str] = []
    script = iter(answers)

    async def handler(request: web.Request) -> web.Response:
        seen_ids.append(request.headers["X-Request-Id"])
        status, code = next(script, answers[-1])
        return _answer(status, code)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with Client([f"127.0.0.1:{port}"], timeout=2, write_deadline=0.3) as client:
            with pytest.raises((Indeterminate, Unavailable)) as caught:
                await client.put("k", b"v")
    finally:
        await runner.cleanup()
    return caught.value, seen_ids


def test_refusals_after_an_unknown_outcome_are_reported_as_unknown() -> None:
    error, seen_ids = asyncio.run(_run_against([(504, "timeout"), (503, "no_leader")]))
    assert isinstance(error, Indeterminate)
    assert len(seen_ids) >= 2 and len(set(seen_ids)) == 1  # retried under one request id


def test_refusals_only_are_reported_as_not_applied() -> None:
    error, seen_ids = asyncio.run(_run_against([(503, "no_leader")]))
    assert isinstance(error, Unavailable)
    assert len(seen_ids) >= 2


async def _put_to_a_node_that_dies_mid_request() -> tuple[Exception | None, list[bytes]]:
    """The node reads the PUT, then dies before answering: the connection drops and the
    port refuses connections from then on (aiohttp's silent resend cannot get through)."""
    received: list[bytes] = []
    died = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readuntil(b"\r\n\r\n"))
        server.close()  # stop listening first, so the resend finds the port closed
        writer.transport.abort()
        died.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    error: Exception | None = None
    async with Client([f"127.0.0.1:{port}"], timeout=2, retry_writes=False) as client:
        try:
            await client.put("k", b"v")
        except (Indeterminate, Unavailable) as exc:
            error = exc
    await died.wait()
    return error, received


def test_a_write_that_reached_a_node_that_then_died_is_indeterminate() -> None:
    error, received = asyncio.run(_put_to_a_node_that_dies_mid_request())
    assert received and received[0].startswith(b"PUT /kv/k")  # the node did get the write
    assert isinstance(error, Indeterminate), f"reported as {error!r}"


async def _put_whose_resend_is_refused() -> tuple[Exception | None, list[bytes]]:
    """The node reads the PUT on a kept-alive connection, then the connection drops;
    aiohttp silently resends it on a new connection, and that copy is refused with 503."""
    received: list[bytes] = []
    answer_ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
    body = b'{"error":"no_leader","message":"no leader"}'
    refuse = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    refuse += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first_connection = not received
        head = await reader.readuntil(b"\r\n\r\n")
        if first_connection:  # a GET that makes the connection a kept-alive one
            writer.write(answer_ok)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            received.append(head)
            writer.transport.abort()  # the PUT reached the node; the reply never comes
            return
        received.append(head)
        writer.write(refuse)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    error: Exception | None = None
    try:
        async with Client([f"127.0.0.1:{port}"], timeout=2, retry_writes=False) as client:
            await client.request("GET", "/status", idempotent=True)
            try:
                await client.put("k", b"v")
            except (Indeterminate, Unavailable) as exc:
                error = exc
    finally:
        server.close()
    return error, received


def test_a_503_to_a_silent_resend_is_indeterminate() -> None:
    error, received = asyncio.run(_put_whose_resend_is_refused())
    assert len(received) == 2 and all(r.startswith(b"PUT /kv/k") for r in received)
    assert isinstance(error, Indeterminate), f"reported as {error!r}"


class SwallowingSession:
    """A session whose request waits until cancelled and turns the cancellation into a
    TimeoutError, as a timeout that fires together with the cancellation does in aiohttp."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()

    def get(self, *_args: object, **_kwargs: object) -> SwallowingSession:
        return self

    async def __aenter__(self) -> None:
        self.entered.set()
        try:
            await asyncio.Event().wait()  # never set: only a cancellation ends it
        except asyncio.CancelledError:
            raise TimeoutError from None

    async def __aexit__(self, *_exc: object) -> None:
        pass


def test_a_watch_stops_when_cancelled_even_if_the_cancellation_became_a_timeout() -> None:
    async def scenario() -> None:
        client = Client(["127.0.0.1:1"], write_deadline=float("inf"))
        session = SwallowingSession()
        client._get_session = lambda: session  # type: ignore[method-assign,assignment,return-value]

        async def follow() -> None:
            async for _event in client.watch(prefix="p/"):
                pass

        watching = asyncio.ensure_future(follow())
        await asyncio.wait_for(session.entered.wait(), 5)  # the watch is inside its request
        watching.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(watching, 5)

    asyncio.run(scenario())


def test_why_a_node_was_unreachable_is_said_in_words() -> None:
    assert in_words(None) == "no endpoint to try"
    assert in_words(TimeoutError()) == "no answer in time"
    assert in_words(ValueError("odd")) == "odd"
