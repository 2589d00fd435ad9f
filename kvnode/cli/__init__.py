"""The `kvnode` command line: run a node, run a local cluster, and talk to a cluster.

`common` defines the `main` group and what every command shares; each other module holds
one group of commands and registers them on `main` when it is imported, which `main`
does on demand (common.COMMAND_MODULES): a command starts without importing the others.
None of the modules imports this package's `__init__`, so there is no import cycle.
"""

from kvnode.cli.common import main

__all__ = ["main"]
