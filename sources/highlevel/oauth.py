"""Agency OAuth: the company (agency) token of a Marketplace app, refreshed with its single-use
refresh token, exchanged for a token per location (api-notes: HighLevel OAuth).

Every token obtained is registered for redaction; the rotated refresh token is in the store
before the access token that came with it is used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dlt
import requests
from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue

from sources.common.config_checks import (
    ConfigProblem,
    checked_secret,
    checked_value,
    unless_placeholder,
)
from sources.common.errors import ProviderError, ScopeRefused
from sources.common.job_refs import InvalidJobRef, check_id
from sources.common.redaction import redact, register
from sources.highlevel.settings import API_VERSION, PROVIDER
from sources.highlevel.token_homes import claim_home, destination_home, file_home
from sources.highlevel.token_store import FileTokenStore, TokenStore

KEY_PREFIX = PROVIDER.env_key("oauth__")
CLIENT_ID_KEY, CLIENT_SECRET_KEY = f"{KEY_PREFIX}CLIENT_ID", f"{KEY_PREFIX}CLIENT_SECRET"
REFRESH_TOKEN_KEY, COMPANY_ID_KEY = f"{KEY_PREFIX}REFRESH_TOKEN", f"{KEY_PREFIX}COMPANY_ID"
APP_ID_KEY, TOKEN_STORE_KEY = f"{KEY_PREFIX}APP_ID", f"{KEY_PREFIX}TOKEN_STORE"
STORE_KEY_KEY = f"{KEY_PREFIX}STORE_KEY"
DEFAULT_LIFETIME = 86_399.0  # seconds, when an answer leaves `expires_in` out
MAX_MARGIN = 300.0  # renew this long before expiry at most (a tenth of a short lifetime)
MAX_DISCOVERY_PAGES = 10_000  # pages of installedLocations per run
DISCOVERY_PAGE = 100
SECRET_FIELDS = frozenset({"client_secret", "refresh_token", "store_key"})
DEFAULT_STORE_FILE = "highlevel_tokens.json"
DESTINATION_STORE = "destination"  # TOKEN_STORE's value for the store in the destination
# where the destination store keeps every app's tokens: outside any run's dataset, so every
# dataset on the destination (prod, staging) shares one home per app
DEFAULT_TOKEN_DATASET = "upload_status_tokens"


@configspec
class AgencyOAuthCredentials(CredentialsConfiguration):
    """`[sources.highlevel.oauth]`: a Marketplace app installed by an agency. Every field is
    optional to dlt so that a partial configuration is reported by name (`agency_settings`)."""

    client_id: str | None = None
    client_secret: TSecretStrValue | None = None
    refresh_token: TSecretStrValue | None = None
    company_id: str | None = None
    app_id: str | None = None
    token_store: str | None = None
    store_key: TSecretStrValue | None = None
    token_dataset: str | None = None


@dataclass(frozen=True)
class AgencySettings:
    client_id: str
    client_secret: str
    refresh_token: str  # as configured: the start of the chain of rotated tokens
    company_id: str
    app_id: str | None
    token_store: str | None
    store_key: str | None
    token_dataset: str | None = None  # the destination store's home: one per destination

    @property
    def app(self) -> str:
        """Names the agency app (one token home each) without holding a secret."""
        return hashlib.sha256(f"{self.client_id} {self.company_id}".encode()).hexdigest()

    @property
    def chain(self) -> str:
        """Names the configured refresh token without holding it: a stored chain started from
        another configured token (the app was re-authorized) is not used."""
        return hashlib.sha256(self.refresh_token.encode()).hexdigest()[:16]


def agency_settings(spec: AgencyOAuthCredentials | None, warnings: list[str] | None = None
                    ) -> AgencySettings | None:
    """The agency OAuth settings, None when none is set (empty values and placeholders count
    as not set, with a warning); ConfigProblem naming every missing or unusable key of a
    partial configuration."""
    if spec is None:
        return None
    fields = [field.name for field in dataclasses.fields(AgencySettings)]
    values = {name: unless_placeholder(getattr(spec, name, None), f"{KEY_PREFIX}{name.upper()}",
                                       [] if warnings is None else warnings) for name in fields}
    if all(value in (None, "") for value in values.values()):
        return None
    required = ("client_id", "client_secret", "refresh_token", "company_id")
    missing = [f"{KEY_PREFIX}{name.upper()}" for name in required if values[name] in (None, "")]
    if missing:
        raise ConfigProblem(f"agency OAuth is partly configured: {', '.join(missing)} missing")
    checked = {name: (checked_secret if name in SECRET_FIELDS else checked_value)(
        str(values[name]), f"{KEY_PREFIX}{name.upper()}")
        for name in fields if values[name] not in (None, "")}
    for name in ("company_id", "app_id"):
        if name in checked:
            try:
                check_id(checked[name], name)
            except InvalidJobRef as exc:
                raise ConfigProblem(f"{KEY_PREFIX}{name.upper()}: {exc}") from None
    return AgencySettings(**{name: checked.get(name) for name in fields})


def agency_tokens(settings: AgencySettings | None, session: requests.Session, base_url: str,
                  warnings: list[str] | None = None) -> AgencyTokens | None:
    """The agency's tokens, started from its store; None without agency OAuth."""
    if settings is None:
        return None
    store = token_store(settings, warnings)
    home_dataset = settings.token_dataset or DEFAULT_TOKEN_DATASET
    claim_home(settings.app, destination_home(home_dataset) if settings.token_store ==
               DESTINATION_STORE else file_home(str(getattr(store, "path", ""))), home_dataset)
    tokens = AgencyTokens(settings, store, session, base_url)
    tokens.load()
    return tokens


