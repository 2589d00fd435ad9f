"""The node's service: what a node does between the HTTP API and the consensus.

`kv_service` (`KvService`, and the `Service` protocol the HTTP API depends on),
`membership` (the rules for changing the voters, and the member directory),
`join` (`kvnode serve --join`) and `restore` (a node's data directory from a backup).
"""

from kvnode.service.kv_service import (
    KeyRecord,
    KvService,
    Outcome,
    QuotaExceeded,
    Service,
    Status,
)

__all__ = ["KeyRecord", "KvService", "Outcome", "QuotaExceeded", "Service", "Status"]
