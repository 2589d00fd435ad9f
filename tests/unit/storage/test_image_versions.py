"""The state image's version says what its records may hold: a `too_large` reply in the
request-id table needs version 8, so a kvnode that knows only 7 says "upgrade" instead
of misreading it, and a file labelled 7 that holds one is refused as damaged; access
tokens (version 9) come back as they went in."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from kvnode.storage.dedup import RequestRecord
from kvnode.storage.errors import CorruptFile
from kvnode.storage.fileformat import CRC, KIND_SNAPSHOT
from kvnode.storage.image import IMAGE_VERSION, StateImage, decode_image, encode_parts
from kvnode.storage.outcome import Outcome, Status
from kvnode.storage.record import Token

PATH = Path("test.snap")


def image_with(status: Status) -> bytes:
    record = RequestRecord("req-1", 5, 1000, Outcome(status, 0), b"f")
    image = StateImage(5, 1, 1000, [], [record], [], b"", revision=5)
    data, _crc = encode_parts(KIND_SNAPSHOT, image, 0)
    return data


def test_tokens_are_kept_across_an_image() -> None:
    tokens = [
        ("ops", Token(b"\x01" * 32, "admin")),
        ("app-reader", Token(b"\x02" * 32, "read", ("app/", "shared/"))),
    ]
    image = StateImage(5, 1, 1000, [], [], [], b"", revision=5, tokens=tokens)
    data, _crc = encode_parts(KIND_SNAPSHOT, image, 0)
    assert list(decode_image(data, KIND_SNAPSHOT, PATH).tokens) == tokens
    with pytest.raises(CorruptFile):
        decode_image(relabelled(data[:-40] + data[-4:], 9), KIND_SNAPSHOT, PATH)


def as_version_7(data: bytes) -> bytes:
    """An image without tokens and extra data, as version 7 wrote it: the same bytes
    without the (zero) token count before the extra data's length."""
    body = data[: -CRC.size]
    return relabelled(body[:-8] + body[-4:] + data[-CRC.size :], 7)


def relabelled(data: bytes, version: int) -> bytes:
    """The same bytes under another version, with the CRC made right again."""
    body = bytearray(data[: -CRC.size])
    struct.pack_into("<H", body, 8, version)
    return bytes(body) + CRC.pack(zlib.crc32(body))


def test_a_too_large_reply_is_kept_across_an_image() -> None:
    assert IMAGE_VERSION == 9
    decoded = decode_image(image_with(Status.TOO_LARGE), KIND_SNAPSHOT, PATH)
    assert [r.outcome.status for r in decoded.requests] == [Status.TOO_LARGE]


def test_a_version_7_image_reads_as_before_and_cannot_hold_too_large() -> None:
    older = decode_image(as_version_7(image_with(Status.REQUEST_ID_REUSED)), KIND_SNAPSHOT, PATH)
    assert [r.outcome.status for r in older.requests] == [Status.REQUEST_ID_REUSED]
    with pytest.raises(CorruptFile, match="malformed record"):
        decode_image(as_version_7(image_with(Status.TOO_LARGE)), KIND_SNAPSHOT, PATH)
