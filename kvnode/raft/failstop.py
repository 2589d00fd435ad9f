"""Fail-stop: the node exits at the first storage error instead of limping on.

A node whose disk refuses a write (ENOSPC, EIO, EMFILE) cannot vouch for what it
would acknowledge or serve next. PySyncObj would log the exception and retry on
every tick (or, in the apply path, forever), so a node with a full disk kept
answering `/ready` while falling behind. Here the first such error is one
CRITICAL line and exit code 75; the supervisor (or operator) restarts the node
once the disk is fixed, and it recovers from what is on disk.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

from kvnode.storage.errors import StorageError

log = logging.getLogger(__name__)

EXIT_STORAGE_FAILURE = 75
P = ParamSpec("P")
R = TypeVar("R")


def fail_stop(reason: str) -> NoReturn:
    """Stop the process: continuing would serve or acknowledge data no one can vouch for."""
    log.critical("stopping the node: %s", reason)
    logging.shutdown()
    os._exit(EXIT_STORAGE_FAILURE)


def on_storage_error(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a method that writes to disk: any storage or OS error fail-stops the node."""

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(*args, **kwargs)
            except (StorageError, OSError) as exc:
                fail_stop(f"cannot {what}: {exc}")

        return guarded

    return decorate
