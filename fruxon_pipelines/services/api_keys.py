"""Workspace API keys of the sources API: minted by `fruxon apikey create`, kept as SHA-256.

A key is ``fini_`` and 256 random bits, so a hash lookup finds it and the stored hash tells an
attacker nothing; it is shown once. ``write`` keys may also read.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import TYPE_CHECKING

from fruxon_pipelines.catalog.models import ApiKey
from fruxon_pipelines.catalog.store import Catalog

if TYPE_CHECKING:
    from fruxon_pipelines.services.context import Services
from fruxon_pipelines.domain import TENANT_PATTERN

__all__ = ["ApiKey", "authenticate", "key_hash", "live_api_key", "may", "mint_api_key"]

KEY_PREFIX = "fini_"
SCOPES = ("read", "write")


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def mint_api_key(
    catalog: Catalog, tenant: str, scope: str, name: str | None = None
) -> tuple[ApiKey, str]:
    """A new key for the workspace ``tenant``: its row and the key itself (shown once)."""
    if not TENANT_PATTERN.match(tenant):
        raise ValueError(f"{tenant!r} is not a tenant name (letters, digits, - and _)")
    if scope not in SCOPES:
        raise ValueError("scope is read or write")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        id=str(uuid.uuid4()),
        key_hash=key_hash(key),
        tenant=tenant,
        name=name or f"{scope} key",
        scope=scope,
        prefix=key[: len(KEY_PREFIX) + 6],
    )
    return catalog.add_api_key(row), key


def live_api_key(catalog: Catalog, key: str) -> ApiKey | None:
    """The key's row if it exists and is not revoked."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = catalog.api_key_by_hash(key_hash(key))
    return row if row is not None and row.revoked_at is None else None


def may(row: ApiKey, scope: str) -> bool:
    return row.scope == scope or row.scope == "write"


def authenticate(svc: Services, key: str) -> ApiKey | None:
    """The live workspace API key a request carries, or None."""
    return live_api_key(svc.catalog, key)
