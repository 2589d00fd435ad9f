"""The layers of docs/ARCHITECTURE.md hold in the code: no module of kvnode imports itself
back through others (type-only imports included), only raft/pysyncobj/ imports PySyncObj
(and the Raft floor benchmark), only http/ (and the composition root) imports aiohttp's
web server, and storage/ knows nothing of Raft, HTTP or the service."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kvnode"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {
    module_name(path): path for path in PACKAGE.rglob("*.py") if not path.name.endswith("_pb2.py")
}


def imported(path: Path) -> Iterator[str]:
    """Every module `path` imports, at any depth of its code (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def kvnode_imports(path: Path) -> set[str]:
    """The kvnode modules `path` imports (a package's `from . import x` is not itself)."""
    own = module_name(path)
    return {name for name in imported(path) if name in MODULES and name != own}


def test_no_module_imports_itself_back() -> None:
    graph = {name: kvnode_imports(path) for name, path in MODULES.items()}
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycle = [*trail[trail.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, [*trail, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def importers_of(prefix: str) -> set[str]:
    return {
        name
        for name, path in MODULES.items()
        if any(i == prefix or i.startswith(prefix + ".") for i in imported(path))
    }


def test_only_the_pysyncobj_folder_imports_pysyncobj() -> None:
    outside = {n for n in importers_of("pysyncobj") if not n.startswith("kvnode.raft.pysyncobj")}
    # The Raft floor benchmark measures PySyncObj as it comes, without kvnode's patches.
    assert outside <= {"kvnode.bench.raft_floor"}, outside


def test_only_the_http_layer_serves_with_aiohttp_web() -> None:
    serving = importers_of("aiohttp.web") | {
        name for name, path in MODULES.items() if "from aiohttp import web" in path.read_text()
    }
    outside = {n for n in serving if not n.startswith("kvnode.http")}
    # The composition root, and benchmarks that serve (the watch bench, the HTTP floor).
    assert outside <= {"kvnode.server", "kvnode.bench.watch", "kvnode.bench.floor"}, outside


def test_storage_knows_nothing_of_raft_http_or_the_service() -> None:
    for name, path in MODULES.items():
        if name.startswith("kvnode.storage"):
            above = {
                i
                for i in kvnode_imports(path)
                if i.startswith(("kvnode.raft", "kvnode.http", "kvnode.service", "kvnode.cli"))
            }
            assert above == set(), (name, above)


def test_the_client_needs_nothing_of_the_server() -> None:
    """`pip install kvnode` without the server extra is a working client (docs/client.md):
    the client package imports the standard library, aiohttp, orjson and the API's
    contract, nothing else of kvnode's or the node's packages."""
    allowed_third_party = {"aiohttp", "orjson"}
    for name, path in MODULES.items():
        if not name.startswith("kvnode.client"):
            continue
        for module in imported(path):
            top = module.partition(".")[0]
            if top == "kvnode":
                assert module.startswith(("kvnode.client", "kvnode.contract")), (name, module)
            elif top not in sys.stdlib_module_names and top != "__future__":
                assert top in allowed_third_party, (name, module)
