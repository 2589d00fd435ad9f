"""kvnode's threads carry names the OS shows, and the benchmark counts CPU by them."""

from __future__ import annotations

import os
import threading
import time

from kvnode.bench.hey_rows import thread_cpu_seconds
from kvnode.thread_names import name_os_thread

BURN_SECONDS = 0.05


def test_a_named_thread_is_seen_by_the_os_with_the_cpu_it_used() -> None:
    burnt, finish = threading.Event(), threading.Event()

    def work() -> None:
        name_os_thread("kv-test")
        until = time.thread_time() + BURN_SECONDS
        while time.thread_time() < until:
            pass
        burnt.set()
        finish.wait(10)

    thread = threading.Thread(target=work)
    thread.start()
    try:
        assert burnt.wait(10)
        used = thread_cpu_seconds(os.getpid())
        assert used.get("kv-test", 0.0) >= BURN_SECONDS / 2  # clock ticks are coarse
    finally:
        finish.set()
        thread.join()
