"""The report as a PNG: success rate per provider over a trailing window, volumes behind it."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from datetime import date, timedelta
from pathlib import Path

from pipelines.analytics.concepts import RATED, success_rate
from pipelines.analytics.report import Report


def rolling_rates(report: Report, window_days: int = 7) -> dict[str, list[tuple[date, float]]]:
    """Per provider, the success rate over the `window_days` ending on each day with data: a
    line that moves with the trend instead of jumping with every small day."""
    per_day: dict[str, dict[date, dict[str, int]]] = defaultdict(dict)
    for row in report.rates:
        per_day[row["provider"]][row["day"]] = {s: int(row[s]) for s in RATED}
    lines = {}
    for provider, days in per_day.items():
        points = []
        for day in sorted(days):
            window = sum((Counter(counts) for d, counts in days.items()
                          if timedelta(0) <= day - d < timedelta(days=window_days)), Counter())
            if (rate := success_rate(window)) is not None:
                points.append((day, rate))
        lines[provider] = points
    return lines


CHART_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf", ".jpg": "jpeg", ".jpeg": "jpeg"}


def chart_format(path: Path) -> str:
    """The image format a chart file's suffix names; UsageError for one not written."""
    from pipelines.common.usage import UsageError

    suffix = path.suffix.lower()
    if suffix not in CHART_FORMATS:
        raise UsageError(f"--chart {path}: the file name must end in one of "
                         f"{', '.join(CHART_FORMATS)} (the image format written)")
    limit = _name_limit(path.parent)
    if len(path.name.encode()) > limit:
        raise UsageError(f"--chart: the file name is longer than the {limit} bytes the folder "
                         "allows; give a shorter one")
    if path.is_dir():
        raise UsageError(f"--chart {path} is a folder: give a file name")
    return CHART_FORMATS[suffix]


def _name_limit(folder: Path) -> int:
    try:
        return os.pathconf(folder if folder.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


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
    fig.savefig(path, format=chart_format(path))
    plt.close(fig)
    return path
