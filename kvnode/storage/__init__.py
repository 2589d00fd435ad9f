"""The file-based state machine: WAL, checkpoints, snapshots, TTL and CAS.

This package knows nothing of Raft or HTTP. The Raft node applies entries to it and
snapshots it; the service reads it (through the machine, which owns its lock); `kvnode
restore` fills a new directory from a backup.

Import from the modules (`kvnode.storage.machine`, `.outcome`, `.record`, ...), not from
here: importing this package imports nothing else, so the CLI's client commands can read
`errors` and `fileformat` in an install without the server's dependencies.
"""
