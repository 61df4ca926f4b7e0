"""`upload-status report`: success rates, statuses, failure reasons and stuck jobs, read from the
views in whatever destination the pipeline loads into."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import sqlglot

from pipelines.views import sql_dialect

FINISHED_OK = ("succeeded", "partial", "failed")


@dataclass
class Report:
    since: date
    generated_at: datetime
    stuck_hours: float
    rates: list[dict[str, Any]] = field(default_factory=list)  # per provider and day
    totals: list[dict[str, Any]] = field(default_factory=list)  # per provider, whole period
    statuses: list[dict[str, Any]] = field(default_factory=list)
    failure_reasons: list[dict[str, Any]] = field(default_factory=list)
    stuck: list[dict[str, Any]] = field(default_factory=list)

    SECTIONS = ("totals", "rates", "statuses", "failure_reasons", "stuck")

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2)

    def to_csv(self) -> str:
        """One tidy table: a `section` column, then the union of every section's columns."""
        columns: dict[str, None] = {"section": None}
        rows = []
        for section in self.SECTIONS:
            for row in getattr(self, section):
                columns.update(dict.fromkeys(row))
                rows.append({"section": section, **row})
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()


def _rows(pipeline: dlt.Pipeline, sql: str) -> list[dict[str, Any]]:
    """Run DuckDB-dialect `sql` (with `{ds}`) in the destination's own dialect."""
    dialect = sql_dialect(pipeline)
    native = sqlglot.transpile(sql.format(ds=pipeline.dataset_name), read="duckdb",
                               write=dialect)[0]
    with pipeline.sql_client() as client, client.execute_query(native) as cursor:
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def build_report(pipeline: dlt.Pipeline, since_days: int = 30, stuck_hours: float = 24.0,
                 top: int = 5, now: datetime | None = None) -> Report:
    now = now or datetime.now(timezone.utc)
    since = (now - timedelta(days=since_days)).date()
    report = Report(since=since, generated_at=now, stuck_hours=stuck_hours)
    day = f"DATE '{since.isoformat()}'"
    report.rates = _rows(pipeline, f"""
        SELECT provider, day, jobs, succeeded, partial, failed, cancelled, in_flight,
               success_rate
        FROM {{ds}}.upload_success_rates WHERE day >= {day} ORDER BY provider, day""")
    for row in report.rates:
        row["success_rate"] = None if row["success_rate"] is None else float(row["success_rate"])
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in report.rates:
        for key in ("jobs", "succeeded", "partial", "failed", "cancelled", "in_flight"):
            totals[row["provider"]][key] += int(row[key])
    report.totals = [{"provider": p, **t, "success_rate": _ratio(
        t["succeeded"], sum(t[k] for k in FINISHED_OK))} for p, t in sorted(totals.items())]
    in_period = f"""CAST((COALESCE(j.submitted_at, j.first_seen_at) AT TIME ZONE 'UTC') AS DATE)
                    >= {day}"""
    report.statuses = _rows(pipeline, f"""
        SELECT j.provider, j.status, COUNT(*) AS jobs FROM {{ds}}.upload_jobs AS j
        WHERE {in_period} GROUP BY j.provider, j.status ORDER BY j.provider, jobs DESC""")
    reasons = _rows(pipeline, f"""
        SELECT f.provider, f.reason, COUNT(*) AS occurrences, COUNT(DISTINCT f.job_id) AS jobs
        FROM {{ds}}.upload_failures AS f
        JOIN {{ds}}.upload_jobs AS j ON j.provider = f.provider AND j.job_id = f.job_id
        WHERE {in_period}
        GROUP BY f.provider, f.reason ORDER BY f.provider, occurrences DESC, f.reason""")
    kept: dict[str, int] = defaultdict(int)
    for row in reasons:
        kept[row["provider"]] += 1
        if kept[row["provider"]] <= top:
            report.failure_reasons.append(row)
    cutoff = (now - timedelta(hours=stuck_hours)).isoformat()
    report.stuck = _rows(pipeline, f"""
        SELECT j.provider, j.job_id, j.scope_id, j.status, j.native_status,
               COALESCE(j.submitted_at, j.first_seen_at) AS since, j.last_seen_at
        FROM {{ds}}.upload_jobs AS j
        WHERE NOT j.is_terminal
          AND COALESCE(j.submitted_at, j.first_seen_at) < CAST('{cutoff}' AS TIMESTAMPTZ)
        ORDER BY since, j.provider, j.job_id""")
    for row in report.stuck:
        started = row["since"]
        if started.tzinfo is None:  # some drivers hand back naive UTC
            started = started.replace(tzinfo=timezone.utc)
        row["hours_unfinished"] = round((now - started).total_seconds() / 3600, 1)
    return report


