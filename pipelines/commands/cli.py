"""The `upload-status` command line."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

# only what `--help` needs at module level: dlt, DuckDB, sqlglot and pyarrow load in the
# commands that use them (bench/RESULTS.md: start-up)
from pipelines.commands import redacted_output
from pipelines.commands.render import console, err_console
from pipelines.common.usage import UsageError
from pipelines.run.environment import telemetry_off_unless_chosen, unset_empty_settings
from sources import provider_names
from sources.common.errors import UploadStatusError

if TYPE_CHECKING:
    from sources import ProviderPackage

T = TypeVar("T")

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Load upload/import job statuses from SaaS APIs into DuckDB or any dlt "
                       "destination.")

_settled = {"debug": False}  # --debug: a traceback instead of one line


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"upload-status {version('upload-status')}")
        raise typer.Exit(0)


@app.callback()
def _everything_redacted(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback of an error (secrets still redacted).")] = False,
    version: Annotated[bool | None, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version.")] = None,
) -> None:
    """Load upload/import job statuses from SaaS APIs into DuckDB or any dlt destination."""
    _settled["debug"] = debug
    redacted_output.install()
    if not debug:
        from pipelines.run.dlt_logs import quiet_load_jobs

        quiet_load_jobs()
    if empty := unset_empty_settings():
        err_console.print(f"[yellow]note[/] empty, taken as not set: {', '.join(empty)}")
    from pipelines.destinations.project import find_project

    if (note := find_project()) is not None:
        err_console.print(f"[yellow]note[/] {escape(note)}")
    telemetry_off_unless_chosen()


def main(argv: list[str] | None = None) -> None:
    """The command: a configuration mistake exits 2 with one line naming the key, any other
    error exits 1 with one line (`--debug` shows the traceback), and output cut short by a
    closed pipe (`| head`) keeps the command's exit code (`redacted_output`)."""
    redacted_output.install()  # before click: its help and errors are written too
    try:
        app(args=argv, prog_name="upload-status")
    except Exception as exc:
        if _settled["debug"]:
            raise
        from pipelines.common.errors import redact
        from pipelines.run.config_errors import explain
        from pipelines.run.exit_codes import EXIT_FAILED, EXIT_USAGE

        if (line := explain(exc)) is not None:
            err_console.print(f"[bold red]error[/] {escape(line)}")
            sys.exit(EXIT_USAGE)
        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
        err_console.print(f"[bold red]error[/] {type(exc).__name__}: {escape(text)} "
                          "(--debug shows the traceback)")
        sys.exit(EXIT_FAILED)


def _registry() -> dict[str, ProviderPackage]:
    """The providers, loaded when a command needs them (`report` and the help do not); a
    provider folder with a mistake stops the command with exit 2, naming the field."""
    from sources import providers

    return _guarded(providers)

WaitOption = Annotated[float, typer.Option(
    "--wait", metavar="SECONDS", min=0,
    help="If another process is writing this destination + dataset, wait up to this long for "
         "it to finish instead of exiting with 2.")]


FromFileOption = Annotated[Path | None, typer.Option(
    "--from-file", help="File with one id per line (or a CSV, with --column).")]
ColumnOption = Annotated[str | None, typer.Option(
    help="Column of the --from-file CSV (with a header row) holding the ids.")]
DestinationOption = Annotated[str | None, typer.Option(help="dlt destination; default duckdb.")]
DatasetOption = Annotated[str | None, typer.Option(help="Dataset (schema) name.")]


def _waiting(message: str) -> None:
    err_console.print(f"[yellow]waiting[/] {escape(str(message))}")


@app.command()
def run(
    source: Annotated[list[str] | None, typer.Option(
        "--source", help=f"Provider to load (repeatable): {', '.join(provider_names())}; "
                         "default: every configured one.")] = None,
    destination: Annotated[str | None, typer.Option(
        help="Any dlt destination name; default duckdb.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset (schema) name.")] = None,
    full_refresh: Annotated[bool, typer.Option(
        "--full-refresh", help="Re-read everything, including finished jobs.")] = False,
    wait: WaitOption = 0,
) -> None:
    """Extract job statuses and load them."""
    _registry()
    from pipelines.commands.progress import run_progress
    from pipelines.commands.render import print_report
    from pipelines.run.interrupt import Interrupted, stopping_on_signals
    from pipelines.run.runner import run_providers

    try:
        with stopping_on_signals(), run_progress(err_console.made()):
            report = run_providers(source, destination, dataset, full_refresh, wait=wait,
                                   on_wait=_waiting)
    except Interrupted as exc:  # before the run lock was taken: nothing was done
        err_console.print(f"[bold red]interrupted[/] by {exc.name}: nothing was loaded")
        from pipelines.run.exit_codes import exit_code_of

        _exit_now(exit_code_of(exc))
    except UploadStatusError as exc:
        _stop(exc)
    print_report(report)
    if report.interrupted is not None:
        name = Interrupted(report.interrupted).name
        err_console.print(
            f"[bold red]interrupted[/] by {name}: no further provider was started; what the "
            "interrupted provider had extracted is loaded by the next run, or read again")
        _exit_now(report.exit_code)
    raise typer.Exit(report.exit_code)


