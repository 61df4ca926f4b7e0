"""What a listed provider's API looks like to the engine: where a scope's listing is, how its
items name their id, status, creation time and scope, and where an item's child list is."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from sources.common.columns import normalized
from sources.common.field_paths import MISSING, FieldPath
from sources.common.provider import Provider

_ID, _STATUS, _CREATED = FieldPath("id"), FieldPath("status"), FieldPath("created_at")


def column_of(path: FieldPath) -> str:
    """The column dlt stores a dotted path's value in (`data.state` -> `data__state`);
    ValueError for a JSONPath (no column can be named for it)."""
    if path.parts is None:
        raise ValueError(f"{path}: a dotted path is needed here (no column is known for a "
                         "JSONPath)")
    return "__".join(normalized(part) for part in path.parts)


@dataclass(frozen=True)
class ChildSpec:
    """A child list per item: `path` over `{scope_id}` and `{item_id}`, its records at
    `items`; rows go to `table`, each naming its item (`item_column`), scope
    (`scope_column`) and position (`index_column`). A child list answering one of
    `gone_codes` belongs to an item deleted meanwhile: nothing to read, no failure."""

    path: str
    items: str
    table: str
    item_column: str
    scope_column: str
    index_column: str
    name: str = "child"  # how messages name one ("post")
    total: str | None = None  # where a page states the list's length, if it does
    gone_codes: frozenset[int] = frozenset({404})

    def path_for(self, scope: str, item_id: str) -> str:
        return self.path.format(scope_id=quote(scope, safe=""), item_id=quote(item_id, safe=""))


@dataclass(frozen=True)
class ListedSpec:
    """A listed provider: its `provider` (status map, name), the listing `path` over
    `{scope_id}` (percent-encoded whole), the records at `items`, paged by `skip`/`limit`,
    and the field paths of an item's id, status, creation time and scope."""

    provider: Provider
    path: str
    items: str
    table: str  # the items' table (merged on the id column)
    id: FieldPath = _ID
    status: FieldPath = _STATUS
    created: FieldPath = _CREATED
    scope_field: str | None = None  # a top-level field naming the item's scope, if any
    scope_name: str = "scope"  # how messages name a scope ("location")
    item_name: str = "item"  # and an item ("import")
    skip_param: str = "skip"
    limit_param: str = "limit"
    total: str | None = None  # where a page states the listing's length, if it does
    children: ChildSpec | None = None
    # the native status of an unfinished item a complete listing no longer names (None:
    # nothing is inferred)
    gone_status: str | None = None
    # an item's stored row -> its row of the gone table (`gone_table`)
    gone_row: Callable[[Mapping[str, Any], datetime], dict[str, Any]] | None = None
    gone_table: str | None = None
    row_key: Callable[[str], str] = field(default=str)  # an item's `_dlt_id` from its id

    @property
    def id_column(self) -> str:
        """The top-level field a prepared item holds its id in, as text: the id field itself
        when it is one, else `item_id` (added)."""
        return self.id.simple or "item_id"

    @property
    def scope_column(self) -> str:
        """The column an item's scope is stored in: its scope field, else `listed_scope`
        (added: the scope whose listing named it)."""
        return column_of(FieldPath(self.scope_field)) if self.scope_field else "listed_scope"

    def listing_path(self, scope: str) -> str:
        # percent-encoded whole: no scope id can change the request path or query
        return self.path.format(scope_id=quote(scope, safe=""))

    def item_id(self, record: Any) -> Any:
        value = self.id.find(record)
        return None if value is MISSING else value

    def item_status(self, record: Any) -> Any:
        value = self.status.find(record)
        return None if value is MISSING else value

    def created_at(self, record: Any) -> datetime | None:
        """An item's creation time as an aware datetime, None if missing or unparsable."""
        value = self.created.find(record)
        if not isinstance(value, str):
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
