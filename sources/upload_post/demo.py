"""Upload-Post's part of the demo: 20 uploads a run, the async requests registered by the user,
the scheduled posts found through the history listing."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sources.upload_post import PROVIDER
from sources.upload_post.fixture import UploadPostFixture

RUN_EVERY_DAYS = 3


class UploadPostScenario:
    def __init__(self, start: datetime) -> None:
        self.fixture = UploadPostFixture(now=start, tick=timedelta(minutes=30))

    def env(self, base_url: str) -> dict[str, str]:
        return {PROVIDER.env_key("base_url"): base_url, PROVIDER.secret_env_key: self.fixture.token}

    def submit(self, run: int, moment: datetime) -> list[str]:
        self.fixture.now = moment
        refs = self.fixture.generate(20, seed=run, days=RUN_EVERY_DAYS)
        return [r for r in refs if r.startswith("request:")]

    def config(self, refs: list[str]) -> dict[str, str]:
        return {PROVIDER.env_key("request_ids"): json.dumps(
            [r.removeprefix("request:") for r in refs])}


def scenario(start: datetime) -> UploadPostScenario:
    return UploadPostScenario(start)
