"""Which token each location is read with: its own from `LOCATION_TOKENS` (a sub-account's
Private Integration Token), else the shared `ACCESS_TOKEN`. Social Planner endpoints accept only
a token of the location they name (api-notes: HighLevel auth)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from requests import PreparedRequest
from requests.auth import AuthBase

from sources.common.config_checks import ConfigProblem, NotConfigured, checked_secret
from sources.common.job_refs import InvalidJobRef, check_id
from sources.highlevel.settings import PROVIDER

ACCESS_TOKEN_KEY = PROVIDER.secret_env_key
LOCATION_TOKENS_KEY = PROVIDER.env_key("location_tokens")
LOCATION_IDS_KEY = PROVIDER.env_key("location_ids")


def location_in(url: str) -> str | None:
    """The location a Social Planner URL names (`/social-media-posting/{locationId}/...`)."""
    parts = urlsplit(url).path.split("/")
    if "social-media-posting" in parts:
        index = parts.index("social-media-posting") + 1
        if index < len(parts):
            return unquote(parts[index])
    return None


def parse_locations(value: str | Iterable[str]) -> list[str]:
    """Location ids from a TOML/JSON list (or a comma-separated string); InvalidJobRef naming
    every id that cannot be one (empty, spaces, control characters, a dot segment)."""
    items = value.split(",") if isinstance(value, str) else list(value)
    locations, bad = [], []
    for item in items:
        try:
            locations.append(check_id(str(item), "location id"))
        except InvalidJobRef as exc:
            bad.append(str(exc))
    if bad:
        raise InvalidJobRef(f"invalid location ids: {'; '.join(bad)}")
    return locations


def token_map(value: Any) -> dict[str, str]:
    """LOCATION_TOKENS as given: a TOML table, or a JSON object in an environment variable."""
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ConfigProblem(f"{LOCATION_TOKENS_KEY} is not a JSON object of location id -> "
                                "token") from None
    if not isinstance(value, Mapping):
        raise ConfigProblem(f"{LOCATION_TOKENS_KEY} must map location ids to tokens")
    tokens = {}
    for location, token in value.items():
        try:
            check_id(str(location), "location id")
        except InvalidJobRef as exc:
            raise ConfigProblem(f"{LOCATION_TOKENS_KEY}: {exc}") from None
        tokens[str(location)] = checked_secret(token, f"{LOCATION_TOKENS_KEY}[{location}]")
    return tokens


@dataclass(frozen=True)
class LocationCredentials:
    own: Mapping[str, str]  # location -> its own token
    shared: str | None  # for every other location

    def token_for(self, location: str | None) -> str | None:
        return self.own.get(location, self.shared) if location is not None else self.shared

    def key_for(self, location: str) -> str:
        """The configuration key of the token a location is read with."""
        return LOCATION_TOKENS_KEY if location in self.own else ACCESS_TOKEN_KEY


def location_credentials(access_token: Any, location_tokens: Any,
                         location_ids: Iterable[str] | str | None
                         ) -> tuple[list[str], LocationCredentials]:
    """The locations to read and the token of each; ConfigProblem naming the key when a
    location has none, NotConfigured when no credential is set at all."""
    own = token_map(location_tokens)
    shared = None if access_token is None else checked_secret(access_token, ACCESS_TOKEN_KEY)
    if not own and shared is None:
        raise NotConfigured([ACCESS_TOKEN_KEY, LOCATION_TOKENS_KEY])
    if location_ids is None and not own:
        raise ConfigProblem(f"{LOCATION_IDS_KEY} is missing: the locations to read (or give "
                            f"each its token in {LOCATION_TOKENS_KEY})")
    locations = parse_locations(location_ids) if location_ids is not None else list(own)
    without = [location for location in locations if location not in own]
    if without and shared is None:
        raise ConfigProblem(f"no token for location(s) {', '.join(without)}: add them to "
                            f"{LOCATION_TOKENS_KEY} or set {ACCESS_TOKEN_KEY}")
    return locations, LocationCredentials(own, shared)


class LocationBearerAuth(AuthBase):
    """`Authorization: Bearer <the token of the location the request names>`."""

    def __init__(self, credentials: LocationCredentials) -> None:
        self.credentials = credentials

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        token = self.credentials.token_for(location_in(request.url or ""))
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        return request
