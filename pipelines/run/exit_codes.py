"""The one place errors and run outcomes become exit codes (README: "Exit codes").

- 0: everything asked for loaded;
- 1: a provider, a unit of it, the destination or the views failed (`ProviderError`,
  `DestinationError`, any error not ours): read again by the next run;
- 2: a configuration or usage mistake (`ConfigurationError`), nothing configured, or the
  dataset busy (`LockHeld`): a person must act;
- 128 + signal: a signal stopped the run (`Interrupted`): 130 SIGINT, 143 SIGTERM.
"""

from __future__ import annotations

from collections.abc import Collection

from pipelines.destinations.run_lock import LockHeld
from sources.common.errors import ConfigurationError, Interrupted

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def exit_code_of(exc: BaseException) -> int:
    """The exit code a command ends with when `exc` stops it."""
    if isinstance(exc, Interrupted):
        return 128 + int(getattr(exc, "signum", 2))
    if isinstance(exc, ConfigurationError | LockHeld):
        return EXIT_USAGE
    return EXIT_FAILED


def outcome_exit_code(outcomes: Collection[str], failed: bool) -> int:
    """The exit code of a run whose providers ended with `outcomes`; `failed`: something
    besides them failed (the views, a resume, a package set aside)."""
    outcomes = set(outcomes)
    if "config error" in outcomes or outcomes <= {"skipped"}:
        return EXIT_USAGE  # a configuration problem, or nothing configured at all
    if failed or outcomes & {"failed", "partly failed"}:
        return EXIT_FAILED
    return EXIT_OK
