"""Bearer JWT → principal (subject, tenants, scopes).

Tokens are HS256, signed with a secret generated into FRUXON_HOME on first start, unless
FRUXON_JWT_PUBLIC_KEY is set: then RS256 tokens from an external issuer are verified with it.
Claims: `sub`, `tenants` (list; "*" for all), `scope` (space-separated: assets:read assets:write).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request

from fruxon_api.problems import Problem
from fruxon_pipelines.domain import TENANT_PATTERN
from fruxon_pipelines.secretbox import ensure_secret_file
from fruxon_pipelines.settings import Settings

READ = "assets:read"
WRITE = "assets:write"
ISSUER = "fruxon"


@dataclass(frozen=True)
class Principal:
    subject: str
    tenants: frozenset[str]
    scopes: frozenset[str]

    def may_use(self, tenant: str) -> bool:
        return "*" in self.tenants or tenant in self.tenants


def ensure_jwt_secret(settings: Settings) -> bytes:
    """The local HS256 secret; created (mode 0600) the first time the stack starts."""
    return ensure_secret_file(settings.jwt_secret_path)


def issue_token(
    settings: Settings,
    *,
    tenants: list[str],
    scopes: list[str],
    subject: str = "cli",
    ttl_seconds: int = 3600,
) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": subject,
        "tenants": tenants,
        "scope": " ".join(scopes),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    return jwt.encode(claims, ensure_jwt_secret(settings), algorithm="HS256")


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def verify_token(settings: Settings, token: str, secret: bytes | None = None) -> Principal:
    """The token's principal. ``secret`` is the HS256 secret when the caller has it already
    (the app reads it once at start-up); otherwise it is read from FRUXON_HOME."""
    return _verified_claims(settings, token, secret)[0]


def _verified_claims(
    settings: Settings, token: str, secret: bytes | None
) -> tuple[Principal, dict[str, Any]]:
    try:
        if settings.jwt_public_key:
            claims = jwt.decode(token, settings.jwt_public_key, algorithms=["RS256"])
        else:
            key = secret if secret is not None else ensure_jwt_secret(settings)
            claims = jwt.decode(token, key, algorithms=["HS256"], issuer=ISSUER)
    except jwt.ExpiredSignatureError as error:
        raise _unauthorized("the token has expired") from error
    except jwt.PyJWTError as error:
        raise _unauthorized("the token is not valid") from error
    tenants = claims.get("tenants")
    scope = claims.get("scope", "")
    if not isinstance(tenants, list) or not isinstance(scope, str) or "sub" not in claims:
        raise _unauthorized("the token lacks the sub, tenants or scope claims")
    principal = Principal(
        str(claims["sub"]), frozenset(map(str, tenants)), frozenset(scope.split())
    )
    return principal, claims


class VerifiedTokens:
    """Tokens this app verified lately, with their principal: a client polling with one token
    is not verified again on every request (a signature check and claim parsing were ~6 % of
    a poll's time, bench/bench_polling.py). The token string is the key, so a token is only
    ever taken for what its own signature said; its ``exp`` and ``nbf`` are checked on every
    use, and an expired one is verified again, to be refused with the reason."""

    def __init__(self, settings: Settings, secret: bytes | None, size: int = 1024) -> None:
        self.settings, self.secret, self.size = settings, secret, size
        self._principals: OrderedDict[str, tuple[Principal, float, float]] = OrderedDict()

    def principal(self, token: str) -> Principal:
        now = time.time()
        cached = self._principals.get(token)
        if cached is not None:
            principal, not_before, expires = cached
            if not_before <= now < expires:
                self._principals.move_to_end(token)
                return principal
            del self._principals[token]
        principal, claims = _verified_claims(self.settings, token, self.secret)
        try:
            not_before = float(claims.get("nbf", 0))
            expires = float(claims.get("exp", math.inf))
        except (TypeError, ValueError):  # PyJWT accepted them; keep to verifying each time
            return principal
        self._principals[token] = (principal, not_before, expires)
        while len(self._principals) > self.size:
            self._principals.popitem(last=False)
        return principal


# The dependencies below are `async def` on purpose: they only compute, and a sync dependency
# costs a hop to the thread pool on every request (measured: bench/bench_polling.py).
async def current_principal(request: Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("send Authorization: Bearer <token>")
    state = request.app.state
    tokens = getattr(state, "verified_tokens", None)
    if tokens is None:
        tokens = state.verified_tokens = VerifiedTokens(
            state.settings, getattr(state, "jwt_secret", None)
        )
    return tokens.principal(token.strip())


def _tenant_principal(tenant: str, principal: Principal, scope: str) -> Principal:
    if not principal.may_use(tenant) or not TENANT_PATTERN.match(tenant):
        # 404, not 403: a principal learns nothing about tenants it cannot use.
        raise Problem(404, "Not Found", f"tenant {tenant} does not exist")
    if scope not in principal.scopes and not (scope == READ and WRITE in principal.scopes):
        raise Problem(403, "Forbidden", f"this token lacks the {scope} scope")
    return principal


async def reader(
    tenant: str, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    return _tenant_principal(tenant, principal, READ)


async def read_access(request: Request, tenant: str) -> Principal:
    """What `Reader` checks, called by a route itself rather than declared."""
    return _tenant_principal(tenant, await current_principal(request), READ)


async def writer(
    tenant: str, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    return _tenant_principal(tenant, principal, WRITE)


Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
