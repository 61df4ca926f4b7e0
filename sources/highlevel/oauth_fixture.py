"""HighLevel's OAuth endpoints for an agency's Marketplace app, as documented (api-notes:
HighLevel OAuth): single-use refresh tokens, company and location access tokens that expire,
location tokens bound to one location, the locations where the app is installed."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from simulator.server import Reply, Route, SimRequest

READ_SCOPE, WRITE_SCOPE = "socialplanner/csv.readonly", "socialplanner/csv.write"


@dataclass
class _Issued:
    kind: str  # company | location
    location: str | None
    expires_at: float  # monotonic
    scopes: tuple[str, ...]


@dataclass
class OAuthApp:
    """The app's client, its install in one company (agency) and the tokens it has issued.

    `lifetime` is how long access tokens last (seconds; a day at HighLevel); a refresh token
    works once. `installed` maps location id -> name; `scopes` are those of minted location
    tokens. Every token issued is kept in `issued` (tests scan what a run leaves for them)."""

    client_id: str = "sim-client-id"
    client_secret: str = "sim-client-secret-Zq81"
    company_id: str = "comp_sim"
    app_id: str = "app_sim"
    installed: dict[str, str] = field(default_factory=dict)
    hostile_count: int | None = None  # installedLocations' `count`, when it lies
    hostile_repeat: bool = False  # installedLocations ignores `skip`
    access_suffix: str = ""  # ends every access token issued (hostile: "\r\nX-Injected: 1")
    lifetime: float = 86_399.0
    scopes: tuple[str, ...] = (READ_SCOPE,)
    refresh_token: str = field(default_factory=lambda: _new("hl-refresh"))
    issued: dict[str, _Issued] = field(default_factory=dict)
    spent: list[str] = field(default_factory=list)
    refreshes: int = 0
    mints: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._valid_refresh = {self.refresh_token}
        self.all_secrets = [self.client_secret, self.refresh_token]

    def revoke(self) -> None:
        """The agency uninstalled the app: no refresh token works any more."""
        with self._lock:
            self._valid_refresh.clear()

    def expire_all(self) -> None:
        with self._lock:
            for issued in self.issued.values():
                issued.expires_at = 0.0

    def routes(self) -> list[Route]:
        return [Route("POST", r"/oauth/token", self._token),
                Route("POST", r"/oauth/locationToken", self._location_token),
                Route("GET", r"/oauth/installedLocations", self._installed)]

    # --- the API's side: is a bearer token good for this location? ------------------------
    def check(self, sent: str, location: str, write: bool) -> Reply | None:
        """None when `sent` (a token this app issued, `knows`) is a live token of `location`
        with the needed scope; else the refusal."""
        with self._lock:
            issued = self.issued.get(sent)
        if issued is None or issued.expires_at <= time.monotonic():
            return _unauthorized("Invalid JWT: the token has expired or is invalid")
        if issued.kind != "location":
            return _unauthorized("This route requires a Sub-Account token")
        if issued.location != location:
            return _unauthorized("This location is not accessible from this token.")
        if write and WRITE_SCOPE not in issued.scopes:
            return _unauthorized("The token is not authorized for this scope.")
        return None

    def knows(self, sent: str) -> bool:
        with self._lock:
            return sent in self.issued

    # --- the OAuth endpoints --------------------------------------------------------------
    def _token(self, req: SimRequest) -> Reply:
        form = _form(req)
        if form.get("client_id") != self.client_id or \
                form.get("client_secret") != self.client_secret:
            return Reply(401, {"error": "invalid_client",
                               "error_description": "Client authentication failed"})
        if form.get("grant_type") != "refresh_token" or form.get("user_type") != "Company":
            return Reply(400, {"error": "unsupported_grant_type"})
        with self._lock:
            sent = form.get("refresh_token", "")
            if sent not in self._valid_refresh:
                return Reply(400, {"error": "invalid_grant",
                                   "error_description": "Invalid grant: refresh token is "
                                                       "invalid"})
            self._valid_refresh.discard(sent)  # single-use
            self.spent.append(sent)
            new_refresh = _new("hl-refresh")
            self._valid_refresh.add(new_refresh)
            access = self._issue("company", None, ("oauth.write", "oauth.readonly"))
            self.refreshes += 1
            self.all_secrets += [new_refresh, access]
        return Reply(200, {"access_token": access, "token_type": "Bearer",
                           "expires_in": self.lifetime, "refresh_token": new_refresh,
                           "scope": "oauth.write oauth.readonly", "userType": "Company",
                           "companyId": self.company_id, "userId": "usr_sim",
                           "isBulkInstallation": True})

    def _company(self, req: SimRequest) -> Reply | None:
        sent = (req.header("Authorization") or "").removeprefix("Bearer ")
        with self._lock:
            issued = self.issued.get(sent)
        if issued is None or issued.kind != "company" or issued.expires_at <= time.monotonic():
            return _unauthorized("Invalid JWT: the token has expired or is invalid")
        if req.header("Version") != "2021-07-28":
            return Reply(400, {"statusCode": 400, "message": "Version header is missing"})
        return None

    def _location_token(self, req: SimRequest) -> Reply:
        if (refusal := self._company(req)) is not None:
            return refusal
        form = _form(req)
        location = form.get("locationId", "")
        if form.get("companyId") != self.company_id:
            return Reply(400, {"statusCode": 400, "message": "Company not found"})
        if location not in self.installed:
            return Reply(400, {"statusCode": 400,
                               "message": "Location is not installed for this app"})
        with self._lock:
            access = self._issue("location", location, self.scopes)
            self.mints += 1
            self.all_secrets.append(access)
        return Reply(200, {"access_token": access, "token_type": "Bearer",
                           "expires_in": self.lifetime, "scope": " ".join(self.scopes),
                           "locationId": location, "userId": "usr_sim", "planId": "plan_sim",
                           "appId": self.app_id, "versionId": "ver_sim"})

    def _installed(self, req: SimRequest) -> Reply:
        if (refusal := self._company(req)) is not None:
            return refusal
        if req.query.get("companyId") != self.company_id or \
                req.query.get("appId") != self.app_id:
            return Reply(400, {"statusCode": 400, "message": "companyId or appId not found"})
        skip, limit = int(req.query.get("skip", "0")), int(req.query.get("limit", "20"))
        if self.hostile_repeat:  # a hostile server: every page is the first
            skip = 0
        rows = [{"_id": location, "name": name, "address": "", "isInstalled": True}
                for location, name in self.installed.items()]
        count = len(rows) if self.hostile_count is None else self.hostile_count
        return Reply(200, {"locations": rows[skip: skip + limit], "count": count})

    def _issue(self, kind: str, location: str | None, scopes: tuple[str, ...]) -> str:
        token = _new(f"hl-{kind}-access") + self.access_suffix
        self.issued[token] = _Issued(kind, location, time.monotonic() + self.lifetime, scopes)
        return token


def _new(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def _form(req: SimRequest) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(req.body.decode("utf-8", "replace")).items()}


def _unauthorized(message: str) -> Reply:
    return Reply(401, {"statusCode": 401, "error": "Unauthorized", "message": message})
