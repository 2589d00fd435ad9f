"""The real aiohttp app over a real state machine and a consensus that applies at once
(local_consensus.py), called in process: what the HTTP contract tests talk to."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp.test_utils import TestClient, TestServer

from kvnode.config import NodeConfig
from kvnode.http.app import create_app
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
    """Synchronous calls into the app, on one event loop kept for the test."""

    def __init__(self, service: KvService) -> None:
        self.service = service
        self.loop = asyncio.new_event_loop()
        app = create_app(service, body_timeout=1.0)
        self.client = TestClient(TestServer(app), loop=self.loop)
        self.loop.run_until_complete(self.client.start_server())

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
        self.loop.close()
        self.service.close()


def make_api(tmp_path: Path, **settings: Any) -> Api:
    config = NodeConfig(node_id="solo", data_dir=tmp_path / "node", **settings)
    return Api(KvService(config, LocalConsensus))


def error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.body)
    body: dict[str, Any] = reply.json
    assert body["error"] == code and body["message"], body
    return body
