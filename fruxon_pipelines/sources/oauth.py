"""OAuth 2.0 authorization-code apps of the providers: where users consent, how codes become
tokens, and how tokens are refreshed.

Each provider's quirks are data here, checked against its documentation:
- Google: form-encoded token requests, PKCE (S256), ``access_type=offline&prompt=consent`` for a
  refresh token; a refresh usually returns no new refresh token (the old one stays valid).
- Notion: JSON token requests with HTTP Basic client authentication, ``owner=user``; no PKCE;
  refresh tokens rotate.
- Zendesk: per-subdomain endpoints, JSON token requests, PKCE (S256), rotating refresh tokens,
  ``expires_in`` null for tokens that never expire.
- Atlassian (Confluence): JSON token requests, ``audience=api.atlassian.com``, ``offline_access``
  for a refresh token; no PKCE; refresh tokens rotate.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

from fruxon_pipelines.errors import CREDENTIALS, INVALID_CONFIG, SOURCE_UNAVAILABLE
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.sources.auth import SourceAuth, SourceCredentials
from fruxon_pipelines.sources.base import SourceError

SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def subdomain_label(value: str, must_be: str, host_suffix: str = "") -> str:
    """An account's subdomain as a user typed it (any case, spaces around, with
    ``host_suffix`` when given), as the label alone; otherwise ``ValueError("must be …")``."""
    value = value.strip().lower().removesuffix(host_suffix)
    if not SUBDOMAIN.match(value):
        raise ValueError(f"must be {must_be}")
    return value


@dataclass(frozen=True)
class OAuthApp:
    source_type: str
    settings_prefix: str  # google → FRUXON_GOOGLE_CLIENT_ID, …_AUTHORIZE_URL, …_TOKEN_URL
    scopes: tuple[str, ...]
    pkce: bool
    token_body: Literal["form", "json"]
    client_auth: Literal["body", "basic"]
    authorize_extra: dict[str, str] = field(default_factory=dict)
    # Parameters of the asset the endpoints are built from ({subdomain} for Zendesk).
    url_parameters: tuple[str, ...] = ()


OAUTH_APPS: dict[str, OAuthApp] = {
    "google_drive": OAuthApp(
        "google_drive",
        "google",
        scopes=("https://www.googleapis.com/auth/drive.readonly",),
        pkce=True,
        token_body="form",
        client_auth="body",
        authorize_extra={"access_type": "offline", "prompt": "consent"},
    ),
    "notion": OAuthApp(
        "notion",
        "notion",
        scopes=(),
        pkce=False,
        token_body="json",
        client_auth="basic",
        authorize_extra={"owner": "user"},
    ),
    "zendesk": OAuthApp(
        "zendesk",
        "zendesk",
        scopes=("read",),
        pkce=True,
        token_body="json",
        client_auth="body",
        url_parameters=("subdomain",),
    ),
    "confluence": OAuthApp(
        "confluence",
        "atlassian",
        scopes=(
            "read:page:confluence",
            "read:space:confluence",
            "read:attachment:confluence",
            "offline_access",
        ),
        pkce=False,
        token_body="json",
        client_auth="body",
        authorize_extra={"audience": "api.atlassian.com", "prompt": "consent"},
    ),
}


class OAuthNotConfigured(SourceError):
    def __init__(self, message: str) -> None:
        super().__init__(message, INVALID_CONFIG)


def _setting(settings: Settings, app: OAuthApp, name: str) -> Any:
    return getattr(settings, f"{app.settings_prefix}_{name}")


def endpoint(template: str, parameters: dict[str, Any], names: tuple[str, ...]) -> str:
    """A URL template filled with the asset's parameters, each a bare DNS label (so a parameter
    can never move a request carrying a token to another host)."""
    values = {}
    for name in names:
        value = str(parameters.get(name) or "").strip().lower()
        if not SUBDOMAIN.match(value):
            raise OAuthNotConfigured(f"parameters.{name}: {value!r} is not a valid {name}")
        values[name] = value
    return template.format(**values) if values else template


def client_credentials(settings: Settings, app: OAuthApp) -> tuple[str, str]:
    client_id = _setting(settings, app, "client_id")
    secret = _setting(settings, app, "client_secret")
    if not client_id or secret is None:
        prefix = f"FRUXON_{app.settings_prefix.upper()}"
        raise OAuthNotConfigured(
            f"OAuth for {app.source_type} is not configured on this server: set "
            f"{prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET"
        )
    return client_id, secret.get_secret_value()


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_url(
    settings: Settings,
    app: OAuthApp,
    *,
    state: str,
    redirect_uri: str,
    parameters: dict[str, Any],
    code_verifier: str | None,
) -> str:
    client_id, _ = client_credentials(settings, app)
    query = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": "code"}
    if app.scopes:
        query["scope"] = " ".join(app.scopes)
    query["state"] = state
    if app.pkce and code_verifier:
        query["code_challenge"] = pkce_challenge(code_verifier)
        query["code_challenge_method"] = "S256"
    query |= app.authorize_extra
    base = endpoint(_setting(settings, app, "authorize_url"), parameters, app.url_parameters)
    return f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"


def _token_request(
    settings: Settings, app: OAuthApp, parameters: dict[str, Any], grant: dict[str, str]
) -> dict[str, Any]:
    import httpx

    client_id, client_secret = client_credentials(settings, app)
    body = dict(grant)
    auth = None
    if app.client_auth == "basic":
        auth = httpx.BasicAuth(client_id, client_secret)
    else:
        body |= {"client_id": client_id, "client_secret": client_secret}
    url = endpoint(_setting(settings, app, "token_url"), parameters, app.url_parameters)
    try:
        with httpx.Client(timeout=settings.http_timeout_seconds, follow_redirects=False) as http:
            if app.token_body == "form":
                response = http.post(url, data=body, auth=auth)
            else:
                response = http.post(url, json=body, auth=auth)
    except httpx.HTTPError as error:
        raise SourceError(
            f"{app.source_type}'s token endpoint is unreachable: {type(error).__name__}"
        ) from error
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code not in (200, 201) or not isinstance(answer, dict):
        fields = answer if isinstance(answer, dict) else {}
        code = next((v for k in ("error", "code") if isinstance(v := fields.get(k), str)), None)
        reason = f" ({code})" if code else ""  # invalid_grant: revoked or expired
        category = CREDENTIALS if response.status_code in (400, 401, 403) else SOURCE_UNAVAILABLE
        raise SourceError(
            f"{app.source_type}'s token endpoint refused the {grant['grant_type']} grant: "
            f"{response.status_code}{reason}",
            category,
        )
    if not isinstance(answer.get("access_token"), str):
        raise SourceError(f"{app.source_type}'s token endpoint answered without an access_token")
    return answer


def _tokens(answer: dict[str, Any], previous_refresh: str | None = None) -> SourceAuth:
    expires_in = answer.get("expires_in")
    expires_at = (
        int(time.time() * 1000 + float(expires_in) * 1000)
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
        else None
    )
    return SourceAuth(
        method="OAUTH",
        accessToken=answer["access_token"],
        # Google keeps the old refresh token valid and sends none; the others rotate it.
        refreshToken=answer.get("refresh_token") or previous_refresh,
        tokenType=str(answer.get("token_type") or "Bearer"),
        expiresAt=expires_at,
    )


def exchange_code(
    settings: Settings,
    app: OAuthApp,
    *,
    code: str,
    redirect_uri: str,
    parameters: dict[str, Any],
    code_verifier: str | None,
) -> SourceAuth:
    grant = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if app.pkce and code_verifier:
        grant["code_verifier"] = code_verifier
    return _tokens(_token_request(settings, app, parameters, grant))


def refresh(
    settings: Settings, app: OAuthApp, auth: SourceAuth, parameters: dict[str, Any]
) -> SourceAuth | None:
    """New tokens for ``auth``, or None when there is no refresh token to use."""
    if not auth.refreshToken:
        return None
    grant = {"grant_type": "refresh_token", "refresh_token": auth.refreshToken}
    return _tokens(_token_request(settings, app, parameters, grant), auth.refreshToken)


EXPIRY_MARGIN_MS = 60_000


class TokenKeeper:
    """The bearer header of an OAuth asset, refreshed ahead of expiry and after a 401; every
    refresh is saved at once (rotating refresh tokens are single-use)."""

    def __init__(
        self,
        settings: Settings,
        app: OAuthApp,
        credentials: SourceCredentials,
        parameters: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.app = app
        self.credentials = credentials
        self.parameters = parameters
        self.refreshes = 0

    def _header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.auth.accessToken}"}

    def headers(self) -> dict[str, str]:
        auth = self.credentials.auth
        due = auth.expiresAt is not None and auth.expiresAt - EXPIRY_MARGIN_MS <= time.time() * 1000
        if due and auth.refreshToken:
            self.refresh_now()
        return self._header()

    def refresh_now(self) -> dict[str, str] | None:
        """Fresh tokens (saved), or None when there is nothing to refresh with."""
        fresh = refresh(self.settings, self.app, self.credentials.auth, self.parameters)
        if fresh is None:
            return None
        self.refreshes += 1
        self.credentials.auth = fresh
        self.credentials.save(fresh)
        return self._header()
