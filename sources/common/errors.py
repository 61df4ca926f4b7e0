"""The errors this product raises on purpose, by what the operator must do about them:

- `ConfigurationError`: a setting or a declaration is wrong; the message names the key (never
  a secret's value). The command line exits 2; a source used from plain Python raises it.
- `ProviderError`: a provider's API could not be read as a whole (exit 1).
- `DestinationError`: the destination refused the load or the run lost its lock (exit 1).
- `Interrupted`: a signal stopped the run; what was loaded stays (exit 128 + signal). A
  `KeyboardInterrupt`, not an `Exception`: dlt unwinds a step as on Ctrl-C, and no
  `except Exception` swallows it.

`pipelines/run/exit_codes.py` is the one place that maps them to exit codes.
"""

from __future__ import annotations


class UploadStatusError(Exception):
    """Every error raised on purpose by upload-status."""


class ConfigurationError(UploadStatusError, ValueError):
    """A configuration mistake; `key` is the setting to fix, when one is to blame."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class ProviderError(UploadStatusError):
    """A provider's API could not be read this run (not one job or location: the whole)."""


class DestinationError(UploadStatusError):
    """The destination refused what the run would write, or the run lost its lock."""


class Interrupted(KeyboardInterrupt):
    """A signal stopped the run."""


class ScopeRefused(ProviderError):
    """No credential could be had for one scope (a location where the agency's app is not
    installed): that scope fails, the others are read."""

    def __init__(self, scope: str, message: str) -> None:
        super().__init__(message)
        self.scope = scope