def _exit_now(code: int) -> None:
    """End the process without waiting for requests still in flight on worker threads (a
    slow server would hold an interrupted run for its whole timeout); locks are released by
    the operating system and the server with the process."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@app.command()
def track(
    provider: Annotated[str, typer.Argument(
        help=f"One of: {', '.join(provider_names())} (those whose jobs are not listed by "
             "their API).")],
    ids: Annotated[list[str] | None, typer.Argument(
        help="Job ids as the provider writes them (`upload-status providers` shows each "
             "one's form).")] = None,
    from_file: FromFileOption = None,
    column: ColumnOption = None,
    destination: DestinationOption = None,
    dataset: DatasetOption = None,
    wait: WaitOption = 0,
) -> None:
    """Register jobs to follow; the next `run` polls them until they finish. Nothing is
    registered when any id is invalid."""
    _registry()
    from pipelines.commands.track import track_jobs

    given = _ids_given(ids, from_file, column)
    result = _guarded(lambda: track_jobs(provider, given, destination, dataset, wait=wait,
                                         on_wait=_waiting))
    console.print(f"{result.provider}: {result.registered} newly followed, "
                  f"{result.already_followed} already followed")


@app.command()
def untrack(
    provider: Annotated[str, typer.Argument(help="The provider the jobs were tracked for.")],
    ids: Annotated[list[str] | None, typer.Argument(
        help="Job ids as given to `track`.")] = None,
    from_file: FromFileOption = None,
    column: ColumnOption = None,
    destination: DestinationOption = None,
    dataset: DatasetOption = None,
    wait: WaitOption = 0,
) -> None:
    """Stop following jobs: no run polls them again (their history stays, and upload_jobs
    has when in untracked_at); `track` follows them again. Nothing changes when any id is
    invalid."""
    _registry()
    from pipelines.commands.track import untrack_jobs

    given = _ids_given(ids, from_file, column)
    outcomes = _guarded(lambda: untrack_jobs(provider, given, destination, dataset,
                                             wait=wait, on_wait=_waiting))
    console.print(f"{provider}: {len(outcomes.get('untracked', []))} no longer followed" + "".join(
        f", {len(v)} {k}" for k, v in sorted(outcomes.items()) if k != "untracked"))
    for outcome in ("not followed", "already finished", "already untracked"):
        if outcomes.get(outcome):
            err_console.print(f"[yellow]note[/] {outcome}: {escape(', '.join(outcomes[outcome]))}")


def _ids_given(ids: list[str] | None, from_file: Path | None, column: str | None) -> list[str]:
    from pipelines.commands.track import read_id_file

    return _guarded(lambda: list(ids or []) + (read_id_file(from_file, column)
                                               if from_file else []))


def _refuse(message: str) -> None:
    raise UsageError(message)


def _guarded(action: Callable[[], T]) -> T:
    """`action`; an error of ours ends the command with its line and exit code."""
    try:
        return action()
    except UploadStatusError as exc:
        _stop(exc)


def _stop(exc: UploadStatusError) -> NoReturn:
    """End the command for `exc`: its line (no traceback), its exit code (`exit_codes`)."""
    from pipelines.run.exit_codes import exit_code_of

    err_console.print(f"[bold red]error[/] {escape(str(exc))}")
    raise typer.Exit(exit_code_of(exc)) from None


@app.command("highlevel-prune")
def highlevel_prune(
    location: Annotated[str, typer.Option(help="HighLevel location id.")],
    status: Annotated[list[str] | None, typer.Option(
        help="Only imports with this status (repeatable), e.g. failed.")] = None,
    older_than: Annotated[float | None, typer.Option(
        help="Only imports created more than this many days ago.")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Delete; without it nothing is deleted.")
                   ] = False,
    destination: DestinationOption = None,
    dataset: DatasetOption = None,
    wait: WaitOption = 0,
) -> None:
    """Delete HighLevel CSV import records matching every filter (lists them without --yes)."""
    from pipelines.commands.prune import prune

    result = _guarded(lambda: prune(location, status or [], older_than, yes, destination,
                                    dataset, wait=wait, on_wait=_waiting))
    table = Table(title=f"Imports of {location} matching every filter: {len(result.matches)}")
    for column in ("_id", "status", "createdAt", "fileName", "outcome"):
        table.add_column(column)
    outcomes = {o["csv_id"]: f"{o['outcome']} (HTTP {o['http_status']})" for o in result.outcomes}
    for m in result.matches:
        table.add_row(str(m["_id"]), str(m.get("status")), str(m.get("createdAt")),
                      str(m.get("fileName")), outcomes.get(str(m["_id"]), "-"))
    console.print(table)
    if not yes:
        console.print(f"dry run: {len(result.matches)} would be deleted, nothing was deleted "
                      "(add --yes to delete)")
        return
    done = len(result.outcomes) - len(result.failed)
    console.print(f"{done} deleted or already gone, {len(result.failed)} failed; the deletions "
                  "are recorded as cancelled in the history")
    from pipelines.run.exit_codes import EXIT_FAILED, EXIT_OK

    raise typer.Exit(EXIT_FAILED if result.failed else EXIT_OK)


class Format(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


@app.command()
def report(
    since: Annotated[int, typer.Option(help="Days back to report on (at most 36500).", min=1,
                                       max=36500)] = 30,
    format: Annotated[Format, typer.Option(
        "--format", help="table (a terminal), csv, json, or markdown (a CI step summary, "
                         "a chat message).")] = Format.table,
    chart: Annotated[Path | None, typer.Option(
        help="Also write a chart of success rates and volumes to this file (.png, .svg, "
             ".pdf or .jpg).")] = None,
    stuck_hours: Annotated[float, typer.Option(
        help="A job unfinished for longer than this is listed as stuck.", min=0)] = 24.0,
    top: Annotated[int, typer.Option(help="Failure reasons listed per provider.", min=1)] = 5,
    destination: DestinationOption = None,
    dataset: DatasetOption = None,
) -> None:
    """Success rate per provider and day, statuses, top failure reasons and stuck jobs."""
    from pipelines.analytics.chart import chart_format, write_chart
    from pipelines.analytics.report import load_report
    from pipelines.commands.render import print_report_tables

    if chart is not None:
        _guarded(lambda: chart_format(chart))  # before the report is read
    if not math.isfinite(stuck_hours) or stuck_hours > 24 * 36500:
        _guarded(lambda: _refuse("--stuck-hours must be a number of hours up to 876000"))
    rep = _guarded(lambda: load_report(destination, dataset, since, stuck_hours, top))
    if format is Format.json:
        print(rep.to_json())
    elif format is Format.csv:
        print(rep.to_csv(), end="")
    elif format is Format.markdown:
        from pipelines.commands.markdown import report_markdown

        print(report_markdown(rep), end="")
    else:
        print_report_tables(rep)
    if chart is not None:
        written = write_chart(rep, chart)
        err_console.print(f"chart written to {written}")


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(
        help="Keep the previous demo database instead of starting fresh.")] = False,
    days: Annotated[int, typer.Option(
        min=3, help="Days replayed, a run every 3 days (a shorter demo: fewer runs).")] = 30,
) -> None:
    """Run the bundled API simulator and the pipeline on it: no credentials, no network."""
    _registry()
    from pipelines.commands.demo import run_demo

    raise typer.Exit(run_demo(fresh=not keep, days=days))


@app.command("dlt", context_settings={"allow_extra_args": True,
                                     "ignore_unknown_options": True})
def dlt_pipeline(
    ctx: typer.Context,
    destination: DestinationOption = None,
    dataset: DatasetOption = None,
) -> None:
    """dlt's `dlt pipeline` command on this project's pipeline: `upload-status dlt info`,
    `trace`, `schema`, `failed-jobs`, `load-package` ... (the same arguments)."""
    from pipelines.commands.dlt_cli import run_dlt_pipeline

    raise typer.Exit(_guarded(lambda: run_dlt_pipeline(ctx.args, destination, dataset)))


@app.command("providers")
def list_providers() -> None:
    """Every provider this installation has (one folder each under sources/), with the keys
    that configure it."""
    table = Table(title="Providers", title_justify="left")
    for column in ("provider", "origin", "credential", "jobs"):
        table.add_column(column, overflow="fold")
    for name, package in _registry().items():
        provider = package.provider
        jobs = f"followed: {package.ids_help}" if package.ids_help else "listed by the API"
        table.add_row(name, provider.base_url, provider.secret_env_key, jobs)
    console.print(table)


if __name__ == "__main__":
    main()
