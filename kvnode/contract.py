"""Names and limits of the HTTP contract that the API, the client and the CLI share, kept in
one dependency-free module so each of them (and `--help`) spells them the same way."""

from __future__ import annotations

CONSISTENCY_MODES = ("linearizable", "stale")
DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 100_000
