"""Which token each location is read with: its own from `LOCATION_TOKENS` (a sub-account's
Private Integration Token), else one the agency OAuth app mints for it, else the shared
`ACCESS_TOKEN`. Social Planner endpoints accept only a token of the location they name
(api-notes: HighLevel auth)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from requests import PreparedRequest, Response
from requests.auth import AuthBase

from sources.common.config_checks import (
    ConfigProblem,
    NotConfigured,
    checked_secret,
    json_object,
    unless_placeholder,
)
from sources.common.job_refs import InvalidJobRef, check_id
from sources.common.scopes import mark, scope_of
from sources.highlevel.oauth import APP_ID_KEY, CLIENT_ID_KEY, REFRESH_TOKEN_KEY, AgencyTokens
from sources.highlevel.settings import PROVIDER

ACCESS_TOKEN_KEY = PROVIDER.secret_env_key
LOCATION_TOKENS_KEY = PROVIDER.env_key("location_tokens")
LOCATION_IDS_KEY = PROVIDER.env_key("location_ids")


def _location(request: PreparedRequest | None) -> str | None:
    """The location a request was sent for (its scope); None for one about no location."""
    scope = scope_of(request)
    return None if scope is None else scope.id


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
    return list(dict.fromkeys(locations))  # a location given twice is read once


def token_map(value: Any, warnings: list[str] | None = None) -> dict[str, str]:
    """LOCATION_TOKENS as given: a TOML table, or a JSON object in an environment variable;
    an entry whose token is empty or a placeholder is left out, with a warning."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = json_object(value, f"{LOCATION_TOKENS_KEY} is not a JSON object of location "
                            "id -> token", f"{LOCATION_TOKENS_KEY} must map location ids to tokens")
    if not isinstance(value, Mapping):
        raise ConfigProblem(f"{LOCATION_TOKENS_KEY} must map location ids to tokens")
    tokens = {}
    for location, token in value.items():
        try:
            check_id(str(location), "location id")
        except InvalidJobRef as exc:
            raise ConfigProblem(f"{LOCATION_TOKENS_KEY}: {exc}") from None
        key = f"{LOCATION_TOKENS_KEY}[{location}]"
        if unless_placeholder(token, key, [] if warnings is None else warnings) is not None:
            tokens[str(location)] = checked_secret(token, key)
    return tokens


@dataclass(frozen=True)
class LocationCredentials:
    own: Mapping[str, str]  # location -> its own token
    shared: str | None  # for every other location, unless the agency app mints one
    agency: AgencyTokens | None = None

    def token_for(self, location: str | None) -> str | None:
        if location is not None and location in self.own:
            return self.own[location]
        if location is not None and self.agency is not None:
            return self.agency.location_token(location)
        return self.shared

    def minted(self, location: str | None) -> bool:
        """Whether the location's token comes from the agency app (and can be renewed)."""
        return location is not None and location not in self.own and self.agency is not None

    def is_own(self, location: str) -> bool:
        """Whether a refusal concerns this location's token alone (not a shared one)."""
        return location in self.own or self.minted(location)

    def refusal(self, location: str, code: int, body: str) -> str | None:
        """What to tell of a 401/403 that concerns this location's token alone (None when
        the token is shared: the provider's run ends)."""
        if location in self.own:
            return (f"location {location}: the API refused its token (HTTP {code}: {body}); "
                    f"check {self.key_for(location)}")
        if self.minted(location):
            return (f"location {location}: the API refused the token the agency app minted for "
                    f"it, renewed once (HTTP {code}: {body}); check that the app is installed "
                    f"there with the socialplanner/csv.readonly scope ({CLIENT_ID_KEY})")
        return None

    def key_for(self, location: str) -> str:
        """The configuration key of the credential a location is read with."""
        if location in self.own:
            return f"{LOCATION_TOKENS_KEY}[{location}]"
        return CLIENT_ID_KEY if self.agency is not None else ACCESS_TOKEN_KEY


