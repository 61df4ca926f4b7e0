"""The provider registry. Each folder here except `common` is one provider:

- `provider.toml` (a polled provider declared as data, `sources.common.declaration`), or an
  `__init__.py` defining `PROVIDER` (a `Provider`) and `SOURCE` (its dlt source function);
- `fixture.py` defining `FIXTURE`, the simulator fixture class of its API (tests, demo);
- optionally `demo.py` defining `scenario(start)`, its part of `upload-status demo` (declared
  providers get one from their `[demo]` table).

Everything that lists providers (the run, track, views, demo, simulator, tests) asks here, so
a new provider is one new folder. Recipe: CONTRIBUTING.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sources.common.provider import DECLARATION_FILE, Provider

_NOT_PROVIDERS = {"common"}
_HERE = Path(__file__).parent


@dataclass(frozen=True)
class ProviderPackage:
    """One provider folder: its declaration, dlt source, simulator fixture and demo part."""

    name: str
    folder: Path
    provider: Provider
    source: Callable[..., Any]
    declaration: Any = None  # sources.common.declaration.Declaration of a declared provider
    ids_help: str = ""  # how `track` takes its job ids; "" when its jobs are not registered

    @property
    def module(self) -> str:
        return f"{__name__}.{self.name}"

    @property
    def kind(self) -> str:
        """`polled` or `listed`: a declaration's kind, or a Python package's `KIND`."""
        if self.declaration is not None:
            return self.declaration.kind
        return getattr(importlib.import_module(self.module), "KIND", "polled")

    @property
    def spec(self) -> Any:
        """A listed provider's `ListedSpec`."""
        if self.declaration is not None:
            return self.declaration.spec
        return getattr(importlib.import_module(self.module), "SPEC", None)

    @property
    def scopes_key(self) -> str | None:
        """The configuration key listing a listed provider's scopes."""
        if self.declaration is not None:
            return self.declaration.ids_key if self.kind == "listed" else None
        return getattr(importlib.import_module(self.module), "SCOPES_KEY", None)

    def fixture_class(self) -> type:
        """The simulator fixture of its API (`fixture.py`'s `FIXTURE`)."""
        return importlib.import_module(f"{self.module}.fixture").FIXTURE

    def scenario(self, start: datetime) -> Any:
        """Its part of the demo: `demo.py`'s `scenario(start)`, or the generic one of a
        declared provider; None for a Python provider without a `demo.py` (it sits the demo
        out: `demo.py` is optional)."""
        if (self.folder / "demo.py").exists():
            return importlib.import_module(f"{self.module}.demo").scenario(start)
        if self.declaration is None:
            return None
        from simulator.scenario import ListedScenario, PolledScenario

        kind = ListedScenario if self.declaration.kind == "listed" else PolledScenario
        return kind(self, self.fixture_class()())


def _load(folder: Path) -> ProviderPackage:
    if (folder / DECLARATION_FILE).exists():
        from sources.common.declaration import load_declaration

        declared = load_declaration(folder / DECLARATION_FILE)
        return ProviderPackage(folder.name, folder, declared.provider, declared.source, declared,
                               declared.ids_help)
    module = importlib.import_module(f"{__name__}.{folder.name}")
    return ProviderPackage(folder.name, folder, module.PROVIDER, module.SOURCE,
                           ids_help=getattr(module, "IDS_HELP", ""))


@cache
def _registry(names: tuple[str, ...]) -> dict[str, ProviderPackage]:
    return {name: _load(_HERE / name) for name in names}


def provider_names() -> list[str]:
    """The providers' names from their folders alone, importing nothing (a scheduler that
    parses its DAG file often): a folder with a declaration or a Python package."""
    return sorted(f.name for f in _HERE.iterdir()
                  if f.name not in _NOT_PROVIDERS and f.name.isidentifier()
                  and ((f / DECLARATION_FILE).exists() or (f / "__init__.py").exists()))


def providers() -> dict[str, ProviderPackage]:
    """Every provider package, keyed by its contract name, in name order."""
    return _registry(tuple(provider_names()))
