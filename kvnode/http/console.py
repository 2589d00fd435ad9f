"""The web console: `/ui`, a page every node serves (kvnode/http/static/).

The page is plain HTML, CSS and JavaScript with no build step. It holds no data and no
secret, so it is served without a token; everything it shows it asks of the public API
with the token the user types in (kept in the page's memory only). The headers below
keep what it shows from running as code even if an escape were missed: scripts and
styles come only from the node itself, and the page cannot be framed.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from kvnode.http.request import ApiError

CONSOLE_PATH = "/ui"
FILES = {
    "index.html": "text/html",
    "console.js": "text/javascript",
    "console.css": "text/css",
}
SECURITY_HEADERS = {
    # connect-src: the page asks the other members too (kvnode.http.cors).
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self' http: https:; base-uri 'none'; form-action 'none';"
        " frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def is_console(path: str) -> bool:
    """Whether a request is for the console's files (served without a token)."""
    return path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/")


def add_console_routes(router: web.UrlDispatcher) -> None:
    """`GET /ui` (and `/ui/`) is the page; `/ui/<file>` its script and style."""
    static = resources.files("kvnode.http") / "static"
    bodies = {name: (static / name).read_bytes() for name in FILES}

    async def serve(request: web.Request) -> web.Response:
        name = request.match_info.get("name") or "index.html"
        if name not in bodies:
            raise ApiError(404, "not_found", f"the console has no file {name!r}")
        return web.Response(
            body=bodies[name],
            content_type=FILES[name],
            charset="utf-8",
            headers=SECURITY_HEADERS,
        )

    router.add_get(CONSOLE_PATH, serve)
    router.add_get(CONSOLE_PATH + "/", serve)
    router.add_get(CONSOLE_PATH + "/{name}", serve)
