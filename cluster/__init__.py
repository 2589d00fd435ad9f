"""Tooling that runs and tortures kvnode clusters: supervisor, nemesis, workload, checker."""
