from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
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
    __slots__ = ("key", "value", "expire_at_ms", "lease")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    expire_at_ms: int
    lease: int
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., expire_at_ms: _Optional[int] = ..., lease: _Optional[int] = ...) -> None: ...

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

class Compare(_message.Message):
    __slots__ = ("key", "target", "op", "value", "number", "exists")
    class Target(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        VALUE: _ClassVar[Compare.Target]
        REVISION: _ClassVar[Compare.Target]
        CREATE_REVISION: _ClassVar[Compare.Target]
        EXISTS: _ClassVar[Compare.Target]
    VALUE: Compare.Target
    REVISION: Compare.Target
    CREATE_REVISION: Compare.Target
    EXISTS: Compare.Target
    class Operator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        EQUAL: _ClassVar[Compare.Operator]
        NOT_EQUAL: _ClassVar[Compare.Operator]
        LESS: _ClassVar[Compare.Operator]
        GREATER: _ClassVar[Compare.Operator]
    EQUAL: Compare.Operator
    NOT_EQUAL: Compare.Operator
    LESS: Compare.Operator
    GREATER: Compare.Operator
    KEY_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    key: str
    target: Compare.Target
    op: Compare.Operator
    value: bytes
    number: int
    exists: bool
    def __init__(self, key: _Optional[str] = ..., target: _Optional[_Union[Compare.Target, str]] = ..., op: _Optional[_Union[Compare.Operator, str]] = ..., value: _Optional[bytes] = ..., number: _Optional[int] = ..., exists: _Optional[bool] = ...) -> None: ...

class DeletePrefix(_message.Message):
    __slots__ = ("prefix", "end")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    end: str
    def __init__(self, prefix: _Optional[str] = ..., end: _Optional[str] = ...) -> None: ...

class Get(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class List(_message.Message):
    __slots__ = ("prefix", "limit", "end")
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    prefix: str
    limit: int
    end: str
    def __init__(self, prefix: _Optional[str] = ..., limit: _Optional[int] = ..., end: _Optional[str] = ...) -> None: ...

class TxnOp(_message.Message):
    __slots__ = ("put", "delete", "delete_prefix", "get", "list")
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    DELETE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    GET_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    put: Put
    delete: Delete
    delete_prefix: DeletePrefix
    get: Get
    list: List
    def __init__(self, put: _Optional[_Union[Put, _Mapping]] = ..., delete: _Optional[_Union[Delete, _Mapping]] = ..., delete_prefix: _Optional[_Union[DeletePrefix, _Mapping]] = ..., get: _Optional[_Union[Get, _Mapping]] = ..., list: _Optional[_Union[List, _Mapping]] = ...) -> None: ...

class Txn(_message.Message):
    __slots__ = ("compare", "success", "failure")
    COMPARE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    compare: _containers.RepeatedCompositeFieldContainer[Compare]
    success: _containers.RepeatedCompositeFieldContainer[TxnOp]
    failure: _containers.RepeatedCompositeFieldContainer[TxnOp]
    def __init__(self, compare: _Optional[_Iterable[_Union[Compare, _Mapping]]] = ..., success: _Optional[_Iterable[_Union[TxnOp, _Mapping]]] = ..., failure: _Optional[_Iterable[_Union[TxnOp, _Mapping]]] = ...) -> None: ...

class KeyState(_message.Message):
    __slots__ = ("key", "value", "create_revision", "mod_revision", "expire_at_ms", "lease")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CREATE_REVISION_FIELD_NUMBER: _ClassVar[int]
    MOD_REVISION_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    expire_at_ms: int
    lease: int
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., create_revision: _Optional[int] = ..., mod_revision: _Optional[int] = ..., expire_at_ms: _Optional[int] = ..., lease: _Optional[int] = ...) -> None: ...

class TxnOpReply(_message.Message):
    __slots__ = ("revision", "created", "deleted", "found", "more")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    MORE_FIELD_NUMBER: _ClassVar[int]
    revision: int
    created: bool
    deleted: int
    found: _containers.RepeatedCompositeFieldContainer[KeyState]
    more: bool
    def __init__(self, revision: _Optional[int] = ..., created: _Optional[bool] = ..., deleted: _Optional[int] = ..., found: _Optional[_Iterable[_Union[KeyState, _Mapping]]] = ..., more: _Optional[bool] = ...) -> None: ...

class TxnReply(_message.Message):
    __slots__ = ("succeeded", "replies")
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    REPLIES_FIELD_NUMBER: _ClassVar[int]
    succeeded: bool
    replies: _containers.RepeatedCompositeFieldContainer[TxnOpReply]
    def __init__(self, succeeded: _Optional[bool] = ..., replies: _Optional[_Iterable[_Union[TxnOpReply, _Mapping]]] = ...) -> None: ...

class LeaseGrant(_message.Message):
    __slots__ = ("ttl_ms",)
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    ttl_ms: int
    def __init__(self, ttl_ms: _Optional[int] = ...) -> None: ...

class LeaseKeepAlive(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class LeaseRevoke(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    def __init__(self, id: _Optional[int] = ...) -> None: ...

class LeaseRenewAll(_message.Message):
    __slots__ = ("extend_ms",)
    EXTEND_MS_FIELD_NUMBER: _ClassVar[int]
    extend_ms: int
    def __init__(self, extend_ms: _Optional[int] = ...) -> None: ...

class MemberPublish(_message.Message):
    __slots__ = ("raft_addr", "node_id", "http_url")
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HTTP_URL_FIELD_NUMBER: _ClassVar[int]
    raft_addr: str
    node_id: str
    http_url: str
    def __init__(self, raft_addr: _Optional[str] = ..., node_id: _Optional[str] = ..., http_url: _Optional[str] = ...) -> None: ...

class MemberForget(_message.Message):
    __slots__ = ("raft_addr",)
    RAFT_ADDR_FIELD_NUMBER: _ClassVar[int]
    raft_addr: str
    def __init__(self, raft_addr: _Optional[str] = ...) -> None: ...

class ClusterInit(_message.Message):
    __slots__ = ("cluster_id",)
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_id: str
    def __init__(self, cluster_id: _Optional[str] = ...) -> None: ...

class TokenCreate(_message.Message):
    __slots__ = ("id", "secret_sha256", "role", "prefixes")
    ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_SHA256_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PREFIXES_FIELD_NUMBER: _ClassVar[int]
    id: str
    secret_sha256: bytes
    role: str
    prefixes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., secret_sha256: _Optional[bytes] = ..., role: _Optional[str] = ..., prefixes: _Optional[_Iterable[str]] = ...) -> None: ...

class TokenRevoke(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("commands",)
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, commands: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("issued_at_ms", "request_id", "request_fingerprint", "put", "delete", "cas", "expire", "noop", "txn", "lease_grant", "lease_keepalive", "lease_revoke", "lease_renew_all", "member_publish", "member_forget", "batch", "cluster_init", "token_create", "token_revoke")
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    CAS_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_FIELD_NUMBER: _ClassVar[int]
    NOOP_FIELD_NUMBER: _ClassVar[int]
    TXN_FIELD_NUMBER: _ClassVar[int]
    LEASE_GRANT_FIELD_NUMBER: _ClassVar[int]
    LEASE_KEEPALIVE_FIELD_NUMBER: _ClassVar[int]
    LEASE_REVOKE_FIELD_NUMBER: _ClassVar[int]
    LEASE_RENEW_ALL_FIELD_NUMBER: _ClassVar[int]
    MEMBER_PUBLISH_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FORGET_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_INIT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_CREATE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_REVOKE_FIELD_NUMBER: _ClassVar[int]
    issued_at_ms: int
    request_id: str
    request_fingerprint: bytes
    put: Put
    delete: Delete
    cas: CompareAndSwap
    expire: Expire
    noop: Noop
    txn: Txn
    lease_grant: LeaseGrant
    lease_keepalive: LeaseKeepAlive
    lease_revoke: LeaseRevoke
    lease_renew_all: LeaseRenewAll
    member_publish: MemberPublish
    member_forget: MemberForget
    batch: Batch
    cluster_init: ClusterInit
    token_create: TokenCreate
    token_revoke: TokenRevoke
    def __init__(self, issued_at_ms: _Optional[int] = ..., request_id: _Optional[str] = ..., request_fingerprint: _Optional[bytes] = ..., put: _Optional[_Union[Put, _Mapping]] = ..., delete: _Optional[_Union[Delete, _Mapping]] = ..., cas: _Optional[_Union[CompareAndSwap, _Mapping]] = ..., expire: _Optional[_Union[Expire, _Mapping]] = ..., noop: _Optional[_Union[Noop, _Mapping]] = ..., txn: _Optional[_Union[Txn, _Mapping]] = ..., lease_grant: _Optional[_Union[LeaseGrant, _Mapping]] = ..., lease_keepalive: _Optional[_Union[LeaseKeepAlive, _Mapping]] = ..., lease_revoke: _Optional[_Union[LeaseRevoke, _Mapping]] = ..., lease_renew_all: _Optional[_Union[LeaseRenewAll, _Mapping]] = ..., member_publish: _Optional[_Union[MemberPublish, _Mapping]] = ..., member_forget: _Optional[_Union[MemberForget, _Mapping]] = ..., batch: _Optional[_Union[Batch, _Mapping]] = ..., cluster_init: _Optional[_Union[ClusterInit, _Mapping]] = ..., token_create: _Optional[_Union[TokenCreate, _Mapping]] = ..., token_revoke: _Optional[_Union[TokenRevoke, _Mapping]] = ...) -> None: ...
