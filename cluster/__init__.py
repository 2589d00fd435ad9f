"""Tooling that runs and tortures kvnode clusters: supervisor, nemesis, workload, checker."""

NEMESES = ("kill", "kill-leader", "pause", "pause-leader", "wipe", "partition")
