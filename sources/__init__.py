"""Provider sources. Each sub-package declares `PROVIDER` (a `Provider`) and `SOURCE` (its dlt
source function); they are found here by name, so a new provider is one new package."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

_NOT_PROVIDERS = {"common"}


def provider_modules() -> dict[str, ModuleType]:
    """Every provider package, keyed by its contract name."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg and info.name not in _NOT_PROVIDERS:
            module = importlib.import_module(f"{__name__}.{info.name}")
            found[module.PROVIDER.name] = module
    return found