def token_store(settings: AgencySettings, warnings: list[str] | None = None) -> TokenStore:
    """`TOKEN_STORE`: a file path (default `.dlt/highlevel_tokens.json`, git-ignored), or
    `destination`: a table of the run's dataset, encrypted with `STORE_KEY`."""
    if settings.token_store != DESTINATION_STORE:
        path = settings.token_store or str(Path(dlt.current.run_context().settings_dir)
                                           / DEFAULT_STORE_FILE)
        return FileTokenStore(path, TOKEN_STORE_KEY, warnings)
    if not settings.store_key:
        raise ConfigProblem(f"{TOKEN_STORE_KEY} = {DESTINATION_STORE} needs {STORE_KEY_KEY}, "
                            "the key the stored tokens are encrypted with")
    from sources.highlevel.destination_store import DestinationTokenStore  # cryptography

    try:
        pipeline = dlt.current.pipeline()
    except Exception:  # no pipeline is running: nowhere to keep them
        raise ConfigProblem(f"{TOKEN_STORE_KEY} = {DESTINATION_STORE} works only inside a "
                            "pipeline run") from None
    return DestinationTokenStore(pipeline, settings.store_key, STORE_KEY_KEY, settings.app,
                                 settings.token_dataset or DEFAULT_TOKEN_DATASET)


class OAuthRefused(ProviderError):
    """The OAuth server refused a grant or an exchange (the message names the key to fix)."""


class RefreshTokenRejected(ConfigProblem):
    """`invalid_grant`: the refresh token was spent or revoked; only a new authorization of
    the app mends it (exit 2)."""


class LocationTokenRefused(ScopeRefused, OAuthRefused):
    """No token could be had for one location (the app is not installed there): that
    location fails, the others are read."""

    def __init__(self, location: str, detail: str) -> None:
        super().__init__(location, f"location {location}: no token from the agency OAuth app "
                                   f"({detail}); is the app installed there? ({CLIENT_ID_KEY})")
        self.location = location


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # unix time
    issued_at: float

    def fresh(self, now: float) -> bool:
        margin = min(MAX_MARGIN, (self.expires_at - self.issued_at) / 10)
        return now < self.expires_at - margin

    def stored(self) -> dict[str, Any]:
        return {"access_token": self.value, "expires_at": self.expires_at,
                "issued_at": self.issued_at}

    @classmethod
    def from_stored(cls, entry: Any) -> Token | None:
        if not isinstance(entry, dict) or not isinstance(entry.get("access_token"), str):
            return None
        try:
            token = cls(entry["access_token"], float(entry["expires_at"]),
                        float(entry.get("issued_at", 0.0)))
        except (KeyError, TypeError, ValueError):
            return None
        register(token.value)
        return token

    @classmethod
    def from_answer(cls, answer: dict[str, Any], now: float) -> Token:
        try:
            lifetime = float(answer.get("expires_in", DEFAULT_LIFETIME))
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME
        value = answer.get("access_token")
        if not isinstance(value, str) or not value:
            raise OAuthRefused("an answer without an access token")
        register(value)
        if not value.isprintable() or any(c.isspace() for c in value):
            # no header can carry it (requests would quote it in its error)
            raise OAuthRefused("an access token holding spaces or control characters")
        return cls(value, now + max(lifetime, 1.0), now)


