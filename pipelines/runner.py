"""Runs provider sources into one dlt pipeline, one load per provider, and collects the summary."""

from __future__ import annotations

import gc
import inspect
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt
import duckdb
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
)
from dlt.common.destination import Destination
from dlt.common.destination.client import WithStateSync
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials
from dlt.pipeline.exceptions import PipelineStepFailed

from pipelines.errors import config_message, describe_failure
from pipelines.interrupt import Interrupted, signal_in
from pipelines.local_state import pipelines_dir_for
from pipelines.reconcile import forget_stored_schema, missing_tables, reconcile_state
from pipelines.report import Report, build_report
from pipelines.resume import settle_committed_jobs
from pipelines.run_lock import LockHeld, holding, lock_for
from pipelines.set_aside import SetAside, root_message, set_aside
from pipelines.views import create_views
from sources import provider_modules
from sources.common.config_checks import ConfigProblem
from sources.common.polling import InvalidJobRef
from sources.common.provider import Provider
from sources.common.stats import ProviderStats, collecting
from sources.common.tracking import forget_statuses, history_table

PIPELINE_NAME = "upload_status"
DEFAULT_DATASET = "upload_status"
# DuckDB names a file's catalog after its stem, and a catalog named like the dataset (schema)
# makes every `upload_status.<table>` reference ambiguous, so the file must be named differently.
DEFAULT_DUCKDB_FILE = "upload_status_data.duckdb"

EXIT_OK, EXIT_PROVIDER_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A usage or configuration problem: the message names the key, never a secret's value."""


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


def duckdb_path(dataset: str) -> str:
    """The DuckDB file to load into: DESTINATION__DUCKDB__CREDENTIALS or the default."""
    configured = dlt.config.get("destination.duckdb.credentials")
    path = str(configured) if configured else DEFAULT_DUCKDB_FILE
    if Path(path).stem == dataset:
        raise UsageError(
            f"DuckDB file '{path}' has the same name as the dataset '{dataset}': DuckDB then "
            "cannot tell the catalog from the schema. Set DESTINATION__DUCKDB__CREDENTIALS to a "
            "file with another name, or choose another --dataset.")
    # absolute: dlt would resolve a relative path against the folder of the pipeline's first
    # run, not the folder the command runs in
    plain_file = "://" not in path and not path.startswith(":")
    return str(Path(path).resolve()) if plain_file else path


def ensure_duckdb_free(path: str) -> None:
    """UsageError when another process (a BI tool, a second run) holds the DuckDB file: DuckDB
    allows one writing process per file, and dlt would fail deep inside the load."""
    if not Path(path).exists():
        return
    try:
        duckdb.connect(path).close()
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        holder = str(exc).split("(PID", 1)[1].split(")", 1)[0].strip() if "(PID" in str(
            exc) else "unknown"
        raise UsageError(
            f"DuckDB file {path} is in use by another process (PID {holder}), e.g. a BI tool "
            "or another run. DuckDB lets one process write a file at a time: close it there "
            "(or have the tool read a copy) and run again.") from None


# DuckDB's own default is 80 % of RAM: its buffer pool then holds a whole merge in memory
# (+270 MB for 100,000 imports). Capped, it spills to disk instead: peak RSS of a first load of
# 300,000 imports 544 MB at 192 MB, 494 MB at 128 MB, 474 MB with one thread as well (each
# DuckDB thread keeps buffers of its own, and dlt already runs one load job per table in
# parallel); the load took no longer (bench/RESULTS.md)
DUCKDB_SETTINGS: dict[str, Any] = {"memory_limit": "128MB", "threads": 1}


def duckdb_destination(path: str) -> Any:
    """DuckDB at `path` with bounded memory (`DUCKDB_SETTINGS`); settings the user gives in
    DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG (e.g. another memory_limit) win."""
    configured = dlt.config.get("destination.duckdb.credentials.global_config") or {}
    if isinstance(configured, str):
        configured = json.loads(configured)
    credentials = DuckDbCredentials(path)
    credentials.global_config = {**DUCKDB_SETTINGS, **configured}
    return dlt.destinations.duckdb(credentials)


def make_pipeline(destination: str | None = None, dataset: str | None = None,
                  pipeline_name: str = PIPELINE_NAME, pipelines_dir: str | None = None
                  ) -> dlt.Pipeline:
    """The pipeline into `dataset` at `destination`, its local folder one of its own
    (`local_state.pipelines_dir_for`) unless `pipelines_dir` is given."""
    dataset = dataset or DEFAULT_DATASET
    dest: Destination = (duckdb_destination(duckdb_path(dataset)) if destination in (None, "duckdb")
                         else Destination.from_reference(destination))
    return dlt.pipeline(pipeline_name=pipeline_name, destination=dest, dataset_name=dataset,
                        pipelines_dir=pipelines_dir or pipelines_dir_for(dest, dataset))


def _duckdb_file(pipeline: dlt.Pipeline) -> str | None:
    """The DuckDB file `pipeline` loads into, None for other destinations or no plain file."""
    if pipeline.destination.destination_name != "duckdb":
        return None
    path = pipeline.destination.config_params.get("credentials")
    path = getattr(path, "database", path)
    plain = isinstance(path, str) and "://" not in path and not path.startswith(":")
    return path if plain else None


