"""Provider sources. Each module (or package) here declares `PROVIDER` (a `Provider`) and
`SOURCE` (its dlt source function); they are found by name, so a new provider is one new module."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

_NOT_PROVIDERS = {"common"}


def provider_modules() -> dict[str, ModuleType]:
    """Every provider package, keyed by its contract name."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_PROVIDERS:
            module = importlib.import_module(f"{__name__}.{info.name}")
            found[module.PROVIDER.name] = module
    return found
