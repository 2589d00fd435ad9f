"""The result of applying one command, as every replica computes it."""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

# A transaction's reply is kept in the request-id table, and so in every checkpoint and
# backup while its id is remembered: it is bounded, by a constant (the same on every
# replica: the refusal is decided at apply time).
MAX_TXN_REPLY_BYTES = 4 * 1024 * 1024


class Status(Enum):
    OK = "ok"
    COMPARE_FAILED = "compare_failed"
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    # The request id was already used for a different request; nothing was applied.
    REQUEST_ID_REUSED = "request_id_reused"
    # A transaction whose reply could pass MAX_TXN_REPLY_BYTES; nothing was applied.
    # (Last: state images store a status by its position here.)
    TOO_LARGE = "too_large"


class Outcome(NamedTuple):
    """What applying one command did.

    `revision` is the store revision of the change when it changed something (since
    batching, one log entry holds many revisions); for
    COMPARE_FAILED and NOT_FOUND it is the key's current mod revision (0 if absent).
    `log_index` is the store revision this reply reflects, the state it was decided
    in (for a retried request, the retry's): despite its name, not a Raft index.
    `detail` is the encoded `TxnReply` of a transaction (empty for other commands).
    `parts` are the outcomes of a batch's commands, in order (empty for one command).
    """

    status: Status
    revision: int
    created: bool = False
    expire_at_ms: int = 0
    log_index: int = 0
    detail: bytes = b""
    parts: tuple[Outcome, ...] = ()
