"""RaftNode: the PySyncObj subclass that feeds committed entries to the StateMachine.

What PySyncObj does not give and how it is supplied here (see pysyncobj-facts):

- *Index and term of the entry being applied*: not passed to the method. The
  index is `raftLastApplied + 1` during the call (PySyncObj increments it right
  after the method returns); the term is read from the journal at that index.
- *Re-delivery after restart*: PySyncObj re-applies from its last dump. The
  StateMachine skips every index at or below its own `last_applied`.
- *Durability*: the journal is `DurableJournal`, fsynced by its own thread
  (journal_sync.py) so that a slow disk never holds heartbeats up. An
  acknowledgement or vote waits in the transport's outbox until what it vouches
  for is synced; the leader counts its own copy towards a commit only up to its
  synced index (leader_match.py); a single-node cluster syncs in `apply_command`
  before it acknowledges. The state machine's WAL is synced at most every 100 ms
  (an on-tick callback), off the per-entry path.
- *Snapshots*: a custom serializer writes kvnode's own checksummed snapshot
  (with PySyncObj's bookkeeping in its `extra` blob) as the one dump file that
  PySyncObj streams to lagging followers; the deserializer verifies it, makes it
  durable and installs it only if it is newer than the local state.
- *Failures PySyncObj would swallow*: an exception in the apply method makes it
  retry the entry forever, and a failing deserializer is logged while the node
  still reports success to the leader. kvnode instead stops the process
  (fail-stop) when its disk state cannot be trusted or written; it recovers
  from disk on restart.
- *Membership*: PySyncObj's single-server changes (`dynamicMembershipChange`): a
  change is in effect on a node as soon as its entry is in that node's log. PySyncObj
  does not itself refuse a second change while one is uncommitted (its guard is never
  armed), so `membership_change_pending` reads the log. The voters are saved to
  `raft.members` whenever they change (voters.py), for the next start.
- *Elections*: a timer that runs out starts a pre-vote round first (prevote.py);
  a leader that has not heard from a majority for one election timeout steps
  down (PySyncObj's leaderFallbackTimeout): check-quorum.

PySyncObj is imported only by `adapter.py`, beside this module; this one and the other
modules of `kvnode/raft/pysyncobj/` subclass or fill in its classes. kvnode's own Raft
rules (pre-vote, read index, leader match, catch-up, the follower's append) live one
folder up and do not touch PySyncObj.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from pathlib import Path
from typing import Any

import orjson

from kvnode.config import NodeConfig
from kvnode.consensus import StateMachine
from kvnode.raft.catch_up import CatchUp
from kvnode.raft.commit_notice import CommitNotice
from kvnode.raft.failstop import fail_stop
from kvnode.raft.journal_sync import JournalSyncer
from kvnode.raft.leader_match import LeaderMatch
from kvnode.raft.prevote import PreVote
from kvnode.raft.pysyncobj.adapter import (
    MEMBERSHIP_ENTRY,
    SyncObjBase,
    SyncObjConf,
    install,
    make_node,
    node_address,
    replicated_method,
)
from kvnode.raft.pysyncobj.journal import DurableJournal
from kvnode.raft.pysyncobj.transport import SyncedTransport
from kvnode.raft.pysyncobj.wakeup import Wakeup
from kvnode.raft.read_index import ReadCallback, ReadIndex
from kvnode.raft.voters import load_voters, save_voters
from kvnode.storage.background import FORK_TIMES, settle_in_child
from kvnode.storage.errors import StorageError
from kvnode.storage.fileformat import KIND_SNAPSHOT, fsync_dir
from kvnode.storage.image import peek_index
from kvnode.storage.layout import RAFT_SNAPSHOT
from kvnode.storage.machine import Entry
from kvnode.storage.outcome import Outcome
from kvnode.thread_names import RAFT_THREAD, name_os_thread

log = logging.getLogger(__name__)

ROLES = {0: "follower", 1: "candidate", 2: "leader"}
# Check-quorum: a leader that has not heard from a majority for one (maximum) election
# timeout steps down, so a leader cut off from the others stops leading as soon as they
# may have elected another.
LEADER_FALLBACK_FACTOR = 1
MACHINE_SYNC_INTERVAL = 0.1  # seconds; see _sync_machine
STALL_SECONDS = 0.05  # a gap between ticks longer than this enters `stall_windows`
# A gap longer than this fraction of the minimum election timeout is counted as a stall:
# two of them in a row can cost an election. (Gaps just over the 50 ms tick are normal.)
STALL_FRACTION = 0.5
STALL_WINDOW_SECONDS = 10
STALL_WINDOWS = 60
TRAILING_FRACTION = 4  # keep a quarter of snapshot_entries in the log after a snapshot
HEAD_BYTES = 64  # enough of a snapshot file for its header and index
MEMBERSHIP_MARK = bytes([MEMBERSHIP_ENTRY])
CONNECTION_RETRY_SECONDS = 1.0
DEFAULT_TICK_SECONDS = 0.05  # PySyncObj's autoTickPeriod


LogEntry = tuple[bytes, int, int]  # PySyncObj's (command, index, term)
RaftData = tuple[LogEntry, LogEntry, set[Any]]  # last entry, previous entry, members


def encode_raft_data(raft_data: RaftData) -> bytes:
    """PySyncObj's dump bookkeeping (last entry, previous entry, members), without pickle."""
    last, prev, nodes = raft_data
    return orjson.dumps(
        {
            "last": [last[0].hex(), last[1], last[2]],
            "prev": [prev[0].hex(), prev[1], prev[2]],
            "nodes": sorted(node_address(node) for node in nodes),
        }
    )


