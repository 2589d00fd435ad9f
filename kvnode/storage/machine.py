"""StateMachine: the durable, replayable key-value state that Raft applies entries to.

Interface (the Raft node applies and snapshots; the service reads; restore installs):

    apply(entries)       append + sync: decide, log and make durable a batch
    append(entries)      decide and log a batch, without fsync (group commit)
    sync()               one fsync for everything appended since the last one;
                         takes a checkpoint when one is due
    read / scan / lease  reads from memory, each with the store revision it saw
    snapshot() -> path   a self-contained, checksummed snapshot file
    restore(path)        verify a snapshot and install it atomically
    last_applied         the Raft index of the last applied entry

It guards itself: every method takes its `StateLock` (state_lock.py), so any
thread may call any of them; a read waits for at most one slice of an apply
(APPLY_SLICE commands), not for a whole batch.

Apply is idempotent by Raft index: an entry at or below `last_applied` is
skipped, because PySyncObj re-delivers entries after every restart.

Recovery = load checkpoint (verified) + replay the WAL records after its index.
Files live in one directory (normally `<data_dir>/sm/`): `state.data`,
`metadata.bin`, `wal.log` and `wal.prev` (during a background checkpoint). Snapshots
go where the caller says (the Raft layer's `raft.snapshot`, a backup's file).
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from kvnode.clock import wall_clock_ms
from kvnode.commands_pb2 import Command
from kvnode.config import CHECKPOINT_EVERY_ENTRIES, CHECKPOINT_EVERY_SECONDS
from kvnode.storage.background import ForkedTask
from kvnode.storage.changes import IGNORE_CHANGES, ChangeSink
from kvnode.storage.checkpoint import load_checkpoint, write_checkpoint
from kvnode.storage.errors import CorruptFile, CorruptRecord, StorageFailure
from kvnode.storage.fileformat import TMP_SUFFIX, FaultHook, fsync_dir, no_fault
from kvnode.storage.framing import sync_descriptor
from kvnode.storage.image import StateImage
from kvnode.storage.keyspace import Keyspace
from kvnode.storage.layout import (
    PREVIOUS_WAL_FILE,
    STATE_FILE,
    WAL_FILE,
    is_state_machine_file,
    refuse_foreign,
)
from kvnode.storage.outcome import Outcome, Status
from kvnode.storage.record import KeyRecord, Lease, Member, Token
from kvnode.storage.snapshot import read_snapshot, write_snapshot
from kvnode.storage.state_lock import StateLock
from kvnode.storage.timings import STATE_BUCKETS, Timings
from kvnode.storage.wal import (
    DEFAULT_MAX_RECORD_BYTES,
    MIN_LENGTH,
    Opcode,
    WalRecord,
    WriteAheadLog,
    encode_record,
)

log = logging.getLogger(__name__)

WAL_TO_CHECKPOINT_RATIO = 4  # checkpoint once the WAL is a quarter of the checkpoint's size
APPLY_SLICE = 16  # commands of a batch applied between two chances for a waiting read

OPCODE_BY_OP = {
    "put": Opcode.PUT,
    "delete": Opcode.DELETE,
    "cas": Opcode.CAS,
    "expire": Opcode.EXPIRE,
    "noop": Opcode.NOOP,
    "txn": Opcode.TXN,
    "lease_grant": Opcode.LEASE_GRANT,
    "lease_keepalive": Opcode.LEASE_KEEPALIVE,
    "lease_revoke": Opcode.LEASE_REVOKE,
    "lease_renew_all": Opcode.LEASE_RENEW_ALL,
    "member_publish": Opcode.MEMBER_PUBLISH,
    "member_forget": Opcode.MEMBER_FORGET,
    "batch": Opcode.BATCH,
    "cluster_init": Opcode.CLUSTER_INIT,
    "token_create": Opcode.TOKEN_CREATE,
    "token_revoke": Opcode.TOKEN_REVOKE,
}
_INVALID = Outcome(Status.INVALID, 0)
_EMPTY_COMMAND = Command()


@dataclass(frozen=True, slots=True)
class Restored:
    """What `StateMachine.restore` found in a snapshot, and whether it installed it."""

    index: int
    term: int
    extra: bytes
    installed: bool


@dataclass(frozen=True, slots=True)
class MachineStats:
    """The state machine's counters at one moment between two entries."""

    last_applied: int
    last_applied_term: int
    revision: int
    keys: int
    leases: int
    request_ids: int
    wal_bytes: int
    checkpoint_bytes: int
    entries_since_checkpoint: int
    digest: str | None  # only when asked for: O(keys)


