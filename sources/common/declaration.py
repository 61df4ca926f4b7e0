"""Polled providers declared as data: `sources/<name>/provider.toml`, checked against
`declaration.schema.json`, becomes a `PolledProvider` and its dlt source."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from sources.common.analytics import failure_rows_sql
from sources.common.declared_source import common_parameters, declared_source, option
from sources.common.errors import ConfigurationError
from sources.common.field_paths import FieldPath
from sources.common.http_actions import CodeActions
from sources.common.job_refs import RefFormat
from sources.common.polled_provider import PolledProvider
from sources.common.polled_resources import DEFAULT_CONCURRENCY, polled_resources
from sources.common.provider import Provider
from sources.common.throttle import RateLimit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SCHEMA = Path(__file__).with_name("declaration.schema.json")  # kind = "polled"
LISTED_SCHEMA = Path(__file__).with_name("listed.schema.json")  # kind = "listed"


class DeclarationError(ConfigurationError):
    """A provider declaration that cannot be used; the message names the file and field."""


@dataclass(frozen=True)
class Declaration:
    """A checked declaration: the provider, its source function and what the demo needs."""

    provider: Provider
    source: Callable[..., Any]
    ids_key: str  # the config key holding ids to follow (a listed provider's: its scopes)
    rate_limit: RateLimit | None
    demo_jobs_per_run: int
    ids_help: str
    kind: str = "polled"
    spec: Any = None  # a listed provider's ListedSpec

@cache
def _validator(kind: str) -> Any:
    import jsonschema  # only when a declaration is read

    schema = LISTED_SCHEMA if kind == "listed" else SCHEMA
    return jsonschema.Draft202012Validator(json.loads(schema.read_text()))


def _problems(data: Any) -> list[str]:
    """Every schema violation as `field.path: message`, in field order."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind not in ("polled", "listed"):
        return [f"kind: {kind!r} is not one of 'polled', 'listed'" if kind is not None
                else "kind: required field is missing"]
    found = []
    for error in sorted(_validator(kind).iter_errors(data),
                        key=lambda e: list(map(str, e.path))):
        where = ".".join(str(p) for p in error.absolute_path)
        message = error.message
        if error.validator == "required":  # name the missing field itself
            missing = next(f for f in error.validator_value if f not in error.instance)
            where, message = ".".join(filter(None, (where, missing))), "required field is missing"
        found.append(f"{where or '(top level)'}: {message}")
    return found


def load_declaration(path: Path) -> Declaration:
    """The declaration in `path`; DeclarationError naming each field that is wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise DeclarationError(f"{path}: cannot be read: {exc}") from None
    problems = _problems(data)
    if not problems and data["name"] != path.parent.name:
        problems.append(f"name: {data['name']!r} is not the folder's name {path.parent.name!r}")
    if not problems:
        try:
            return _declared(data)
        except ValueError as exc:  # a value the schema cannot judge (the id format)
            problems.append(str(exc))
    raise DeclarationError(f"{path}: " + "; ".join(problems))


def _declared(data: Mapping[str, Any]) -> Declaration:
    if data["kind"] == "listed":
        return _declared_listed(data)
    name, ids, status = data["name"], data["ids"], data["status"]
    try:
        ref_format = RefFormat(ids.get("format", "{job_id}"), ids.get("names", {}))
    except ValueError as exc:
        raise ValueError(f"ids.format: {exc}") from None
    try:
        FieldPath(status["field"])
    except ValueError as exc:
        raise ValueError(f"status.field: {exc}") from None
    views = data.get("views", {})
    provider = PolledProvider(
        name=name, base_url=data["base_url"], secret_field=data["auth"]["secret"],
        status_map=dict(status["map"]), auth_header=data["auth"].get("header", "Authorization"),
        auth_scheme=data["auth"].get("scheme"), jobs_table=data["jobs_table"],
        status_path=status["path"], status_field=status["field"],
        status_params=dict(status.get("params", {})),
        codes=CodeActions(status.get("codes", {})), parse_ref=ref_format.parse,
        id_fields=dict(data.get("id_fields", {})),
        columns={c: {"data_type": t} for c, t in data.get("columns", {}).items()},
        job_facts=dict(views.get("job_facts", {})),
        failure_rows=_failure_rows(name, data["jobs_table"], views.get("failures")))
    limit = data.get("rate_limit")
    rate_limit = RateLimit(limit["requests"], float(limit["period"])) if limit else None
    help_text = ids.get("help") or ref_format.expected()
    return Declaration(provider, _source_function(provider, data["description"], ids["config_key"],
                                                  rate_limit),
                       ids["config_key"], rate_limit, data.get("demo", {}).get("jobs_per_run", 0),
                       help_text)


def _declared_listed(data: Mapping[str, Any]) -> Declaration:
    from sources.common.listed.declared import listed_source

    spec, source = listed_source(data)
    limit = data.get("rate_limit")
    rate_limit = RateLimit(limit["requests"], float(limit["period"])) if limit else None
    return Declaration(spec.provider, source, data["scopes"]["config_key"], rate_limit,
                       data.get("demo", {}).get("jobs_per_run", 0), "", "listed", spec)


def _failure_rows(name: str, jobs_table: str, failures: Mapping[str, str] | None) -> str:
    if not failures:
        return ""
    alias = f"f_{name}"
    exprs = {"job_id": f"{alias}.tracked_id", "reason": f"{alias}.{failures['reason']}"}
    if failures.get("item"):
        exprs["item"] = f"{alias}.{failures['item']}"
    return failure_rows_sql(name, f"{{ds}}.{jobs_table} AS {alias}", exprs,
                            where=f"{alias}.{failures['reason']} IS NOT NULL")


def _source_function(provider: PolledProvider, description: str, ids_key: str,
                     rate_limit: RateLimit | None) -> Callable[..., Any]:
    """A dlt source whose arguments are the declared configuration keys, so dlt injects
    `SOURCES__<NAME>__<SECRET>`, `..._<IDS>` and the common settings as for a written one."""

    def source(**config: Any) -> Any:
        return polled_resources(
            provider, config[provider.secret_field], config["base_url"],
            config[ids_key] or [], full_refresh=config["full_refresh"],
            limit=RateLimit.of(config["rate_limit_requests"], config["rate_limit_period"]),
            concurrency=config["concurrency"], ids_key=provider.env_key(ids_key))

    params = [*common_parameters(provider, ids_key, rate_limit),
              option("concurrency", DEFAULT_CONCURRENCY, int),
              option("full_refresh", False, bool)]
    return declared_source(source, provider, description, params, __name__)