def rolling_rates(report: Report, window_days: int = 7) -> dict[str, list[tuple[date, float]]]:
    """Per provider, the success rate over the `window_days` ending on each day with data: a
    line that moves with the trend instead of jumping with every small day."""
    per_day: dict[str, dict[date, tuple[int, int]]] = defaultdict(dict)
    for row in report.rates:
        decided = sum(int(row[k]) for k in FINISHED_OK)
        per_day[row["provider"]][row["day"]] = (int(row["succeeded"]), decided)
    lines = {}
    for provider, days in per_day.items():
        points = []
        for day in sorted(days):
            window = [v for d, v in days.items() if timedelta(0) <= day - d
                      < timedelta(days=window_days)]
            decided = sum(v[1] for v in window)
            if decided:
                points.append((day, sum(v[0] for v in window) / decided))
        lines[provider] = points
    return lines


def write_chart(report: Report, path: Path, window_days: int = 7) -> Path:
    """Success rate per provider over time (trailing `window_days`) as lines in front, jobs per
    day and provider as stacked bars behind them."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    providers = sorted({row["provider"] for row in report.rates})
    colors = {p: plt.get_cmap("tab10")(i) for i, p in enumerate(providers)}
    fig, rate_ax = plt.subplots(figsize=(12, 6), dpi=100)
    volume_ax = rate_ax.twinx()
    rate_ax.set_zorder(volume_ax.get_zorder() + 1)  # lines in front of the bars
    rate_ax.patch.set_visible(False)
    stacked: dict[date, int] = defaultdict(int)
    for provider in providers:
        rows = [r for r in report.rates if r["provider"] == provider]
        days = [r["day"] for r in rows]
        volume_ax.bar([mdates.date2num(d) for d in days], [r["jobs"] for r in rows],
                      bottom=[stacked[d] for d in days], width=0.8, color=colors[provider],
                      alpha=0.22, linewidth=0)
        for r in rows:
            stacked[r["day"]] += int(r["jobs"])
    for provider, points in rolling_rates(report, window_days).items():
        if points:
            xs = [mdates.date2num(d) for d, _ in points]
            rate_ax.plot(xs, [rate * 100 for _, rate in points], marker="o", markersize=3,
                         linewidth=2, color=colors[provider], label=provider)
    rate_ax.set_ylim(0, 105)
    rate_ax.set_ylabel(f"success rate, trailing {window_days} days (%)")
    volume_ax.set_ylabel("jobs per day (stacked bars)")
    volume_ax.set_ylim(0, max(stacked.values(), default=1) * 2.2)  # bars stay in the lower half
    rate_ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
    rate_ax.grid(axis="y", alpha=0.3)
    if providers:  # above the plot, where it hides neither lines nor bars
        rate_ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=len(providers),
                       frameon=False)
    else:
        rate_ax.text(0.5, 0.5, "no jobs in this period", ha="center", transform=rate_ax.transAxes)
    rate_ax.set_title("Upload success rate = succeeded / (succeeded + partial + failed), "
                      f"since {report.since}", pad=30)
    fig.autofmt_xdate()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path
