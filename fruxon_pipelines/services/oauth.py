"""The OAuth round trip: authorize → provider consent → callback → credential key → tokens.

- ``start`` records a flow and returns the provider's consent URL. The flow's id (256 random
  bits) travels as ``state``, signed, so a forged or altered state is refused before any
  lookup; it is good for one callback within ten minutes. Providers that take PKCE get an S256
  challenge; the verifier stays here, sealed.
- ``complete`` claims the flow (single use), exchanges the code at the provider's token
  endpoint and parks the tokens, sealed, under a fresh credential key (256 bits, stored only as
  its SHA-256) for ten minutes.
- ``take`` hands the tokens out once for that key; a second call finds nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING, Any

from fruxon_pipelines.catalog.models import OAuthCredential, OAuthFlow, now_ms
from fruxon_pipelines.secretbox import SecretUnreadable, secret_box
from fruxon_pipelines.settings import Settings
from fruxon_pipelines.sources.auth import SourceAuth, load_source_auth
from fruxon_pipelines.sources.oauth import OAUTH_APPS, authorization_url, exchange_code

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services

FLOW_LIFETIME_MS = 10 * 60 * 1000
CREDENTIAL_LIFETIME_MS = 10 * 60 * 1000


class OAuthFlowError(ValueError):
    """The callback or the exchange cannot go on (the message says why, without secrets)."""


def redirect_uri(settings: Settings, source_type: str) -> str:
    return f"{settings.api_base_url}/v1/oauth/{source_type}/callback"


def start(svc: Services, tenant: str, source_type: str, parameters: dict[str, Any]) -> str:
    """The consent URL for a new flow (raises SourceError when OAuth is not configured)."""
    settings, store = svc.settings, svc.catalog
    app = OAUTH_APPS[source_type]
    box = secret_box(settings)
    flow_id = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(48) if app.pkce else None
    state = f"{flow_id}.{box.sign(flow_id)}"
    url = authorization_url(
        settings,
        app,
        state=state,
        redirect_uri=redirect_uri(settings, source_type),
        parameters=parameters,
        code_verifier=verifier,
    )
    now = now_ms()
    store.add_oauth_flow(
        OAuthFlow(
            id=hashlib.sha256(flow_id.encode()).hexdigest(),
            tenant=tenant,
            source_type=source_type,
            parameters=parameters,
            code_verifier=box.seal(verifier) if verifier else None,
            created_at=now,
            expires_at=now + FLOW_LIFETIME_MS,
        )
    )
    return url


def complete(svc: Services, source_type: str, state: str, code: str) -> str:
    """The credential key for the tokens the code is exchanged for."""
    settings, store = svc.settings, svc.catalog
    box = secret_box(settings)
    flow_id, _, signature = state.partition(".")
    if not flow_id or not signature or not box.verify(flow_id, signature):
        raise OAuthFlowError("the state parameter is not one this server issued")
    flow = store.claim_oauth_flow(hashlib.sha256(flow_id.encode()).hexdigest())
    if flow is None:
        raise OAuthFlowError("the state was already used or has expired; authorize again")
    if flow.source_type != source_type:
        raise OAuthFlowError("the state was issued for another source type")
    try:
        verifier = box.open(flow.code_verifier) if flow.code_verifier else None
    except SecretUnreadable as error:
        raise OAuthFlowError("the flow cannot be completed with this server's key") from error
    tokens = exchange_code(
        settings,
        OAUTH_APPS[source_type],
        code=code,
        redirect_uri=redirect_uri(settings, source_type),
        parameters=flow.parameters,
        code_verifier=verifier,
    )
    key = secrets.token_urlsafe(32)
    now = now_ms()
    store.add_oauth_credential(
        OAuthCredential(
            key_hash=hashlib.sha256(key.encode()).hexdigest(),
            tenant=flow.tenant,
            source_type=source_type,
            tokens=box.seal(tokens.sealed_json()),
            created_at=now,
            expires_at=now + CREDENTIAL_LIFETIME_MS,
        )
    )
    return key


def take(svc: Services, tenant: str, key: str) -> SourceAuth | None:
    """The tokens behind ``key``, once; None for an unknown, used, expired or other tenant's key."""
    credential = svc.catalog.take_oauth_credential(hashlib.sha256(key.encode()).hexdigest())
    if credential is None or credential.tenant != tenant:
        return None
    return load_source_auth(secret_box(svc.settings).open(credential.tokens))
