"""Benchmarks: they measure and report; they never assert a time."""
