"""The posts of imports as items to load. Each post is keyed by its import and position; its
`accountIds` and `medias` lists go to tables of their own, shaped as dlt unnests them
(`value` or the item's fields, `_dlt_parent_id` = `_dlt_root_id` = the post's `_dlt_id`,
`_dlt_list_idx`) plus `csv_id`, on which a re-read import replaces them. Written as Arrow when
every value fits (see `arrow_items`), else as dicts for dlt."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import dlt
from dlt.common.schema import Schema
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.extract.resource import DltResource

from sources.common.arrow_items import known_columns, to_arrow
from sources.highlevel.settings import POST_COLUMNS

POSTS_TABLE = "highlevel_csv_posts"
POST_LISTS = {"accountIds": f"{POSTS_TABLE}__account_ids", "medias": f"{POSTS_TABLE}__medias"}


def _row_id() -> dict[str, Any]:
    """`_dlt_id` as dlt declares it (a fresh dict each time: dlt writes names into hints)
    where it makes the ids: a merge finds a table's nested rows through it."""
    return {"data_type": "text", "nullable": False, "unique": True, "row_key": True}


LIST_COLUMNS: TTableSchemaColumns = {
    "csv_id": {"data_type": "text", "nullable": False},
    "_dlt_parent_id": {"data_type": "text", "nullable": False},
    "_dlt_root_id": {"data_type": "text", "nullable": False},
    "_dlt_list_idx": {"data_type": "bigint", "nullable": False},
    "_dlt_id": _row_id(),
}
POSTS_COLUMNS: TTableSchemaColumns = {**POST_COLUMNS, "_dlt_id": _row_id()}


def row_key(parent: str, index: int) -> str:
    """A row id from its parent's and its position: one per (parent, index), since the index
    after the last `_` has no `_` of its own."""
    return f"{parent}_{index}"


def declare_list_tables(posts: DltResource) -> None:
    """The lists' tables as variants of the posts resource: none of the posts' columns or
    primary key (a variant starts from the resource's hints), merged on `csv_id` (every
    re-read import replaces its rows; no primary key: dlt's `pk OR merge key` delete cannot
    hash-join on DuckDB)."""
    for table in POST_LISTS.values():
        posts.apply_hints(table_name=table, columns=[], primary_key=[],
                          create_table_variant=True)
        posts.apply_hints(table_name=table, columns=LIST_COLUMNS, merge_key="csv_id",
                          create_table_variant=True)


def unnested_by_dlt(schema: Schema) -> bool:
    """A dataset whose post lists dlt unnested itself (as every dataset did before these
    tables were written here): they stay so, since Arrow rows would add a required
    `_dlt_load_id` to tables that hold rows, which a destination refuses."""
    return any(schema.tables.get(table, {}).get("parent") for table in POST_LISTS.values())


def post_items(posts: list[dict[str, Any]], schema: Schema) -> Iterator[Any]:
    """The items of a batch of posts (rows as `read_posts` makes them, given their
    `_dlt_id` here): the posts, then the rows of each list table."""
    for post in posts:
        post["_dlt_id"] = row_key(post["csv_id"], post["post_index"])
    if unnested_by_dlt(schema):
        yield posts
        return
    lists: dict[str, list[dict[str, Any]]] = {table: [] for table in POST_LISTS.values()}
    for post in posts:
        for key, table in POST_LISTS.items():
            if isinstance(items := post.get(key), list):
                lists[table].extend(_list_rows(post, items))
    yield _items(posts, known_columns(schema, POSTS_TABLE, POSTS_COLUMNS), schema,
                 tuple(POST_LISTS))
    for table, rows in lists.items():
        if rows:
            yield dlt.mark.with_table_name(
                _items(rows, known_columns(schema, table, LIST_COLUMNS), schema), table)


def _list_rows(post: Mapping[str, Any], items: list[Any]) -> Iterator[dict[str, Any]]:
    parent = post["_dlt_id"]
    for index, item in enumerate(items):
        # a list item that is no object is wrapped as `value`, as dlt does
        yield {**(item if isinstance(item, dict) else {"value": item}),
               "csv_id": post["csv_id"], "_dlt_parent_id": parent, "_dlt_root_id": parent,
               "_dlt_list_idx": index, "_dlt_id": row_key(parent, index)}


def _items(rows: list[dict[str, Any]], known: TTableSchemaColumns, schema: Schema,
           lists: tuple[str, ...] = ()) -> Any:
    """`rows` as one Arrow table, or as dicts (the lists in `lists` left out: they have
    tables of their own) when dlt must coerce a value."""
    table = to_arrow(rows, known, schema.naming, unnested=lists)
    if table is not None:
        return table
    if not lists:
        return rows
    return [{k: v for k, v in row.items() if k not in lists or not isinstance(v, list)}
            for row in rows]
