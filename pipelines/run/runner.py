"""Runs provider sources into one dlt pipeline, one load per provider, and collects the summary."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import dlt
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)
from dlt.pipeline.exceptions import PipelineStepFailed
from dlt.pipeline.trace import PipelineTrace

from pipelines.analytics.views import VIEWS_DIGEST_FILE, create_views, view_names, views_digest
from pipelines.common.errors import config_message, describe_failure, exception_chain
from pipelines.common.usage import UsageError
from pipelines.destinations.destination import loader_file_format, make_pipeline, writing
from pipelines.destinations.dlt_tooling import publish_schema, save_run_trace
from pipelines.destinations.fence import lost_reason, still_held
from pipelines.destinations.lakehouse import for_destination, is_lakehouse
from pipelines.destinations.run_lock import LockLost
from pipelines.run.clock import cap_future_observations
from pipelines.run.config_errors import check_runtime_settings
from pipelines.run.environment import run_settings
from pipelines.run.gc_tuning import fewer_collections
from pipelines.run.interrupt import Interrupted, signal_in
from pipelines.run.orphans import drop_unfinished_rows
from pipelines.run.reconcile import forget_stored_schema, missing_tables, reconcile_state
from pipelines.run.resume import finish_interrupted
from pipelines.run.run_report import RunReport
from pipelines.run.set_aside import is_permanent, set_aside
from sources import ProviderPackage, providers
from sources.common.config_checks import ConfigProblem, NotConfigured
from sources.common.errors import DestinationError
from sources.common.job_refs import InvalidJobRef
from sources.common.provider import Provider
from sources.common.stats import ProviderStats, collecting
from sources.common.tracking import forget_statuses, history_table


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
    An empty setting counts as not set (`run_settings`; the environment is as it was after).
    """
    with run_settings():
        check_runtime_settings()
        packages = providers()
        unknown = [n for n in names or [] if n not in packages]
        if unknown:
            raise UsageError(f"unknown source {', '.join(unknown)}; known: "
                             f"{', '.join(packages)}")
        pipeline = pipeline or make_pipeline(destination, dataset)
        with writing(pipeline, wait, on_wait):
            return _run_locked(pipeline, packages, names, full_refresh, skip_unconfigured)


def _run_locked(pipeline: dlt.Pipeline, packages: dict[str, ProviderPackage],
                names: Sequence[str] | None,
                full_refresh: bool, skip_unconfigured: bool = False) -> RunReport:
    report = RunReport(destination=pipeline.destination.destination_name,
                       dataset=pipeline.dataset_name)
    order = list(dict.fromkeys(names or packages))
    traces: list[PipelineTrace] = []
    try:
        finish_interrupted(pipeline, report)
        if (found := reconcile_state(pipeline)) is not None:
            report.notes.append(found)
        if dropped := drop_unfinished_rows(pipeline):
            report.notes.append(f"{dropped} history row(s) of a load no run finished were "
                                "removed: their jobs are read again")
        for i, name in enumerate(order):
            if (waiting := _load_waiting(pipeline, report)) is not None:
                _not_started(report, order[i:], waiting)
                break
            package = packages[name]
            still_held(pipeline)
            with collecting(name) as stats:
                report.providers.append(stats)
                refresh = _repair_lost_tables(pipeline, package.provider, report) or full_refresh
                if capped := cap_future_observations(pipeline, package.provider):
                    report.notes.append(f"{name}: {capped} history row(s) were stamped later "
                                        "than this run's clock (a clock that ran ahead): "
                                        "dated just before this run")
                source = _make_source(package, stats, bool(names) and not skip_unconfigured,
                                      refresh)
                if source is not None:
                    try:
                        _load_provider(pipeline, package.provider, source, stats)
                    finally:  # a run that failed before dlt traced it leaves the last one
                        if (trace := pipeline.last_trace) is not None and (
                                not traces or traces[-1] is not trace):
                            traces.append(trace)
        if any(p.outcome in _RAN or p.rows_loaded for p in report.providers):
            refresh_views(pipeline, report)  # whatever the outcome: what loaded is shown
    except Interrupted as exc:  # no further provider starts; what was extracted waits
        report.interrupted = exc.signum
        for name in order[len(report.providers):]:
            report.providers.append(ProviderStats(name, outcome="not started"))
    finally:
        save_run_trace(pipeline, traces)
    return report


def _load_waiting(pipeline: dlt.Pipeline, report: RunReport) -> str | None:
    """The provider whose load failed for a passing reason (a full disk, the destination
    unreachable), when its package still waits: every later `pipeline.run` would load that
    package instead of extracting, and fail the same way."""
    last = report.providers[-1] if report.providers else None
    if last is None or last.outcome != "failed" or not pipeline.has_pending_data:
        return None
    return last.provider


def _not_started(report: RunReport, names: Sequence[str], waiting: str) -> None:
    """The providers after `waiting`'s waiting load: not started, said on its error line."""
    report.providers[-1].errors[-1] += (
        f"; {', '.join(names)} not started (their runs would load the waiting package first)")
    report.providers.extend(ProviderStats(name, outcome="not started") for name in names)


