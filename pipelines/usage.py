"""The error every command turns into exit 2."""

from __future__ import annotations


class UsageError(Exception):
    """A usage or configuration problem: the message names the key, never a secret's value."""
