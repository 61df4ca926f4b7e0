"""Runs provider sources into one dlt pipeline, one load per provider, and collects the summary."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import dlt
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.destination import loader_file_format, make_pipeline, writing
from pipelines.errors import config_message, describe_failure
from pipelines.interrupt import Interrupted, signal_in
from pipelines.reconcile import forget_stored_schema, missing_tables, reconcile_state
from pipelines.resume import settle_committed_jobs
from pipelines.set_aside import SetAside, root_message, set_aside
from pipelines.usage import UsageError
from pipelines.views import create_views
from sources import ProviderPackage, providers
from sources.common.config_checks import ConfigProblem
from sources.common.job_refs import InvalidJobRef
from sources.common.provider import Provider
from sources.common.stats import ProviderStats, collecting
from sources.common.tracking import forget_statuses, history_table

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


def run_providers(
    names: Sequence[str] | None = None,
    destination: str | None = None,
    dataset: str | None = None,
    full_refresh: bool = False,
    pipeline: dlt.Pipeline | None = None,
    wait: float = 0,
    on_wait: Callable[[str], None] | None = None,
    skip_unconfigured: bool = False,
) -> RunReport:
    """Load each provider in its own `pipeline.run`, so one failing provider keeps the others,
    holding the run lock throughout (`writing`).

    With no names, every provider whose configuration is complete runs; the rest are skipped.
    A named provider without its credential is a configuration error, unless
    `skip_unconfigured` (a scheduler's task per provider, where one not in use is skipped).
    """
    packages = providers()
    unknown = [n for n in names or [] if n not in packages]
    if unknown:
        raise UsageError(f"unknown source {', '.join(unknown)}; known: {', '.join(packages)}")
    pipeline = pipeline or make_pipeline(destination, dataset)
    with writing(pipeline, wait, on_wait):
        return _run_locked(pipeline, packages, names, full_refresh, skip_unconfigured)


def _run_locked(pipeline: dlt.Pipeline, packages: dict[str, ProviderPackage],
                names: Sequence[str] | None,
                full_refresh: bool, skip_unconfigured: bool = False) -> RunReport:
    report = RunReport(destination=pipeline.destination.destination_name,
                       dataset=pipeline.dataset_name)
    order = list(dict.fromkeys(names or packages))
    try:
        finish_interrupted(pipeline, report)
        if (found := reconcile_state(pipeline)) is not None:
            report.notes.append(found)
        for name in order:
            package = packages[name]
            with collecting(name) as stats:
                report.providers.append(stats)
                refresh = _repair_lost_tables(pipeline, package.provider, report) or full_refresh
                source = _make_source(package, stats, bool(names) and not skip_unconfigured,
                                      refresh)
                if source is not None:
                    _load_provider(pipeline, package.provider, source, stats)
        if any(p.outcome == "loaded" for p in report.providers):
            refresh_views(pipeline, report)
    except Interrupted as exc:  # no further provider starts; what was extracted waits
        report.interrupted = exc.signum
        for name in order[len(report.providers):]:
            report.providers.append(ProviderStats(name, outcome="not started"))
    return report


def _repair_lost_tables(pipeline: dlt.Pipeline, provider: Provider, report: RunReport) -> bool:
    """True (re-read that provider in full) when tables it loaded are gone from the destination:
    dlt is made to recreate them, and a lost history table has every job observed anew."""
    missing = missing_tables(pipeline, provider.name)
    if not missing:
        return False
    forget_stored_schema(pipeline, provider.name)
    note = f"{provider.name}: {', '.join(missing)} missing in the destination: recreated and " \
           "read in full"
    if history_table(provider) in missing:
        with pipeline.managed_state() as state:
            forgotten = forget_statuses(state.setdefault("sources", {}).setdefault(
                provider.name, {}))
        note += f" ({forgotten} jobs' statuses recorded anew)"
    report.notes.append(note)
    return True


def _make_source(package: ProviderPackage, stats: ProviderStats, named: bool,
                 full_refresh: bool) -> Any:
    """The provider's dlt source, or None with the reason in `stats` (not configured: skipped
    unless named with --source; a configuration mistake)."""
    name, provider = package.name, package.provider
    try:
        return package.source(full_refresh=full_refresh)
    except ConfigFieldMissingException as exc:
        missing = _missing_keys(exc, provider)
        # with no --source, a provider without its credential is simply not in use
        if not named and provider.secret_field in exc.traces:
            stats.outcome = "skipped"
            stats.errors.append(f"{name} not configured (missing {missing})")
        else:
            stats.outcome = "config error"
            stats.errors.append(f"{name}: missing configuration {missing}")
    except InvalidJobRef as exc:
        stats.outcome = "config error"
        stats.errors.append(f"{name}: {exc}")
    except (ConfigValueCannotBeCoercedException, ConfigProblem) as exc:
        stats.outcome = "config error"
        stats.errors.append(config_message(provider, exc))
    return None


def _load_provider(pipeline: dlt.Pipeline, provider: Provider, source: Any,
                   stats: ProviderStats) -> None:
    """Extract, normalize and load one provider; the outcome and errors go to `stats`."""
    try:
        with fewer_collections():
            pipeline.run(source, loader_file_format=loader_file_format(pipeline))
    except Interrupted:  # between dlt's steps: an extracted package waits for the next run
        stats.outcome = "interrupted"
        raise
    except PipelineStepFailed as exc:
        if exc.step == "extract":
            _drop_partial_extract(pipeline)
        if (signum := signal_in(exc)) is not None:
            stats.outcome = "interrupted"
            raise Interrupted(signum) from None
        stats.outcome = "failed"
        stats.errors.append(describe_failure(provider, exc))
        if (aside := set_aside(pipeline, exc)) is not None:
            stats.errors.append(
                f"{provider.name}: the destination refused this run's load package for good; "
                f"it is set aside in {aside.path} and the next run reads these jobs again "
                "(README: When things go wrong)")
        return
    stats.outcome = ("config error" if stats.config_errors else
                     "partly failed" if stats.failed_parts else "loaded")
    stats.errors.extend(f"{provider.name}: {part}" for part in
                        stats.config_errors + stats.failed_parts)
    stats.rows_loaded = _rows_loaded(pipeline)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Python's cycle collector at larger generation sizes while a provider loads.

    A run allocates millions of short-lived objects (every listing record, status and row),
    nearly all freed by reference counting: collecting every 700 allocations walks them again
    and again for nothing (measurements: bench/RESULTS.md)."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 20, 100)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def finish_interrupted(pipeline: dlt.Pipeline, report: RunReport) -> None:
    """Load what an interrupted run (killed, out of power) extracted but did not finish loading.

    Its state was committed with its data, so this run's extract starts from it; dlt's `run`
    would load such packages and then skip the new extract, so they are finished here first.
    Jobs whose rows the destination already holds are not loaded again (`resume`); a package
    the destination refuses for good is set aside (`set_aside`) and the others still load.
    """
    while pipeline.has_pending_data:
        try:
            pipeline.normalize()  # the file format was chosen when the package was extracted
            report.jobs_settled += settle_committed_jobs(pipeline)
            info = pipeline.load()
            report.resumed += len(info.loads_ids)
            return
        except PipelineStepFailed as exc:
            if (signum := signal_in(exc)) is not None:
                raise Interrupted(signum) from None
            aside = set_aside(pipeline, exc)
            if aside is None or aside.load_id in {a.load_id for a in report.set_aside}:
                # transient (retried by the next run), or a package dlt would not let go
                report.resume_error = ("loading the packages of an interrupted run failed: "
                                       f"{root_message(exc)}")
                return
            report.set_aside.append(aside)


def refresh_views(pipeline: dlt.Pipeline, report: RunReport) -> None:
    """Create the BI views anew over what is loaded now; a destination without SQL (files)
    has none."""
    if pipeline.destination.destination_name == "filesystem":
        return
    try:
        report.views = create_views(pipeline)
    except Exception as exc:  # the loads stand; the operator learns why the views did not
        report.views_error = f"views not created: {type(exc).__name__}: {exc}"


def _missing_keys(exc: ConfigFieldMissingException, provider: Provider) -> str:
    return ", ".join(provider.env_key(field_name) for field_name in exc.traces)


def _drop_partial_extract(pipeline: dlt.Pipeline) -> None:
    """Forget a failed extract's partial package so the next provider's run starts clean.

    Nothing is lost: a failed extract never commits its state, so the next run reads the same
    jobs again. Packages that failed later (normalize, load) hold committed state and are kept
    for dlt to retry.
    """
    if pipeline.has_pending_data:
        pipeline.abort_packages()


def _rows_loaded(pipeline: dlt.Pipeline) -> dict[str, int]:
    trace = pipeline.last_trace
    normalize = trace.last_normalize_info if trace else None
    if normalize is None:
        return {}
    return {t: n for t, n in normalize.row_counts.items() if not t.startswith("_dlt")}
