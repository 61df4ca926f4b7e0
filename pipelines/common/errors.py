"""Turns a failed provider run into one line an operator can act on, without any secret."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import requests
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException

from sources.common import redaction
from sources.common.http_guard import MAX_REDIRECTS, AnswerRefused, ForeignOrigin, RunDeadlinePassed
from sources.common.provider import Provider


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without any credential of this process (`redaction`) or in `secrets`, in any of
    their forms (as is, escaped, percent-encoded)."""
    return redaction.redact(text, secrets)


def config_message(provider: Provider, exc: Exception) -> str:
    """The line for a configuration value that cannot be used: names the key, not the value."""
    if isinstance(exc, ConfigValueCannotBeCoercedException):
        return (f"{provider.env_key(exc.field_name)} has the wrong type: expected "
                f"{getattr(exc.hint, '__name__', exc.hint)}, e.g. a TOML/JSON list "
                "'[\"a\", \"b\"]' for lists")
    return redact(f"{provider.name}: {exc}")


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and the errors behind it, outermost first (a dlt load job error's client error
    included)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__ or getattr(
            current, "client_exception", None)


def _server_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200].strip()
    if isinstance(body, dict):
        for key in ("message", "error", "errors", "detail"):
            if key in body:
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)[:200]
    return json.dumps(body)[:200]


def describe_failure(provider: Provider, exc: BaseException,
                     secrets: Iterable[str | None] = ()) -> str:
    """One line naming the provider, what failed and, for auth errors, the key to fix."""
    name = provider.name
    for err in exception_chain(exc):
        if isinstance(err, requests.HTTPError) and err.response is not None:
            response = err.response
            code = response.status_code
            path = urlsplit(response.url).path
            detail = _server_message(response)
            if code in (401, 403):
                text = (f"{name}: the API rejected the credential (HTTP {code}: {detail}). "
                        f"Check {provider.secret_env_key}.")
            else:
                text = f"{name}: HTTP {code} from {path}: {detail}"
            return redact(text, secrets)
        if isinstance(err, ForeignOrigin):
            return redact(f"{name}: the API {err}. Check {provider.env_key('base_url')} (the "
                          "provider's documented origin is " f"{provider.base_url}).", secrets)
        if isinstance(err, RunDeadlinePassed):
            return (f"{name}: {err} ({provider.env_key('run_deadline_seconds')}); nothing of "
                    "this run was loaded, the next run reads it again")
        if isinstance(err, requests.TooManyRedirects):
            return (f"{name}: the API redirected more than {MAX_REDIRECTS} times "
                    f"(a loop?). Check {provider.env_key('base_url')}.")
        if isinstance(err, AnswerRefused):
            return redact(f"{name}: {err.reason}", secrets)
        if isinstance(err, requests.ConnectionError | requests.Timeout):
            return redact(f"{name}: cannot reach the API ({type(err).__name__}). "
                          f"Check {provider.env_key('base_url')} and the network.", secrets)
    root = list(exception_chain(exc))[-1]
    return redact(f"{name}: {type(root).__name__}: {root}", secrets)
