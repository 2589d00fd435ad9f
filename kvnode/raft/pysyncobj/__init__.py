"""Everything that touches PySyncObj: `adapter` imports it (and checks its version), the
node, transport and journal subclass or fill in its classes, and the wire, peer cipher and
pickling modules change what its peers exchange. Replacing PySyncObj means replacing this
folder; `kvnode/raft/` beside it holds kvnode's own Raft rules, which do not import it."""
