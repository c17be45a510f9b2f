"""OAuth for connector source types: authorize, the provider's callback, the success page and
the one-time credential exchange (fruxon_pipelines.services.oauth does the work)."""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import Field

from fruxon_api.auth import Writer
from fruxon_api.deps import Svc
from fruxon_api.problems import Problem, bad_request
from fruxon_client.models import Request, Wire
from fruxon_pipelines.errors import CREDENTIALS
from fruxon_pipelines.services import oauth as oauth_flow
from fruxon_pipelines.sources.base import SourceError
from fruxon_pipelines.sources.oauth import OAUTH_APPS
from fruxon_pipelines.sources.registry import SOURCE_TYPES

router = APIRouter(tags=["oauth"])

# Pages that carry a code or a credential key must not be cached or leak through a Referer.
PRIVATE_PAGE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class AuthorizeRequest(Request):
    sourceType: str = Field(min_length=1)
    # Our extension: what the provider's endpoints are built from (Zendesk's `subdomain`).
    parameters: dict[str, Any] = Field(default_factory=dict)


class AuthorizeResponse(Wire):
    authorizationUrl: str


class OAuthCredentialsOut(Wire):
    accessToken: str
    refreshToken: str | None = None
    tokenType: str
    expiresAt: int | None = None


@router.post("/v1/tenants/{tenant}/assets:authorize", response_model=AuthorizeResponse)
def authorize(tenant: str, body: AuthorizeRequest, principal: Writer, svc: Svc):
    """A consent URL for an OAuth-capable source type, bound to a single-use, 10-minute state."""
    kind = SOURCE_TYPES.get(body.sourceType)
    if kind is None or not kind.supports_oauth or body.sourceType not in OAUTH_APPS:
        raise bad_request(f"sourceType {body.sourceType!r} does not support OAuth")
    try:
        url = oauth_flow.start(svc, tenant, body.sourceType, body.parameters)
    except SourceError as error:
        raise bad_request(str(error)) from error
    return AuthorizeResponse(authorizationUrl=url)


@router.get("/v1/oauth/{source_type}/callback", include_in_schema=True)
def oauth_callback(
    source_type: str,
    svc: Svc,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
):
    """Where the provider sends the user back: the code becomes tokens, parked under a
    single-use credential key that the success page carries."""
    if source_type not in OAUTH_APPS:
        raise Problem(404, "Not Found", f"no OAuth callback for {source_type!r}")
    if error:
        raise bad_request(f"the provider did not grant access: {error[:64]}")
    if not state or not code:
        raise bad_request("the callback needs both state and code")
    try:
        key = oauth_flow.complete(svc, source_type, state, code)
    except oauth_flow.OAuthFlowError as refused:
        raise bad_request(str(refused)) from refused
    except SourceError as failed:
        if failed.category == CREDENTIALS:
            raise bad_request(f"the code was not accepted: {failed}") from failed
        raise Problem(502, "Bad Gateway", str(failed)) from failed
    target = svc.settings.oauth_success_url or f"{svc.settings.api_base_url}/v1/oauth/success"
    separator = "&" if "?" in target else "?"
    return RedirectResponse(
        f"{target}{separator}{urlencode({'credentialKey': key, 'sourceType': source_type})}",
        status_code=303,
        headers=PRIVATE_PAGE,
    )


@router.get("/v1/oauth/success", response_class=HTMLResponse, include_in_schema=False)
def oauth_success(credentialKey: str = "", sourceType: str = "") -> HTMLResponse:
    """The default success page: hands the key to the window that opened the consent popup
    (same origin only) and shows it for copying."""
    key = html.escape(credentialKey)
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Connected</title></head>
<body>
<h1>{html.escape(sourceType) or "Source"} connected</h1>
<p>Exchange this single-use key within ten minutes with
<code>GET /v1/tenants/&lt;tenant&gt;/assets:oauthCredentials?credentialKey=…</code>:</p>
<p><code id="key">{key}</code></p>
<script>
if (window.opener) {{
  window.opener.postMessage({{credentialKey: document.getElementById("key").textContent}},
                            window.location.origin);
}}
</script>
</body></html>"""
    return HTMLResponse(page, headers=PRIVATE_PAGE)


@router.get("/v1/tenants/{tenant}/assets:oauthCredentials", response_model=OAuthCredentialsOut)
def oauth_credentials(tenant: str, svc: Svc, credentialKey: str | None = None):
    """Anonymous (the key is the credential): the tokens once; any second call is a 400."""
    if not credentialKey:
        raise bad_request("credentialKey is required")
    tokens = oauth_flow.take(svc, tenant, credentialKey)
    if tokens is None:
        raise bad_request("the credential key is unknown, already used or expired")
    return OAuthCredentialsOut(
        accessToken=tokens.accessToken,
        refreshToken=tokens.refreshToken,
        tokenType=tokens.tokenType or "Bearer",
        expiresAt=tokens.expiresAt,
    )
