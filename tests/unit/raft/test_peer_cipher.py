"""Peer-message sealing: what one node seals, only a node with the same secret can open."""

from __future__ import annotations

import pytest

from kvnode.raft.pysyncobj import peer_cipher
from kvnode.raft.pysyncobj.peer_cipher import InvalidPeerToken, PeerCipher

KEY = bytes(range(32))


def test_a_sealed_message_opens_with_the_same_key_and_keeps_its_timestamp() -> None:
    sender, receiver = PeerCipher(KEY), PeerCipher(KEY)
    token = sender.encrypt_at_time(b"append entries", 1234)
    assert b"append entries" not in token
    assert receiver.extract_timestamp(token) == 1234
    assert receiver.decrypt(token) == b"append entries"


def test_keys_derived_from_the_same_secret_agree_and_differ_from_others() -> None:
    token = PeerCipher.from_secret("s3cret").encrypt_at_time(b"vote", 1)
    assert PeerCipher.from_secret("s3cret").decrypt(token) == b"vote"
    with pytest.raises(InvalidPeerToken):
        PeerCipher.from_secret("guess").decrypt(token)


@pytest.mark.parametrize("position", [0, 3, 9, 15, 25, -1])
def test_any_altered_byte_is_rejected(position: int) -> None:
    cipher = PeerCipher(KEY)
    token = bytearray(cipher.encrypt_at_time(b"commit index 42", 77))
    token[position] ^= 0x01
    with pytest.raises(InvalidPeerToken):
        cipher.decrypt(bytes(token))
    with pytest.raises(InvalidPeerToken):
        cipher.extract_timestamp(bytes(token))  # a forged timestamp is never believed


def test_truncated_and_foreign_tokens_are_rejected() -> None:
    cipher = PeerCipher(KEY)
    token = cipher.encrypt_at_time(b"x", 1)
    for bad in (b"", token[:20], b"gAAAAA" + token):  # the last looks like a Fernet token
        with pytest.raises(InvalidPeerToken):
            cipher.decrypt(bad)


def test_nonces_never_repeat_even_when_the_counter_runs_out(monkeypatch) -> None:
    monkeypatch.setattr(peer_cipher, "COUNTER_LIMIT", 3)
    cipher = PeerCipher(KEY)
    header = peer_cipher.HEADER.size
    nonces = [
        cipher.encrypt_at_time(b"m", 1)[header : header + peer_cipher.NONCE_BYTES]
        for _ in range(10)
    ]
    assert len(set(nonces)) == len(nonces)
    prefixes = {nonce[: peer_cipher.NONCE_PREFIX_BYTES] for nonce in nonces}
    assert len(prefixes) == 4  # a fresh random prefix every 3 messages
