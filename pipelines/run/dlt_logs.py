"""dlt's per-job load messages off the console: the run's summary says what failed, once.

dlt logs every failed attempt of every load job with its traceback (a full disk: 56
tracebacks, 890 lines for one run); the summary names the provider, the cause and what
happens next. `--debug` keeps them.
"""

from __future__ import annotations

import logging

# dlt's load step: a job's failed attempt, its retry, a package left unfinished
_JOB_MESSAGES = frozenset({"w_run_job", "complete_jobs", "load_single_package"})


class _NoJobAttempts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.module == "load":
            return record.funcName not in _JOB_MESSAGES
        # "will now load the pending load packages": the runner says so in its own words
        return not (record.module == "pipeline" and record.funcName == "run"
                    and "pending load packages" in record.getMessage())


def quiet_load_jobs() -> None:
    """Drop dlt's per-job load messages from here on (idempotent)."""
    logger = logging.getLogger("dlt")
    if not any(isinstance(f, _NoJobAttempts) for f in logger.filters):
        logger.addFilter(_NoJobAttempts())
