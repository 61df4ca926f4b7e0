"""Memory a run's extract freed, handed back to the system before its load starts.

Arrow's pool (mimalloc) and glibc's heap keep what the listing freed for reuse, but DuckDB
loads with an allocator of its own, so without this both stay resident at the load's peak:
100 MB of a first load of 1,000,000 imports (bench/RESULTS.md)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache
from typing import Any

from dlt.common.runtime.collector import NullCollector


@cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None  # glibc only


def release_freed_memory() -> None:
    """Return the free pages of Arrow's pool (when Arrow is loaded) and of glibc's heap."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
    if (libc := _libc()) is not None:
        libc.malloc_trim(0)


class StepBoundaries(NullCollector):
    """dlt's progress hook, used for the moment a pipeline's load step starts."""

    def on_start_trace_step(self, trace: Any, step: Any, pipeline: Any) -> None:
        if step == "load":
            release_freed_memory()
