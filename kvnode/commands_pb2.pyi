from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Condition(_message.Message):
    __slots__ = ("prev_value", "prev_revision", "prev_exist")
    PREV_VALUE_FIELD_NUMBER: _ClassVar[int]
    PREV_REVISION_FIELD_NUMBER: _ClassVar[int]
    PREV_EXIST_FIELD_NUMBER: _ClassVar[int]
    prev_value: bytes
    prev_revision: int
    prev_exist: bool
    def __init__(self, prev_value: _Optional[bytes] = ..., prev_revision: _Optional[int] = ..., prev_exist: _Optional[bool] = ...) -> None: ...

class Put(_message.Message):
    __slots__ = ("key", "value", "expire_at_ms")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    expire_at_ms: int
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., expire_at_ms: _Optional[int] = ...) -> None: ...

class Delete(_message.Message):
    __slots__ = ("key", "condition")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    key: str
    condition: Condition
    def __init__(self, key: _Optional[str] = ..., condition: _Optional[_Union[Condition, _Mapping]] = ...) -> None: ...

class CompareAndSwap(_message.Message):
    __slots__ = ("key", "value", "expire_at_ms", "condition")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    expire_at_ms: int
    condition: Condition
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., expire_at_ms: _Optional[int] = ..., condition: _Optional[_Union[Condition, _Mapping]] = ...) -> None: ...

class Expire(_message.Message):
    __slots__ = ("now_ms",)
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    now_ms: int
    def __init__(self, now_ms: _Optional[int] = ...) -> None: ...

class Noop(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Command(_message.Message):
    __slots__ = ("issued_at_ms", "request_id", "request_fingerprint", "put", "delete", "cas", "expire", "noop")
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_FIELD_NUMBER: _ClassVar[int]
    NOOP_FIELD_NUMBER: _ClassVar[int]
    issued_at_ms: int
    request_id: str
    request_fingerprint: bytes
    put: Put
    delete: Delete
    cas: CompareAndSwap
    expire: Expire
    noop: Noop
    def __init__(self, issued_at_ms: _Optional[int] = ..., request_id: _Optional[str] = ..., request_fingerprint: _Optional[bytes] = ..., put: _Optional[_Union[Put, _Mapping]] = ..., delete: _Optional[_Union[Delete, _Mapping]] = ..., cas: _Optional[_Union[CompareAndSwap, _Mapping]] = ..., expire: _Optional[_Union[Expire, _Mapping]] = ..., noop: _Optional[_Union[Noop, _Mapping]] = ...) -> None: ...
