"""The project folder: where `.dlt/` (config and secrets) is read from and where relative
DuckDB paths point, also when the command runs in another folder (cron, a scheduler)."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ENV = "DLT_PROJECT_DIR"  # dlt's own setting: `.dlt/` is read from this folder


def _holds_settings(folder: Path) -> bool:
    dlt_dir = folder / ".dlt"
    return (dlt_dir / "config.toml").is_file() or (dlt_dir / "secrets.toml").is_file()


def find_project(cwd: Path | None = None) -> str | None:
    """Set DLT_PROJECT_DIR to the nearest folder at or above `cwd` holding `.dlt/config.toml`
    or `.dlt/secrets.toml` (as git finds its repository); a note when it is not `cwd`. The home
    folder's `.dlt` is dlt's global one, read anyway, so it is no project."""
    if os.environ.get(PROJECT_ENV):
        return None
    here = (cwd or Path.cwd()).resolve()
    home = Path.home().resolve()
    for folder in (here, *here.parents):
        if folder == home:
            return None
        if _holds_settings(folder):
            if folder == here:
                return None
            os.environ[PROJECT_ENV] = str(folder)
            return f"configuration read from {folder / '.dlt'} (the nearest above this folder)"
    return None


def project_dir() -> Path:
    """The folder relative paths of the configuration are taken from: DLT_PROJECT_DIR, else
    the current folder."""
    return Path(os.environ.get(PROJECT_ENV) or Path.cwd())


def where_config_is_read() -> str:
    """For a message when nothing is configured: which `.dlt/` folder was read."""
    return f"{project_dir() / '.dlt'} (set {PROJECT_ENV} to read another project's)"
