"""The Raft journal's fdatasync in a thread of its own, so the tick thread never waits on disk.

PySyncObj's tick thread receives, replicates, sends heartbeats and applies. When
it also ran the journal's fdatasync, a disk busy with something else (a node's
forked snapshot writer, or another node's on the same disk) held every heartbeat
up for as long as the fsync took: 100-190 ms measured with a million keys.

Here the tick thread only asks for a sync (`request`); this thread runs one
`sync_now()` for everything appended up to that moment, then wakes the tick loop,
which releases the acknowledgements that waited for it (transport.py) and lets
the leader count its own copy towards a commit (leader_match.py). Requests that
arrive during a sync share the next one (group commit).

Other slow disk work that must not hold the tick thread up runs here too, after
the journal's sync (`run_later`): the state machine's periodic WAL sync
(`StateMachine.sync_later`), the rewrite of the journal file after a compaction,
and the commit-index hint.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

from kvnode.raft.failstop import fail_stop
from kvnode.raft.pysyncobj.journal import DurableJournal
from kvnode.storage.errors import StorageError
from kvnode.thread_names import SYNC_THREAD, name_os_thread


class JournalSyncer:
    def __init__(self, journal: DurableJournal, on_synced: Callable[[], None]) -> None:
        self._journal = journal
        self._on_synced = on_synced
        # Held while no sync is wanted; `request` releases it, the sync thread takes it.
        # A lock as a one-bit signal: `threading.Event` is a Condition in Python, and its
        # `set` and `wait` cost several µs of the GIL on each side, once per batch on
        # every node.
        self._wanted = threading.Lock()
        self._wanted.acquire()
        self._stopping = False
        self._others: list[tuple[Callable[[], None], str]] = []
        self._others_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="journal-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request(self) -> None:
        """Sync everything appended so far, soon (any thread; cheap when already asked)."""
        if self._wanted.locked():
            with contextlib.suppress(RuntimeError):  # another thread asked at the same time
                self._wanted.release()

    def run_later(self, task: Callable[[], None], what: str) -> None:
        """Run other slow disk work here too, after the journal's next sync: another file's
        fsync, the journal's compaction; a failure stops the node ("cannot <what>")."""
        with self._others_lock:
            self._others.append((task, what))
        self.request()

    def stop(self) -> None:
        """Finish the sync under way and end the thread (the journal syncs itself on close)."""
        self._stopping = True
        self.request()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        name_os_thread(SYNC_THREAD)
        while True:
            # Taken before the sync starts: a change requested after this point is either
            # covered by this sync or asks for the next one.
            self._wanted.acquire()
            if self._stopping:
                return
            self._journal.sync_now()  # fail-stops the node if the disk refuses
            self._on_synced()
            with self._others_lock:
                others, self._others = self._others, []
            for task, what in others:
                try:
                    task()
                except (StorageError, OSError) as exc:
                    fail_stop(f"cannot {what}: {exc}")
