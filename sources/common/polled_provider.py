"""A polled provider declared as data: one status endpoint per job, an auth header, the field
holding the native status, and how the answer becomes a row (`PolledProvider.read`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from dlt.common.schema.typing import TTableSchemaColumns
from dlt.sources.helpers.rest_client.auth import APIKeyAuth

from sources.common.analytics import job_rows_sql
from sources.common.columns import normalized
from sources.common.field_paths import MISSING, FieldPath
from sources.common.http_actions import NOT_FOUND as GONE
from sources.common.http_actions import CodeActions
from sources.common.job_refs import InvalidJobRef, JobRef, simple_ref
from sources.common.provider import Provider
from sources.common.status import NOT_FOUND, TERMINAL

# columns every polled jobs table gets besides the fields of the API's answer
POLL_COLUMNS: TTableSchemaColumns = {
    "job_ref": {"data_type": "text", "nullable": False},
    "tracked_id": {"data_type": "text"},
    "scope_id": {"data_type": "text"},
    "native_status": {"data_type": "text"},
    "canonical_status": {"data_type": "text"},
    "status_override": {"data_type": "text"},  # see tracking.HISTORY_COLUMNS
    "is_terminal": {"data_type": "bool"},
    "http_status": {"data_type": "bigint"},
    "polled_at": {"data_type": "timestamp"},
}

TRACKED_COLUMNS: TTableSchemaColumns = {
    "job_ref": {"data_type": "text", "nullable": False},
    "tracked_id": {"data_type": "text"},
    "scope_id": {"data_type": "text"},
    "kind": {"data_type": "text"},
    "registered_by": {"data_type": "text"},  # config | track | history
    "registered_at": {"data_type": "timestamp"},
}

# one row per job no longer followed; `track` deletes it again (dlt's hard delete on merge)
UNTRACKED_COLUMNS: TTableSchemaColumns = {
    "job_ref": {"data_type": "text", "nullable": False},
    "tracked_id": {"data_type": "text"},
    "scope_id": {"data_type": "text"},
    "untracked_at": {"data_type": "timestamp"},
    "followed_again": {"data_type": "bool", "hard_delete": True},
}


def untracked_table(provider: Provider) -> str:
    return f"{provider.name}_untracked_jobs"


@dataclass(frozen=True)
class Observation:
    native_status: str | None
    status: str  # canonical
    record: dict[str, Any]
    lacks_status: bool = False  # a status answer without its declared status field


@dataclass(frozen=True, kw_only=True)
class PolledProvider(Provider):
    jobs_table: str
    status_path: str  # template over JobRef.fields(); values are percent-encoded whole
    status_field: str  # path (dotted or JSONPath) of the answer's native status
    parse_ref: Callable[[str], JobRef] = simple_ref
    status_params: Mapping[str, str] = field(default_factory=dict)  # keys and values templated
    auth_header: str = "Authorization"
    auth_scheme: str | None = None  # e.g. "Token": the header is "<scheme> <secret>"
    codes: CodeActions = field(default_factory=CodeActions)  # what each HTTP code means
    # fields set from the reference when the answer lacks them (a 404 body names no job)
    id_fields: Mapping[str, str] = field(default_factory=dict)
    columns: TTableSchemaColumns = field(default_factory=dict)
    nested_columns: Mapping[str, TTableSchemaColumns] = field(default_factory=dict)
    # canonical status from the whole answer, when the native status alone does not decide it
    refine: Callable[[str, dict[str, Any]], str] | None = None
    # columns derived from the whole answer and its canonical status, added to the row
    derive: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    # expressions over the jobs table (alias `{j}`) for the views' job facts: submitted_at,
    # items_total, items_succeeded, items_failed, error_message
    job_facts: Mapping[str, str] = field(default_factory=dict)
    # LEFT JOINs of the provider's other tables the job facts read (`{j}`, `{ds}`)
    job_joins: str = ""
    status_at: FieldPath = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "status_at", FieldPath(self.status_field))

    def declared_tables(self) -> Mapping[str, TTableSchemaColumns]:
        return {self.jobs_table: {**POLL_COLUMNS, **self.columns},
                **{f"{self.jobs_table}__{path}": columns
                   for path, columns in self.nested_columns.items()},
                f"{self.name}_tracked_jobs": TRACKED_COLUMNS,
                untracked_table(self): UNTRACKED_COLUMNS}

    def jobs_sql(self) -> str:
        j = f"j_{self.name}"
        u = f"u_{self.name}"
        exprs = {"job_ref": f"{j}.job_ref", "job_id": f"{j}.tracked_id",
                 "scope_id": f"{j}.scope_id", "native_status": f"{j}.native_status",
                 "status_override": f"{j}.status_override", "last_seen_at": f"{j}.polled_at",
                 "untracked_at": f"{u}.untracked_at",
                 **{k: v.format(j=j) for k, v in self.job_facts.items()}}
        return job_rows_sql(self.name, f"{{ds}}.{self.jobs_table} AS {j} LEFT JOIN "
                            f"{{ds}}.{untracked_table(self)} AS {u} "
                            f"ON {u}.job_ref = {j}.job_ref " + self.job_joins.format(j=j,
                                                                                    ds="{ds}"),
                            exprs)

    def auth(self, secret: str) -> APIKeyAuth:
        value = f"{self.auth_scheme} {secret}" if self.auth_scheme else secret
        return APIKeyAuth(name=self.auth_header, api_key=value, location="header")

    def split_refs(self, texts: Iterable[str]) -> tuple[list[JobRef], str]:
        """The valid ids parsed, and a message naming each invalid one ("" when none is)."""
        refs, bad = [], []
        for text in texts:
            try:
                refs.append(self.parse_ref(text))
            except InvalidJobRef as exc:
                bad.append(f"{text!r} ({exc})")
        return refs, f"invalid {self.name} job ids: {'; '.join(bad)}" if bad else ""

    def status_request(self, ref: JobRef) -> tuple[str, dict[str, str]]:
        encoded = {k: quote(v, safe="") for k, v in ref.fields().items()}
        path = self.status_path.format(**encoded)
        params = {k.format(**ref.fields()): v.format(**ref.fields())
                  for k, v in self.status_params.items()}
        return path, params

    def _nest_dotted(self, record: dict[str, Any]) -> None:
        """A flat key `meta.valid` (as an API's docs may write a field) moved to where the
        nested form `meta: {valid}` is declared (`meta__valid`), so both forms fill it."""
        for key in [k for k in record if isinstance(k, str) and "." in k]:
            parts = key.split(".")
            if "__".join(normalized(p) for p in parts) not in self.columns:
                continue
            parent = record
            for part in parts[:-1]:
                child = parent.get(part)
                if child is None:
                    child = parent[part] = {}
                if not isinstance(child, dict):
                    break
                parent = child
            else:
                if parts[-1] not in parent:
                    parent[parts[-1]] = record.pop(key)

    def read(self, ref: JobRef, http_status: int, body: Any) -> Observation:
        """The observation one status answer (or a "not found" one) amounts to."""
        record: dict[str, Any] = dict(body) if isinstance(body, dict) else {"body": body}
        self._nest_dotted(record)
        for key in [k for k, v in record.items() if v is None]:
            # a null object whose fields are declared columns (an object filled in only once
            # the job is done): those columns already hold "no value", and a null-only column
            # would be untyped
            if any(column.startswith(f"{key}__") for column in self.columns):
                del record[key]
        native = self.status_at.find(body)
        lacks = native is MISSING or native is None
        native = None if lacks else native if isinstance(native, str) else str(native)
        gone = self.codes.of(http_status) == GONE
        if gone:
            native = native or f"HTTP {http_status}"
            status = NOT_FOUND
        else:
            status = self.canonical(native)
            if self.refine is not None:
                status = self.refine(status, record)
        if self.derive is not None:
            record.update(self.derive(record, status))
        for key, template in self.id_fields.items():
            name = key.format(**ref.fields())
            if record.get(name) is None:
                record[name] = template.format(**ref.fields())
        record.update(job_ref=ref.ref, tracked_id=ref.job_id, scope_id=ref.scope_id,
                      native_status=native, canonical_status=status,
                      status_override=self.override(native, status),
                      is_terminal=status in TERMINAL, http_status=http_status)
        return Observation(native, status, record, lacks and not gone)
