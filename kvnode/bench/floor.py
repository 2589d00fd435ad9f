"""The HTTP floor: what a request costs in the server layers under kvnode's KV path.

Four servers answer `GET` and `PUT` on `/kv/<key>` with a 100-byte value, each in a
process of its own, on uvloop like a node:

- `application`: an aiohttp `web.Application` with one route (what kvnode's routes use);
- `server`: aiohttp's low-level `web.Server`, no router and no middleware;
- `protocol`: an `asyncio.Protocol` on aiohttp's own C parser (llhttp), writing a
  prebuilt reply: about the least any Python server on this stack can do;
- `kvnode`: one real `kvnode serve` (a single node, fsync off so the disk is not
  measured): `GET` with `?consistency=stale`, `PUT` through Raft and the state machine.

`hey` drives each in turn, round after round (interleaved, so a busy moment hits all
of them alike), and the server's CPU time per request (user + system, from /proc) is
the number to compare; the medians are printed. Run it with `scripts/bench.sh
http-floor [--seconds S] [--rounds N] [--connections C]`; it needs `hey` on the PATH.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import click
from aiohttp.base_protocol import BaseProtocol

from kvnode.bench.hey_rows import cpu_seconds

VALUE = b"v" * 100
REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 100\r\n\r\n" + VALUE
)
SERVERS = ("application", "server", "protocol", "kvnode")
READY_SECONDS = 30.0


def serve_application(port: int) -> None:
    from aiohttp import web

    async def get(_request: web.Request) -> web.Response:
        return web.Response(body=VALUE)

    async def put(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=b'{"ok":true}', content_type="application/json")

    app = web.Application()
    app.router.add_get("/kv/{key:.+}", get)
    app.router.add_put("/kv/{key:.+}", put)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def serve_server(port: int) -> None:
    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.Response:
        if request.method == "PUT":
            await request.read()
        return web.Response(body=VALUE)

    async def main() -> None:
        server = web.Server(handle, access_log=None)
        await asyncio.get_running_loop().create_server(server, "127.0.0.1", port)
        await asyncio.Event().wait()

    asyncio.run(main())


class FloorProtocol(BaseProtocol):
    """Parses with aiohttp's C parser and answers every complete request at once (the
    parser reads a body into its payload stream; this server does not look at it)."""

    def __init__(self) -> None:
        from aiohttp.http_parser import HttpRequestParser

        loop = asyncio.get_running_loop()
        super().__init__(loop)
        self._requests = HttpRequestParser(self, loop, 2**16)

    def data_received(self, data: bytes) -> None:
        messages, _upgraded, _tail = self._requests.feed_data(data)
        assert self.transport is not None
        for _message, _payload in messages:
            self.transport.write(REPLY)


def serve_protocol(port: int) -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_server(FloorProtocol, "127.0.0.1", port)
        await asyncio.Event().wait()

    asyncio.run(main())


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start(kind: str, port: int, data_dir: Path) -> subprocess.Popen[bytes]:
    if kind == "kvnode":
        command = [
            *("serve", "--http-addr", f"127.0.0.1:{port}"),
            *("--raft-addr", f"127.0.0.1:{free_port()}"),
            *("--data-dir", str(data_dir / "kvnode"), "--fsync", "never"),
        ]
        argv = [sys.executable, "-m", "kvnode", *command]
    else:
        argv = [sys.executable, "-m", "kvnode.bench.floor", "serve", kind, str(port)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise click.ClickException(f"a server on port {port} exited at start")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise click.ClickException(f"nothing listened on port {port} within {READY_SECONDS:g} s")


def seed_kvnode(port: int) -> None:
    """Once the node has a leader, write the key the GETs read."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/kv/floor", data=VALUE, method="PUT"
            )
            with urllib.request.urlopen(request, timeout=5):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)  # no leader yet (503)
    raise click.ClickException(f"the kvnode node on port {port} took no write")


def drive(url: str, method: str, seconds: float, connections: int, body: Path) -> int:
    """Run hey against `url`; how many requests got a 2xx."""
    command = ["hey", "-z", f"{seconds:g}s", "-c", str(connections), "-m", method]
    if method == "PUT":
        command += ["-D", str(body)]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    return sum(int(n) for n in re.findall(r"\[2\d\d\]\s+(\d+) responses", output))


@click.group()
def main() -> None:
    """The HTTP floor benchmark (see the module's docstring)."""


@main.command("serve", hidden=True)
@click.argument("kind", type=click.Choice(SERVERS[:3]))
@click.argument("port", type=int)
def serve(kind: str, port: int) -> None:
    import uvloop

    uvloop.install()
    {"application": serve_application, "server": serve_server, "protocol": serve_protocol}[kind](
        port
    )


@main.command("run")
@click.option("--seconds", default=5.0, show_default=True, help="Per server and workload.")
@click.option("--rounds", default=3, show_default=True)
@click.option("--connections", default=64, show_default=True)
def run(seconds: float, rounds: int, connections: int) -> None:
    """Interleaved rounds over the four servers; medians of CPU µs per request."""
    if shutil.which("hey") is None:
        raise click.ClickException("hey is not installed (apt-get install hey)")
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "value"
        body.write_bytes(VALUE)
        ports = {kind: free_port() for kind in SERVERS}
        processes = {kind: start(kind, ports[kind], Path(tmp)) for kind in SERVERS}
        try:
            for kind in SERVERS:
                wait_until_listening(ports[kind], processes[kind])
            seed_kvnode(ports["kvnode"])
            for _ in range(rounds):
                for kind in SERVERS:
                    for method in ("GET", "PUT"):
                        query = "?consistency=stale" if method == "GET" else ""
                        url = f"http://127.0.0.1:{ports[kind]}/kv/floor{query}"
                        before = cpu_seconds(processes[kind].pid)
                        done = drive(url, method, seconds, connections, body)
                        used = cpu_seconds(processes[kind].pid) - before
                        per_request = used / done * 1e6 if done else float("nan")
                        results.setdefault((kind, method), []).append((per_request, done / seconds))
        finally:
            for process in processes.values():
                process.terminate()
                process.wait(30)
    click.echo(f"{'server':<12} {'method':<6} {'CPU µs/request':>15} {'requests/s':>11}")
    for (kind, method), samples in results.items():
        cpu = statistics.median(s[0] for s in samples)
        rate = statistics.median(s[1] for s in samples)
        click.echo(f"{kind:<12} {method:<6} {cpu:>15.1f} {rate:>11.0f}")


if __name__ == "__main__":
    main()
