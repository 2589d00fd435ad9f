"""The HTTP/1.1 framing of the single-key routes, byte by byte on a real socket: these
routes are written by the lean path (kvnode.http.lean), not by aiohttp's responses, so
what aiohttp gave every route is checked here for them: keep-alive and pipelining,
chunked bodies, `Expect: 100-continue`, HTTP/1.0, `HEAD`, absolute request targets."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import orjson
import pytest

from tests.unit.api.served_api import Api, make_api
from tests.waiting import wait_until

ROOT = "root-token-for-wire-tests"


class Answer(NamedTuple):
    status_line: bytes
    headers: dict[str, str]
    body: bytes


class Wire:
    """One raw connection to the listener, read one reply at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self, *, head: bool = False) -> Answer:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status_line, *lines = raw[:-4].split(b"\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head else int(headers.get("content-length", "0"))
        body = await asyncio.wait_for(self.reader.readexactly(length), 5)
        return Answer(status_line, headers, body)

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 5) == b""


def on_wire(api: Api, scenario: Callable[[Wire], Awaitable[None]]) -> None:
    async def run() -> None:
        reader, writer = await asyncio.open_connection(*api.url.removeprefix("http://").split(":"))
        try:
            await scenario(Wire(reader, writer))
        finally:
            writer.close()

    api.loop.run_until_complete(run())


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    served = make_api(tmp_path, auth_token=ROOT)
    yield served
    served.close()


