"""Every use of dlt's private API, in one place. dlt offers no public way to do these; each has
a contract test (`tests/test_dlt_contract.py`) that `make test` runs against the pinned, the
lowest and the newest dlt the bounds allow, and pyproject.toml caps dlt below the next minor:
a release that changes one fails CI, not a user.

- the local load storage (pending packages, their jobs' pending transitions): crash resume,
  setting packages aside;
- the destination client of a package's own schema: reading what a pending job committed;
- the state a destination sync restores: the highest version, not the newest load id's;
- a resource's table variants: making each a Delta table;
- wrapping a dlt method (the SQL client's commit, DuckDB's connection pool): the run lock's
  fence, waiting for DuckDB readers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dlt
from dlt.common.schema import Schema
from dlt.common.storages.load_package import PackageStorage
from dlt.extract.resource import DltResource


def normalized_packages(pipeline: dlt.Pipeline) -> PackageStorage:
    """The storage of the pipeline's normalized (pending) load packages."""
    return pipeline._get_load_storage().normalized_packages


def job_client(pipeline: dlt.Pipeline, schema: Schema) -> Any:
    """A destination (job) client of `pipeline` for `schema` (a pending package's own, which
    the pipeline's may have moved on from); not opened."""
    return pipeline._get_destination_clients(schema)[0]


@contextmanager
def restoring_state(pipeline: dlt.Pipeline, state: Mapping[str, Any]) -> Iterator[None]:
    """Inside the block, a destination sync (`pipeline.sync_destination()`) restores `state`
    (dlt's would take the state stored with the newest load id)."""
    pipeline._restore_state_from_destination = lambda: state  # type: ignore[method-assign]
    try:
        yield
    finally:
        del pipeline._restore_state_from_destination


def table_variants(resource: DltResource) -> list[str]:
    """The table names a resource has hints of its own for (`apply_hints(table_name=...,
    create_table_variant=True)`), besides its main table."""
    return list(getattr(resource, "_hints_variants", {}))


def wrap_method(cls: type, name: str, wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]
                ) -> None:
    """Replace `cls.name` by `wrapper(original)`, once (a wrapped method is left alone)."""
    original = getattr(cls, name)
    if getattr(original, "_upload_status_wrapped", False):  # dlt's own decorators set
        return  # __wrapped__: a marker of ours tells our wrapper
    wrapped = wrapper(original)
    wrapped.__wrapped__ = original  # type: ignore[attr-defined]
    wrapped._upload_status_wrapped = True  # type: ignore[attr-defined]
    setattr(cls, name, wrapped)
