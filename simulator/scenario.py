"""A provider's part of `upload-status demo`: its simulated API, the configuration that points
the source at it, and the jobs submitted between runs."""

from __future__ import annotations

import json
import random
from datetime import datetime
from typing import Any, Protocol

from simulator.server import Fixture


class Scenario(Protocol):
    fixture: Fixture

    def env(self, base_url: str) -> dict[str, str]:
        """Configuration (environment form) pointing the provider's source at the simulator."""

    def submit(self, run: int, moment: datetime) -> list[str]:
        """Jobs created since the last run, as `upload-status track` takes them (none for a
        provider whose jobs are listed by its API)."""

    def config(self, refs: list[str]) -> dict[str, str]:
        """Configuration following `refs` (the demo registers the first run's jobs with
        `track` and later ones through configuration, as users do both)."""


class PolledScenario:
    """The scenario of a declared polled provider: `jobs_per_run` jobs of the fixture's
    `generate(n, seed)` each run, followed through the declared ids key."""

    def __init__(self, package: Any, fixture: Any) -> None:
        self.package = package
        self.fixture = fixture
        self.jobs_per_run = package.declaration.demo_jobs_per_run

    def env(self, base_url: str) -> dict[str, str]:
        provider = self.package.provider
        return {provider.env_key("base_url"): base_url,
                provider.secret_env_key: self.fixture.token}

    def submit(self, run: int, moment: datetime) -> list[str]:
        return self.fixture.generate(self.jobs_per_run, seed=run) if self.jobs_per_run else []

    def config(self, refs: list[str]) -> dict[str, str]:
        key = self.package.provider.env_key(self.package.declaration.ids_key)
        return {key: json.dumps(refs)}


class ListedScenario:
    """The scenario of a declared listed provider: two scopes of the fixture, listed in the
    configuration; before each run `jobs_per_run` new items walking from an unfinished
    documented status to a finished one (the fixture's facts, `simulator.facts.ListedFacts`)."""

    def __init__(self, package: Any, fixture: Any) -> None:
        self.package = package
        self.fixture = fixture
        self.jobs_per_run = package.declaration.demo_jobs_per_run
        self.scopes = [fixture.scope(), fixture.scope()]

    def env(self, base_url: str) -> dict[str, str]:
        provider = self.package.provider
        return {provider.env_key("base_url"): base_url,
                provider.secret_env_key: self.fixture.token,
                provider.env_key(self.package.declaration.ids_key): json.dumps(self.scopes)}

    def submit(self, run: int, moment: datetime) -> list[str]:
        rng = random.Random(run)
        finished = [s for s in self.fixture.contract if s in self.fixture.finished]
        waiting = [s for s in self.fixture.contract if s not in self.fixture.finished]
        for _ in range(self.jobs_per_run):
            steps = [*rng.sample(waiting, min(len(waiting), rng.randint(0, 2))),
                     rng.choice(finished)]
            self.fixture.item(rng.choice(self.scopes), steps, rows=rng.randint(1, 4))
        return []  # listed by the provider's API: nothing to track

    def config(self, refs: list[str]) -> dict[str, str]:
        return {}