def put(key: str, value: bytes, *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return (
        f"PUT /kv/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ROOT}\r\n{head}"
        f"Content-Length: {len(value)}\r\n\r\n"
    ).encode() + value


def get(key: str, method: str = "GET", version: str = "1.1", *extra: str) -> bytes:
    head = "".join(f"{line}\r\n" for line in extra)
    return (
        f"{method} /kv/{key} HTTP/{version}\r\nHost: x\r\nAuthorization: Bearer {ROOT}\r\n"
        f"{head}\r\n"
    ).encode()


def test_pipelined_requests_are_answered_in_order_on_one_connection(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        await wire.send(put("p", b"one") + get("p") + get("absent") + put("p", b"two") + get("p"))
        answers = [await wire.answer() for _ in range(5)]
        assert [a.status_line for a in answers] == [
            b"HTTP/1.1 201 Created",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 404 Not Found",
            b"HTTP/1.1 200 OK",
            b"HTTP/1.1 200 OK",
        ]
        assert answers[1].body == b"one" and answers[4].body == b"two"
        assert orjson.loads(answers[2].body)["error"] == "not_found"
        for answer in answers:
            assert answer.headers["x-kv-node"] == "solo" and "connection" not in answer.headers
            assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT", answer.headers["date"])

    on_wire(api, scenario)


def test_a_chunked_body_is_the_value(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        await wire.send(
            f"PUT /kv/c HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ROOT}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n".encode()
        )
        assert (await wire.answer()).status_line == b"HTTP/1.1 201 Created"
        await wire.send(get("c"))
        assert (await wire.answer()).body == b"abcdefg"

    on_wire(api, scenario)


def test_expect_100_continue_is_answered_after_the_checks_and_before_the_body(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        head = put("e", b"", "Expect: 100-continue").replace(b"Length: 0", b"Length: 5")
        await wire.send(head)
        interim = await asyncio.wait_for(wire.reader.readuntil(b"\r\n\r\n"), 5)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        await wire.send(b"value")
        assert (await wire.answer()).status_line == b"HTTP/1.1 201 Created"
        # A request refused by its checks gets its refusal, not a go-ahead for its body.
        await wire.send(
            b"PUT /kv/e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        refused = await wire.answer()
        assert refused.status_line == b"HTTP/1.1 401 Unauthorized"

    on_wire(api, scenario)


def test_an_unknown_expectation_is_a_json_417(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        await wire.send(put("e", b"v", "Expect: teapot"))
        answer = await wire.answer()
        assert answer.status_line == b"HTTP/1.1 417 Expectation Failed"
        assert orjson.loads(answer.body)["error"] == "expectation_failed"

    on_wire(api, scenario)


def test_http_1_0_closes_unless_asked_to_keep_alive(api: Api) -> None:
    async def kept(wire: Wire) -> None:
        await wire.send(put("h", b"v") + get("h", "GET", "1.0", "Connection: keep-alive"))
        await wire.answer()
        answer = await wire.answer()
        assert answer.status_line == b"HTTP/1.0 200 OK" and answer.body == b"v"
        assert answer.headers["connection"] == "keep-alive"
        await wire.send(get("h", "GET", "1.0"))
        answer = await wire.answer()
        assert answer.status_line == b"HTTP/1.0 200 OK" and "connection" not in answer.headers
        assert await wire.closed()

    on_wire(api, kept)


def test_connection_close_is_honoured_and_said(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        await wire.send(put("k", b"v", "Connection: close"))
        answer = await wire.answer()
        assert answer.headers["connection"] == "close"
        assert await wire.closed()

    on_wire(api, scenario)


def test_head_has_the_headers_of_get_and_no_body(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        await wire.send(put("hd", b"12345") + get("hd", "HEAD") + get("hd"))
        await wire.answer()
        head = await wire.answer(head=True)
        assert head.status_line == b"HTTP/1.1 200 OK"
        assert head.headers["content-length"] == "5" and head.headers["x-kv-revision"]
        full = await wire.answer()  # read right after: HEAD sent no body bytes
        assert full.body == b"12345"
        assert full.headers["x-kv-revision"] == head.headers["x-kv-revision"]

    on_wire(api, scenario)


def test_other_methods_on_a_key_are_405_with_allow(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        await wire.send(get("k", "PATCH"))
        answer = await wire.answer()
        assert answer.status_line == b"HTTP/1.1 405 Method Not Allowed"
        assert answer.headers["allow"] == "DELETE,GET,HEAD,PUT"
        assert orjson.loads(answer.body)["error"] == "method_not_allowed"

    on_wire(api, scenario)


def test_an_absolute_request_target_names_the_same_key(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        await wire.send(put("abs", b"v"))
        await wire.answer()
        await wire.send(get("abs").replace(b"GET /kv/", b"GET http://x/kv/"))
        answer = await wire.answer()
        assert answer.status_line == b"HTTP/1.1 200 OK" and answer.body == b"v"

    on_wire(api, scenario)


def test_the_lean_routes_are_counted_under_their_route(api: Api) -> None:
    api("GET", "/kv/counted", headers={"Authorization": f"Bearer {ROOT}"})
    text = api("GET", "/metrics", headers={"Authorization": f"Bearer {ROOT}"}).body.decode()
    assert 'kvnode_http_request_seconds_count{method="GET",route="/kv/{key}"} 1.0' in text
    assert 'kvnode_http_requests_total{method="GET",status="404"} 1.0' in text


def test_stale_reads_keep_their_place_in_the_pipeline(api: Api) -> None:
    """A stale read, which waits for nothing, is still answered after a write queued
    before it on the same connection, never before."""

    async def scenario(wire: Wire) -> None:
        stale = "p?consistency=stale"
        await wire.send(
            put("p", b"one")
            + get(stale)
            + put("p", b"two")
            + get(stale)
            + get("x?consistency=stale")
        )
        answers = [await wire.answer() for _ in range(5)]
        assert [a.status_line[9:12] for a in answers] == [b"201", b"200", b"200", b"200", b"404"]
        assert (answers[1].body, answers[3].body) == (b"one", b"two")
        await wire.send(get(stale))  # alone on an idle connection
        assert (await wire.answer()).body == b"two"
        await wire.send(get(stale + "&consistency=stale") + get(stale, "HEAD"))
        assert orjson.loads((await wire.answer()).body)["error"] == "repeated_parameter"
        head = await wire.answer(head=True)
        assert head.status_line == b"HTTP/1.1 200 OK" and head.headers["content-length"] == "3"
        await wire.send(get(stale, "GET", "1.1", "Connection: close"))
        answer = await wire.answer()
        assert answer.body == b"two" and answer.headers["connection"] == "close"
        assert await wire.closed()

    on_wire(api, scenario)


def test_a_stale_read_without_a_token_is_refused_like_any_other(api: Api) -> None:
    async def scenario(wire: Wire) -> None:
        await wire.send(b"GET /kv/p?consistency=stale HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await wire.answer()
        assert answer.status_line == b"HTTP/1.1 401 Unauthorized"
        assert orjson.loads(answer.body)["error"] == "unauthorized"

    on_wire(api, scenario)


def test_a_client_that_never_reads_its_replies_meets_back_pressure(api: Api) -> None:
    """Replies stop at the transport's high-water mark: 200 pipelined reads of a 64 KiB
    value must not become 13 MB buffered in the node."""
    value = b"v" * 65536
    api("PUT", "/kv/big", data=value, headers={"Authorization": f"Bearer {ROOT}"})

    async def scenario(wire: Wire) -> None:
        await wire.send(get("big?consistency=stale") * 200)
        handler = api.runner.server.connections[-1]  # the newest: this one

        async def paused() -> bool:
            return handler.writing_paused

        await wait_until(paused, 5, "the node's writes to pause")
        buffered = handler.transport.get_write_buffer_size()
        assert buffered < 8 * len(value), buffered
        replies = 0
        while replies < 200:  # and every one of them arrives once the client reads
            answer = await wire.answer()
            assert answer.body == value
            replies += 1

    on_wire(api, scenario)


# -- requests answered as they arrive (kvnode.http.guard) --------------------------------


def test_requests_behind_a_write_that_waits_are_answered_after_it(api: Api) -> None:
    """A request taken as it arrives may have to wait (a write, for Raft): requests
    pipelined behind it wait too, stale reads included, and see the write."""
    auth = {"Authorization": f"Bearer {ROOT}"}
    api("PUT", "/kv/p", data=b"one", headers=auth)
    gate = api.consensus.write_gate = asyncio.Event()

    async def held() -> bool:
        return api.consensus.held == 1

    async def scenario(wire: Wire) -> None:
        await wire.send(put("p", b"two") + get("p?consistency=stale") + get("p") + put("q", b"x"))
        await wait_until(held, 5, "the write to wait for its log")
        async with api.client.get("/kv/p?consistency=stale", headers=auth) as meanwhile:
            assert await meanwhile.read() == b"one"  # not applied yet, on another connection
        gate.set()
        answers = [await wire.answer() for _ in range(4)]
        assert [a.status_line[9:12] for a in answers] == [b"200", b"200", b"200", b"201"]
        assert answers[1].body == answers[2].body == b"two"

    on_wire(api, scenario)


def test_a_request_of_the_application_behind_a_waiting_write_keeps_its_place(api: Api) -> None:
    """After a write that waited, the next request is one of the application's (a list):
    aiohttp's request loop serves it, after the write, and the stale read behind it is
    answered after the list."""
    gate = api.consensus.write_gate = asyncio.Event()

    async def held() -> bool:
        return api.consensus.held == 1

    async def scenario(wire: Wire) -> None:
        listing = get("?prefix=l&consistency=stale")
        await wire.send(put("l1", b"one") + listing + get("l1?consistency=stale"))
        await wait_until(held, 5, "the write to wait for its log")
        gate.set()
        written, listed, read = [await wire.answer() for _ in range(3)]
        assert written.status_line == b"HTTP/1.1 201 Created"
        assert [item["key"] for item in orjson.loads(listed.body)] == ["l1"]
        assert read.body == b"one"

    on_wire(api, scenario)


def test_a_client_gone_while_its_write_waits_leaves_no_error(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    gate = api.consensus.write_gate = asyncio.Event()

    async def held() -> bool:
        return api.consensus.held == 1

    async def released() -> bool:
        return api.consensus.held == 0

    async def scenario(wire: Wire) -> None:
        await wire.send(put("gone", b"value"))
        await wait_until(held, 5, "the write to wait for its log")
        wire.writer.close()
        await wire.writer.wait_closed()
        gate.set()
        await wait_until(released, 5, "the write to go on")

    on_wire(api, scenario)
    # Applied like any write whose client left before the reply; the node serves on.
    assert api("GET", "/kv/gone", headers={"Authorization": f"Bearer {ROOT}"}).body == b"value"
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_a_shutdown_waits_for_a_write_under_way(api: Api) -> None:
    gate = api.consensus.write_gate = asyncio.Event()

    async def held() -> bool:
        return api.consensus.held == 1

    async def scenario(wire: Wire) -> None:
        await wire.send(put("last", b"value"))
        await wait_until(held, 5, "the write to wait for its log")
        handler = api.runner.server.connections[-1]
        shutdown = asyncio.ensure_future(api.runner.cleanup())  # as a node stops

        async def shutting_down() -> bool:
            return bool(handler._force_close)

        await wait_until(shutting_down, 5, "the shutdown to start")
        gate.set()
        answer = await wire.answer()
        assert answer.status_line == b"HTTP/1.1 201 Created"
        await shutdown
        assert await wire.closed()

    on_wire(api, scenario)


def test_an_idle_connection_answered_at_once_is_closed_at_its_keep_alive_deadline(
    api: Api,
) -> None:
    api.runner.server._kwargs["keepalive_timeout"] = 0.2  # for connections made from now

    async def scenario(wire: Wire) -> None:
        async def waiting_for_a_request() -> bool:
            connections = api.runner.server.connections
            return bool(connections) and connections[-1]._waiter is not None

        await wait_until(waiting_for_a_request, 5, "the connection to wait for a request")
        await wire.send(get("idle?consistency=stale"))
        assert (await wire.answer()).status_line == b"HTTP/1.1 404 Not Found"
        assert await wire.closed()  # idle past its deadline: closed by the node

    on_wire(api, scenario)


def test_a_busy_connection_answered_at_once_outlives_its_keep_alive_timeout(api: Api) -> None:
    """The keep-alive deadline counts from the last reply, not from the connection's start."""
    timeout = 0.3
    api.runner.server._kwargs["keepalive_timeout"] = timeout

    async def scenario(wire: Wire) -> None:
        started = asyncio.get_running_loop().time()
        answered = 0
        while asyncio.get_running_loop().time() - started < 4 * timeout:
            await wire.send(get("busy?consistency=stale"))
            assert (await wire.answer()).status_line == b"HTTP/1.1 404 Not Found"
            answered += 1
        assert answered > 4
        assert await wire.closed()  # and once idle, it is closed

    on_wire(api, scenario)
