"""How runs and reports look in a terminal: the run summary and the report's tables."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # the report's SQL and Arrow stack loads only where one is read
    from pipelines.analytics.report import Report
    from pipelines.run.run_report import RunReport
    from sources.common.stats import ProviderStats

class _Console:
    """A rich Console made at its first use, not at import: its width is the terminal's (or
    COLUMNS') when the command prints, also in a process that imported this module earlier."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def made(self) -> Console:
        if self._console is None:
            # piped output (CI logs, cron mail) gets 120 columns instead of rich's 80
            width = shutil.get_terminal_size((120, 24)).columns
            self._console = Console(width=width, **self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


console: Any = _Console()
# messages are never broken into lines: a path or key split there cannot be copied (or grepped)
err_console: Any = _Console(stderr=True, soft_wrap=True)


SUMMARY_COLUMNS = ("requests", "jobs seen", "polled", "new", "changed", "unfinished",
                   "bad input", "errors")
NARROW = 100  # below this many columns the summary is a line per provider, not a table


def _summary_values(p: ProviderStats) -> dict[str, int]:
    return {"requests": p.requests, "errors": len(p.errors) if p.outcome != "skipped" else 0,
            **{k: p.counts.get(k, 0) for k in SUMMARY_COLUMNS[1:-1]}}


def print_report(report: RunReport, title: str = "Run summary") -> None:
    heading = f"{title} ({report.destination}, dataset {report.dataset})"
    if console.width < NARROW:  # a table's headers would shrink to `req…`, `pol…`
        console.print(heading, style="italic")
        for p in report.providers:
            values = _summary_values(p)
            counts = ", ".join(f"{k} {v:,}" for k, v in values.items()
                               if v or k == "requests")
            console.print(f"  {p.provider}: {p.outcome}; {counts}", soft_wrap=False)
    else:
        table = Table(title=heading)
        # the provider and its outcome stay whole; headers may shorten
        table.add_column("provider", no_wrap=True,
                         min_width=max((len(p.provider) for p in report.providers), default=8))
        table.add_column("outcome", no_wrap=True)
        for column in SUMMARY_COLUMNS:
            table.add_column(column, justify="right")
        for p in report.providers:
            values = _summary_values(p)
            table.add_row(p.provider, p.outcome, *(str(values[c]) for c in SUMMARY_COLUMNS))
        console.print(table)
    for p in report.providers:
        details = {k: v for k, v in sorted(p.counts.items()) if k not in SUMMARY_COLUMNS}
        if details:
            console.print(f"  {p.provider}: " + ", ".join(f"{k} {v}" for k, v in details.items()))
        if p.rows_loaded:
            console.print(f"  {p.provider} rows loaded: " + ", ".join(
                f"{t} {n}" for t, n in sorted(p.rows_loaded.items())))
        for warning in p.warnings:
            err_console.print(f"[yellow]warning[/] {escape(warning)}")
        for error in p.errors:
            if p.outcome == "skipped":
                err_console.print(f"[yellow]skipped[/] {escape(str(error))}")
            else:
                err_console.print(f"[bold red]error[/] {escape(str(error))}")
    if report.providers and all(p.outcome == "skipped" for p in report.providers):
        from pipelines.destinations.project import where_config_is_read

        err_console.print("[bold red]error[/] no provider is configured: set a credential in "
                          f"{escape(where_config_is_read())} or in the environment")
    if report.resumed:
        console.print(f"  finished loading {report.resumed} package(s) of an interrupted run "
                      f"({report.jobs_settled} of its load job(s) had already committed and "
                      "were not loaded again)")
    for note in report.notes:
        err_console.print(f"[yellow]repaired[/] {escape(str(note))}")
    for aside in report.set_aside:
        err_console.print(
            f"[bold red]error[/] a pending load package ({aside.load_id}) of an earlier run was "
            f"refused by the destination for good ({escape(aside.reason)}): set aside in "
            f"{escape(str(aside.path))}; "
            "the state was rolled back, so this and later runs read its jobs again")
    if report.resume_error:
        err_console.print(f"[bold red]error[/] {escape(report.resume_error)} "
                          "(retried by the next run)")
    if report.views:
        console.print(f"  views: {', '.join(report.views)}")
    if report.views_error:
        err_console.print(f"[bold red]error[/] {escape(str(report.views_error))}")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


Section = tuple[str, tuple[str, ...], list[list[str]]]  # title, columns, cells
LEFT_ALIGNED = {"provider", "reason", "job_id", "scope_id", "status", "native_status", "day"}


def report_sections(rep: Report) -> list[Section]:
    """The report as titled tables of text cells, in reading order: period totals first,
    then the detail (tables in a terminal, Markdown in a step summary or a chat message)."""
    listed = [
        ("Success rate per provider since " + str(rep.since), rep.totals,
         ("provider", "jobs", "succeeded", "partial", "failed", "cancelled", "in_flight",
          "success_rate")),
        ("Jobs per canonical status", rep.statuses, ("provider", "status", "jobs")),
        ("Top failure reasons", rep.failure_reasons,
         ("provider", "reason", "occurrences", "jobs")),
        (f"Unfinished for more than {rep.stuck_hours:g} hours", rep.stuck,
         ("provider", "job_id", "scope_id", "status", "native_status", "hours_unfinished")),
    ]
    sections = [(title, columns, [[_percent(row[c]) if c == "success_rate" else
                                   "" if row.get(c) is None else str(row[c]) for c in columns]
                                  for row in rows]) for title, rows, columns in listed]
    sections.insert(1, _per_day(rep))
    return sections


def print_report_tables(rep: Report) -> None:
    for title, columns, rows in report_sections(rep):
        table = Table(title=title, title_justify="left")
        for column in columns:
            table.add_column(column, justify="left" if column in LEFT_ALIGNED else "right",
                             overflow="fold")
        for row in rows:
            table.add_row(*row)
        if not rows:
            table.add_row(*(["none"] + [""] * (len(columns) - 1)))
        console.print(table)


def _per_day(rep: Report) -> Section:
    """Days down, providers across: success rate (jobs) in each cell."""
    providers = sorted({r["provider"] for r in rep.rates})
    cells = {(r["day"], r["provider"]): r for r in rep.rates}
    rows = [[str(day), *(f"{_percent(c['success_rate'])} ({c['jobs']})"
                         if (c := cells.get((day, p))) else "" for p in providers)]
            for day in sorted({r["day"] for r in rep.rates})]
    return "Success rate (jobs) per day", ("day", *providers), rows
