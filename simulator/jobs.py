"""Scripted job states shared by the polled-provider fixtures: each job walks through a list of
native statuses, one step per `advance()`, under test control."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar


@dataclass
class ScriptedJob:
    """One job: its successive native statuses (the last one is where it stays) and extras."""

    steps: list[str]
    step: int = 0
    data: dict[str, Any] = field(default_factory=dict)  # fixture-specific details

    @property
    def status(self) -> str:
        return self.steps[self.step]

    @property
    def at_end(self) -> bool:
        return self.step >= len(self.steps) - 1

    def advance(self) -> bool:
        if self.at_end:
            return False
        self.step += 1
        return True


K = TypeVar("K")


class ScriptedJobs(Generic[K]):
    """A lock-guarded set of scripted jobs keyed by whatever identifies a job at the provider."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.jobs: dict[K, ScriptedJob] = {}

    def add(self, key: K, steps: list[str], **data: Any) -> ScriptedJob:
        if not steps:
            raise ValueError("a job needs at least one status")
        with self.lock:
            job = self.jobs[key] = ScriptedJob(list(steps), data=dict(data))
        return job

    def get(self, key: K) -> ScriptedJob | None:
        with self.lock:
            return self.jobs.get(key)

    def advance(self) -> list[K]:
        """Move every job one step; return the keys of those that moved."""
        with self.lock:
            return [key for key, job in self.jobs.items() if job.advance()]

    def unfinished(self, final: set[str] | frozenset[str]) -> list[K]:
        with self.lock:
            return [key for key, job in self.jobs.items() if job.status not in final]
