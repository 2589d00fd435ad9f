"""A node's real HTTP listener (the application, the lean single-key path and the guard,
on a socket on 127.0.0.1) over a real state machine and a consensus that applies at once
(local_consensus.py), in the test's process: what the HTTP contract tests talk to."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from kvnode.config import NodeConfig
from kvnode.http.listener import start_listener
from kvnode.service import KvService
from tests.unit.api.local_consensus import LocalConsensus


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        assert self.headers["Content-Type"].startswith("application/json"), self.headers
        return orjson.loads(self.body)


class Api:
    """Synchronous calls to the listener, on one event loop kept for the test; `client`
    is a session on the listener's URL for tests that need several requests at once."""

    def __init__(self, service: KvService) -> None:
        self.service = service
        self.loop = asyncio.new_event_loop()
        self.runner = self.loop.run_until_complete(
            start_listener(service, service.config, tls=None, max_connections=64, port=0)
        )
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self.client = self.loop.run_until_complete(self._session())

    async def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(base_url=self.url)

    @property
    def consensus(self) -> LocalConsensus:
        consensus = self.service.consensus
        assert isinstance(consensus, LocalConsensus)
        return consensus

    def __call__(self, method: str, path: str, **kwargs: Any) -> Reply:
        async def call() -> Reply:
            async with self.client.request(method, path, **kwargs) as response:
                return Reply(response.status, dict(response.headers), await response.read())

        reply = self.loop.run_until_complete(call())
        assert reply.headers["X-KV-Node"] == "solo", "every answer names the node"
        return reply

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.run_until_complete(self.runner.cleanup())
        self.loop.close()
        self.service.close()


def make_api(tmp_path: Path, **settings: Any) -> Api:
    config = NodeConfig(
        node_id="solo",
        data_dir=tmp_path / "node",
        **{"body_timeout": 1.0, **settings},
    )
    return Api(KvService(config, LocalConsensus))


def error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body)
    body: dict[str, Any] = reply.json
    assert body["error"] == code and body["message"], body
    return body
