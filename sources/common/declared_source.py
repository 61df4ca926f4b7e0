"""A declared provider's dlt source: a function whose arguments are the declared configuration
keys, so dlt injects `SOURCES__<NAME>__<KEY>` and the common settings as for a written one."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import dlt

from sources.common.provider import DECLARATION_FILE, Provider
from sources.common.throttle import RateLimit

KEYWORD = inspect.Parameter.KEYWORD_ONLY


def common_parameters(provider: Provider, ids_key: str, rate_limit: RateLimit | None
                      ) -> list[inspect.Parameter]:
    """The credential, the ids (or scopes) key, the origin and the rate limit."""
    return [
        inspect.Parameter(provider.secret_field, KEYWORD, default=dlt.secrets.value,
                          annotation=str),
        inspect.Parameter(ids_key, KEYWORD, default=None, annotation=Sequence[str] | None),
        inspect.Parameter("base_url", KEYWORD, default=provider.base_url, annotation=str),
        inspect.Parameter("rate_limit_requests", KEYWORD, annotation=int | None,
                          default=rate_limit.requests if rate_limit else None),
        inspect.Parameter("rate_limit_period", KEYWORD, annotation=float,
                          default=rate_limit.period if rate_limit else 1.0),
    ]


def option(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    return inspect.Parameter(name, KEYWORD, default=default, annotation=annotation)


def declared_source(body: Callable[..., Any], provider: Provider, description: str,
                    params: list[inspect.Parameter], module: str) -> Any:
    """`body(**config)` as a dlt source of `provider` taking `params`."""

    def source(**config: Any) -> Any:
        return body(**config)

    source.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    source.__annotations__ = {p.name: p.annotation for p in params}
    source.__name__ = source.__qualname__ = f"{provider.name}_source"
    source.__module__ = module  # dlt names its config spec after a loaded module
    source.__doc__ = f"{description}\n\nDeclared in sources/{provider.name}/{DECLARATION_FILE}."
    return dlt.source(source, name=provider.name, section=provider.name)
