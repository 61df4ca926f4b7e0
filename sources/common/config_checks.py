"""Checks of a provider's configuration made before any request: the base URL is an origin the
credential may go to, the credential is one header value, the bounds are positive numbers."""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any
from urllib.parse import urlsplit

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

from sources.common.errors import ConfigurationError
from sources.common.provider import Provider
from sources.common.redaction import register

_LOOPBACK_NAMES = frozenset({"localhost"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ConfigProblem(ConfigurationError):
    """A configuration value that cannot be used; the message names the key, never the value."""


MAX_CONCURRENCY = 256


def checked_concurrency(provider: Provider, value: object) -> int:
    """Requests in flight at once: a whole number from 1 to `MAX_CONCURRENCY` (dlt has made
    a configured value an int already)."""
    if isinstance(value, bool) or not isinstance(value, int) or \
            not 1 <= value <= MAX_CONCURRENCY:
        raise ConfigProblem(f"{provider.env_key('concurrency')} must be a whole number from 1 "
                            f"to {MAX_CONCURRENCY}")
    return value


def is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the port made explicit; ValueError if it has none."""
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    if not host or port is None:
        raise ValueError("not an absolute http(s) URL")
    return scheme, host, port


def origin_text(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if _DEFAULT_PORTS.get(scheme) == port else \
        f"{scheme}://{host}:{port}"


def checked_origin(provider: Provider, url: str) -> str:
    """The base URL as an origin (`scheme://host[:port]`) the credential may be sent to.

    https only, except loopback hosts (tests, the demo); no user name or password (it would end
    up in traces and logs), no path, query or fragment (a path is not appended to: the API's
    paths are). The value itself is never in the message: it may hold a password."""
    key = provider.env_key("base_url")
    url = str(url).strip()
    try:
        parts = urlsplit(url)
        origin = origin_of(url)
    except ValueError:
        raise ConfigProblem(f"{key} must be an origin such as {provider.base_url}") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConfigProblem(f"{key} must not hold a user name or password; the credential "
                            f"goes in {provider.secret_env_key}")
    scheme, host, _ = origin
    if scheme not in _DEFAULT_PORTS:
        raise ConfigProblem(f"{key} must start with https:// (e.g. {provider.base_url})")
    if parts.path not in ("", "/") or "?" in url or "#" in url:
        raise ConfigProblem(f"{key} must be the origin only (scheme, host, port), without a "
                            f"path, query or fragment: e.g. {provider.base_url}")
    if scheme == "http" and not is_loopback(host):
        raise ConfigProblem(f"{key} must use https:// for {host}: plain http would send the "
                            "credential in cleartext (http is accepted for loopback hosts only)")
    return origin_text(origin)


class NotConfigured(ConfigurationError):
    """None of a provider's credentials is set: the provider is not in use (a run without
    `--source` skips it; named, it is a configuration error). The message names the keys."""

    def __init__(self, keys: list[str]) -> None:
        super().__init__(" or ".join(keys), keys[0] if keys else None)


# values copied from .dlt/secrets.toml.example or docs: `<your token>`, `your-api-key`,
# `xxxxxxxx`, `pit-xxxxxxxx`, `...`, `changeme`
_PLACEHOLDER = re.compile(r"<[^<>]*>|your[-_ ].*|(\w+-)?x{4,}|\.{3}|changeme|todo", re.IGNORECASE)


def is_placeholder(value: object) -> bool:
    """Whether a configured value is empty or a placeholder rather than a real one."""
    return isinstance(value, str) and (not value.strip() or bool(
        _PLACEHOLDER.fullmatch(value.strip())))


def unless_placeholder(value: Any, key: str, warnings: list[str]) -> Any:
    """`value`, or None (not configured) when it is empty or a placeholder, with a warning
    naming `key` in `warnings` (never the value)."""
    if not is_placeholder(value):
        return value
    what = "is empty" if not str(value).strip() else "holds a placeholder value"
    warnings.append(f"{key} {what}: taken as not set")
    return None


def checked_secret(value: object, key: str) -> str:
    """A credential usable as one header value: a non-empty string without surrounding
    whitespace or control characters (a pasted newline would otherwise be printed back in the
    error of the HTTP library). Registered for redaction either way."""
    if isinstance(value, str):
        register(value, value.strip())
    return checked_value(value, key)


def json_object(text: str, not_json: str, not_object: str) -> dict[str, Any]:
    """`text` parsed as a JSON object; ConfigProblem with `not_json` or `not_object`."""
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigProblem(not_json) from None
    if not isinstance(value, dict):
        raise ConfigProblem(not_object)
    return value


def checked_value(value: object, key: str) -> str:
    """A setting that is not a secret (an id, a path) held to the same form as one."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigProblem(f"{key} is empty")
    if value != value.strip():
        raise ConfigProblem(f"{key} has surrounding whitespace (a pasted newline?): remove it")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ConfigProblem(f"{key} holds control characters: it cannot be sent as a header")
    return value


@configspec
class Bounds(BaseConfiguration):
    """Limits on what one provider's run accepts from its API. Resolved from
    `sources.<provider>.<key>`, else `sources.<key>` (so `SOURCES__MAX_BODY_BYTES` sets it for
    every provider)."""

    max_body_bytes: int = 32 * 1024 * 1024  # of one answer, decompressed
    request_deadline_seconds: float = 120.0  # one request: connect, retries excluded, all reads
    run_deadline_seconds: float = 3600.0  # one provider's run: no request starts after it
    max_json_depth: int = 32  # nesting of objects and arrays in one answer
    max_columns: int = 300  # columns a table of the provider may reach through its answers
    max_text_length: int = 4000  # characters of a string value kept; longer ones are cut
    max_pages: int = 20_000  # pages of one listing per run (2,000,000 imports at 100 a page)
    max_polls_per_run: int = 1_000_000_000  # job status requests per run; the rest wait


MAX_STATUS_LENGTH = 200  # a status longer than this is no status: the answer is rejected


def bounds_for(provider: Provider) -> Bounds:
    """The provider's bounds, each checked to be a positive number."""
    bounds = resolve_configuration(Bounds(), sections=("sources", provider.name))
    for name in Bounds.__annotations__:
        if not getattr(bounds, name) > 0:
            raise ConfigProblem(f"{provider.env_key(name)} must be a positive number")
    return bounds