@dataclass(frozen=True, slots=True)
class Entry:
    """A committed Raft log entry: its position and the protobuf-encoded kvnode.Command."""

    index: int
    term: int
    command: bytes


class StateMachine:
    def __init__(
        self,
        directory: Path | str,
        *,
        fsync: bool = True,
        checkpoint_entries: int = CHECKPOINT_EVERY_ENTRIES,
        checkpoint_seconds: float = CHECKPOINT_EVERY_SECONDS,
        max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
        repair: bool = False,
        fault_hook: FaultHook = no_fault,
        monotonic: Callable[[], float] = time.monotonic,
        changes: ChangeSink = IGNORE_CHANGES,
        background_checkpoints: bool = False,
    ) -> None:
        self.directory = Path(directory)
        self._lock = StateLock()
        self._changes = changes
        # Due checkpoints are written by a forked child (background.py) instead of the
        # applying thread, which a large state would otherwise hold up for seconds.
        self._background = background_checkpoints
        self._checkpointer = ForkedTask("background checkpoint")
        self._durable = fsync
        self._checkpoint_entries = checkpoint_entries
        self._checkpoint_seconds = checkpoint_seconds
        self._max_record = max_record_bytes
        self._fault_hook = fault_hook
        self._monotonic = monotonic
        self._failure: StorageFailure | None = None
        self._unsynced = False
        self._digest_cache: tuple[int, str] | None = None
        # For /metrics: how long each applied batch and each WAL fdatasync took.
        self.apply_timings = Timings()
        self.wal_fsync_timings = Timings()
        self.checkpoint_timings = Timings(STATE_BUCKETS)

        self.directory.mkdir(parents=True, exist_ok=True)
        self._prepare_directory()
        image = load_checkpoint(self.directory, durable=fsync)
        self._keys = self._watched(image.keyspace())
        self._last_applied = image.index
        self._last_term = image.term
        self._checkpoint_bytes = (self.directory / STATE_FILE).stat().st_size
        records = self._recover_previous_wal(max_record_bytes, repair)
        self._wal, current = WriteAheadLog.recover(
            self.directory / WAL_FILE, max_record=max_record_bytes, repair=repair, durable=fsync
        )
        records += current
        with self._lock.for_changes():
            replayed = self._replay(records)
            self._entries_since_checkpoint = replayed
            self._last_checkpoint_at = monotonic()
            if (self.directory / PREVIOUS_WAL_FILE).exists():
                # A background checkpoint did not finish: the state in memory covers both
                # logs, so checkpoint it now and be done with the older one.
                self._checkpoint()
        log.info(
            "%s: recovered checkpoint at index %d + %d WAL records; last_applied=%d, %d keys",
            self.directory,
            image.index,
            replayed,
            self._last_applied,
            len(self._keys),
        )

    # -- opening -------------------------------------------------------------

    def _replay(self, records: list[WalRecord]) -> int:
        """Apply the logged records past the checkpoint; how many there were."""
        replayed = 0
        for record in records:
            if record.index <= self._last_applied:
                continue  # covered by the checkpoint; the WAL truncation had not happened yet
            command = self._decode_logged(record.payload, record.opcode, record.offset)
            self._execute(command)
            self._last_applied, self._last_term = record.index, record.term
            replayed += 1
        self._changes.applied(self._keys.revision)
        return replayed

    def _recover_previous_wal(self, max_record: int, repair: bool) -> list[WalRecord]:
        """The records of `wal.prev`, left by a background checkpoint that did not finish
        (its records not yet covered by state.data); [] when there is none."""
        path = self.directory / PREVIOUS_WAL_FILE
        if not path.exists():
            return []
        previous, records = WriteAheadLog.recover(
            path, max_record=max_record, repair=repair, durable=self._durable
        )
        previous.close()
        if not (self.directory / WAL_FILE).exists():  # the crash fell inside the rotation
            WriteAheadLog.create(self.directory / WAL_FILE, durable=self._durable)
        return records

    def _prepare_directory(self) -> None:
        """Initialise an empty directory; refuse one that holds someone else's files."""
        for leftover in self.directory.glob(f"*{TMP_SUFFIX}"):
            leftover.unlink()  # an unfinished atomic_write: the real file is intact
        if (self.directory / STATE_FILE).exists():
            wal_present = (self.directory / WAL_FILE).exists()
            if not wal_present and not (self.directory / PREVIOUS_WAL_FILE).exists():
                raise CorruptFile(self.directory / WAL_FILE, "missing, but state.data exists")
            return
        foreign = [p.name for p in self.directory.iterdir() if not is_state_machine_file(p.name)]
        refuse_foreign(
            self.directory, foreign, "point data_dir at an empty or kvnode-owned directory"
        )
        wal_path = self.directory / WAL_FILE
        if wal_path.exists() and wal_path.stat().st_size > 0:
            _wal, records = WriteAheadLog.recover(
                wal_path, max_record=self._max_record, repair=False, durable=self._durable
            )
            _wal.close()
            if records:
                raise CorruptFile(
                    self.directory / STATE_FILE, "missing, but wal.log holds applied records"
                )
        WriteAheadLog.create(wal_path, durable=self._durable)
        write_checkpoint(self.directory, 0, 0, Keyspace(), durable=self._durable)
        log.info("%s: initialised an empty state machine", self.directory)

    def _watched(self, keys: Keyspace) -> Keyspace:
        """`keys`, loaded from an image, reporting its changes from now on."""
        self._changes.reset(keys.revision)
        keys.on_change = self._changes.changed
        return keys

    def _decode_logged(self, payload: bytes, opcode: int, offset: int) -> Command:
        """Decode a command read back from the WAL; a mismatch means the log is not ours."""
        path = self.directory / WAL_FILE
        try:
            command = Command.FromString(payload)
        except DecodeError as exc:
            raise CorruptRecord(path, f"undecodable command payload: {exc}", offset) from exc
        expected = OPCODE_BY_OP.get(command.WhichOneof("op"), Opcode.NOOP)
        if expected != opcode:
            raise CorruptRecord(
                path, f"opcode {opcode} does not match the command it holds", offset
            )
        return command

    # -- applying --------------------------------------------------------------

    @property
    def last_applied(self) -> int:
        return self._last_applied

    @property
    def revision(self) -> int:
        """The store revision (not a Raft index: see Keyspace.revision)."""
        return self._keys.revision

    @property
    def last_applied_term(self) -> int:
        return self._last_term

    def apply(self, entries: Sequence[Entry]) -> list[Outcome | None]:
        """Apply a batch and make it durable with one fsync (group commit)."""
        with self._lock.for_changes():
            with self.apply_timings.timing():
                outcomes = self._append(entries)
            self._sync()
        return outcomes

    def append(self, entries: Sequence[Entry]) -> list[Outcome | None]:
        """Decide and log each entry; None marks one skipped as already applied. Never
        fails on a bad command (that is a deterministic INVALID outcome); raises
        StorageFailure only when the disk cannot be written."""
        with self._lock.for_changes(), self.apply_timings.timing():
            return self._append(entries)

    def _append(self, entries: Sequence[Entry]) -> list[Outcome | None]:
        self._check_healthy()
        outcomes: list[Outcome | None] = []
        records: list[bytes] = []
        for entry in entries:
            self._lock.let_readers_in()
            if entry.index <= self._last_applied:
                outcomes.append(None)
                continue
            command = self._decode_proposed(entry.command)
            if command is _EMPTY_COMMAND:
                outcome = self._invalid()
                opcode, payload = Opcode.NOOP, b""
            else:
                outcome = self._execute(command)
                opcode, payload = OPCODE_BY_OP[command.WhichOneof("op")], entry.command
            records.append(encode_record(entry.index, entry.term, opcode, payload))
            self._last_applied, self._last_term = entry.index, entry.term
            outcomes.append(outcome)
        if records:
            try:
                self._wal.append(b"".join(records))
            except StorageFailure as exc:
                self._failure = exc
                raise
            self._unsynced = True
            self._entries_since_checkpoint += len(records)
            self._changes.applied(self._keys.revision)
        return outcomes

    def _invalid(self) -> Outcome:
        """The outcome of an unusable command: nothing applied, no revision taken."""
        return _INVALID._replace(log_index=self._keys.revision)

    def _execute(self, command: Command) -> Outcome:
        """One command, or each command of a batch at its own revision (a part that cannot
        be decoded, or is itself a batch, is INVALID and takes no revision). Waiting reads
        go in between slices of a batch: each sees the state after some of its commands,
        a state the log passed through."""
        if command.WhichOneof("op") != "batch":
            return self._keys.execute(command)
        parts = []
        for number, encoded in enumerate(command.batch.commands):
            if number and number % APPLY_SLICE == 0:
                self._lock.let_readers_in()
            part = self._decode_proposed(encoded)
            if part is _EMPTY_COMMAND or part.WhichOneof("op") == "batch":
                parts.append(self._invalid())
            else:
                parts.append(self._keys.execute(part))
        revision = self._keys.revision
        return Outcome(Status.OK, revision, log_index=revision, parts=tuple(parts))

    def _decode_proposed(self, data: bytes) -> Command:
        """Decode a command from the Raft log; anything unusable becomes the empty command."""
        if len(data) + MIN_LENGTH > self._max_record:
            return _EMPTY_COMMAND
        try:
            command = Command.FromString(data)
        except DecodeError:
            return _EMPTY_COMMAND
        return command if command.WhichOneof("op") else _EMPTY_COMMAND

    def sync(self) -> None:
        """Make every appended record durable (one fsync), then checkpoint if one is due."""
        with self._lock.for_changes():
            self._sync()

    def _sync(self) -> None:
        pending = self._sync_later()
        if pending is not None:
            try:
                pending()
            except StorageFailure as exc:
                self._failure = exc
                raise

    def sync_later(self) -> Callable[[], None] | None:
        """`sync()` with the WAL's fdatasync left to the caller: a function that runs it (in
        any thread, without the lock; it raises StorageFailure), or None when nothing needs
        syncing. The Raft node's tick thread must not wait for a busy disk, and this sync
        only bounds how much is re-applied after a crash (the Raft journal holds what was
        acknowledged)."""
        with self._lock.for_changes():
            return self._sync_later()

    def _sync_later(self) -> Callable[[], None] | None:
        self._check_healthy()
        descriptor = None
        try:
            if self._unsynced and self._durable:
                descriptor = self._wal.duplicate()
            self._unsynced = False
            self._reap_checkpoint(block=False)
            if self._checkpoint_due() and not self._checkpointer.running:
                if self._background:
                    self._start_background_checkpoint()
                else:
                    self._checkpoint()
            drop_retired = self._retired_wal.exists()  # set aside by _reap_checkpoint
            if descriptor is None and not drop_retired:
                return None
            return functools.partial(self._sync_files, descriptor, drop_retired)
        except (StorageFailure, OSError) as exc:
            if descriptor is not None:
                os.close(descriptor)
            self._failure = (
                exc if isinstance(exc, StorageFailure) else StorageFailure(self.directory, str(exc))
            )
            raise self._failure from exc

    def _sync_files(self, descriptor: int | None, drop_retired: bool) -> None:
        """What `sync_later` leaves to its caller: the WAL's fdatasync, the retired WAL."""
        if descriptor is not None:
            with self.wal_fsync_timings.timing():
                sync_descriptor(descriptor, self._wal.path)
        if drop_retired:
            self._drop_retired_wal()

    def _checkpoint_due(self) -> bool:
        """Due after `checkpoint_entries` entries or `checkpoint_seconds`, once the WAL is
        also a fair share (a quarter) of the checkpoint's size.

        The size rule keeps the cost amortised: rewriting a large state every
        1000 small writes, or every 10 s under a trickle of writes, would spend
        most of the disk and the apply thread on checkpoints. Recovery stays
        bounded: the WAL left to replay is at most about a quarter of the
        checkpoint (or `checkpoint_entries` entries of a small state).
        """
        if self._entries_since_checkpoint == 0:
            return False
        if self._wal.size * WAL_TO_CHECKPOINT_RATIO < self._checkpoint_bytes:
            return False
        return (
            self._entries_since_checkpoint >= self._checkpoint_entries
            or self._monotonic() - self._last_checkpoint_at >= self._checkpoint_seconds
        )

    def _start_background_checkpoint(self) -> None:
        """Retire the WAL as `wal.prev` (later records go to a fresh `wal.log`), then fork a
        child that writes the checkpoint at last_applied; `_reap_checkpoint` drops
        `wal.prev` once the child has succeeded. A crash in between leaves the old
        checkpoint and both logs: recovery replays them and checkpoints at once."""
        directory, durable = self.directory, self._durable
        self._wal.close()
        os.replace(directory / WAL_FILE, directory / PREVIOUS_WAL_FILE)
        WriteAheadLog.create(directory / WAL_FILE, durable=durable)  # fsyncs the directory
        self._wal, _empty = WriteAheadLog.recover(
            directory / WAL_FILE, max_record=self._max_record, repair=False, durable=durable
        )
        index, term, keys, fault_hook = (
            self._last_applied,
            self._last_term,
            self._keys,
            self._fault_hook,
        )
        keep_changes = self._changes.persist(keys.revision)

        def write() -> None:
            if keep_changes is not None:
                keep_changes()
            write_checkpoint(directory, index, term, keys, durable=durable, fault_hook=fault_hook)

        self._checkpointer.start(write)
        self._entries_since_checkpoint = 0
        self._last_checkpoint_at = self._monotonic()

    def _reap_checkpoint(self, *, block: bool) -> None:
        """Finish a background checkpoint that has ended; its failure is a storage failure.
        The `wal.prev` it covers is set aside at once as a leftover temporary file (a
        restart deletes those); unless `block`, removing it is left to `sync_later`'s
        caller: unlinking a large file and syncing the directory can take a busy disk's
        time."""
        done = self._checkpointer.finished(block=block)
        if done is None:
            return
        if not done:
            raise StorageFailure(self.directory, "the background checkpoint failed (see stderr)")
        self.checkpoint_timings.observe(self._checkpointer.last_seconds)
        os.replace(self.directory / PREVIOUS_WAL_FILE, self._retired_wal)
        if block:  # a caller that waits anyway (checkpoint, close)
            self._drop_retired_wal()
        self._checkpoint_bytes = (self.directory / STATE_FILE).stat().st_size

    @property
    def _retired_wal(self) -> Path:
        return self.directory / (PREVIOUS_WAL_FILE + TMP_SUFFIX)

    def _drop_retired_wal(self) -> None:
        self._retired_wal.unlink(missing_ok=True)  # a later one may have replaced it
        if self._durable:
            fsync_dir(self.directory)

    def checkpoint(self) -> None:
        """Write the full state at last_applied, then drop the WAL it covers."""
        with self._lock.for_changes():
            self._checkpoint()

    def _checkpoint(self) -> None:
        self._reap_checkpoint(block=True)
        keep_changes = self._changes.persist(self._keys.revision)
        if keep_changes is not None:
            keep_changes()
        with self.checkpoint_timings.timing():
            self._checkpoint_bytes = write_checkpoint(
                self.directory,
                self._last_applied,
                self._last_term,
                self._keys,
                durable=self._durable,
                fault_hook=self._fault_hook,
            )
        self._wal.reset(durable=self._durable)
        self._fault_hook("wal.log:truncated")
        previous = self.directory / PREVIOUS_WAL_FILE
        if previous.exists():
            previous.unlink()  # covered by the checkpoint just written
            if self._durable:
                fsync_dir(self.directory)
        self._entries_since_checkpoint = 0
        self._last_checkpoint_at = self._monotonic()

    def _check_healthy(self) -> None:
        if self._failure is not None:
            raise StorageFailure(
                self.directory, f"state machine stopped after an earlier failure: {self._failure}"
            )

    # -- reading ---------------------------------------------------------------

    def read(self, key: str, now_ms: int | None = None) -> tuple[KeyRecord | None, int]:
        """The live record of `key` (None if absent or past its deadline), and the store
        revision it was read at."""
        lock = self._lock
        lock.hold_for_read()
        try:
            now = wall_clock_ms() if now_ms is None else now_ms
            return self._keys.get(key, now), self._keys.revision
        finally:
            lock.release_read()

    def scan(
        self,
        prefix: str = "",
        now_ms: int | None = None,
        start_after: str = "",
        limit: int | None = None,
        end: str = "",
    ) -> tuple[list[tuple[str, KeyRecord]], int]:
        """Up to `limit` live keys under `prefix` after `start_after` and before `end`, in
        key order, and the store revision they were read at."""
        with self._lock.for_reads():
            now = wall_clock_ms() if now_ms is None else now_ms
            found = itertools.islice(self._keys.scan(prefix, now, start_after, end), limit)
            return list(found), self._keys.revision

    def count(self, prefix: str = "", end: str = "", now_ms: int | None = None) -> tuple[int, int]:
        """How many live keys are under `prefix` and before `end`, and the store revision
        counted at (one pass, nothing copied)."""
        with self._lock.for_reads():
            now = wall_clock_ms() if now_ms is None else now_ms
            return sum(1 for _ in self._keys.scan(prefix, now, end=end)), self._keys.revision

    def lease(self, lease_id: int) -> tuple[Lease | None, list[str], int]:
        """A lease (None if there is none), its keys, and the store revision read at."""
        with self._lock.for_reads():
            leases = self._keys.leases
            return leases.get(lease_id), leases.keys(lease_id), self._keys.revision

    def leases(self) -> tuple[list[tuple[int, Lease]], int]:
        """Every lease by id, and the store revision read at."""
        with self._lock.for_reads():
            return list(self._keys.leases.items()), self._keys.revision

    def digest(self) -> str:
        """Hash of the stored state; replicas at the same last_applied must agree. O(keys),
        between two whole entries: applies wait while it runs."""
        with self._lock.for_changes():
            return self._digest()

    def _digest(self) -> str:
        if self._digest_cache is None or self._digest_cache[0] != self._last_applied:
            self._digest_cache = (self._last_applied, self._keys.digest())
        return self._digest_cache[1]

    @property
    def cluster_id(self) -> str:
        """The cluster's id ("" until the first ClusterInit is applied). Any thread: a str
        attribute read in one step."""
        return self._keys.cluster_id

    @property
    def members(self) -> dict[str, Member]:
        """A copy of the member directory, by Raft address."""
        with self._lock.for_reads():
            return dict(self._keys.members)

    @property
    def tokens(self) -> Mapping[str, Token]:
        """The access tokens by id. Any thread: the dict is replaced, never changed, when
        a token is created or revoked."""
        return self._keys.tokens

    @property
    def data_bytes(self) -> int:
        """About how many bytes the keys and values take. Any thread: one int read."""
        return self._keys.data_bytes

    def knows_request(self, request_id: str) -> bool:
        """Whether a write under `request_id` was applied and is still remembered (a retry
        of it changes nothing)."""
        with self._lock.for_reads():
            return self._keys.requests.get(request_id) is not None

    def member(self, raft_addr: str) -> Member | None:
        """One entry of the member directory. Without the lock: one lookup in a dict that
        is only ever changed or replaced whole in one step, of an immutable record (it is
        read for every reply's X-KV-Leader)."""
        return self._keys.members.get(raft_addr)

    def next_deadline(self) -> int | None:
        """The earliest TTL deadline of any stored key (ms), or None."""
        with self._lock.for_reads():
            return self._keys.next_deadline()

    def stats(self, *, with_digest: bool = False) -> MachineStats:
        """Counters for /status, read between two whole entries (with the digest, if asked,
        of the same state)."""
        with self._lock.for_changes():
            return MachineStats(
                last_applied=self._last_applied,
                last_applied_term=self._last_term,
                revision=self._keys.revision,
                keys=len(self._keys),
                leases=len(self._keys.leases),
                request_ids=len(self._keys.requests),
                wal_bytes=self._wal.size,
                checkpoint_bytes=self._checkpoint_bytes,
                entries_since_checkpoint=self._entries_since_checkpoint,
                digest=self._digest() if with_digest else None,
            )

    # -- snapshots ---------------------------------------------------------------

    def snapshot(self, path: Path, extra: bytes = b"") -> Path:
        """Write a verified snapshot of the current state to `path`; `extra` is stored
        opaquely (the Raft layer's bookkeeping)."""
        with self._lock.for_changes():
            self._check_healthy()
            write_snapshot(
                path, self._last_applied, self._last_term, self._keys, extra, durable=self._durable
            )
        return path

    def capture(self) -> tuple[StateImage, int]:
        """The whole state at last_applied, as plain lists (and how many keys), for encoding
        outside the owner's lock: records are immutable, so copying the references is a
        consistent snapshot that later applies cannot change (a hot backup)."""
        with self._lock.for_changes():
            return self._capture()

    def _capture(self) -> tuple[StateImage, int]:
        self._check_healthy()
        keys = self._keys
        items = list(keys.items())
        image = StateImage(
            self._last_applied,
            self._last_term,
            keys.log_clock_ms,
            items,
            list(keys.requests),
            list(keys.leases.items()),
            b"",
            members=list(keys.members.items()),
            revision=keys.revision,
            tokens=list(keys.tokens.items()),
        )
        return image, len(items)

    def restore(self, path: Path) -> Restored:
        """Verify a snapshot and, if it is newer than what is applied here, make it the state
        (atomically, via a checkpoint). An older one changes nothing: this node already
        holds a longer prefix of the same log.

        A crash part-way leaves the previous state, which is still a valid prefix.
        """
        image = read_snapshot(path)
        with self._lock.for_changes():
            installed = image.index > self._last_applied
            if installed:
                self._install(image)
        return Restored(image.index, image.term, image.extra, installed)

    def install(self, image: StateImage) -> None:
        """Make a verified snapshot image the state (see `restore`)."""
        with self._lock.for_changes():
            self._install(image)

    def _install(self, image: StateImage) -> None:
        self._check_healthy()
        self._keys = self._watched(image.keyspace())
        self._last_applied, self._last_term = image.index, image.term
        self._unsynced = False
        self._checkpoint()
        log.info("%s: installed a snapshot at index %d", self.directory, image.index)

    def close(self, *, checkpoint: bool = True) -> None:
        """Sync, take a final checkpoint (so the next start replays nothing), release the WAL."""
        with self._lock.for_changes():
            if self._failure is None:
                self._sync()
                self._reap_checkpoint(block=True)
                if checkpoint and self._entries_since_checkpoint:
                    self._checkpoint()
            self._wal.close()
