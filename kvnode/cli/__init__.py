"""The `kvnode` command line: run a node, run a local cluster, and talk to a cluster.

`common` defines the `main` group and what every command shares; each other module holds
one group of commands and registers them on `main` when it is imported, below. None of
them imports this package's `__init__`, so there is no import cycle.
"""

from kvnode.cli import (  # noqa: F401 - imported for the commands they register
    bench,
    chaos,
    cluster,
    coordination,
    health,
    keys,
    membership,
    operations,
    serve,
)
from kvnode.cli.common import main

__all__ = ["main"]
