"""What a run did, per provider, and the exit code it amounts to."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.set_aside import SetAside
from sources.common.stats import ProviderStats

EXIT_OK, EXIT_PROVIDER_FAILED, EXIT_USAGE = 0, 1, 2


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
        outcomes = {p.outcome for p in self.providers}
        if "config error" in outcomes or outcomes <= {"skipped"}:
            return EXIT_USAGE  # a configuration problem, or nothing configured at all
        failed = (bool(outcomes & {"failed", "partly failed"}) or self.views_error is not None
                  or self.resume_error is not None or bool(self.set_aside))
        return EXIT_PROVIDER_FAILED if failed else EXIT_OK
