"""A listed provider declared as data (`kind = "listed"` in `provider.toml`, checked against
`listed.schema.json`): its `ListedSpec`, its `Provider` (how its tables feed the views) and its
dlt source, whose arguments are the declared configuration keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from dlt.common.schema.typing import TTableSchemaColumns
from dlt.sources.helpers.rest_client.auth import APIKeyAuth

from sources.common.analytics import failure_rows_sql, job_rows_sql, literal
from sources.common.bad_input import TolerantClient
from sources.common.columns import ColumnBudget, normalized
from sources.common.config_checks import (
    NotConfigured,
    bounds_for,
    checked_concurrency,
    checked_origin,
    checked_secret,
    unless_placeholder,
)
from sources.common.declared_source import common_parameters, declared_source, option
from sources.common.field_paths import FieldPath
from sources.common.job_refs import InvalidJobRef, check_id
from sources.common.listed.children import ChildrenOfItems
from sources.common.listed.gone import gone_items
from sources.common.listed.listing import Listing
from sources.common.listed.resources import (
    GONE_COLUMNS,
    children_table,
    item_table,
    items_resource,
)
from sources.common.listed.spec import ChildSpec, ListedSpec, column_of
from sources.common.poller import DEFAULT_CONCURRENCY
from sources.common.provider import Provider
from sources.common.scopes import scope_of
from sources.common.session import counting_session
from sources.common.stats import current_stats
from sources.common.throttle import RateLimit
from sources.common.tracking import StatusTracker


class SharedCredential:
    """One credential for every scope: a refusal is the provider's, not a scope's."""

    def __init__(self, key: str) -> None:
        self.key = key

    def refusal(self, scope: str, code: int, body: str) -> str | None:
        return None

    def key_for(self, scope: str) -> str:
        return self.key


def declared_spec(data: Mapping[str, Any]) -> tuple[ListedSpec, TTableSchemaColumns,
                                                     TTableSchemaColumns]:
    """The spec of a checked listed declaration, its items' and children's columns."""
    listing, status, name = data["listing"], data["status"], data["name"]
    if status.get("gone") is not None and status["gone"] not in status["map"]:
        raise ValueError(f"status.gone: {status['gone']!r} is not a status of status.map")
    children = data.get("children")
    gone = status.get("gone")
    provider = _provider(data)
    spec = ListedSpec(
        provider=provider, path=listing["path"], items=listing["items"], table=listing["table"],
        id=FieldPath(listing["id"]), status=FieldPath(status["field"]),
        created=FieldPath(listing["created"]), scope_field=listing.get("scope_field"),
        scope_name=data["scopes"].get("name", "scope"),
        item_name=listing.get("item_name", "item"), total=listing.get("total"),
        skip_param=listing.get("skip_param", "skip"),
        limit_param=listing.get("limit_param", "limit"),
        children=None if children is None else ChildSpec(
            path=children["path"], items=children["items"], table=children["table"],
            item_column=children["item_column"],
            scope_column=children.get("scope_column", "scope_id"),
            index_column=children["index_column"], name=children.get("name", "child"),
            total=children.get("total"),
            gone_codes=frozenset(children.get("gone_codes", [404]))),
        gone_status=gone, gone_table=f"{name}_gone_items" if gone else None)
    declared = {c: {"data_type": t} for c, t in data.get("columns", {}).items()}
    items: TTableSchemaColumns = {
        normalized(spec.id_column): {"data_type": "text", "nullable": False},
        column_of(spec.created): {"data_type": "timestamp"},
        column_of(spec.status): {"data_type": "text"},
        "last_seen_at": {"data_type": "timestamp"}, **declared}
    child_columns: TTableSchemaColumns = {} if children is None else {
        children["item_column"]: {"data_type": "text", "nullable": False},
        children["index_column"]: {"data_type": "bigint", "nullable": False},
        children.get("scope_column", "scope_id"): {"data_type": "text"}}
    return spec, items, child_columns


def _provider(data: Mapping[str, Any]) -> Provider:
    """The provider of a declaration: its status map and how its tables feed the views."""
    name, listing, status = data["name"], data["listing"], data["status"]
    t, g = f"l_{name}", f"g_{name}"
    key, created = column_of(FieldPath(listing["id"])), column_of(FieldPath(listing["created"]))
    scope = column_of(FieldPath(listing["scope_field"])) if listing.get("scope_field") \
        else "listed_scope"
    native = f"{t}.{column_of(FieldPath(status['field']))}"
    source = f"{{ds}}.{listing['table']} AS {t}"
    if gone := status.get("gone"):
        source += f" LEFT JOIN {{ds}}.{name}_gone_items AS {g} ON {g}.item_id = {t}.{key}"
        native = f"CASE WHEN {g}.item_id IS NOT NULL THEN {literal(gone)} ELSE {native} END"
    facts = {k: v.format(j=t) for k, v in data.get("views", {}).get("job_facts", {}).items()}
    exprs = {"job_ref": f"{t}.{key}", "job_id": f"{t}.{key}", "scope_id": f"{t}.{scope}",
             "native_status": native, "submitted_at": f"{t}.{created}",
             "last_seen_at": f"{t}.last_seen_at", **facts}
    children = data.get("children") or {}
    failures = ""
    if reason := children.get("failure"):
        f = f"f_{name}"
        failures = failure_rows_sql(
            name, f"{{ds}}.{children['table']} AS {f}",
            {"job_id": f"{f}.{children['item_column']}",
             "item": f"CAST({f}.{children['index_column']} AS VARCHAR)",
             "reason": f"{f}.{reason}"}, where=f"{f}.{reason} IS NOT NULL")
    return Provider(name=name, base_url=data["base_url"], secret_field=data["auth"]["secret"],
                    status_map=dict(status["map"]), job_rows=job_rows_sql(name, source, exprs),
                    failure_rows=failures)


def listed_source(data: Mapping[str, Any]) -> tuple[ListedSpec, Callable[..., Any]]:
    """The spec and dlt source function of a checked listed declaration."""
    spec, items, child_columns = declared_spec(data)
    provider = spec.provider
    tables = {spec.table: items, **({spec.children.table: child_columns}
                                    if spec.children else {}),
              **({spec.gone_table: GONE_COLUMNS} if spec.gone_table else {})}
    object.__setattr__(provider, "tables", tables)
    auth = data["auth"]
    limit = data.get("rate_limit")
    listing = data["listing"]
    scopes_key = data["scopes"]["config_key"]

    def source(**config: Any) -> Any:
        return _resources(spec, items, child_columns, auth, config, scopes_key,
                          bool(limit and limit.get("per_scope")))

    params = [
        *common_parameters(provider, scopes_key,
                           RateLimit(limit["requests"], float(limit["period"])) if limit
                           else None),
        option("page_size", listing.get("page_size", 100), int),
        option("children_page_size", (data.get("children") or {}).get("page_size", 100), int),
        option("listing_overlap_minutes", float(listing.get("overlap_minutes", 10)), float),
        option("full_pass_hours", float(listing.get("full_pass_hours", 24)), float),
        option("fetch_children", True, bool),
        option("concurrency", DEFAULT_CONCURRENCY, int),
        option("full_refresh", False, bool),
    ]
    return spec, declared_source(source, provider, data["description"], params, __name__)


def _scopes(spec: ListedSpec, given: Any, key: str, stats: Any) -> list[str]:
    scopes, bad = [], []
    for value in given or []:
        try:
            scopes.append(check_id(str(value), f"{spec.scope_name} id"))
        except InvalidJobRef as exc:
            bad.append(f"{value!r} ({exc})")
    if bad:  # the valid ones still load; the run ends with the configuration error (exit 2)
        stats.config_error(f"invalid {spec.scope_name} ids: {'; '.join(bad)} (skipped)", key)
    return list(dict.fromkeys(scopes))


def _resources(spec: ListedSpec, items: TTableSchemaColumns, child_columns: TTableSchemaColumns,
               auth: Mapping[str, Any], config: Mapping[str, Any], scopes_key: str,
               per_scope: bool) -> tuple[Any, ...]:
    provider = spec.provider
    stats = current_stats(provider.name)
    secret = config[provider.secret_field]
    if unless_placeholder(secret, provider.secret_env_key, stats.warnings) is None:
        raise NotConfigured([provider.secret_env_key])
    secret = checked_secret(secret, provider.secret_env_key)
    base_url = checked_origin(provider, config["base_url"])
    bounds, concurrency = bounds_for(provider), checked_concurrency(provider,
                                                                    config["concurrency"])
    scopes = _scopes(spec, config[scopes_key], provider.env_key(scopes_key), stats)
    tracker = StatusTracker(provider, stats, compact_finished=True)
    not_read: list[Any] = []
    cut: list[Any] = []
    value = f"{auth['scheme']} {secret}" if auth.get("scheme") else secret
    session = counting_session(
        stats, base_url, bounds,
        limit=RateLimit.of(config["rate_limit_requests"], config["rate_limit_period"]),
        key_of=(lambda r: f"{spec.scope_name} {s.id}" if (s := scope_of(r)) else provider.name)
        if per_scope else None)
    client = TolerantClient(
        base_url=base_url, session=session, max_pages=bounds.max_pages,
        auth=APIKeyAuth(name=auth.get("header", "Authorization"), api_key=value,
                        location="header"),
        on_unreadable=lambda response, reason: not_read.append((response, reason)),
        on_record_rejected=lambda response, record, reason: cut.append(
            (response, record, reason)))
    fetch_children = spec.children is not None and config["fetch_children"]
    listing = Listing(
        spec, client, tracker, stats,
        ColumnBudget(spec.table, bounds.max_columns, provider.env_key("max_columns")),
        not_read, cut, page_size=config["page_size"], params={},
        overlap=timedelta(minutes=config["listing_overlap_minutes"]),
        full_refresh=config["full_refresh"], track_changes=fetch_children,
        concurrency=concurrency, credentials=SharedCredential(provider.secret_env_key),
        gone=gone_items(spec) if spec.gone_status else None)
    feed = items_resource(listing, scopes, config["full_pass_hours"])
    out = [feed, item_table(feed, listing, items)]
    if fetch_children:
        children = ChildrenOfItems(client, spec, stats, config["children_page_size"],
                                   concurrency, listing.failures)
        out.append(children_table(feed, listing, children, config["full_refresh"],
                                  child_columns))
    return tuple(out)