def write_restored_snapshot(
    machine: StateMachine, data_dir: Path, index: int, term: int, voters: tuple[str, ...]
) -> None:
    """Write the Raft snapshot of a node made from a backup at `index`, `term` (by `kvnode
    restore`): `machine`'s state, a log that ends there, and the new cluster's voters
    (PySyncObj takes them from the snapshot it loads). PySyncObj starts with its log at
    `index` and applies nothing twice."""
    last = (b"", index, term)
    previous = (b"", index - 1, term)
    extra = encode_raft_data((last, previous, {make_node(address) for address in voters}))
    machine.snapshot(data_dir / RAFT_SNAPSHOT, extra=extra)


def decode_raft_data(extra: bytes) -> RaftData:
    data = orjson.loads(extra)
    last, prev = data["last"], data["prev"]
    return (
        (bytes.fromhex(last[0]), last[1], last[2]),
        (bytes.fromhex(prev[0]), prev[1], prev[2]),
        {make_node(address) for address in data["nodes"]},
    )


class RaftNode(SyncObjBase):
    def __init__(self, config: NodeConfig, machine: StateMachine) -> None:
        # Everything the tick thread may touch must exist before SyncObj.__init__ starts it.
        install(config.max_value_bytes)
        self.kv_config = config
        self.machine = machine  # it guards itself: readers read it from other threads
        self.snapshots_installed = 0
        self.dump_path = Path(config.data_dir) / RAFT_SNAPSHOT
        self.wakeup = Wakeup()
        self.commit_notice = CommitNotice()
        self._known_leader: str | None = None
        self.leader_changes = 0
        self._leaderless_since: float | None = time.monotonic()
        self._last_machine_sync = 0.0
        # Heartbeats go out from this thread: a long gap between ticks is a stall that
        # can cost an election (reported in /status, measured by `scripts/bench.sh stall`).
        self._last_tick_at = 0.0
        self.longest_tick_gap = 0.0
        self.stall_threshold = STALL_FRACTION * config.election_timeout_min
        self.tick_stalls = 0
        # The longest gap of each 10-second window, the last STALL_WINDOWS of them.
        self.stall_windows: collections.deque[list[float]] = collections.deque(maxlen=STALL_WINDOWS)
        # Before the journal exists: whether this start is a fresh, empty replacement.
        self.catch_up = CatchUp(Path(config.data_dir), config.initial_state)
        self._saved_voters = load_voters(Path(config.data_dir))
        self._voters_version: tuple[int, int] | None = None  # of the voters last compared
        self.journal = DurableJournal(
            Path(config.data_dir),
            durable=config.durable,
            dump_file=self.dump_path,
            # Less than the thresholds, or the log would stay over them after compacting.
            trailing_entries=config.snapshot_entries // TRAILING_FRACTION,
            trailing_bytes=config.snapshot_bytes // TRAILING_FRACTION,
        )
        snapshot_index = self._snapshot_index()
        if snapshot_index:
            self.journal.start_at_snapshot(snapshot_index)
        self.journal_syncer = JournalSyncer(self.journal, on_synced=self.wakeup.notify)
        self.journal.run_later = self.journal_syncer.run_later
        self.journal_syncer.start()
        self.leader_match = LeaderMatch()
        self.prevote = PreVote(self, config.election_timeout_min)
        self.read_index = ReadIndex(self, timeout=config.election_timeout_max)
        conf = SyncObjConf(
            journalFile=self.journal,
            fullDumpFile=str(self.dump_path),
            serializer=self._serialize,
            deserializer=self._deserialize,
            password=config.cluster_secret or None,
            bindAddress=config.raft_addr,
            appendEntriesPeriod=config.append_entries_period,
            # The loop sleeps up to this long when nothing happens; a leader must wake
            # when a heartbeat is due, not up to PySyncObj's 50 ms later.
            autoTickPeriod=min(DEFAULT_TICK_SECONDS, config.append_entries_period),
            raftMinTimeout=config.election_timeout_min,
            raftMaxTimeout=config.election_timeout_max,
            connectionTimeout=max(3.5, config.election_timeout_max),
            # PySyncObj hangs up on a peer it does not know yet, and the peer only tries
            # again after this long: a member that connects just before it learns of a
            # membership change must not stay unreachable for PySyncObj's default 5 s.
            connectionRetryTime=min(CONNECTION_RETRY_SECONDS, config.election_timeout_min),
            leaderFallbackTimeout=LEADER_FALLBACK_FACTOR * config.election_timeout_max,
            logCompactionMinEntries=config.snapshot_entries,
            logCompactionMinTime=config.snapshot_seconds,
            logCompactionSplit=False,  # True confines compaction to per-node time slots
            commandsWaitLeader=False,
            dynamicMembershipChange=True,
            onStateChanged=self._on_role_change,
        )
        super().__init__(
            config.raft_addr,
            list(config.peers),
            conf,
            transportClass=SyncedTransport.bind_journal(self.journal, self.journal_syncer),
        )
        # PySyncObj numbers forwarded commands from 0 in every process, so after a restart a
        # late reply from the leader about a *previous* life's command N could be matched to
        # this life's command N (a false outcome). Start the counter at a value no earlier
        # process can have used.
        self.start_forwarded_ids_at(time.time_ns())
        self._pid = os.getpid()
        if config.fork_snapshots:
            self.serialize_in_child()
        self.addOnTickCallback(self._after_tick)

    def _snapshot_index(self) -> int | None:
        """The index of this node's Raft snapshot, from its first bytes (None: none yet)."""
        try:
            with open(self.dump_path, "rb") as handle:
                return peek_index(handle.read(HEAD_BYTES), KIND_SNAPSHOT)
        except FileNotFoundError:
            return None

    # -- event-driven commit path ------------------------------------------------------
    # PySyncObj replicates on a timer. These hooks make it replicate when there is
    # something to replicate: a proposal wakes the loop, new log entries are sent at
    # once, and a new commit index reaches the followers within a few milliseconds, at
    # once for a follower that waits for it (commit_notice.py), so followers apply, and
    # answer their clients, without waiting for the next heartbeat.

    def propose(self, command: bytes, callback: Any) -> None:
        """Queue a command (any thread) and wake the tick loop to process it now."""
        self.apply_command(command, callback=callback)
        self.wakeup.notify()

    def request_read(self, callback: ReadCallback) -> None:
        """Ask for a linearizable read (any thread); see read_index.py."""
        self.read_index.request(callback)
        self.wakeup.notify()

    def change_membership(self, change: str, address: str, callback: Any) -> None:
        """Queue a membership change (on the leader) and wake the tick loop."""
        self.propose_membership(change, address, callback)
        self.wakeup.notify()

    def _checkCommandsToApply(self) -> None:
        """After the leader appended queued commands, send them without waiting a period."""
        last_index = self.journal[-1][1]
        super()._checkCommandsToApply()
        if self.journal[-1][1] != last_index and self._isLeader():
            # Send in this tick: the journal fsync in _after_tick then overlaps the round trip.
            # These carry the commit index too (the transport tells commit_notice).
            self.send_append_entries()

    # -- pre-vote (prevote.py): the ElectionView it sees PySyncObj through -----------------

    def _onTick(self, timeToWait: float = 0.0) -> None:
        now = time.monotonic()
        if not self._last_tick_at:
            name_os_thread(RAFT_THREAD)  # the first tick runs in PySyncObj's thread
        else:
            gap = now - self._last_tick_at
            self.longest_tick_gap = max(self.longest_tick_gap, gap)
            if gap > self.stall_threshold:
                self.tick_stalls += 1
            if gap > STALL_SECONDS:
                window = time.time() // STALL_WINDOW_SECONDS * STALL_WINDOW_SECONDS
                if self.stall_windows and self.stall_windows[-1][0] == window:
                    self.stall_windows[-1][1] = max(self.stall_windows[-1][1], gap)
                else:
                    self.stall_windows.append([window, gap])
        self._last_tick_at = now
        self._release_synced()
        if self.catch_up.active:
            self.postpone_election(time.monotonic())  # no candidacy while catching up
        else:
            self.prevote.before_tick()
        if self._isLeader():  # wake in time to tell the followers a commit index
            notice_wait = self.commit_notice.wait_at_most(self.journal.last_index)
            if notice_wait is not None:
                timeToWait = min(timeToWait, notice_wait)
        super()._onTick(timeToWait)

    def _release_synced(self) -> None:
        """What the journal syncs since the last tick: held acknowledgements go out, and
        the leader's own copy counts up to its synced index in this tick's commit."""
        self.transport().release_synced()
        if self._isLeader():
            self.leader_match.after_sync(
                self.match_index_map(), self.raftCurrentTerm, self.journal.synced_index
            )

    def note_follower_match(self, node: Any) -> None:
        """A follower's success reply was just recorded (transport.py): see leader_match.py."""
        self.leader_match.after_reply(
            node, self.match_index_map(), self.raftCurrentTerm, self.journal.synced_index
        )

    def follower_reported(self, node: Any) -> int:
        """The highest index `node` acknowledged to this leader, uncapped."""
        return max(self.match_index_map().get(node, 0), self.leader_match.reported(node))

    def forget_follower(self, node: Any) -> None:
        """A disconnected follower's holdings are known again only from its next reply (a
        restarted or wiped node starts over)."""
        self.forget_match_index(node)
        self.leader_match.forget(node)
        self.commit_notice.forget(node)

    def hand_over_leadership(self, callback: Any) -> None:
        """PySyncObj hands over only to a follower whose matchIndex is the leader's last
        index. Sync the leader's own copy first, so that the caps of leader_match.py do not
        hide a follower that holds everything (a rare, deliberate step: it may wait for
        the disk here)."""
        self.journal.sync_now()
        self._release_synced()
        super().hand_over_leadership(callback)

    def _doDestroy(self) -> None:
        self.journal_syncer.stop()  # before PySyncObj closes the journal
        self.end_snapshot_child()
        super()._doDestroy()

    def raft_term(self) -> int:
        return int(self.raftCurrentTerm)

    def last_log(self) -> tuple[int, int]:
        _command, index, term = self.journal[-1]
        return index, term

    # -- ReadIndex (read_index.py): the ReadView ------------------------------------------

    def leader_node(self) -> Any | None:
        return self._getLeader()

    def commit_index(self) -> int:
        return int(self.raftCommitIndex)

    def committed_in_current_term(self) -> bool:
        """An entry of this leader's term is committed (its first no-op, at least)."""
        position = self.raftCommitIndex - self.journal[0][1]
        if not 0 <= position < len(self.journal):
            return False
        return bool(self.journal[position][2] == self.raftCurrentTerm)

    def applied_index(self) -> int:
        return int(self.raftLastApplied)

    def start_election_now(self) -> None:
        self.make_election_due()
        self.wakeup.notify()

    def _send_append_entries_now(self) -> None:
        self.send_append_entries_next_tick()
        self.wakeup.notify()

    def step_down_behind(self, peer: str, term: Any) -> None:
        """A peer's term is ahead of this leader's (prevote.py, TERM_AHEAD): leading on would
        keep that peer out for good, so take its term and let an election follow."""
        if not self.is_leader() or not isinstance(term, int) or term <= self.raftCurrentTerm:
            return
        log.warning(
            "%s is at term %d, ahead of this leader's term %d: stepping down for an election",
            peer,
            term,
            self.raftCurrentTerm,
        )
        self.adopt_term(term)

    def _on_role_change(self, old: int, new: int) -> None:
        log.info("role %s -> %s in term %d", ROLES.get(old), ROLES.get(new), self.raftCurrentTerm)
        if ROLES.get(new) == "leader":  # before PySyncObj sends its first messages as leader
            self.commit_notice.start_leading()

    def _after_tick(self) -> None:
        # Entries the leader appended and sent this tick: synced in the background while
        # they travel (the leader counts its own copy once they are: leader_match.py).
        if self.journal.unsynced:
            self.journal_syncer.request()
        self.wakeup.subscribe(self._poller)
        leader = self.leader_address()
        if self.catch_up.active:
            self.catch_up.check(leader is not None, self.raft_term(), self.last_log()[1])
        if leader != self._known_leader:
            log.info("leader is now %s (term %d)", leader or "unknown", self.raftCurrentTerm)
            self._known_leader = leader
            self.leader_changes += 1
            self._leaderless_since = time.monotonic() if leader is None else None
        self._save_voters_if_changed()
        if self.journal.live_bytes > self.kv_config.snapshot_bytes:
            # PySyncObj compacts on entries or time only: a few large values would grow the
            # log, and this process's memory, without bound. (A no-op while one is written.)
            self.forceLogCompaction()
        self.read_index.tick()
        if self._isLeader() and self.commit_notice.due(
            self.raftCommitIndex, self.peers(), time.monotonic()
        ):
            self._send_append_entries_now()
        self._sync_machine()

    def _save_voters_if_changed(self) -> None:
        version = self.voters_version()
        if version == self._voters_version:
            return
        self._voters_version = version
        # A voter removed and added again (perhaps wiped) starts from nothing.
        self.leader_match.forget_all()
        voters = self.members()
        if voters == self._saved_voters:
            return
        try:
            save_voters(Path(self.kv_config.data_dir), voters, durable=self.kv_config.durable)
        except OSError as exc:
            fail_stop(f"cannot save the cluster's voters: {exc}")
        if self._saved_voters is not None:
            log.info("voters are now %s", ", ".join(voters))
        self._saved_voters = voters

    def membership_change_pending(self) -> bool:
        """A membership entry is in the log but not yet committed (one change at a time)."""
        uncommitted = self.journal.entries_after(self.raftCommitIndex)
        return any(command[:1] == MEMBERSHIP_MARK for command, _index, _term in uncommitted)

    # -- applying (tick thread) ------------------------------------------------------

    @replicated_method
    def apply_command(self, command: bytes) -> Outcome | None:
        """Apply one committed kvnode command; returns its outcome (None if already applied)."""
        index = self.raftLastApplied + 1
        term = self.journal[index - self.journal[0][1]][2]
        # A lone voter commits without waiting for anyone: persist before the callback acks.
        if not self.has_peers():
            self.journal.sync_now()
        try:
            (outcome,) = self.machine.append([Entry(index, term, command)])
        except (StorageError, OSError) as exc:
            fail_stop(f"cannot apply entry {index}: {exc}")
        return outcome

    def _sync_machine(self) -> None:
        """One WAL fsync for everything applied since the last, at most every 100 ms, run
        by the journal's sync thread (the checkpoint bookkeeping stays here).

        Durability of acknowledged writes comes from the Raft journal (synced
        before any acknowledgement leaves) and the fsynced snapshot; this sync only
        bounds how much the state machine re-applies after a crash. With the
        event-driven loop a tick can be microseconds long, hence the interval.
        """
        now = time.monotonic()
        if now - self._last_machine_sync < MACHINE_SYNC_INTERVAL:
            return
        self._last_machine_sync = now
        try:
            pending = self.machine.sync_later()
        except (StorageError, OSError) as exc:
            fail_stop(f"cannot sync the state machine: {exc}")
        if pending is not None:
            self.journal_syncer.run_later(pending, "sync the state machine's WAL")

    # -- snapshots (tick thread) ------------------------------------------------------

    def _serialize(self, file_name: str, raft_data: RaftData) -> None:
        """Write a Raft snapshot. PySyncObj calls this in a forked child (see
        `serialize_in_child`): a frozen copy of this process with only the tick thread,
        which was not applying anything when it forked (the state machine's lock starts
        afresh in a child: state_lock.py). The child runs at the lowest CPU priority,
        without the node's sockets (background.py), and leaves through PySyncObj's
        `os._exit`."""
        if os.getpid() == self._pid:  # not forked (fork unavailable)
            try:
                self.machine.snapshot(Path(file_name), extra=encode_raft_data(raft_data))
            except (StorageError, OSError) as exc:
                fail_stop(f"cannot write a snapshot: {exc}")
            return
        settle_in_child()
        self.machine.snapshot(Path(file_name), extra=encode_raft_data(raft_data))

    def _deserialize(self, file_name: str) -> RaftData:
        path = Path(file_name)
        try:
            # PySyncObj renamed the received file into place without fsync; the journal
            # is about to be reset to it, so it must be on disk first.
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
            fsync_dir(path.parent)
            restored = self.machine.restore(path)
            applied = self.machine.last_applied
            if restored.installed:
                self.snapshots_installed += 1
                log.info("installed snapshot at index %d (term %d)", restored.index, restored.term)
            else:
                log.info(
                    "kept local state at index %d (snapshot is at %d)", applied, restored.index
                )
            return decode_raft_data(restored.extra)
        except (StorageError, OSError, ValueError, KeyError) as exc:
            fail_stop(f"snapshot {path} cannot be used: {exc}")

    # -- status ------------------------------------------------------------------------

    def leader_address(self) -> str | None:
        leader = self._getLeader()
        return leader.address if leader is not None else None

    def is_leader(self) -> bool:
        return bool(self._isLeader())

    def leaderless_seconds(self) -> float:
        """How long this node has known no leader (0 while it knows one)."""
        since = self._leaderless_since
        return 0.0 if since is None else time.monotonic() - since

    def members(self) -> list[str]:
        return sorted([self.kv_config.raft_addr, *self.voter_addresses()])

    def status(self) -> dict[str, Any]:
        """Raft's view for /status (the service adds the state machine's)."""
        raw = self.getStatus()
        peers = {}
        for peer in self.voter_addresses():
            peers[peer] = {
                "connected": raw.get(f"partner_node_status_server_{peer}") == 2,
                "match_index": raw.get(f"match_idx_server_{peer}"),
                "next_index": raw.get(f"next_node_idx_server_{peer}"),
            }
        return {
            "role": ROLES.get(raw["state"], "unknown"),
            "leader_raft_addr": raw["leader"].address if raw["leader"] is not None else None,
            "term": raw["raft_term"],
            "commit_index": raw["commit_idx"],
            "raft_applied_index": raw["last_applied"],
            "has_quorum": raw["has_quorum"],
            "peers": peers,
            "log_entries": raw["log_len"],
            "journal_bytes": self.journal.size_bytes,
            "snapshot_bytes": self.dump_path.stat().st_size if self.dump_path.exists() else 0,
            "snapshots_written": self.journal.compactions,
            "snapshots_installed": self.snapshots_installed,
            "catching_up": self.catch_up.active,
            "longest_tick_gap_ms": round(self.longest_tick_gap * 1000, 1),
            "latest_fork_ms": round(FORK_TIMES.latest * 1000, 1),
            "longest_fork_ms": round(FORK_TIMES.longest * 1000, 1),
            "leader_changes": self.leader_changes,
            "tick_stalls": self.tick_stalls,  # gaps over tick_stall_threshold_ms
            "tick_stall_threshold_ms": round(self.stall_threshold * 1000, 1),
            # [window start (unix s), longest gap in it (ms)] for recent 10 s windows.
            "stall_windows": [
                [int(start), round(gap * 1000, 1)] for start, gap in self.stall_windows
            ],
        }
