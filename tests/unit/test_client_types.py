"""The client's typed results against a node's real listener: a list gives `KeyItem`s
whose values are the exact bytes stored (text or not), and `to_json` gives back the very
object the API listed, so the CLI's `--json` output stays the API's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kvnode.client import Client, KeyItem
from tests.unit.api.served_api import Api, make_api

BINARY = b"\xff\x00binary"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    api = make_api(tmp_path)
    yield api
    api.close()


def test_a_list_gives_typed_keys_with_their_exact_values(api: Api) -> None:
    async def listed() -> tuple[list[KeyItem], list[KeyItem]]:
        async with Client([api.url], timeout=5) as client:
            await client.put("t/text", b"plain")
            await client.put("t/binary", BINARY, ttl=600)
            await client.put("u/other", b"not listed")
            return await client.list("t/", values=True), await client.list("t/")

    with_values, keys_only = api.loop.run_until_complete(listed())
    assert [(item.key, item.value) for item in with_values] == [
        ("t/binary", BINARY),
        ("t/text", b"plain"),
    ]
    assert with_values[0].expire_at is not None and with_values[1].expire_at is None
    assert all(item.create_revision <= item.revision for item in with_values)
    assert [item.value for item in keys_only] == [None, None]
    assert [item.to_json() for item in with_values] == api("GET", "/kv/?prefix=t/&values=true").json


def test_a_listed_key_read_back_from_its_json_is_the_same_key() -> None:
    item = KeyItem("k", revision=7, create_revision=3, expire_at=None, value=BINARY)
    assert item.to_json()["value_base64"] and "value" not in item.to_json()
    assert KeyItem.from_json(item.to_json()) == item