class AgencyTokens:
    """The company token and a token per location, shared by every thread of a run.

    Company refreshes run under the store's lock (threads and processes), re-reading the store
    first: whoever waited uses the token the other one got instead of spending a refresh token
    already spent. Location tokens are minted once per location and thread-safely cached;
    minted ones are written to the store in bulk (`flush`), as losing one costs a mint."""

    def __init__(self, settings: AgencySettings, store: TokenStore, session: requests.Session,
                 base_url: str, clock: Any = time.time) -> None:
        self.settings, self.store, self.session = settings, store, session
        self.base_url, self.clock = base_url.rstrip("/"), clock
        self.account = f"{self.base_url} {settings.client_id} {settings.company_id}"
        self._company: Token | None = None
        self._company_lock = threading.Lock()
        self._locations: dict[str, Token] = {}
        self._location_locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._unsaved: set[str] = set()
        self.discovery_stopped: str | None = None  # why the last discovery stopped early

    # --- the company token ----------------------------------------------------------------
    def company_token(self, stale: str | None = None) -> str:
        """A fresh company access token (refreshed if `stale` is the one in hand)."""
        with self._company_lock:
            now = self.clock()
            if self._company and self._company.fresh(now) and self._company.value != stale:
                return self._company.value
            with self.store.locked():
                document = self.store.read()
                entry = self._entry(document)
                stored = Token.from_stored(entry.get("company"))
                if stored and stored.fresh(now) and stored.value != stale:
                    self._company = stored
                    self._adopt_locations(entry)
                    return stored.value
                self._company = self._refresh(document, entry, now)
            return self._company.value

    def _entry(self, document: dict[str, Any]) -> dict[str, Any]:
        """This app's part of the store; a chain started from another configured refresh
        token (the app re-authorized) is dropped."""
        entry = document.get("accounts", {}).get(self.account)
        if not isinstance(entry, dict) or entry.get("chain") != self.settings.chain:
            return {"chain": self.settings.chain}
        return entry

    def _refresh(self, document: dict[str, Any], entry: dict[str, Any], now: float) -> Token:
        stored_refresh = entry.get("refresh_token")
        refresh_token = (stored_refresh if isinstance(stored_refresh, str) and stored_refresh
                         else self.settings.refresh_token)
        register(refresh_token)
        answer = self._send("POST", "oauth/token", data={
            "client_id": self.settings.client_id, "client_secret": self.settings.client_secret,
            "grant_type": "refresh_token", "refresh_token": refresh_token,
            "user_type": "Company"}, refresh=True)
        token = Token.from_answer(answer, now)
        new_refresh = answer.get("refresh_token")
        if not isinstance(new_refresh, str) or not new_refresh:
            raise OAuthRefused(f"the token endpoint answered without a refresh token; "
                               f"re-authorize the app ({REFRESH_TOKEN_KEY})")
        register(new_refresh)
        entry.update(refresh_token=new_refresh, company=token.stored())
        self._save(document, entry)  # durable before the new access token is used
        return token

    # --- location tokens ------------------------------------------------------------------
    def location_token(self, location: str, stale: str | None = None) -> str:
        """A fresh token for `location`; a new one if `stale` (refused) is the one in hand,
        unless another thread renewed it meanwhile."""
        with self._lock_of(location):
            token = self._locations.get(location)
            if token is not None and token.value != stale and token.fresh(self.clock()):
                return token.value
            return self._mint(location).value

    def _mint(self, location: str) -> Token:
        try:
            answer = self._exchange(location)
            named = answer.get("locationId")
            if named is not None and str(named) != location:
                raise OAuthRefused("the answer names another location")
            token = Token.from_answer(answer, self.clock())
        except LocationTokenRefused:
            raise
        except OAuthRefused as exc:
            raise LocationTokenRefused(location, str(exc)) from None
        self._locations[location] = token
        with self._locks_lock:
            self._unsaved.add(location)
        return token

    def _exchange(self, location: str) -> dict[str, Any]:
        company = self.company_token()
        form = {"companyId": self.settings.company_id, "locationId": location}
        try:
            return self._send("POST", "oauth/locationToken", data=form, bearer=company)
        except _Unauthorized:  # the company token expired early or was revoked: once more
            return self._send("POST", "oauth/locationToken", data=form,
                              bearer=self.company_token(stale=company))

    def _lock_of(self, location: str) -> threading.Lock:
        with self._locks_lock:
            return self._location_locks.setdefault(location, threading.Lock())

    def _adopt_locations(self, entry: dict[str, Any]) -> None:
        """Location tokens another run stored, where this run has none yet."""
        for location, stored in (entry.get("locations") or {}).items():
            token = Token.from_stored(stored)
            if token is not None and location not in self._locations:
                self._locations[location] = token

    def load(self) -> None:
        """Start from the store: the company token and the cached location tokens."""
        with self.store.locked():
            entry = self._entry(self.store.read())
        self._adopt_locations(entry)
        stored = Token.from_stored(entry.get("company"))
        if stored is not None:
            self._company = stored

    def flush(self) -> None:
        """Write the location tokens minted since the last flush (the others' entries kept)."""
        with self._locks_lock:
            unsaved, self._unsaved = self._unsaved, set()
        if not unsaved:
            return
        with self.store.locked():
            document = self.store.read()
            entry = self._entry(document)
            locations = entry.setdefault("locations", {})
            now = self.clock()
            for location in list(locations):
                if (token := Token.from_stored(locations[location])) is None or \
                        token.expires_at <= now:
                    del locations[location]
            locations.update({loc: self._locations[loc].stored() for loc in unsaved})
            self._save(document, entry)

    def _save(self, document: dict[str, Any], entry: dict[str, Any]) -> None:
        document.setdefault("accounts", {})[self.account] = entry
        document["version"] = 1
        self.store.write(document)

    # --- discovery ------------------------------------------------------------------------
    def installed_locations(self) -> Iterator[str]:
        """Ids of the locations where the app is installed (`APP_ID` set), page by page.

        Paging goes on while pages come back full, whatever `count` says (a count that lies
        low skips nothing); a page naming only locations already listed, or more than
        `MAX_DISCOVERY_PAGES` pages, stops it with `discovery_stopped` saying why."""
        skip, seen, pages = 0, set[str](), 0
        self.discovery_stopped = None
        while True:
            answer = self._get("oauth/installedLocations", {
                "companyId": self.settings.company_id, "appId": self.settings.app_id,
                "isInstalled": "true", "skip": skip, "limit": DISCOVERY_PAGE})
            locations = answer.get("locations")
            if not isinstance(locations, list):
                raise OAuthRefused(f"installedLocations answered without a list of locations "
                                   f"({APP_ID_KEY})")
            ids = [str(loc.get("_id", "")) for loc in locations if isinstance(loc, dict)
                   and loc.get("isInstalled", True)]
            if locations and ids and seen.issuperset(ids):
                self.discovery_stopped = (f"the installedLocations listing repeats at skip="
                                          f"{skip}: stopped after {len(seen)} locations")
                return
            seen.update(ids)
            yield from ids
            skip += len(locations)
            pages += 1
            total = answer.get("count")
            if not locations or (len(locations) < DISCOVERY_PAGE and (
                    not isinstance(total, int) or skip >= total)):
                return
            if pages >= MAX_DISCOVERY_PAGES:
                self.discovery_stopped = (f"the installedLocations listing passed "
                                          f"{MAX_DISCOVERY_PAGES} pages: stopped after "
                                          f"{len(seen)} locations")
                return

    # --- HTTP -----------------------------------------------------------------------------
    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        company = self.company_token()
        try:
            return self._send("GET", path, params=params, bearer=company)
        except _Unauthorized:
            return self._send("GET", path, params=params,
                              bearer=self.company_token(stale=company))

    def _send(self, method: str, path: str, *, bearer: str | None = None,
              refresh: bool = False, **kwargs: Any) -> dict[str, Any]:
        headers = {"Version": API_VERSION, "Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        response = self.session.request(method, f"{self.base_url}/{path}", headers=headers,
                                        **kwargs)
        code = response.status_code
        if code >= 400:
            if code == 429 or code >= 500:  # after dlt's retries: ends the provider's run
                response.raise_for_status()
            body = redact(response.text[:300].strip())
            if refresh and code in (400, 401):
                _refresh_refused(response, body)
            if code == 401:
                raise _Unauthorized(f"HTTP 401: {body}")
            raise OAuthRefused(f"{path}: HTTP {code}: {body}")
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise OAuthRefused(f"{path}: an answer that is not a JSON object")
        return answer


class _Unauthorized(OAuthRefused):
    pass


def _refresh_refused(response: requests.Response, body: str) -> None:
    """A refused refresh: the client credentials, or the refresh token (spent or revoked)."""
    lower = body.lower()
    if "invalid_client" in lower or ("client" in lower and "secret" in lower):
        raise ConfigProblem(f"the OAuth app's client credentials were refused (HTTP "
                            f"{response.status_code}); check {CLIENT_ID_KEY} and "
                            f"{CLIENT_SECRET_KEY}")
    raise RefreshTokenRejected(
        f"{REFRESH_TOKEN_KEY} was refused (HTTP {response.status_code}: invalid_grant, spent or "
        "revoked): the app must be re-authorized by the agency; put the new refresh token in "
        f"{REFRESH_TOKEN_KEY} (it replaces the stored one)")
