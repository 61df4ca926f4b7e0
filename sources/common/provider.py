"""A provider described as data: origin, credential key and native-to-canonical status map."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sources.common.analytics import View
from sources.common.status import TERMINAL, UNKNOWN

DECLARATION_FILE = "provider.toml"  # a provider declared as data (sources.common.declaration)


@dataclass(frozen=True)
class Provider:
    name: str  # the contract's provider key, also the dlt source name and config section
    base_url: str  # documented origin; SOURCES__<NAME>__BASE_URL overrides it
    secret_field: str  # name of the credential argument, e.g. "access_token"
    status_map: Mapping[str, str] = field(default_factory=dict)  # native -> canonical
    # how the provider's tables feed the views (sources.common.analytics)
    job_rows: str = ""
    failure_rows: str = ""
    views: tuple[View, ...] = ()  # views of its own, created after the common ones
    # column types of the provider's tables as declared to dlt, by table name
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def declared_tables(self) -> Mapping[str, Mapping[str, Any]]:
        return self.tables

    def jobs_sql(self) -> str:
        """A SELECT of this provider's jobs in `analytics.JOB_ROW_COLUMNS` form."""
        return self.job_rows

    def failures_sql(self) -> str:
        """A SELECT of recorded failure reasons in `analytics.FAILURE_ROW_COLUMNS` form, or ""."""
        return self.failure_rows

    def canonical(self, native_status: object) -> str:
        """Canonical status of a native one; anything not declared is `unknown`."""
        return self.status_map.get(native_status, UNKNOWN) if isinstance(
            native_status, str) else UNKNOWN

    def override(self, native_status: object, status: str) -> str | None:
        """`status` where the status map alone would not give it, else None."""
        return None if status == self.canonical(native_status) else status

    def is_terminal(self, native_status: object) -> bool:
        return self.canonical(native_status) in TERMINAL

    def env_key(self, field_name: str) -> str:
        """The environment form of one of this provider's configuration keys."""
        return f"SOURCES__{self.name.upper()}__{field_name.upper()}"

    @property
    def secret_env_key(self) -> str:
        return self.env_key(self.secret_field)
