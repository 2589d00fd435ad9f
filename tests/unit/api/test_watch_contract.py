"""The watch contract in process: X-KV-Index on every reply, long-poll and stream, the
retained window and its 410, the history rebuilt from the WAL after a restart, bad input."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from kvnode import commands
from kvnode.clock import wall_clock_ms
from kvnode.http import watch as watch_http
from tests.unit.api.served_api import Api, error, make_api
from tests.waiting import wait_until


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    served = make_api(tmp_path)
    yield served
    served.close()


def index_of(reply: Any) -> int:
    return int(reply.headers["X-KV-Index"])


def events(api: Api, path: str) -> list[dict[str, Any]]:
    reply = api("GET", path)
    assert reply.status == 200, reply.body
    found: list[dict[str, Any]] = reply.json
    return found


def test_every_read_list_and_write_reply_carries_the_store_revision(api: Api) -> None:
    put = api("PUT", "/kv/a", data=b"1")
    assert index_of(put) == put.json["revision"]
    api("PUT", "/kv/b", data=b"2")
    got = api("GET", "/kv/a")
    assert index_of(got) == index_of(put) + 1  # the store moved on; the key did not
    assert got.headers["X-KV-Revision"] == str(put.json["revision"])
    assert index_of(api("GET", "/kv/?prefix=")) == index_of(got)
    missing = api("GET", "/kv/nope")
    error(missing, 404, "not_found")
    assert index_of(missing) == index_of(got)
    failed = api("PUT", "/kv/a?prev_value=zzz", data=b"x")
    error(failed, 412, "compare_failed")
    assert index_of(failed) == index_of(got) + 1  # the failed CAS still took an entry
    deleted = api("DELETE", "/kv/a")
    assert index_of(deleted) == deleted.json["revision"] == index_of(failed) + 1


def test_a_long_poll_returns_every_retained_change_from_the_revision(api: Api) -> None:
    first = api("PUT", "/kv/app/x", data=b"1").json["revision"]
    api("PUT", "/kv/other", data=b"no")
    api("PUT", "/kv/app/x?prev_value=wrong", data=b"2")  # a failed CAS is no event
    api("PUT", "/kv/app/y", data=b"\xff\x00")
    deleted = api("DELETE", "/kv/app/x").json["revision"]
    reply = api("GET", f"/kv/?prefix=app/&watch=true&from_revision={first}")
    got = reply.json
    assert [(e["type"], e["key"]) for e in got] == [
        ("put", "app/x"),
        ("put", "app/y"),
        ("delete", "app/x"),
    ]
    assert got[0] == {
        "type": "put",
        "key": "app/x",
        "revision": first,
        "create_revision": first,
        "value": "1",
    }
    assert got[1]["value_base64"] == base64.b64encode(b"\xff\x00").decode()
    assert got[2] == {
        "type": "delete",
        "key": "app/x",
        "revision": deleted,
        "create_revision": first,
    }
    assert reply.headers["X-KV-Next-Revision"] == str(deleted + 1)
    one_key = events(api, f"/kv/app/x?watch=true&from_revision={first + 1}")
    assert [e["revision"] for e in one_key] == [deleted]


def test_a_long_poll_that_times_out_returns_nothing_and_where_to_go_on(api: Api) -> None:
    api("PUT", "/kv/k", data=b"v")
    applied = index_of(api("GET", "/kv/k"))
    reply = api("GET", "/kv/k?watch=true&timeout=0.2")
    assert (reply.status, reply.json) == (200, [])
    assert reply.headers["X-KV-Next-Revision"] == str(applied + 1)
    future = api("GET", f"/kv/k?watch=true&timeout=0.1&from_revision={applied + 50}")
    assert future.headers["X-KV-Next-Revision"] == str(applied + 50)


def test_a_long_poll_waits_for_the_next_change(api: Api) -> None:
    async def scenario() -> tuple[list[Any], str]:
        async def watch() -> tuple[list[Any], str]:
            async with api.client.get("/kv/k?watch=true&timeout=10") as response:
                return await response.json(), response.headers["X-KV-Next-Revision"]

        waiting = asyncio.ensure_future(watch())

        async def registered() -> bool:
            return api.service.watches.watchers == 1 or waiting.done()

        await wait_until(registered, 5, "the long-poll to be waiting")
        assert not waiting.done(), "a watch without changes must wait"
        async with api.client.put("/kv/k", data=b"new") as response:
            revision = (await response.json())["revision"]
        got, next_revision = await asyncio.wait_for(waiting, 5)
        assert [e["revision"] for e in got] == [revision]
        return got, next_revision

    got, next_revision = api.loop.run_until_complete(scenario())
    assert got[0]["value"] == "new" and next_revision == str(got[0]["revision"] + 1)


def test_ttl_expiry_is_an_expire_event(api: Api) -> None:
    created = api("PUT", "/kv/lease?ttl=0.05", data=b"v").json["revision"]
    now = wall_clock_ms() + 1000
    api.loop.run_until_complete(api.service.write(commands.expire(now)))
    got = events(api, f"/kv/lease?watch=true&from_revision={created}")
    assert [(e["type"], e["create_revision"]) for e in got] == [
        ("put", created),
        ("expire", created),
    ]
    assert "value" not in got[1]


def test_a_revision_older_than_the_history_is_410_with_the_oldest_kept(tmp_path: Path) -> None:
    api = make_api(tmp_path, watch_history=3)
    try:
        revisions = [api("PUT", f"/kv/k{i}", data=b"v").json["revision"] for i in range(6)]
        gone = error(
            api("GET", f"/kv/?watch=true&from_revision={revisions[0]}"), 410, "revision_compacted"
        )
        assert gone["oldest_revision"] == revisions[3]
        kept = events(api, f"/kv/?watch=true&from_revision={gone['oldest_revision']}")
        assert [e["revision"] for e in kept] == revisions[3:]
    finally:
        api.close()


def test_a_long_poll_reply_is_paged_between_revisions(tmp_path: Path) -> None:
    api = make_api(tmp_path, max_list_bytes=4096)
    try:
        value = b"v" * 1000
        for i in range(20):
            api("PUT", f"/kv/p/{i:02d}", data=value)
        txn = {"compare": [], "success": [{"delete_prefix": {"prefix": "p/"}}]}
        deleted_at = api("POST", "/txn", data=orjson.dumps(txn)).json["revision"]
        seen: list[dict[str, Any]] = []
        replies, next_revision = 0, 1
        while next_revision <= deleted_at:
            reply = api("GET", f"/kv/?prefix=p/&watch=true&from_revision={next_revision}")
            assert reply.status == 200 and len(reply.body) < 4096 + 2000, len(reply.body)
            page: list[dict[str, Any]] = reply.json
            seen += page
            replies += 1
            next_revision = int(reply.headers["X-KV-Next-Revision"])
        assert replies > 5, "the puts were not paged"
        assert [e["key"] for e in seen if e["type"] == "put"] == [f"p/{i:02d}" for i in range(20)]
        deletes = [e for e in seen if e["type"] == "delete"]
        assert len(deletes) == 20 and {e["revision"] for e in deletes} == {deleted_at}
    finally:
        api.close()


def test_watches_beyond_max_watchers_are_503(tmp_path: Path) -> None:
    api = make_api(tmp_path, max_watchers=2)
    try:

        async def three_at_once() -> list[int]:
            async def one(timeout: float) -> int:
                path = f"/kv/w?watch=true&timeout={timeout}"
                async with api.client.request("GET", path) as reply:
                    return reply.status

            async def two_held() -> bool:
                return api.service.watches.watchers == 2

            held = [asyncio.ensure_future(one(30)) for _ in range(2)]
            await wait_until(two_held, 10, "two watchers")
            third = await one(0)
            async with api.client.request("PUT", "/kv/w", data=b"end"):
                pass  # releases the two held long-polls
            return [*(await asyncio.gather(*held)), third]

        assert api.loop.run_until_complete(three_at_once()) == [200, 200, 503]
    finally:
        api.close()


def test_the_history_is_rebuilt_from_the_wal_after_a_restart(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    revisions = [api("PUT", f"/kv/k{i}", data=f"{i}".encode()).json["revision"] for i in range(5)]
    before = events(api, f"/kv/?watch=true&from_revision={revisions[0]}")
    assert [e["revision"] for e in before] == revisions
    api.close()
    restarted = make_api(tmp_path)
    try:
        assert events(restarted, f"/kv/?watch=true&from_revision={revisions[0]}") == before
    finally:
        restarted.close()


def read_stream(
    api: Api, path: str, actions: list[tuple[str, str, bytes]], lines: int
) -> list[Any]:
    """Open a stream, run `actions` (method, path, body) once it is open, and return its
    first `lines` lines."""

    async def scenario() -> list[Any]:
        got: list[Any] = []
        async with api.client.get(path) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "application/x-ndjson"
            for method, action_path, body in actions:
                async with api.client.request(method, action_path, data=body) as done:
                    assert done.status < 300
            while len(got) < lines:
                line = await asyncio.wait_for(response.content.readline(), 10)
                assert line, "the stream ended early"
                got.append(orjson.loads(line))
        return got

    return api.loop.run_until_complete(scenario())


def test_a_stream_sends_one_line_per_change_of_its_key(api: Api) -> None:
    got = read_stream(
        api,
        "/kv/s?watch=stream",
        [("PUT", "/kv/s", b"1"), ("PUT", "/kv/other", b"x"), ("DELETE", "/kv/s", b"")],
        2,
    )
    assert [(e["type"], e["key"]) for e in got] == [("put", "s"), ("delete", "s")]
    assert got[1]["revision"] == got[0]["revision"] + 2


def test_an_idle_stream_says_where_it_stands(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_http, "PROGRESS_SECONDS", 0.1)
    monkeypatch.setattr(watch_http, "CHECK_SECONDS", 0.05)
    revision = api("PUT", "/kv/elsewhere", data=b"x").json["revision"]
    (progress,) = read_stream(api, "/kv/quiet?watch=stream", [], 1)
    assert progress == {"type": "progress", "revision": revision}


def test_a_stream_ends_with_an_error_line_when_the_leader_is_lost(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch_http, "CHECK_SECONDS", 0.05)

    async def scenario() -> list[Any]:
        async with api.client.get("/kv/k?watch=stream") as response:
            api.consensus.refuse = "no_leader"  # from now on the node knows no leader
            body = await asyncio.wait_for(response.read(), 10)
        return [orjson.loads(line) for line in body.splitlines()]

    (line,) = api.loop.run_until_complete(scenario())
    assert line["type"] == "error" and line["error"] == "no_leader"


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/kv/k?watch=true&from_revision=-1", "bad_revision"),
        ("GET", "/kv/k?watch=true&from_revision=abc", "bad_revision"),
        ("GET", "/kv/k?watch=true&timeout=301", "bad_timeout"),
        ("GET", "/kv/k?watch=true&timeout=-1", "bad_timeout"),
        ("GET", "/kv/k?watch=stream&timeout=5", "bad_timeout"),
        ("GET", "/kv/k?watch=yes", "bad_watch"),
        ("GET", "/kv/k?watch=true&prev_value=x", "unknown_parameter"),
        ("GET", "/kv/?prefix=a&watch=true&limit=5", "unknown_parameter"),
        ("PUT", "/kv/k?watch=true", "unknown_parameter"),
        ("DELETE", "/kv/k?watch=true", "unknown_parameter"),
    ],
)
def test_bad_watch_requests_are_400(api: Api, method: str, path: str, code: str) -> None:
    error(api(method, path, data=b"v" if method == "PUT" else None), 400, code)


def test_a_stopping_node_ends_its_streams_with_an_error_line(api: Api) -> None:
    async def scenario() -> list[Any]:
        async with api.client.get("/kv/k?watch=stream") as response:
            await api.runner.shutdown()  # what a SIGTERM to `kvnode serve` runs first
            body = await asyncio.wait_for(response.read(), 10)
        return [orjson.loads(line) for line in body.splitlines()]

    (line,) = api.loop.run_until_complete(scenario())
    assert (line["type"], line["error"]) == ("error", "shutting_down")
