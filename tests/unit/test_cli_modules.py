"""The CLI imports a command's module only when it is asked for (cli/common.py's
COMMAND_MODULES): every command must be in that map, under the module that registers
it, or it would vanish; and a key command must not pull in the server or storage."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import kvnode.cli
from kvnode.cli.common import COMMAND_MODULES, main


def test_every_registered_command_is_mapped_to_its_module() -> None:
    for module in pkgutil.iter_modules(kvnode.cli.__path__):
        importlib.import_module(f"kvnode.cli.{module.name}")
    registered = {name: command.callback.__module__ for name, command in main.commands.items()}
    assert registered == COMMAND_MODULES


def test_a_key_command_imports_neither_the_server_nor_the_storage() -> None:
    probe = (
        "import sys; from click.testing import CliRunner; from kvnode.cli import main;"
        " CliRunner().invoke(main, ['get', '--help']);"
        " print(sorted(m for m in sys.modules if m.startswith(('kvnode.storage',"
        " 'kvnode.server', 'kvnode.raft', 'kvnode.bench', 'kvnode.http'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]", loaded.stdout
