"""The wall clock, in the unit every TTL deadline and command timestamp uses."""

from __future__ import annotations

import time


def wall_clock_ms() -> int:
    """Unix time in milliseconds."""
    return time.time_ns() // 1_000_000
