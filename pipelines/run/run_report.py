"""What a run did, per provider, and the exit code it amounts to."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.run.exit_codes import outcome_exit_code
from pipelines.run.set_aside import SetAside
from sources.common.stats import ProviderStats


@dataclass
class RunReport:
    providers: list[ProviderStats] = field(default_factory=list)
    destination: str = ""
    dataset: str = ""
    views: list[str] = field(default_factory=list)  # views created after the loads
    views_error: str | None = None
    resumed: int = 0  # packages of an interrupted earlier run loaded first
    resume_error: str | None = None
    jobs_settled: int = 0  # jobs of those packages whose rows were already loaded
    set_aside: list[SetAside] = field(default_factory=list)  # pending packages refused for good
    notes: list[str] = field(default_factory=list)  # state and destination disagreed: repaired
    interrupted: int | None = None  # the signal that stopped the run

    @property
    def exit_code(self) -> int:
        if self.interrupted is not None:
            return 128 + self.interrupted
        return self._outcome_code()

    def _outcome_code(self) -> int:
        return outcome_exit_code(
            [p.outcome for p in self.providers],
            self.views_error is not None or self.resume_error is not None or bool(self.set_aside))
