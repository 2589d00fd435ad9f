"""Benchmarks: they measure and report; they never assert a time."""

WORKLOADS = ("write", "read", "read-stale", "mixed", "cas", "watch")
TARGETS = ("kvnode", "etcd-v2")