# outcomes of a provider that reached its pipeline run: the views are rebuilt after them (a
# partly failed run loaded the rest; a failed one may be a fresh dataset, which gets its views)
_RAN = frozenset({"loaded", "partly failed", "failed"})


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
        # with no --source, a provider without its credential is simply not in use
        _not_configured(stats, _missing_keys(exc, provider),
                        named or provider.secret_field not in exc.traces)
    except NotConfigured as exc:
        _not_configured(stats, str(exc), named)
    except InvalidJobRef as exc:
        stats.outcome = "config error"
        stats.errors.append(f"{name}: {exc}")
    except (ConfigValueCannotBeCoercedException, ConfigProblem) as exc:
        stats.outcome = "config error"
        stats.errors.append(config_message(provider, exc))
    return None


def _not_configured(stats: ProviderStats, missing: str, is_error: bool) -> None:
    if is_error:
        stats.outcome = "config error"
        stats.errors.append(f"{stats.provider}: missing configuration {missing}")
    else:
        stats.outcome = "skipped"
        stats.errors.append(f"{stats.provider} not configured (missing {missing})")


def _load_provider(pipeline: dlt.Pipeline, provider: Provider, source: Any,
                   stats: ProviderStats) -> None:
    """Extract, normalize and load one provider; the outcome and errors go to `stats`."""
    try:
        with fewer_collections():
            pipeline.run(for_destination(source, pipeline),
                         loader_file_format=loader_file_format(pipeline))
    except Interrupted:  # between dlt's steps: an extracted package waits for the next run
        stats.outcome = "interrupted"
        raise
    except PipelineStepFailed as exc:
        if (lost := lost_reason(pipeline)) is not None:  # not the package's fault: kept
            raise LockLost(lost) from None
        if exc.step == "extract":
            _drop_partial_extract(pipeline)
        if (signum := signal_in(exc)) is not None:
            stats.outcome = "interrupted"
            raise Interrupted(signum) from None
        problem = next((e for e in exception_chain(exc) if isinstance(e, ConfigProblem)), None)
        if problem is not None:  # found only once it was used (a refresh token refused)
            stats.outcome = "config error"
            stats.errors.append(config_message(provider, problem))
            return
        stats.outcome = "failed"
        stats.errors.append(describe_failure(provider, exc))
        if exc.step == "load" and not is_permanent(exc):
            stats.errors[-1] += " (this passes: the load is retried by the next run)"
        elif (aside := set_aside(pipeline, exc)) is not None:
            stats.errors.append(
                f"{provider.name}: the destination refused this run's load package for good; "
                f"it is set aside in {aside.path} and the next run reads these jobs again "
                "(README: When things go wrong)")
        return
    if stats.down is not None:  # every job polled got no answer: the API, not one job
        stats.outcome = "failed"
        stats.errors.append(f"{describe_failure(provider, stats.down)} (no job answered; "
                            "they are polled again next run)")
        stats.rows_loaded = _rows_loaded(pipeline)
        return
    if stats.failed_units:
        stats.failed_parts.append(
            f"{stats.failed_units} unit(s) could not be read (named above, kept in "
            f"{stats.provider}_rejects); they are read again next run, the rest loaded")
    stats.outcome = ("config error" if stats.config_errors else
                     "partly failed" if stats.failed_parts else "loaded")
    stats.errors.extend(f"{provider.name}: {part}" for part in
                        stats.config_errors + stats.failed_parts)
    stats.rows_loaded = _rows_loaded(pipeline)


def refresh_views(pipeline: dlt.Pipeline, report: RunReport) -> None:
    """Create the BI views anew over what is loaded now (Delta tables have none stored: the
    report makes them over the tables when it reads; plain files are refused before a run),
    unless nothing they are made of changed since they were (`views_digest`): a run that
    changed no table keeps them, which is most of a no-change run's cost."""
    if is_lakehouse(pipeline):
        return
    marker = Path(pipeline.working_dir) / VIEWS_DIGEST_FILE
    digest = views_digest(pipeline)
    if not report.notes and marker.exists() and marker.read_text() == digest:
        report.views = view_names()
        return
    marker.unlink(missing_ok=True)
    still_held(pipeline)  # views are written outside dlt's commits
    try:
        report.views = create_views(pipeline)
    except Exception as exc:  # the loads stand; the operator learns why the views did not
        report.views_error = f"views not created: {type(exc).__name__}: {exc}"
        return
    try:
        publish_schema(pipeline, report.views)
    except Exception as exc:  # dlt's tools see less; nothing loaded is lost
        report.views_error = f"dataset schema not stored: {type(exc).__name__}: {exc}"
        return
    marker.write_text(digest)


def views_after_write(pipeline: dlt.Pipeline) -> None:
    """Refresh the views after a command other than `run` wrote (track, untrack, prune), so
    they show what it changed; `ViewsNotRefreshed` says why they could not be."""
    report = RunReport(destination=pipeline.destination.destination_name,
                       dataset=pipeline.dataset_name)
    refresh_views(pipeline, report)
    if report.views_error is not None:
        raise ViewsNotRefreshed(f"{report.views_error} (what the command wrote is loaded; the "
                                "next run creates them again)")


class ViewsNotRefreshed(DestinationError):
    """The command's data is loaded, but the views could not be refreshed over it."""


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
