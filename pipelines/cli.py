"""The `upload-status` command line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pipelines.runner import RunReport, UsageError, run_providers

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Load upload/import job statuses from SaaS APIs into DuckDB or any dlt "
                       "destination.")
# piped output (CI logs, cron mail) gets 120 columns instead of rich's 80
_WIDTH = shutil.get_terminal_size((120, 24)).columns
console = Console(width=_WIDTH)
err_console = Console(stderr=True, width=_WIDTH)


def print_report(report: RunReport, title: str = "Run summary") -> None:
    table = Table(title=f"{title} ({report.destination}, dataset {report.dataset})")
    columns = ("requests", "jobs seen", "polled", "new", "changed", "unfinished", "errors")
    # the provider and its outcome stay whole on narrow terminals; headers may shorten
    table.add_column("provider", no_wrap=True, min_width=len("upload_post"))
    table.add_column("outcome", no_wrap=True)
    for column in columns:
        table.add_column(column, justify="right")
    for p in report.providers:
        values = {"requests": p.requests, "errors": len(p.errors) if p.outcome != "skipped" else 0,
                  **{k: p.counts.get(k, 0) for k in columns[1:-1]}}
        table.add_row(p.provider, p.outcome, *(str(values[c]) for c in columns))
    console.print(table)
    for p in report.providers:
        details = {k: v for k, v in sorted(p.counts.items()) if k not in columns}
        if details:
            console.print(f"  {p.provider}: " + ", ".join(f"{k} {v}" for k, v in details.items()))
        if p.rows_loaded:
            console.print(f"  {p.provider} rows loaded: " + ", ".join(
                f"{t} {n}" for t, n in sorted(p.rows_loaded.items())))
        for error in p.errors:
            if p.outcome == "skipped":
                err_console.print(f"[yellow]skipped[/] {error}")
            else:
                err_console.print(f"[bold red]error[/] {error}")
    if report.views:
        console.print(f"  views: {', '.join(report.views)}")
    if report.views_error:
        err_console.print(f"[bold red]error[/] {report.views_error}")


@app.command()
def run(
    source: Annotated[list[str] | None, typer.Option(
        "--source", help="Provider to load (repeatable); default: every configured one.")] = None,
    destination: Annotated[str | None, typer.Option(
        help="Any dlt destination name; default duckdb.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset (schema) name.")] = None,
    full_refresh: Annotated[bool, typer.Option(
        "--full-refresh", help="Re-read everything, including finished jobs.")] = False,
) -> None:
    """Extract job statuses and load them."""
    try:
        report = run_providers(source, destination, dataset, full_refresh)
    except UsageError as exc:
        err_console.print(f"[bold red]error[/] {exc}")
        raise typer.Exit(2) from None
    print_report(report)
    raise typer.Exit(report.exit_code)


@app.command()
def track(
    provider: Annotated[str, typer.Argument(help="upload_post, lobstr or cleartax.")],
    ids: Annotated[list[str] | None, typer.Argument(
        help="Job ids: request:ID / job:ID (Upload-Post), TAXABLE_ENTITY_ID/ACTIVITY_ID "
             "(ClearTax), the upload task id (Lobstr).")] = None,
    from_file: Annotated[Path | None, typer.Option(
        "--from-file", help="File with one id per line (or a CSV, with --column).")] = None,
    column: Annotated[str | None, typer.Option(
        help="Column of the --from-file CSV (with a header row) holding the ids.")] = None,
    destination: Annotated[str | None, typer.Option(help="dlt destination; default duckdb.")
                           ] = None,
    dataset: Annotated[str | None, typer.Option(help="Dataset (schema) name.")] = None,
) -> None:
    """Register jobs to follow; the next `run` polls them until they finish."""
    from pipelines.track import read_id_file, track_jobs

    try:
        given = list(ids or []) + (read_id_file(from_file, column) if from_file else [])
        result = track_jobs(provider, given, destination, dataset)
    except UsageError as exc:
        err_console.print(f"[bold red]error[/] {exc}")
        raise typer.Exit(2) from None
    console.print(f"{result.provider}: {result.registered} newly followed, "
                  f"{result.already_followed} already followed")


@app.command()
def demo(
    keep: Annotated[bool, typer.Option(
        help="Keep the previous demo database instead of starting fresh.")] = False,
) -> None:
    """Run the bundled API simulator and the pipeline on it: no credentials, no network."""
    from pipelines.demo import run_demo

    raise typer.Exit(run_demo(fresh=not keep))


if __name__ == "__main__":
    app()