@contextmanager
def writing(pipeline: dlt.Pipeline, wait: float = 0,
            on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the run lock of the pipeline's destination + dataset (`run_lock`) for the block:
    UsageError naming the holder when another process has it (after `wait` seconds)."""
    lock = lock_for(pipeline.destination, pipeline.dataset_name, Path(pipeline.pipelines_dir))
    try:
        with holding(lock, wait, on_wait):
            if (path := _duckdb_file(pipeline)) is not None:
                ensure_duckdb_free(path)  # a BI tool may hold the file without our lock
            yield
    except LockHeld as exc:
        raise UsageError(str(exc)) from None


def loader_file_format(pipeline: dlt.Pipeline) -> str | None:
    # parquet is ~40x faster than insert_values into DuckDB; others keep their own default
    return "parquet" if pipeline.destination.destination_name == "duckdb" else None


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
    modules = provider_modules()
    unknown = [n for n in names or [] if n not in modules]
    if unknown:
        raise UsageError(f"unknown source {', '.join(unknown)}; known: {', '.join(modules)}")
    pipeline = pipeline or make_pipeline(destination, dataset)
    with writing(pipeline, wait, on_wait):
        return _run_locked(pipeline, modules, names, full_refresh, skip_unconfigured)


def _run_locked(pipeline: dlt.Pipeline, modules: dict[str, Any], names: Sequence[str] | None,
                full_refresh: bool, skip_unconfigured: bool = False) -> RunReport:
    report = RunReport(destination=pipeline.destination.destination_name,
                       dataset=pipeline.dataset_name)
    order = list(names or modules)
    try:
        finish_interrupted(pipeline, report)
        if (found := reconcile_state(pipeline)) is not None:
            report.notes.append(found)
        for name in order:
            module = modules[name]
            with collecting(name) as stats:
                report.providers.append(stats)
                refresh = _repair_lost_tables(pipeline, module.PROVIDER, report) or full_refresh
                source = _make_source(pipeline, module, stats,
                                      bool(names) and not skip_unconfigured, refresh)
                if source is not None:
                    _load_provider(pipeline, module.PROVIDER, source, stats)
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


def _make_source(pipeline: dlt.Pipeline, module: Any, stats: ProviderStats, named: bool,
                 full_refresh: bool) -> Any:
    """The provider's dlt source, or None with the reason in `stats` (not configured: skipped
    unless named with --source; a configuration mistake)."""
    name = module.PROVIDER.name
    try:
        return module.SOURCE(full_refresh=full_refresh, **first_load_argument(pipeline, module))
    except ConfigFieldMissingException as exc:
        missing = _missing_keys(exc, module.PROVIDER)
        # with no --source, a provider without its credential is simply not in use
        if not named and module.PROVIDER.secret_field in exc.traces:
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
        stats.errors.append(config_message(module.PROVIDER, exc))
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


def first_load_argument(pipeline: dlt.Pipeline, module: Any) -> dict[str, bool]:
    """`first_load=True` for a source that takes it when the destination holds nothing of it.

    "Nothing" is no stored schema of the source in the dataset: dlt stores it (after creating
    the tables) before a load writes any row, so a load that wrote rows, or crashed while
    writing them, counts. Any doubt (a destination that cannot tell, an error asking) is no:
    merging is always right, appending only into empty tables."""
    if "first_load" not in inspect.signature(module.SOURCE).parameters:
        return {}
    try:
        if (path := _duckdb_file(pipeline)) is not None and not Path(path).exists():
            return {"first_load": True}  # no file yet (asking would create one)
        with pipeline.destination_client() as client:
            new = (isinstance(client, WithStateSync)
                   and client.get_stored_schema(module.PROVIDER.name) is None)
    except Exception:  # the run itself reports an unreachable destination
        return {}
    return {"first_load": True} if new else {}


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Python's cycle collector at larger generation sizes while a provider loads.

    A run allocates millions of short-lived objects (every listing record, status and row),
    nearly all freed by reference counting; at the default threshold (700 allocations) a
    first run over 100,000 imports made ~1,100 collections, 9 of them over every object of
    the process: 0.75 s (timed with `gc.callbacks`). At these sizes: 0.15 s, and no more
    memory than the run's own garbage cycles (dlt makes few)."""
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


def load_report(destination: str | None, dataset: str | None, since_days: int,
                stuck_hours: float, top: int) -> Report:
    """The report over what the pipeline has loaded; UsageError when nothing is there yet."""
    pipeline = make_pipeline(destination, dataset)
    if (path := _duckdb_file(pipeline)) is not None:
        if not Path(path).exists():
            raise UsageError(f"no DuckDB file {path} yet: run `upload-status run` first (or "
                             "set DESTINATION__DUCKDB__CREDENTIALS)")
        ensure_duckdb_free(path)
    try:
        return build_report(pipeline, since_days, stuck_hours, top)
    except DatabaseUndefinedRelation:
        raise UsageError(f"no views in dataset {pipeline.dataset_name} yet: run "
                         "`upload-status run` first") from None
