"""The canonical job statuses of the contract (../shared/design.md)."""

from __future__ import annotations

PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
PARTIAL = "partial"
FAILED = "failed"
CANCELLED = "cancelled"
NOT_FOUND = "not_found"
UNKNOWN = "unknown"

CANONICAL = (PENDING, RUNNING, SUCCEEDED, PARTIAL, FAILED, CANCELLED, NOT_FOUND, UNKNOWN)
# unknown is deliberately not terminal: a job in a status we do not recognise is polled again
TERMINAL = frozenset({SUCCEEDED, PARTIAL, FAILED, CANCELLED, NOT_FOUND})
