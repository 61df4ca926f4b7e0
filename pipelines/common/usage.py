"""The error every command turns into exit 2."""

from __future__ import annotations

from sources.common.errors import ConfigurationError


class UsageError(ConfigurationError):
    """A usage or configuration problem: the message names the key, never a secret's value."""
