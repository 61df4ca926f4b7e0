"""The pipeline as a plain dlt script, for schedulers that run a script.

`python upload_status_pipeline.py` does what `upload-status run` does, with the same exit codes
(0 loaded, 1 a provider failed, 2 configuration error or the dataset busy, 130/143
interrupted): every provider that has its credential configured, each in its own
`pipeline.run` so one failing provider leaves the others loaded, under the run lock, then the
views. The destination is DESTINATION_NAME from the environment or config (default duckdb).
"""

from __future__ import annotations

import sys

import dlt

from pipelines.commands.cli import app


def main() -> int:
    destination = dlt.config.get("destination_name") or "duckdb"
    try:
        app(["run", "--destination", str(destination)], prog_name="upload_status_pipeline.py")
    except SystemExit as exc:  # the command's exit code
        return int(exc.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