def location_credentials(access_token: Any, location_tokens: Any,
                         location_ids: Iterable[str] | str | None,
                         agency: AgencyTokens | None = None,
                         warnings: list[str] | None = None,
                         ) -> tuple[list[str] | None, LocationCredentials]:
    """The locations to read (None: discover those where the agency app is installed) and the
    token of each; ConfigProblem naming the key when a location has none, NotConfigured when
    no credential is set at all."""
    warnings = [] if warnings is None else warnings
    own = token_map(location_tokens, warnings)
    access_token = unless_placeholder(access_token, ACCESS_TOKEN_KEY, warnings)
    shared = None if access_token is None else checked_secret(access_token, ACCESS_TOKEN_KEY)
    if not own and shared is None and agency is None:
        raise NotConfigured([ACCESS_TOKEN_KEY, LOCATION_TOKENS_KEY, REFRESH_TOKEN_KEY])
    credentials = LocationCredentials(own, shared, agency)
    if location_ids is None:
        if agency is not None and agency.settings.app_id is not None:
            return None, credentials
        if not own:
            raise ConfigProblem(
                f"{LOCATION_IDS_KEY} is missing: the locations to read (or give each its token "
                f"in {LOCATION_TOKENS_KEY}, or set {APP_ID_KEY} to read every location where "
                "the agency app is installed)")
        return list(own), credentials
    locations = parse_locations(location_ids)
    if not locations:
        raise ConfigProblem(f"{LOCATION_IDS_KEY} is an empty list: name at least one location "
                            f"(or leave it unset with {LOCATION_TOKENS_KEY} or {APP_ID_KEY})")
    without = [location for location in locations if location not in own]
    if without and shared is None and agency is None:
        raise ConfigProblem(f"no token for location(s) {', '.join(without)}: add them to "
                            f"{LOCATION_TOKENS_KEY} or set {ACCESS_TOKEN_KEY}")
    return locations, credentials


def discovered_locations(credentials: LocationCredentials) -> list[str]:
    """The locations where the agency app is installed, then those with a token of their own
    that it does not name; an id that cannot be one is left out. ConfigProblem when there is
    none: a run that reads nothing must not look like one that read everything."""
    assert credentials.agency is not None
    found = dict.fromkeys(credentials.agency.installed_locations())
    for location in list(found):
        try:
            check_id(location, "location id")
        except InvalidJobRef:
            del found[location]
    found.update(dict.fromkeys(credentials.own))
    if not found:
        raise ConfigProblem(f"the agency app ({APP_ID_KEY}) is installed in no location of "
                            f"company {credentials.agency.settings.company_id}: install it, or "
                            f"name the locations in {LOCATION_IDS_KEY}")
    return list(found)


class LocationBearerAuth(AuthBase):
    """`Authorization: Bearer <the token of the location the request names>`; a location
    token minted by the agency app that is refused (401/403) is renewed and the request sent
    once more."""

    def __init__(self, credentials: LocationCredentials) -> None:
        self.credentials = credentials

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        location = _location(request)
        token = self.credentials.token_for(location)
        if token is not None:
            request.headers["Authorization"] = f"Bearer {token}"
        if self.credentials.minted(location):
            request.register_hook("response", self._renew_once)
        return request

    def _renew_once(self, response: Response, **kwargs: Any) -> Response:
        if response.status_code not in (401, 403) or response.connection is None:
            return response
        request = response.request
        location = _location(request)
        agency = self.credentials.agency
        if location is None or agency is None:
            return response
        stale = str(request.headers.get("Authorization", "")).removeprefix("Bearer ")
        token = agency.location_token(location, stale)
        response.close()
        retry = mark(request.copy(), scope_of(request))
        retry.headers["Authorization"] = f"Bearer {token}"
        retry.hooks = {"response": []}  # renewed once, not again
        renewed = response.connection.send(retry, **kwargs)
        renewed.history.insert(0, response)
        renewed.request = retry
        return renewed
