"""Warnings that an outsider can trigger at will (bad peers, floods) are logged at most once
per interval and key, with a count of what was held back, so they cannot flood the log."""

from __future__ import annotations

import logging
import time

LOG_EVERY_SECONDS = 30.0


class LogLimiter:
    def __init__(self, logger: logging.Logger, every: float = LOG_EVERY_SECONDS) -> None:
        self._log = logger
        self._every = every
        self._state: dict[str, tuple[float, int]] = {}  # key -> (last logged, held back)

    def warning(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        last, held = self._state.get(key, (-self._every, 0))
        if now - last < self._every:
            self._state[key] = (last, held + 1)
            return
        suffix = f" ({held} more like it since the last report)" if held else ""
        self._log.warning(message + suffix, *args)
        self._state[key] = (now, 0)
