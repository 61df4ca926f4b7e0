"""One exception hierarchy (configuration / provider / destination / interrupted) and one
place mapping it to exit codes (`pipelines/run/exit_codes.py`)."""

from __future__ import annotations

import ast
import importlib
import signal
from pathlib import Path

import pytest
import requests

from pipelines.destinations.run_lock import LockHeld, LockLost, LockPathUnusable
from pipelines.run.exit_codes import EXIT_FAILED, EXIT_USAGE, exit_code_of, outcome_exit_code
from pipelines.run.interrupt import Interrupted
from sources.common.config_checks import ConfigProblem, NotConfigured
from sources.common.declaration import DeclarationError
from sources.common.errors import (
    ConfigurationError,
    DestinationError,
    ProviderError,
    UploadStatusError,
)
from sources.common.throttle import DailyLimitReached

REPO = Path(__file__).parents[1]
# errors that must be what a library expects: requests' (retries, redirects), dlt's (terminal
# load errors), KeyboardInterrupt (dlt unwinds a step as on Ctrl-C)
_FOREIGN_BASES = (requests.RequestException, KeyboardInterrupt)


def _exception_classes() -> list[type]:
    found = []
    for path in sorted([*REPO.glob("pipelines/**/*.py"), *REPO.glob("sources/**/*.py")]):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        tree = ast.parse(path.read_text())
        names = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        loaded = importlib.import_module(module)
        found += [c for name in names if isinstance(c := getattr(loaded, name), type)
                  and issubclass(c, BaseException)]
    return found


def test_every_error_of_ours_is_in_the_hierarchy_or_a_librarys_own():
    from dlt.common.destination.exceptions import DestinationTerminalException

    outside = [f"{c.__module__}.{c.__name__}" for c in _exception_classes()
               if not issubclass(c, (UploadStatusError, DestinationTerminalException,
                                     *_FOREIGN_BASES))]
    assert outside == []


@pytest.mark.parametrize(("error", "code"), [
    (ConfigProblem("SOURCES__X__BASE_URL must be an origin"), EXIT_USAGE),
    (NotConfigured(["SOURCES__X__API_KEY"]), EXIT_USAGE),
    (DeclarationError("sources/x/provider.toml: kind"), EXIT_USAGE),
    (LockPathUnusable("a symlink"), EXIT_USAGE),
    (LockHeld("host h, PID 1"), EXIT_USAGE),
    (LockLost("terminated"), EXIT_FAILED),
    (DailyLimitReached("location a"), EXIT_FAILED),
    (RuntimeError("anything else"), EXIT_FAILED),
    (Interrupted(signal.SIGTERM), 143),
    (Interrupted(signal.SIGINT), 130),
])
def test_each_kind_of_error_has_its_exit_code(error, code):
    assert exit_code_of(error) == code


def test_categories_and_keys():
    assert issubclass(LockLost, DestinationError) and issubclass(DailyLimitReached,
                                                                 ProviderError)
    assert NotConfigured(["A", "B"]).key == "A" and isinstance(ConfigProblem("x"), ValueError)
    assert isinstance(ConfigurationError("m", "K"), UploadStatusError)


@pytest.mark.parametrize(("outcomes", "failed", "code"), [
    (["loaded", "loaded"], False, 0), (["loaded", "partly failed"], False, 1),
    (["loaded", "failed"], False, 1), (["loaded"], True, 1), (["skipped"], False, 2),
    (["loaded", "config error"], False, 2), ([], False, 2)])
def test_run_outcomes_map_to_exit_codes(outcomes, failed, code):
    assert outcome_exit_code(outcomes, failed) == code
