"""Watches: follow a key or a prefix from a revision, by long-poll or by NDJSON stream.

`history` keeps the recent changes the state machine reports; `hub` hands new
ones to the watchers waiting for them; `http` serves both over the API.
"""
