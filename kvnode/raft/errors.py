"""Outcomes of a proposal that are not a state-machine result."""

from __future__ import annotations


class ProposalError(Exception):
    """Base: the command did not produce a state-machine outcome."""


class Unavailable(ProposalError):
    """Certainly not applied (no leader, no quorum, queue full): safe to retry."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


class Indeterminate(ProposalError):
    """The command may or may not have been applied (leader lost, timeout)."""
