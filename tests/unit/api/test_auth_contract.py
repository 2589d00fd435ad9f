"""Scoped tokens: each role on each route, key prefixes on keys, lists, range deletes
and transactions, revocation, and the root token (`auth_token`) managing the others."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.unit.api.served_api import Api, error, make_api

ROOT = "root-secret-0123456789"
TOKENS = {
    "read-app": {"role": "read", "prefixes": ["app/"]},
    "rw-app": {"role": "readwrite", "prefixes": ["app/"]},
    "rw-all": {"role": "readwrite"},
    "metrics": {"role": "metrics"},
    "admin2": {"role": "admin"},
}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Api, dict[str, str]]]:
    """A node with auth on and one token of each kind; their secrets by id."""
    api = make_api(tmp_path, auth_token=ROOT)
    secrets: dict[str, str] = {}
    for token_id, spec in TOKENS.items():
        made = api(
            "POST",
            "/auth/tokens",
            data=orjson.dumps({"id": token_id, **spec}),
            headers=bearer(ROOT),
        )
        assert made.status == 201, made.body
        assert made.json["id"] == token_id and made.json["token"].startswith("kvn_")
        secrets[token_id] = made.json["token"]
    api("PUT", "/kv/app/x", data=b"v", headers=bearer(ROOT))
    api("PUT", "/kv/other", data=b"v", headers=bearer(ROOT))
    yield api, secrets
    api.close()


ALLOWED, FORBIDDEN = True, False
CASES = [
    ("read-app", "GET", "/kv/app/x", None, ALLOWED),
    ("read-app", "GET", "/kv/other", None, FORBIDDEN),
    ("read-app", "PUT", "/kv/app/x", b"w", FORBIDDEN),
    ("read-app", "GET", "/kv/?prefix=app/", None, ALLOWED),
    ("read-app", "GET", "/kv/?prefix=app/&count=true", None, ALLOWED),
    ("read-app", "GET", "/kv/?prefix=", None, FORBIDDEN),
    ("read-app", "GET", "/kv/", None, FORBIDDEN),
    ("read-app", "GET", "/kv/app/x?watch=true&from_revision=1&timeout=1", None, ALLOWED),
    ("read-app", "GET", "/kv/?prefix=ap&watch=true&timeout=1", None, FORBIDDEN),
    ("read-app", "POST", "/txn", b'{"success":[{"get":{"key":"app/x"}}]}', ALLOWED),
    ("read-app", "POST", "/txn", b'{"success":[{"put":{"key":"app/x","value":"w"}}]}', FORBIDDEN),
    ("read-app", "GET", "/lease/", None, FORBIDDEN),
    ("read-app", "GET", "/cluster/members", None, ALLOWED),
    ("read-app", "GET", "/status", None, ALLOWED),
    ("read-app", "GET", "/metrics", None, FORBIDDEN),
    ("read-app", "GET", "/snapshot", None, FORBIDDEN),
    ("read-app", "GET", "/auth/tokens", None, FORBIDDEN),
    ("rw-app", "PUT", "/kv/app/y", b"w", ALLOWED),
    ("rw-app", "PUT", "/kv/other", b"w", FORBIDDEN),
    ("rw-app", "DELETE", "/kv/?prefix=app/y&confirm=true", None, ALLOWED),
    ("rw-app", "DELETE", "/kv/?end=b&confirm=true", None, FORBIDDEN),
    (
        "rw-app",
        "POST",
        "/txn",
        b'{"compare":[{"key":"other","target":"exists","op":"==","value":true}]}',
        FORBIDDEN,
    ),
    ("rw-app", "POST", "/txn", b'{"success":[{"delete_prefix":{"prefix":"app/z"}}]}', ALLOWED),
    ("rw-app", "POST", "/lease?ttl=5", None, FORBIDDEN),
    ("rw-all", "PUT", "/kv/other", b"w", ALLOWED),
    ("rw-all", "POST", "/lease?ttl=5", None, ALLOWED),
    ("rw-all", "GET", "/lease/", None, ALLOWED),
    ("rw-all", "DELETE", "/cluster/members/nobody", None, FORBIDDEN),
    ("rw-all", "GET", "/snapshot", None, FORBIDDEN),
    ("metrics", "GET", "/metrics", None, ALLOWED),
    ("metrics", "GET", "/status", None, ALLOWED),
    ("metrics", "GET", "/kv/app/x", None, FORBIDDEN),
    ("admin2", "GET", "/snapshot", None, ALLOWED),
    ("admin2", "GET", "/auth/tokens", None, ALLOWED),
    ("admin2", "GET", "/kv/other", None, ALLOWED),
]


@pytest.mark.parametrize(("token", "method", "path", "body", "allowed"), CASES)
def test_each_role_on_each_route(
    secured: tuple[Api, dict[str, str]],
    token: str,
    method: str,
    path: str,
    body: bytes | None,
    allowed: bool,
) -> None:
    api, secrets = secured
    reply = api(method, path, data=body, headers=bearer(secrets[token]))
    if allowed:
        assert reply.status < 400, (reply.status, reply.body)
    else:
        assert error(reply, 403, "forbidden")["message"].startswith(f"token {token!r}")


def test_no_token_an_unknown_one_or_a_revoked_one_is_401(
    secured: tuple[Api, dict[str, str]],
) -> None:
    api, secrets = secured
    error(api("GET", "/kv/app/x"), 401, "unauthorized")
    error(api("GET", "/kv/app/x", headers=bearer("kvn_not-a-token-at-all")), 401, "unauthorized")
    assert api("GET", "/health").status == 200 and api("GET", "/ready").status == 200
    listed = api("GET", "/auth/tokens", headers=bearer(ROOT)).json
    assert [t["id"] for t in listed] == sorted(TOKENS)
    assert all(set(t) == {"id", "role", "prefixes"} for t in listed), "no secret is listed"
    revoked = api("DELETE", "/auth/tokens/read-app", headers=bearer(ROOT))
    assert revoked.json == {"revoked": True, "id": "read-app"}
    error(api("GET", "/kv/app/x", headers=bearer(secrets["read-app"])), 401, "unauthorized")
    error(api("DELETE", "/auth/tokens/read-app", headers=bearer(ROOT)), 404, "token_not_found")


def test_creating_tokens_checks_its_input_and_a_retry_gets_the_same_answer(
    secured: tuple[Api, dict[str, str]],
) -> None:
    api, _secrets = secured
    root = bearer(ROOT)
    for body, code in [
        ({"role": "superuser"}, "bad_token"),
        ({"role": "read", "prefixes": [""]}, "bad_token"),
        ({"role": "read", "id": "no spaces"}, "bad_token"),
        ({"role": "read", "token": "short"}, "bad_token"),
        ({"role": "read", "ttl": 5}, "bad_token"),
    ]:
        error(api("POST", "/auth/tokens", data=orjson.dumps(body), headers=root), 400, code)
    error(
        api("POST", "/auth/tokens", data=b'{"id": "rw-all", "role": "read"}', headers=root),
        409,
        "token_exists",
    )
    drawn = orjson.dumps({"role": "read"})
    with_id = {**root, "X-Request-Id": "drawn"}
    error(api("POST", "/auth/tokens", data=drawn, headers=with_id), 400, "bad_token")
    mine = orjson.dumps({"id": "ci", "role": "read", "token": "kvn_ci-secret-0123456789"})
    headers = {**root, "X-Request-Id": "make-ci"}
    first = api("POST", "/auth/tokens", data=mine, headers=headers)
    again = api("POST", "/auth/tokens", data=mine, headers=headers)
    assert first.status == again.status == 201 and first.json == again.json
    assert api("GET", "/kv/app/x", headers=bearer("kvn_ci-secret-0123456789")).status == 200


def test_tokens_need_auth_on(tmp_path: Path) -> None:
    api = make_api(tmp_path)
    try:
        error(api("POST", "/auth/tokens", data=b'{"role": "read"}'), 409, "auth_disabled")
    finally:
        api.close()
