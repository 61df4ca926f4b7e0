"""HighLevel's part of the demo: three locations (a busy store, a quieter one, and one that
starts half-way) listing new CSV imports every run."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sources.highlevel.fixture import HighLevelFixture
from sources.highlevel.settings import PROVIDER

# imports per run and location
LOCATIONS = {"loc_north_store": 12, "loc_south_store": 7, "loc_new_store": 5}
LATE_LOCATION, LATE_AFTER = "loc_new_store", timedelta(days=15)
RUN_EVERY_DAYS = 3
# a month replayed in seconds would spend most of them inside the documented 100-per-10-s
# limit, so the simulator and the client allow more
RATE_LIMIT = 1000


class HighLevelScenario:
    def __init__(self, start: datetime) -> None:
        self.start = start
        # a page cap below the requested limit, as real servers may impose
        self.fixture = HighLevelFixture(locations=dict.fromkeys(LOCATIONS, 0), seed=2026,
                                        page_cap=40, now=start, rate_max=RATE_LIMIT)

    def env(self, base_url: str) -> dict[str, str]:
        return {PROVIDER.env_key("base_url"): base_url,
                PROVIDER.secret_env_key: self.fixture.token,
                PROVIDER.env_key("location_ids"): json.dumps(list(LOCATIONS)),
                PROVIDER.env_key("rate_limit_requests"): str(RATE_LIMIT)}

    def reseed(self, generation: int) -> None:
        """A kept demo's imports: other ids than the earlier demo's."""
        self.fixture.reseed(2026 + generation)

    def submit(self, run: int, moment: datetime) -> list[str]:
        self.fixture.now = moment
        for location, per_run in LOCATIONS.items():
            if location != LATE_LOCATION or moment >= self.start + LATE_AFTER:
                self.fixture.add_imports(location, per_run, unfinished_share=0.5,
                                         spread_days=RUN_EVERY_DAYS)
        return []  # imports are listed by the API, never registered

    def config(self, refs: list[str]) -> dict[str, str]:
        return {}


def scenario(start: datetime) -> HighLevelScenario:
    return HighLevelScenario(start)
