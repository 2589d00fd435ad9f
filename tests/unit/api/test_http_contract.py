"""The HTTP contract, in process: a node's real HTTP listener over a real state machine, with
a consensus that applies at once (local_consensus.py). Every route, every answer code,
every bad input, in milliseconds; the multi-process tests keep what needs processes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import unquote

import orjson
import pytest
from multidict import CIMultiDict

from tests.unit.api.local_consensus import LEADER
from tests.unit.api.served_api import Api, error, make_api


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    served = make_api(tmp_path, max_value_bytes=1024, max_list_bytes=4096)
    yield served
    served.close()


# -- writes and reads ------------------------------------------------------------------


def test_put_creates_then_replaces_and_get_returns_the_raw_value(api: Api) -> None:
    created = api("PUT", "/kv/foo", data=b"bar")
    assert created.status == 201
    body = created.json
    assert body == {"key": "foo", "revision": body["revision"], "created": True, "expire_at": None}
    assert created.headers["X-KV-Revision"] == str(body["revision"])
    assert created.headers["X-KV-Leader"] == LEADER
    replaced = api("PUT", "/kv/foo", data=b"baz")
    assert replaced.status == 200 and replaced.json["created"] is False
    got = api("GET", "/kv/foo")
    assert (got.status, got.body) == (200, b"baz")
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert got.headers["X-KV-Revision"] == str(replaced.json["revision"])
    assert got.headers["X-KV-Create-Revision"] == str(body["revision"])
    assert api("GET", "/kv/foo?consistency=stale").body == b"baz"


def test_ttl_sets_a_deadline_in_the_reply_and_the_headers(api: Api) -> None:
    put = api("PUT", "/kv/session?ttl=30", data=b"t").json
    assert put["expire_at"] > 0
    assert api("GET", "/kv/session").headers["X-KV-Expire-At"] == str(put["expire_at"])


def test_missing_keys_are_404_and_delete_removes(api: Api) -> None:
    error(api("GET", "/kv/nope"), 404, "not_found")
    error(api("DELETE", "/kv/nope"), 404, "not_found")
    api("PUT", "/kv/gone", data=b"x")
    deleted = api("DELETE", "/kv/gone")
    assert deleted.status == 200 and deleted.json["deleted"] is True
    error(api("GET", "/kv/gone"), 404, "not_found")


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        ("?prev_value=v1", True),
        ("?prev_value=v9", False),
        (f"?prev_value_base64={base64.b64encode(b'v1').decode()}", True),
        ("?prev_revision={rev}", True),
        ("?prev_revision=9999", False),
        ("?prev_exist=false", False),
    ],
)
def test_compare_and_swap_conditions(api: Api, condition: str, holds: bool) -> None:
    rev = api("PUT", "/kv/c", data=b"v1").json["revision"]
    reply = api("PUT", "/kv/c" + condition.format(rev=rev), data=b"v2")
    if holds:
        assert reply.status == 200 and api("GET", "/kv/c").body == b"v2"
    else:
        assert error(reply, 412, "compare_failed")["current_revision"] == rev
        assert api("GET", "/kv/c").body == b"v1"


def test_if_match_and_if_none_match_headers(api: Api) -> None:
    assert api("PUT", "/kv/h", data=b"1", headers={"If-None-Match": "*"}).status == 201
    error(api("PUT", "/kv/h", data=b"2", headers={"If-None-Match": "*"}), 412, "compare_failed")
    rev = api("GET", "/kv/h").headers["X-KV-Revision"]
    assert api("PUT", "/kv/h", data=b"3", headers={"If-Match": f'"{rev}"'}).status == 200
    error(api("DELETE", "/kv/h", headers={"If-Match": f'"{rev}"'}), 412, "compare_failed")
    error(api("DELETE", "/kv/h", headers={"If-None-Match": "*"}), 400, "bad_if_none_match")


def test_list_values_and_paging(api: Api) -> None:
    for i in range(12):
        api("PUT", f"/kv/p/{i:02d}", data=b"v" * 500)
    api("PUT", "/kv/p/bin", data=b"\xff")
    items = api("GET", "/kv/?prefix=p/&limit=2").json
    assert [i["key"] for i in items] == ["p/00", "p/01"]
    assert set(items[0]) == {"key", "revision", "create_revision", "expire_at"}
    seen, query = [], "/kv/?prefix=p/&values=true"
    while True:
        page = api("GET", query)
        seen += page.json
        if page.headers.get("X-KV-More") != "true":
            break
        assert unquote(page.headers["X-KV-Next-Start-After"]) == seen[-1]["key"]
        query = f"/kv/?prefix=p/&values=true&start_after={page.headers['X-KV-Next-Start-After']}"
    assert [i["key"] for i in seen] == [f"p/{i:02d}" for i in range(12)] + ["p/bin"]
    assert seen[0]["value"] == "v" * 500 and seen[-1]["value_base64"] == "/w=="


def test_a_range_end_a_count_and_a_confirmed_delete_by_prefix(api: Api) -> None:
    for key in ("a/1", "a/2", "a/3", "ab", "b/1"):
        api("PUT", f"/kv/{key}", data=b"v")
    assert [i["key"] for i in api("GET", "/kv/?prefix=a/&end=a/3").json] == ["a/1", "a/2"]
    counted = api("GET", "/kv/?prefix=a/&count=true")
    assert counted.json["count"] == 3 and counted.json["revision"] == 5
    assert counted.headers["X-KV-Index"] == "5"
    assert api("GET", "/kv/?end=b&count=true").json["count"] == 4
    headers = {"X-Request-Id": "wipe-a"}
    gone = api("DELETE", "/kv/?prefix=a/&end=a/3&confirm=true", headers=headers)
    assert gone.status == 200 and gone.json == {"deleted": 2, "revision": 6}
    again = api("DELETE", "/kv/?prefix=a/&end=a/3&confirm=true", headers=headers)
    assert again.json == gone.json, "a retry under the same id gets the first answer"
    assert [i["key"] for i in api("GET", "/kv/?prefix=").json] == ["a/3", "ab", "b/1"]
    none_left = api("DELETE", "/kv/?prefix=zz/&confirm=true")
    assert none_left.json["deleted"] == 0


def test_a_transaction_lists_and_deletes_up_to_an_end(api: Api) -> None:
    for key in ("t/1", "t/2", "t/3"):
        api("PUT", f"/kv/{key}", data=b"v")
    body = {
        "success": [
            {"list": {"prefix": "t/", "end": "t/3"}},
            {"delete_prefix": {"prefix": "t/", "end": "t/2"}},
        ]
    }
    reply = api("POST", "/txn", data=orjson.dumps(body)).json
    assert [i["key"] for i in reply["responses"][0]["list"]["items"]] == ["t/1", "t/2"]
    assert reply["responses"][1] == {"delete_prefix": {"deleted": 1}}
    assert [i["key"] for i in api("GET", "/kv/?prefix=t/").json] == ["t/2", "t/3"]


# -- answers that are not a plain success ------------------------------------------------


def test_no_leader_is_503_with_retry_after_and_lost_outcomes_are_504(api: Api) -> None:
    api.consensus.refuse = "no_leader"
    refused = api("PUT", "/kv/x", data=b"1")
    error(refused, 503, "no_leader")
    assert refused.headers["Retry-After"] == "1"
    error(api("GET", "/kv/x"), 503, "no_leader")
    error(api("GET", "/ready"), 503, "not_ready")
    api.consensus.refuse = None
    api.consensus.lose_outcomes = True
    assert error(api("PUT", "/kv/x", data=b"1"), 504, "indeterminate")["indeterminate"] is True


def test_a_request_id_is_bound_to_its_request(api: Api) -> None:
    first = api("PUT", "/kv/alpha", data=b"a", headers={"X-Request-Id": "c-42"})
    again = api("PUT", "/kv/alpha", data=b"a", headers={"X-Request-Id": "c-42"})
    assert again.json["revision"] == first.json["revision"]
    error(
        api("PUT", "/kv/beta", data=b"a", headers={"X-Request-Id": "c-42"}),
        409,
        "request_id_reused",
    )
    error(api("GET", "/kv/beta"), 404, "not_found")
    error(
        api("PUT", "/kv/a", data=b"a", headers={"X-Request-Id": "x" * 129}), 400, "bad_request_id"
    )


def test_value_size_limit_is_413(api: Api) -> None:
    error(api("PUT", "/kv/big", data=b"x" * 1025), 413, "value_too_large")


def test_a_chunked_value_without_a_length_is_held_to_the_same_limit(api: Api) -> None:
    """No Content-Length to refuse up front: the body is measured as it is read, whether it
    arrived whole with the headers or not."""

    async def chunked(size: int) -> AsyncIterator[bytes]:
        yield b"x" * (size // 2)
        yield b"x" * (size - size // 2)

    error(api("PUT", "/kv/big", data=chunked(1025)), 413, "value_too_large")
    assert api("PUT", "/kv/fits", data=chunked(1024)).status == 201
    assert api("GET", "/kv/fits").body == b"x" * 1024


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("PUT", "/kv/a?tll=5", 400, "unknown_parameter"),
        ("PUT", "/kv/a?ttl=5&ttl=6", 400, "repeated_parameter"),
        ("PUT", "/kv/a?tll=1&ttl=5&ttl=6", 400, "unknown_parameter"),  # the first in order
        ("PUT", "/kv/a?ttl=5&tll=1&ttl=6", 400, "repeated_parameter"),
        ("PUT", "/kv/a?tt%6C=5&ttl=6", 400, "repeated_parameter"),  # the same name, encoded
        ("GET", "/kv/a?ttl=5", 400, "unknown_parameter"),
        ("DELETE", "/kv/a?prev_exist=false", 400, "unknown_parameter"),
        ("PUT", "/kv/a?ttl=abc", 400, "bad_ttl"),
        ("PUT", "/kv/a?ttl=0", 400, "bad_ttl"),
        ("PUT", "/kv/a?ttl=%EF%BC%95", 400, "bad_ttl"),
        ("PUT", "/kv/a?prev_revision=%C2%B2", 400, "bad_revision"),
        ("PUT", "/kv/a?prev_revision=18446744073709551616", 400, "bad_revision"),
        ("PUT", "/kv/a?prev_value=a&prev_revision=1", 400, "bad_condition"),
        ("PUT", "/kv/a?prev_value=a&prev_value_base64=YQ==", 400, "bad_condition"),
        ("PUT", "/kv/a?prev_value_base64=***", 400, "bad_prev_value"),
        ("PUT", "/kv/a?prev_exist=maybe", 400, "bad_prev_exist"),
        ("GET", "/kv/?limit=0", 400, "bad_limit"),
        ("GET", "/kv/?values=yes", 400, "bad_values"),
        ("GET", "/kv/a?consistency=eventual", 400, "bad_consistency"),
        ("PUT", "/kv/", 400, "bad_key"),
        ("PUT", "/kv/%FF", 400, "bad_key"),
        ("PUT", "/kv/a?prev_value=%FF", 400, "bad_encoding"),
        ("GET", "/kv/?prefix=%FF", 400, "bad_encoding"),
        ("GET", "/kv/?start_after=a%C3", 400, "bad_encoding"),
        ("GET", "/kv/?end=%FF", 400, "bad_encoding"),
        ("GET", "/kv/?count=maybe", 400, "bad_count"),
        ("GET", "/kv/?count=true&limit=5", 400, "bad_count"),
        ("DELETE", "/kv/", 400, "confirm_required"),
        ("DELETE", "/kv/?prefix=a", 400, "confirm_required"),
        ("DELETE", "/kv/?prefix=a&confirm=yes", 400, "confirm_required"),
        ("DELETE", "/kv/?confirm=true", 400, "bad_range"),
        ("DELETE", "/kv/?prefix=a&confirm=true&limit=1", 400, "unknown_parameter"),
        ("GET", "/kv/?%FF=1", 400, "bad_encoding"),
        ("PUT", "/kv/" + "k" * 1025, 400, "bad_key"),
        ("GET", "/status?x=1", 400, "unknown_parameter"),
        ("GET", "/nowhere", 404, "not_found"),
        ("POST", "/kv/a", 405, "method_not_allowed"),
    ],
)
def test_bad_input_is_a_json_4xx_and_writes_nothing(
    api: Api, method: str, path: str, status: int, code: str
) -> None:
    reply = api(method, path, data=b"v")
    error(reply, status, code)
    if status == 405:
        assert "PUT" in reply.headers["Allow"]
    assert api("GET", "/kv/?prefix=").json == []


def test_a_compare_with_undecodable_bytes_never_matches_a_replacement_character(
    api: Api,
) -> None:
    assert api("PUT", "/kv/r", data="\ufffd".encode()).status == 201
    error(api("PUT", "/kv/r?prev_value=%FF", data=b"new"), 400, "bad_encoding")
    error(api("DELETE", "/kv/r?prev_value=%FF"), 400, "bad_encoding")
    assert api("GET", "/kv/r").body == "\ufffd".encode()
    assert api("PUT", "/kv/r?prev_value=%EF%BF%BD", data=b"new").status == 200  # real U+FFFD


@pytest.mark.parametrize("name", ["X-Request-Id", "If-Match", "If-None-Match"])
def test_a_header_given_twice_is_refused(api: Api, name: str) -> None:
    value = {"X-Request-Id": "r1", "If-Match": '"1"', "If-None-Match": "*"}[name]
    twice = CIMultiDict([(name, value), (name, value)])
    body = error(api("PUT", "/kv/h", data=b"v", headers=twice), 400, "repeated_header")
    assert body["header"] == name
    assert api("GET", "/kv/h").status == 404


def test_a_key_may_hold_a_newline(api: Api) -> None:
    assert api("PUT", "/kv/cr%0Alf", data=b"x").json["key"] == "cr\nlf"
    assert api("GET", "/kv/cr%0Alf").body == b"x"


def test_auth_token_guards_everything_but_health_and_ready(tmp_path: Path) -> None:
    guarded = make_api(tmp_path, auth_token="t0ken")
    try:
        for method, path in [
            ("PUT", "/kv/a"),
            ("GET", "/kv/a"),
            ("GET", "/status"),
            ("GET", "/metrics"),
        ]:
            error(guarded(method, path, data=b"v"), 401, "unauthorized")
        assert guarded("GET", "/health").status == 200
        assert guarded("GET", "/ready").status == 200
        ok = guarded("PUT", "/kv/a", data=b"v", headers={"Authorization": "Bearer t0ken"})
        assert ok.status == 201
    finally:
        guarded.close()


def test_status_health_ready_and_metrics(api: Api) -> None:
    api("PUT", "/kv/k", data=b"v")
    status = api("GET", "/status").json
    assert status["node_id"] == "solo" and status["role"] == "leader"
    assert status["keys"] == 1 and status["applied_index"] == status["commit_index"]
    assert status["digest"] is None  # only when asked: it hashes every key
    assert len(api("GET", "/status?digest=true").json["digest"]) == 64
    assert api("GET", "/health").json == {"status": "ok"}
    assert api("GET", "/ready").json == {"ready": True}
    assert status["leader"] == LEADER and status["leader_raft_addr"] == "127.0.0.1:4321"
    for unusual in ("PROPFIND", "PURGE"):  # methods HTTP knows, kvnode does not serve
        assert api(unusual, "/kv/k").status == 405
    metrics = api("GET", "/metrics")
    assert metrics.status == 200 and b"kvnode_keys 1.0" in metrics.body
    # Methods kvnode does not serve share one series instead of adding one each.
    assert b'method="other",status="405"} 2.0' in metrics.body
    assert b"PROPFIND" not in metrics.body
    text = metrics.body.decode()
    assert 'kvnode_http_request_seconds_count{method="PUT",route="/kv/{key}"} 1.0' in text
    assert "kvnode_has_leader 1.0" in text and "kvnode_leader_changes_total 1.0" in text
    assert "process_cpu_seconds_total" in text and "python_gc_objects_collected_total" in text
    assert "kvnode_proposals_committed_total" in text and "kvnode_apply_seconds_count 1.0" in text


def test_writes_that_add_data_stop_at_the_quota_while_reads_and_deletes_go_on(
    tmp_path: Path,
) -> None:
    api = make_api(tmp_path, quota_bytes=100)
    try:
        first = api("PUT", "/kv/a", data=b"x" * 60, headers={"X-Request-Id": "q1"})
        assert first.status == 201
        assert api("PUT", "/kv/b", data=b"y" * 60).status == 201  # 61 bytes held: under
        body = error(api("PUT", "/kv/c", data=b"z"), 507, "quota_exceeded")
        assert "quota_bytes" in body["message"]
        txn = {"compare": [], "success": [{"put": {"key": "d", "value": "1"}}]}
        error(api("POST", "/txn", data=orjson.dumps(txn)), 507, "quota_exceeded")
        retried = api("PUT", "/kv/a", data=b"x" * 60, headers={"X-Request-Id": "q1"})
        assert retried.json["revision"] == first.json["revision"]  # its first answer
        assert api("GET", "/kv/a").status == 200
        status = api("GET", "/status").json
        assert status["store_bytes"] == 122 and status["quota_bytes"] == 100
        assert b"kvnode_store_bytes 122.0" in api("GET", "/metrics").body
        deletes = {"compare": [], "success": [{"delete": {"key": "b"}}]}
        assert api("POST", "/txn", data=orjson.dumps(deletes)).status == 200
        assert api("PUT", "/kv/c", data=b"z").status == 201  # room again
    finally:
        api.close()
