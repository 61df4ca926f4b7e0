"""The report as GitHub-flavoured Markdown: a CI step summary, a chat message, a wiki page."""

from __future__ import annotations

from pipelines.analytics.report import Report
from pipelines.commands.render import LEFT_ALIGNED, report_sections


def report_markdown(rep: Report) -> str:
    """One heading and one table per section; a section without rows says so."""
    out = [f"## Upload status since {rep.since}", "",
           f"Generated {rep.generated_at.isoformat(timespec='seconds')}."]
    for title, columns, rows in report_sections(rep):
        out += ["", f"### {_cell(title)}", ""]
        if not rows:
            out.append("None.")
            continue
        out.append("| " + " | ".join(map(_cell, columns)) + " |")
        out.append("|" + "|".join(":---" if c in LEFT_ALIGNED else "---:" for c in columns) + "|")
        out += ["| " + " | ".join(map(_cell, row)) + " |" for row in rows]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    """A cell's text kept on one line and inside its cell (an error message may hold `|`,
    line breaks or Markdown of its own)."""
    text = " ".join(text.split())
    for char in "\\|*_`[]<>#":
        text = text.replace(char, "\\" + char)
    return text
